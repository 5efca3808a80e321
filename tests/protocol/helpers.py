"""In-memory link for the sans-IO machines: Transmits in, Transmits out, a hand-advanced clock.

Rule: no sockets, no real time. `Network` is the h11 `ConnectionPair` idea stretched to many
machines: every datagram takes a fixed `delay` to arrive, and a datagram is lost when the `lose`
predicate says so. The drive loop is the one every backend uses: feed input, drain events,
send datagrams, re-arm the timer at `get_timer()`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from holepunch.protocol import Endpoint, Event, MessageKind, Transmit

SERVER = Endpoint("192.0.2.1", 5000)


def peer_endpoint(n: int) -> Endpoint:
    """The n-th test peer's public endpoint (documentation range, RFC 5737)."""
    return Endpoint(f"198.51.100.{n}", 40000 + n)


class Machine(Protocol):
    """What the server, the client and the test doubles share (the aioquic shape)."""

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def get_timer(self) -> float | None: ...
    def datagrams_to_send(self, now: float) -> list[Transmit]: ...
    def next_event(self) -> Event | None: ...


@dataclass(frozen=True)
class Packet:
    """One datagram handed to the link, and whether the link delivered it."""

    sent: float
    source: Endpoint
    destination: Endpoint
    data: bytes
    kind: MessageKind
    lost: bool


def drain(machine: Machine, now: float) -> tuple[list[Transmit], list[Event]]:
    """Everything a machine has produced so far: its datagrams and its events."""
    out = machine.datagrams_to_send(now)
    events: list[Event] = []
    while (event := machine.next_event()) is not None:
        events.append(event)
    return out, events


@dataclass
class Network:
    """Machines at fixed endpoints joined by a link with a fixed one-way delay."""

    delay: float = 0.005
    lose: Callable[[Packet], bool] | None = None
    now: float = 0.0
    machines: dict[Endpoint, Machine] = field(default_factory=dict)
    packets: list[Packet] = field(default_factory=list)
    events: list[tuple[float, Endpoint, Event]] = field(default_factory=list)
    _queue: list[tuple[float, int, Packet]] = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count)  # type: ignore[type-arg]

    def add(self, endpoint: Endpoint, machine: Machine) -> Machine:
        """Place `machine` at `endpoint`; datagrams to endpoints without a machine vanish."""
        self.machines[endpoint] = machine
        return machine

    def at(self, when: float, action: Callable[[float], None]) -> None:
        """Run the network until `when`, then call `action(now)` (e.g. a client's start)."""
        self.run(until=when)
        self.now = when
        action(when)
        self.flush()

    def inject(self, source: Endpoint, destination: Endpoint, data: bytes) -> None:
        """Send a hand-made datagram from `source` now, as if a machine there had sent it."""
        self._send(source, Transmit(data, destination, MessageKind.DATA))

    def flush(self) -> None:
        """Collect every machine's datagrams and events at the current time."""
        for endpoint, machine in self.machines.items():
            out, events = drain(machine, self.now)
            self.events.extend((self.now, endpoint, e) for e in events)
            for transmit in out:
                self._send(endpoint, transmit)

    def _send(self, source: Endpoint, transmit: Transmit) -> None:
        packet = Packet(self.now, source, transmit.destination, transmit.data, transmit.kind, False)
        if self.lose is not None and self.lose(packet):
            packet = replace(packet, lost=True)
        self.packets.append(packet)
        if not packet.lost:
            heapq.heappush(self._queue, (self.now + self.delay, next(self._seq), packet))

    def _next_time(self) -> float | None:
        times = [t for m in self.machines.values() if (t := m.get_timer()) is not None]
        if self._queue:
            times.append(self._queue[0][0])
        return min(times) if times else None

    def step(self, until: float) -> bool:
        """Advance to the next delivery or timer not after `until`; False when there is none."""
        when = self._next_time()
        if when is None or when > until:
            return False
        self.now = max(self.now, when)
        while self._queue and self._queue[0][0] <= self.now:
            packet = heapq.heappop(self._queue)[2]
            machine = self.machines.get(packet.destination)
            if machine is not None:
                machine.receive_datagram(packet.data, packet.source, self.now)
        for machine in self.machines.values():
            timer = machine.get_timer()
            if timer is not None and timer <= self.now:
                machine.handle_timer(self.now)
        self.flush()
        return True

    def run(self, until: float, stop: Callable[[], bool] | None = None, max_steps: int = 100_000) -> None:
        """Step until `until`, until `stop()` is true, or fail if the machines spin."""
        for _ in range(max_steps):
            if stop is not None and stop():
                return
            if not self.step(until):
                self.now = max(self.now, until)
                return
        raise AssertionError(f"no progress after {max_steps} steps at t={self.now}")

    # --- queries ------------------------------------------------------------------------------

    def sent(self, source: Endpoint | None = None, destination: Endpoint | None = None) -> list[Packet]:
        """Packets handed to the link, optionally only from `source` and/or to `destination`."""
        return [
            p for p in self.packets
            if (source is None or p.source == source)
            and (destination is None or p.destination == destination)
        ]

    def events_of(self, endpoint: Endpoint, kind: type | None = None) -> list[tuple[float, Event]]:
        """(time, event) pairs a machine reported, optionally only of one event class."""
        return [(t, e) for t, ep, e in self.events if ep == endpoint and (kind is None or isinstance(e, kind))]


