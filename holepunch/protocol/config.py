"""Frozen configuration of the protocol machines: every timing and limit lives here.

Rule: the machines read no globals; tests pass a fast config instead of patching. Defaults are
the reference's figures (wire-protocol.md §3-4) unless a comment says why not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .messages import MAX_ID_LENGTH
from .techniques import BirthdayRole, Technique, coerce_techniques


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
    techniques: Iterable[Technique | str] = frozenset()
    """Techniques beyond the basic punch (`Technique` members or names such as "peer-reflexive");
    stored as a frozenset. Empty, the default, is the reference-compatible basic punch: every
    technique changes what extended peers see on the wire, and none ever reaches a plain peer."""
    escalation_delay: float = 0.5
    """Seconds after punching starts before probes (prediction, birthday) go to a peer that has
    not connected yet: cone pairs connect within a few round trips and never pay for them."""
    sweep_interval: float = 2.0
    """Seconds between the starts of repeated probe sweeps to a peer still not connected: a sweep
    that ran before the peer's mappings existed is repeated, and the hard side's mappings stay
    fresh (far below the 30 s NAT timeout)."""
    max_sweeps: int = 3
    """Probe sweeps per peer at most; the probed ports never change, so more sweeps help only a
    peer that started late."""
    probe_interval: float = 0.002
    """Seconds between two probes (500 a second): spread out so that a NAT or IDS does not see a
    burst, and small NAT tables and socket buffers do not overflow."""
    prediction_window: int = 16
    """Ports probed after the peer's listed port by port prediction: p + delta, ..., p + window*delta."""
    prediction_delta: int = 1
    """Port step of the peer's sequential NAT (RFC 4787 §4.2.1); 1 unless discovery measured it."""
    birthday_sockets: int = 256
    """k: sockets the hard side punches from (the registered one plus k - 1 extra)."""
    birthday_probes: int = 256
    """m: random ports the easy side probes; with k = m = 256 about 64 % of pairs connect."""
    birthday_ports: tuple[int, int] = (1024, 65535)
    """Inclusive port range the easy side draws its probes from (where NATs allocate)."""
    birthday_role: BirthdayRole | str = BirthdayRole.AUTO
    """Which half of birthday probing to play: "hard", "easy", "both", or "auto" (see `BirthdayRole`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "techniques", coerce_techniques(self.techniques))
        try:
            object.__setattr__(self, "birthday_role", BirthdayRole(self.birthday_role))
        except ValueError:
            choices = ", ".join(r.value for r in BirthdayRole)
            raise ValueError(f"birthday_role must be one of {choices}, got {self.birthday_role!r}") from None
        _positive(self, "register_interval", "extended_refresh_interval", "punch_interval")
        _not_negative(self, "final_ack_delay", "keepalive_interval", "handshake_linger")
        _not_negative(self, "extension_attempts")
        _positive(self, "sweep_interval", "probe_interval", "max_sweeps", "birthday_sockets")
        _not_negative(self, "escalation_delay", "prediction_window", "birthday_probes")
        if self.prediction_delta == 0:
            raise ValueError("prediction_delta must not be 0")
        low, high = self.birthday_ports
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"birthday_ports must be a range within 1..65535, got {self.birthday_ports!r}")
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
