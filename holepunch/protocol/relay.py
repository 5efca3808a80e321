"""The rendezvous server's relay (issue 7, technique 5): `ExtRelay` forwarded between members.

Rule: a relay is forwarded only from a verified member to a member of the same session, both
registered with the extension. Verified means the datagram comes from the very endpoint that
registered with the `peer_id` it claims, so nobody speaks for another member (as a TURN server
relays only for its allocation's owner, to peers with a permission: RFC 8656 §9). The datagram
goes out unchanged, so bytes out equal bytes in and the relay is no amplifier. Every forward
takes tokens from the sender's bucket and from the server's; a refusal is counted and answered
with at most one RELAY_REFUSED per member per `relay_error_interval`. A source that is not a
member gets no answer at all: its address may be spoofed, and an answer would reflect to a victim.
The target is found by peer id in O(1) (`TargetIndex`), never trusted without a check against the
session as the server holds it now.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import ServerConfig
from .endpoint import Endpoint
from .messages import ErrorCode, ExtError, ExtRelay, MessageKind, Transmit, encode_ext

if TYPE_CHECKING:  # pragma: no cover - server.py imports this module
    from .members import Member

PRUNE_ABOVE = 4096
"""Buckets held before idle ones are pruned: a full bucket is the same as a fresh one, so
forgetting it changes nothing but memory (members that left leave their bucket behind)."""
SWEEP_INTERVAL = 1.0
"""Seconds between sweeps of the target index, at least; more when it holds many entries."""
SWEEP_PER_ENTRY = 2e-5
"""Seconds of sweep interval per indexed member: a sweep visits every entry (0.2 to 0.3 us each),
so sweeping takes about 1% of the time however large the index (500,000 entries: every 10 s)."""


@dataclass
class RelayStats:
    """Relay counters for logs and tests; `refused` is keyed by reason."""

    forwarded: int = 0
    bytes_forwarded: int = 0
    errors_sent: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    scans: int = 0
    """Relays whose target was not in the index (new, gone, or no member at all): each scanned its
    session once. Relays to a member already found cost no scan."""


class TokenBucket:
    """`size` bytes that refill at `rate` bytes per second (the classic token bucket)."""

    __slots__ = ("at", "rate", "size", "tokens")

    def __init__(self, rate: float, size: float, now: float) -> None:
        self.rate, self.size, self.tokens, self.at = rate, size, size, now

    def has(self, amount: int, now: float) -> bool:
        """Refill up to `now`; True if `amount` bytes may pass."""
        if now > self.at:
            self.tokens = min(self.size, self.tokens + (now - self.at) * self.rate)
            self.at = now
        return amount <= self.tokens

    def take(self, amount: int) -> None:
        """Spend `amount` bytes (after `has` said yes)."""
        self.tokens -= amount

    def full(self, now: float) -> bool:
        """True when the bucket has refilled completely by `now`."""
        return self.tokens + max(0.0, now - self.at) * self.rate >= self.size


class TargetIndex:
    """Each session's extended members by peer id, so that a relay finds its target in O(1).

    The server adds, removes and re-registers members without telling the relay, so an entry is
    only a hint: it is used while its member is still the session's member at its endpoint (by
    identity) under that peer id. Anything else is a miss, which scans the session as every relay
    did before this index, and rebuilds the session's entries only when the scan finds the target
    (it joined or took a new id since). So a relay to a known member costs a dict lookup, one to
    an id nobody has costs one scan (no more than before), and a member that joined costs one
    rebuild, at the first relay to it. Ids are meant to be unique in a session; should two members
    share one, the relay goes to the one the last scan found first (the least recently registered
    then) for as long as it stays a member, where the scan per relay went to whichever was the
    least recently registered at the time. Sweeps drop entries whose member is gone and sessions
    that ended, so an entry outlives its member by one sweep interval at most (while relays
    arrive) and never holds more members than the session held at its last rebuild."""

    def __init__(self, stats: RelayStats, now: float = 0.0) -> None:
        self._stats = stats  # counts the scans
        self._sessions: dict[bytes, tuple[dict[Endpoint, Member], dict[bytes, Member]]] = {}
        """Session id -> (the server's dict of its members when indexed, peer id -> member)."""
        self.size = 0
        """Entries held over all sessions."""
        self._next_sweep = now + SWEEP_INTERVAL

    def find(self, sid: bytes, session: dict[Endpoint, Member], peer_id: bytes) -> Member | None:
        """The member of `session` (the server's dict for `sid`) registered as `peer_id`, or None."""
        held = self._sessions.get(sid)
        if held is not None and held[0] is session:
            member = held[1].get(peer_id)
            if member is not None and member.peer_id == peer_id and session.get(member.endpoint) is member:
                return member
        self._stats.scans += 1
        for member in session.values():
            if member.peer_id == peer_id:
                self._build(sid, session)
                return member
        if held is not None and held[1].pop(peer_id, None) is not None:  # gone: forget it now
            self.size -= 1
        return None

    def _build(self, sid: bytes, session: dict[Endpoint, Member]) -> None:
        """Index every extended member of `session`; reversed, so that the first one with an id wins."""
        old = self._sessions.get(sid)
        by_id = {m.peer_id: m for m in reversed(session.values()) if m.peer_id is not None}
        self._sessions[sid] = (session, by_id)
        self.size += len(by_id) - (0 if old is None else len(old[1]))

    def sweep(self, now: float) -> None:
        """Drop entries whose member left, expired or changed its id, and sessions that ended (the
        server deletes a session's dict once it is empty), at most once per interval."""
        if now < self._next_sweep:
            return
        kept: dict[bytes, tuple[dict[Endpoint, Member], dict[bytes, Member]]] = {}
        size = 0
        for sid, (session, by_id) in self._sessions.items():
            live = {pid: m for pid, m in by_id.items() if m.peer_id == pid and session.get(m.endpoint) is m}
            if live:
                kept[sid] = (session, live)
                size += len(live)
        self._sessions, self.size = kept, size
        self._next_sweep = now + max(SWEEP_INTERVAL, size * SWEEP_PER_ENTRY)


class Relay:
    """Forwards `ExtRelay` datagrams for a `RendezvousServer`, within its `ServerConfig` limits."""

    def __init__(self, config: ServerConfig, refresh: Callable[[Member, float], None], now: float = 0.0) -> None:
        self.config = config
        self.stats = RelayStats()
        self._refresh = refresh  # the server's: a relay keeps its sender registered (see _forward)
        self._total = TokenBucket(config.relay_total_rate, config.relay_total_rate, now)
        self._buckets: dict[Member, TokenBucket] = {}
        self._last_error: dict[Member, float] = {}
        self._next_prune = now
        self._targets = TargetIndex(self.stats, now)

    def tracked(self) -> dict[str, int]:
        """Entries in the relay's tables: token buckets, last errors, members in the target index."""
        return {"buckets": len(self._buckets), "errors": len(self._last_error), "targets": self._targets.size}

    def receive(self, data: bytes, msg: ExtRelay, source: Endpoint,
                session: dict[Endpoint, Member] | None, now: float) -> list[Transmit]:
        """Handle one relay from `source` (`session`: the members of `msg.session`, None if no
        such session); returns the forwarded datagram, an error, or nothing."""
        sender = None if session is None else session.get(source)
        if session is None or sender is None or sender.peer_id is None or sender.peer_id != msg.peer_id:
            self.stats.refused["not-a-member"] += 1  # silently: the source may be spoofed
            return []
        reason, target = self._check(msg, len(data), sender, session, now)
        if target is None:
            return self._refuse(sender, reason, now)
        return self._forward(bytes(data), sender, target, now)

    def _check(self, msg: ExtRelay, size: int, sender: Member, session: dict[Endpoint, Member],
               now: float) -> tuple[str, Member | None]:
        """The target member, or None and the reason of the refusal."""
        cfg = self.config
        if not cfg.relay:
            return "relay-off", None
        self._targets.sweep(now)
        target = self._targets.find(msg.session, session, msg.target)
        if target is None or target is sender:  # a plain member has peer_id None: never a target
            return "no-such-target", None
        if len(msg.data) > cfg.relay_max_payload:
            return "too-large", None
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = TokenBucket(cfg.relay_member_rate, cfg.relay_member_burst, now)
        if not bucket.has(size, now):
            return "rate-limited", None
        if not self._total.has(size, now):
            return "relay-busy", None
        bucket.take(size)
        self._total.take(size)
        return "", target

    def _forward(self, data: bytes, sender: Member, target: Member, now: float) -> list[Transmit]:
        # Relaying is what a relayed member does instead of registering again, so it keeps the
        # member alive as a registration would (the server's expiry slides the same way).
        self._refresh(sender, now)
        self.stats.forwarded += 1
        self.stats.bytes_forwarded += len(data)
        self._prune(now)
        return [Transmit(data, target.endpoint, MessageKind.RELAY)]

    def _refuse(self, sender: Member, reason: str, now: float) -> list[Transmit]:
        self.stats.refused[reason] += 1
        last = self._last_error.get(sender)
        if last is not None and now - last < self.config.relay_error_interval:
            return []
        self._last_error[sender] = now
        self.stats.errors_sent += 1
        self._prune(now)
        error = encode_ext(ExtError(ErrorCode.RELAY_REFUSED, reason))
        return [Transmit(error, sender.endpoint, MessageKind.EXT_ERROR)]

    def _prune(self, now: float) -> None:
        """Forget full buckets and errors older than the interval (both are as good as new), at
        most once a second and only above `PRUNE_ABOVE` entries."""
        if now < self._next_prune or len(self._buckets) + len(self._last_error) <= PRUNE_ABOVE:
            return
        self._next_prune = now + 1.0
        self._buckets = {m: b for m, b in self._buckets.items() if not b.full(now)}
        interval = self.config.relay_error_interval
        self._last_error = {m: t for m, t in self._last_error.items() if now - t < interval}