class ReferenceLikeServer:
    """The reference server's reply rule (fact sheet §3), enough to test fallback against it.

    It treats every datagram, extension or not, as an opaque ID, drops IDs over 1024 bytes, and
    answers with the other members in least-recently-registered order; it never pushes.
    """

    def __init__(self) -> None:
        self.sessions: dict[bytes, list[Endpoint]] = {}
        self.received: list[tuple[float, Endpoint, bytes]] = []
        self._out: list[Transmit] = []

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None:
        self.received.append((now, source, data))
        if len(data) > 1024:
            return
        members = [m for m in self.sessions.get(data, []) if m != source]
        reply = ",".join(m.text for m in members).encode()
        self.sessions[data] = members + [source]
        self._out.append(Transmit(reply, source, MessageKind.PEER_LIST))

    def handle_timer(self, now: float) -> None:
        pass

    def get_timer(self) -> float | None:
        return None

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return None


class Recorder:
    """A scripted endpoint: records what it receives and sends what the test queues."""

    def __init__(self, reply: Callable[[bytes, Endpoint, float], list[Transmit]] | None = None) -> None:
        self.received: list[tuple[float, Endpoint, bytes]] = []
        self.reply = reply
        self._out: list[Transmit] = []

    def send(self, data: bytes, destination: Endpoint) -> None:
        """Queue a datagram; the network sends it at its next flush."""
        self._out.append(Transmit(data, destination, MessageKind.DATA))

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None:
        self.received.append((now, source, data))
        if self.reply is not None:
            self._out.extend(self.reply(data, source, now))

    def handle_timer(self, now: float) -> None:
        pass

    def get_timer(self) -> float | None:
        return None

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return None


class Hand:
    """Drive one machine by hand: start it, feed it datagrams, fire its timers, keep the output.

    Timers due before an input fire first, each at its own time, as a driver would do; every
    datagram sent is logged in `sent` with its time, every event in `events`.
    """

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.sent: list[tuple[float, Transmit]] = []
        self.events: list[tuple[float, Event]] = []

    def _collect(self, now: float) -> list[Transmit]:
        out, events = drain(self.machine, now)
        self.sent += [(now, t) for t in out]
        self.events += [(now, e) for e in events]
        return out

    def start(self, now: float) -> list[Transmit]:
        """Call the client's `start(now)`; returns what it sends at once."""
        self.machine.start(now)  # type: ignore[attr-defined]
        return self._collect(now)

    def feed(self, data: bytes, source: Endpoint, now: float) -> list[Transmit]:
        """Fire timers due by `now`, deliver one datagram, return what it made the machine send."""
        self.timers(now)
        self.machine.receive_datagram(data, source, now)
        return self._collect(now)

    def timers(self, until: float) -> list[tuple[float, Transmit]]:
        """Fire every timer due by `until` at its own time; returns (time, datagram) sent."""
        out: list[tuple[float, Transmit]] = []
        for _ in range(100_000):
            due = self.machine.get_timer()
            if due is None or due > until:
                return out
            self.machine.handle_timer(due)
            out += [(due, t) for t in self._collect(due)]
        raise AssertionError(f"timer spins at {self.machine.get_timer()}")

    def of(self, kind: type) -> list[tuple[float, Event]]:
        """(time, event) of every event of one class so far."""
        return [(t, e) for t, e in self.events if isinstance(e, kind)]
