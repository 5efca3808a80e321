"""Model of the Go reference rendezvous server (4kills/hole-punching, pkg/server), bugs included.

Rule: a model for comparison and teaching; never used by our own client or server. It follows
wire-protocol.md §3 and keeps its flaws ON PURPOSE: fixed, non-sliding expiry per registration
with swap-removal (B8 flicker), no pushes, the empty ID as a shared session (B11), oversize
datagrams dropped silently, and no knowledge of our extension (its messages are opaque IDs).
Left out: out-of-order replies from one goroutine per datagram and the B7 data race (each
datagram is handled inline, one legal goroutine schedule).
"""

from __future__ import annotations

import heapq
from collections import deque
from itertools import count

from .endpoint import Endpoint
from .events import DatagramDropped, Event, PeerJoined, PeerLeft
from .messages import MAX_ID_LENGTH, MessageKind, Transmit
from .members import ServerStats

MAX_UDP_PAYLOAD = 65507  # a longer reply fails to send: the reference logs it and sends nothing


class ReferenceServer:
    """The reference's server as a sans-IO machine (same interface as `RendezvousServer`)."""

    def __init__(
        self,
        now: float = 0.0,
        *,
        domain_timeout: float = 40.0,
        keepalive: float = 10.0,
        max_packet: int = MAX_ID_LENGTH,
    ) -> None:
        if max_packet < 0:
            raise ValueError(f"max_packet must not be negative, got {max_packet}")
        self.domain_timeout = domain_timeout  # negative disables expiry, as in the reference
        self.keepalive = keepalive  # 0 or less disables keep-alives (the reference cannot)
        self.max_packet = max_packet
        self.stats = ServerStats()
        self._store: dict[bytes, list[Endpoint]] = {}
        # One pending removal per registration: (due, sequence, session, endpoint).
        self._removals: list[tuple[float, int, bytes, Endpoint]] = []
        self._seq = count()
        self._next_keepalive = now + keepalive if keepalive > 0 else None
        self._out: list[Transmit] = []
        self._events: deque[Event] = deque()

    # --- inspection ---------------------------------------------------------------------------

    @property
    def session_count(self) -> int:
        """Sessions held now."""
        return len(self._store)

    @property
    def member_count(self) -> int:
        """Entries held now, over all sessions."""
        return sum(len(entries) for entries in self._store.values())

    @property
    def pending_removals(self) -> int:
        """Scheduled removals (one per registration: the reference's sleeping goroutines, B10)."""
        return len(self._removals)

    def members(self, session: bytes) -> list[Endpoint]:
        """Entries of `session` in list order (the reply order)."""
        return list(self._store.get(session, ()))

    def sessions(self) -> dict[bytes, list[Endpoint]]:
        """Every session with its entries, for tables and tests."""
        return {sid: list(entries) for sid, entries in self._store.items()}

    # --- input --------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None:
        """Every datagram of 0 to `max_packet` bytes is a registration under its raw bytes."""
        self.stats.datagrams += 1
        self.stats.bytes_in += len(data)
        if len(data) > self.max_packet:
            self._drop(source, len(data), "oversize")  # silently: no reply
            return
        sid = bytes(data)  # our extension's messages are just more IDs here
        others = self._register(sid, source)
        reply = b",".join(e.text.encode() for e in others)
        if len(reply) > MAX_UDP_PAYLOAD:
            self._drop(source, len(data), "reply too large")
        else:
            self._out.append(Transmit(reply, source, MessageKind.PEER_LIST))
            self.stats.replies += 1
        if self.domain_timeout >= 0:
            due = now + self.domain_timeout  # fixed: a later registration does not move it (B8)
            heapq.heappush(self._removals, (due, next(self._seq), sid, source))

    def handle_timer(self, now: float) -> None:
        """Run the removals that are due, then the keep-alive tick."""
        while self._removals and self._removals[0][0] <= now:
            _, _, sid, endpoint = heapq.heappop(self._removals)
            self._remove(sid, endpoint)
        due = self._next_keepalive
        if due is not None and now >= due:
            self._send_keepalives()
            while due <= now:
                due += self.keepalive  # a sleep loop counted from start, not from registrations
            self._next_keepalive = due

    # --- output -------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The absolute time `handle_timer` wants to run next, or None."""
        removal = self._removals[0][0] if self._removals else None
        times = [t for t in (removal, self._next_keepalive) if t is not None]
        return min(times) if times else None

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        """Datagrams produced since the last call."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        """The oldest undrained event, or None."""
        return self._events.popleft() if self._events else None

    # --- internals ----------------------------------------------------------------------------

    def _register(self, sid: bytes, source: Endpoint) -> list[Endpoint]:
        """`ProcessAddress`: drop every copy of the sender, reply with the rest, append it."""
        self.stats.registrations += 1
        entries = self._store.get(sid)
        if entries is None:
            self._store[sid] = [source]
            self._joined(sid, source, 1)
            return []
        text = source.text
        others = [e for e in entries if e.text != text]
        new = len(others) == len(entries)
        entries[:] = others + [source]
        if new:
            self._joined(sid, source, len(entries))
        return others

    def _remove(self, sid: bytes, endpoint: Endpoint) -> None:
        """`clear`: remove unconditionally; the last entry is swapped into the freed slot (B8)."""
        entries = self._store.get(sid)
        if entries is None:
            return
        text, removed, i = endpoint.text, False, 0
        while i < len(entries):
            if entries[i].text == text:
                entries[i] = entries[-1]
                entries.pop()
                removed = True
            else:
                i += 1
        if not entries:
            del self._store[sid]
        if removed:
            self.stats.expired += 1
            self._events.append(PeerLeft(sid, endpoint, "expired"))

    def _send_keepalives(self) -> None:
        """One 0-byte datagram to every stored entry, all at once (B10)."""
        for entries in self._store.values():
            for endpoint in entries:
                self._out.append(Transmit(b"", endpoint, MessageKind.KEEPALIVE))
                self.stats.keepalives += 1

    def _joined(self, sid: bytes, endpoint: Endpoint, members: int) -> None:
        self.stats.joined += 1
        self._events.append(PeerJoined(sid, endpoint, False, members))

    def _drop(self, source: Endpoint, size: int, reason: str) -> None:
        self.stats.dropped[reason] += 1
        self._events.append(DatagramDropped(source, size, reason))
