"""Probe plans: which addresses port prediction and birthday probing try, and the pacer that
spaces the probes out in time.

Rule: pure planning; ports come from the listed endpoint and the injected `random.Random`, and
the pacer releases at most one probe per `interval` (a burst of hundreds of datagrams would
look like a port scan to a NAT or an IDS, and overflow small NAT tables and socket buffers).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Hashable, Iterable

from ..endpoint import Endpoint
from ..messages import Transmit

PORT_MIN, PORT_MAX = 1, 65535


def prediction_ports(listed: Endpoint, window: int, delta: int = 1) -> list[Endpoint]:
    """The next `window` ports a sequential NAT hands out after the listed one: p+delta*1..p+delta*window.

    The listed port is the mapping the peer's NAT made towards the server; its next mappings
    (towards us, first of all) follow it by `delta` each (RFC 4787 §4.2.1 calls this
    sequential allocation). Ports outside 1..65535 are left out.
    """
    if window < 0:
        raise ValueError(f"window must not be negative, got {window}")
    if delta == 0:
        raise ValueError("delta must not be 0")
    ports = (listed.port + delta * i for i in range(1, window + 1))
    return [Endpoint(listed.host, p) for p in ports if PORT_MIN <= p <= PORT_MAX]


def birthday_ports(host: str, count: int, ports: tuple[int, int], rng: random.Random) -> list[Endpoint]:
    """`count` distinct random ports at `host` within `ports` (inclusive): the easy side's probes.

    Drawn once per peer and probed again on every sweep, so the chance of success is the
    birthday figure for exactly this many probes (see `probability.py`).
    """
    low, high = ports
    if not PORT_MIN <= low <= high <= PORT_MAX:
        raise ValueError(f"ports must be a range within 1..65535, got {ports!r}")
    count = min(count, high - low + 1)
    return [Endpoint(host, p) for p in rng.sample(range(low, high + 1), count)]


class Pacer:
    """A queue of probes released one per `interval`, each tagged with the peer it is for."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._queue: deque[tuple[Hashable, Transmit]] = deque()
        self._next_at: float | None = None

    def push(self, key: Hashable, transmits: Iterable[Transmit], now: float) -> None:
        """Queue probes for the peer `key`; the first may go out at once."""
        self._queue.extend((key, t) for t in transmits)
        if self._queue and self._next_at is None:
            self._next_at = now

    def pending(self, key: Hashable) -> bool:
        """True while probes for `key` wait in the queue."""
        return any(k == key for k, _ in self._queue)

    def clear(self) -> None:
        """Forget every queued probe."""
        self._queue.clear()
        self._next_at = None

    def next_timer(self) -> float | None:
        """When the next probe is due, or None with an empty queue."""
        return self._next_at

    def due(self, now: float, wanted: Callable[[Hashable], bool]) -> list[Transmit]:
        """The probe due now, if any; probes whose peer is no longer `wanted` are skipped."""
        if self._next_at is None or now < self._next_at:
            return []
        while self._queue:
            key, transmit = self._queue.popleft()
            if wanted(key):
                # A late timer slows the pace down; it never releases a catch-up burst.
                self._next_at = now + self.interval if self._queue else None
                return [transmit]
        self._next_at = None
        return []
