"""The rendezvous server's relay (issue 7, technique 5): `ExtRelay` forwarded between members.

Rule: a relay is forwarded only from a verified member to a member of the same session, both
registered with the extension. Verified means the datagram comes from the very endpoint that
registered with the `peer_id` it claims, so nobody speaks for another member (as a TURN server
relays only for its allocation's owner, to peers with a permission: RFC 8656 §9). The datagram
goes out unchanged, so bytes out equal bytes in and the relay is no amplifier. Every forward
takes tokens from the sender's bucket and from the server's; a refusal is counted and answered
with at most one RELAY_REFUSED per member per `relay_error_interval`. A source that is not a
member gets no answer at all: its address may be spoofed, and an answer would reflect to a victim.
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


@dataclass
class RelayStats:
    """Relay counters for logs and tests; `refused` is keyed by reason."""

    forwarded: int = 0
    bytes_forwarded: int = 0
    errors_sent: int = 0
    refused: Counter[str] = field(default_factory=Counter)


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
        target = next((m for m in session.values() if m.peer_id == msg.target), None)
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
