"""Frozen configuration of the protocol machines: every timing and limit lives here.

Rule: the machines read no globals; tests pass a fast config instead of patching. Defaults are
the reference's figures (wire-protocol.md §3-4) unless a comment says why not.
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import MAX_ID_LENGTH


@dataclass(frozen=True)
class ServerConfig:
    """Rendezvous server settings."""

    session_timeout: float = 40.0
    """Seconds a registration lives after its latest refresh (sliding, unlike the reference)."""
    keepalive_interval: float = 10.0
    """Seconds between empty keep-alives to every stored endpoint; 0 disables them."""
    max_id_length: int = MAX_ID_LENGTH
    """Longest session ID accepted; longer registrations are dropped silently, as the reference does."""
    max_sessions: int = 1_000_000
    """Sessions held at once; registrations that would open another are refused."""
    max_peers_per_session: int = 1024
    """Members of one session; the reference's reply stops fitting a datagram near 3,000."""
    push: bool = True
    """Push newcomers to members that registered with the extension (the seed's step 3)."""

    def __post_init__(self) -> None:
        _positive(self, "session_timeout", "max_sessions", "max_peers_per_session")
        _not_negative(self, "keepalive_interval", "max_id_length")


@dataclass(frozen=True)
class ClientConfig:
    """Peer client settings."""

    register_interval: float = 0.1
    """Seconds between registrations while waiting for peers (the reference polls every 100 ms)."""
    extended_refresh_interval: float = 1.0
    """Seconds between refreshes once the server speaks the extension and pushes newcomers."""
    extension: bool = True
    """Try the extension first; off sends only the reference's plain registration."""
    extension_attempts: int = 3
    """Extended registrations left unanswered before falling back to the plain protocol."""
    punch_interval: float = 0.15
    """Seconds between SYN (or ACK) retransmissions to a peer. Slower than the reference's 100 ms
    on purpose: a reference peer restarts its retry timer on every arrival (B4), so equal periods
    can starve it for good; 150 ms lets its timer fire between our retransmissions."""
    final_ack_delay: float = 0.1
    """Delay of the extra ACK after confirming a peer, which reference peers need to finish (B3)."""
    timeout: float | None = 40.0
    """Seconds from start until unconfirmed peers are given up; None waits forever."""
    wait_timeout: float | None = None
    """Seconds to wait for the expected peers before punching the ones found so far."""
    keepalive_interval: float = 15.0
    """Seconds between empty keep-alives to connected peers: below the 30 s NAT mapping timeout."""
    handshake_linger: float = 1.0
    """Seconds after connecting during which a stray SYN or ACK is handshake, not data."""

    def __post_init__(self) -> None:
        _positive(self, "register_interval", "extended_refresh_interval", "punch_interval")
        _not_negative(self, "final_ack_delay", "keepalive_interval", "handshake_linger")
        _not_negative(self, "extension_attempts")
        for name in ("timeout", "wait_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")


def _positive(obj: object, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(obj, name)!r}")


def _not_negative(obj: object, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ValueError(f"{name} must not be negative, got {getattr(obj, name)!r}")
