"""Frozen configuration of the protocol machines: every timing and limit lives here.

Rule: the machines read no globals; tests pass a fast config instead of patching. Defaults are
the reference's figures (wire-protocol.md §3-4) unless a comment says why not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .auth import secret_bytes
from .messages import MAX_ID_LENGTH
from .techniques import BirthdayRole, Technique, coerce_techniques


@dataclass(frozen=True)
class ServerConfig:
    """Rendezvous server settings."""

    session_timeout: float = 40.0
    """Seconds a registration lives after its latest refresh (sliding, unlike the reference)."""
    keepalive_interval: float = 10.0
    """Seconds between two empty keep-alives to one membership (the first one this long after its
    join); 0 disables them."""
    max_id_length: int = MAX_ID_LENGTH
    """Longest session ID accepted; longer registrations are dropped silently, as the reference does."""
    max_sessions: int = 1_000_000
    """Sessions held at once; registrations that would open another are refused."""
    max_peers_per_session: int = 1024
    """Members of one session; the reference's reply stops fitting a datagram near 3,000."""
    push: bool = True
    """Push newcomers to members that registered with the extension (the seed's step 3)."""
    keepalive_batch: int = 64
    """Keep-alives sent per timer call at most. Each member's keep-alive is due `keepalive_interval`
    after its own previous one (or its join), so they spread over the interval instead of leaving in
    one burst; a batch bounds how long reads wait when many are due at once."""
    rate_limit: float | None = 100.0
    """Requests per second one source may make, sustained (a token bucket, guard.py); None disables
    it. Ten times a reference client's poll rate (every 100 ms), so no legitimate client meets it."""
    rate_burst: int = 50
    """Requests one source may make at once before `rate_limit` applies (the bucket's size)."""
    rate_limit_key: str = "endpoint"
    """What one bucket covers: "endpoint" (IP address and port, the default: a whole classroom sits
    behind one school NAT, one IP address with a port per pupil), or "host" (IP address alone)."""
    max_tracked_sources: int = 16384
    """Entries each guard table may hold (the buckets of requests outside memberships, of hosts,
    the refusal log); the least recently used goes first, so memory stays flat under a flood."""
    refusal_log_interval: float = 30.0
    """Seconds between two reports (`RequestRefused` events, log lines) of one source's refusals for
    one reason; the refusals in between are counted, and the next report says how many."""
    amplification_factor: float | None = 3.0
    """An address not proved by a cookie is sent at most this many times the bytes received from
    it, counted cumulatively (QUIC's rule, RFC 9000 §8); at least 1. None disables the budget and
    the cookie round trip."""
    datagram_overhead: int = 28
    """Header bytes counted per datagram, each way, in that budget: IPv4 (20) plus UDP (8), what a
    datagram costs on the wire. Without it a 0-byte registration (the empty ID) would earn nothing;
    0 counts payloads only, as RFC 9000 does for its 1200-byte datagrams."""
    cookie_interval: float = 30.0
    """Seconds per cookie time bucket; a cookie is accepted in its bucket and the next (30 to 60 s)."""
    relay: bool = True
    """Forward `ExtRelay` between extended members of one session (relay fallback, issue 7
    technique 5); off, every relay is refused with `ErrorCode.RELAY_REFUSED`."""
    relay_max_payload: int = 1200
    """Largest relayed DATA field in bytes: 1200, QUIC's smallest datagram (RFC 9000 §14), so a
    relayed datagram with our header still fits any path's MTU without IP fragmentation."""
    relay_member_rate: float = 64_000.0
    """Bytes per second one member may relay (token bucket refill): chat and control traffic, not
    bulk transfer; the relay is a fallback that costs the server's bandwidth."""
    relay_member_burst: int = 16_384
    """Bytes one member may relay in a burst (token bucket size); at least one largest datagram."""
    relay_total_rate: float = 8_000_000.0
    """Bytes per second the whole server relays at most (64 Mbit/s), over every member; bursts up
    to one second's worth."""
    relay_error_interval: float = 1.0
    """Seconds between two RELAY_REFUSED errors to one member: refusals are counted, not answered
    one by one, so a flood of refused relays does not turn into a flood of errors."""
    secrets: tuple[str | bytes, ...] = field(default=(), repr=False)
    """Session secrets (holepunch.protocol.auth): the first is current, the others are still
    accepted (rotation). With any, an extended registration needs a valid MAC and plain
    (reference) registrations are refused; empty, the default, authenticates nothing."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "secrets", _secrets(self.secrets))
        _positive(self, "session_timeout", "max_sessions", "max_peers_per_session")
        _not_negative(self, "keepalive_interval", "max_id_length")
        _positive(self, "keepalive_batch", "rate_burst", "max_tracked_sources", "cookie_interval")
        _not_negative(self, "refusal_log_interval", "datagram_overhead")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError(f"rate_limit must be positive or None, got {self.rate_limit!r}")
        if self.amplification_factor is not None and not self.amplification_factor >= 1:
            raise ValueError(f"amplification_factor must be at least 1 or None, got {self.amplification_factor!r}")
        if self.rate_limit_key not in ("endpoint", "host"):
            raise ValueError(f"rate_limit_key must be 'endpoint' or 'host', got {self.rate_limit_key!r}")
        _positive(self, "relay_max_payload", "relay_member_rate", "relay_total_rate")
        _not_negative(self, "relay_error_interval")
        if self.relay_member_burst < self.relay_max_payload:
            raise ValueError(f"relay_member_burst ({self.relay_member_burst}) must be at least "
                             f"relay_max_payload ({self.relay_max_payload}), or the largest relay never passes")


@dataclass(frozen=True)
class ClientConfig:
    """Peer client settings."""

    register_interval: float = 0.1
    """Seconds between registrations while waiting for peers (the reference polls every 100 ms)."""
    extended_refresh_interval: float = 1.0
    """Seconds between refreshes once the server speaks the extension and pushes newcomers.
    Waiting for peers, the first gaps are `register_interval`, doubling up to this: until the
    server has proved our address, its budget may withhold pushes, and a lost cookie, echo or
    push then costs a fraction of a second, not a whole interval."""
    extension: bool = True
    """Try the extension first; off sends only the reference's plain registration."""
    extension_attempts: int = 3
    """Extended registrations left unanswered before falling back to the plain protocol."""
    pad_registrations: bool = True
    """Pad extended registrations sent before the server's address cookie so that they pay for
    a list of the expected peers under the server's 3x amplification budget: the list comes at
    once instead of after a cookie round trip (docs/wire-protocol.md, "Guards")."""
    punch_interval: float = 0.15
    """Seconds between SYN (or ACK) retransmissions to a peer. Slower than the reference's 100 ms
    on purpose: a reference peer restarts its retry timer on every arrival (B4), so equal periods
    can starve it for good; 150 ms lets its timer fire between our retransmissions."""
    punch_backoff_after: float = 5.0
    """Seconds of punching a peer that has sent nothing at all after which its SYNs slow down,
    the gap doubling each time up to `punch_interval_max`: a peer that never answers (gone,
    filtered, or a forged registration naming a victim) draws a few dozen SYNs, not hundreds."""
    punch_interval_max: float = 2.0
    """The longest gap between SYNs to a silent peer (see `punch_backoff_after`); far below
    the 30 s a NAT keeps the mapping those SYNs open."""
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
    close_linger: float = 0.6
    """Seconds a closing client keeps answering a peer after its last ACK to it (TCP's
    TIME-WAIT): if that ACK was lost, the peer, still ACKING, retries a SYN within a punch
    interval plus a round trip, and finds nobody if we are gone. A peer of ours retries with SYN
    every 0.15 s, a reference peer with SYN and ACK in turn: 0.6 s spans at least two of its
    SYNs, so one more may be lost. 0 closes at once."""
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
    relay_after: float = 5.0
    """Seconds of punching after which a peer that is not connected directly falls back to the
    server's relay (with `Technique.RELAY` on, both sides extended): long enough for every probe
    sweep of the other techniques (0.5 s, 2.5 s, 4.5 s), far below `timeout`."""
    relay_upgrade_window: float = 30.0
    """Seconds the direct punch goes on in the background once a peer is relayed; a handshake
    that succeeds meanwhile upgrades the peer to direct, after that it stays relayed."""
    secret: str | bytes | None = field(default=None, repr=False)
    """The session secret (holepunch.protocol.auth): registrations and punches carry a MAC, punches
    of peers without it are dropped, and the client never falls back to the plain protocol.
    None, the default, keeps every byte on the wire as it was."""

    def __post_init__(self) -> None:
        if self.secret is not None:
            secret_bytes(self.secret)  # AuthError (a ValueError) for an empty or mistyped secret
            if isinstance(self.secret, (bytearray, memoryview)):
                object.__setattr__(self, "secret", bytes(self.secret))
            if not (self.extension and self.extension_attempts > 0):
                raise ValueError("a secret needs the extension: keep extension=True and extension_attempts >= 1")
        object.__setattr__(self, "techniques", coerce_techniques(self.techniques))
        try:
            object.__setattr__(self, "birthday_role", BirthdayRole(self.birthday_role))
        except ValueError:
            choices = ", ".join(r.value for r in BirthdayRole)
            raise ValueError(f"birthday_role must be one of {choices}, got {self.birthday_role!r}") from None
        _positive(self, "register_interval", "extended_refresh_interval", "punch_interval")
        _not_negative(self, "final_ack_delay", "keepalive_interval", "handshake_linger", "close_linger")
        _not_negative(self, "extension_attempts", "punch_backoff_after")
        if not self.punch_interval_max >= self.punch_interval:
            raise ValueError(f"punch_interval_max ({self.punch_interval_max}) must be at least "
                             f"punch_interval ({self.punch_interval})")
        _positive(self, "sweep_interval", "probe_interval", "max_sweeps", "birthday_sockets")
        _not_negative(self, "escalation_delay", "prediction_window", "birthday_probes")
        if self.prediction_delta == 0:
            raise ValueError("prediction_delta must not be 0")
        low, high = self.birthday_ports
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"birthday_ports must be a range within 1..65535, got {self.birthday_ports!r}")
        _positive(self, "relay_after")
        _not_negative(self, "relay_upgrade_window")
        for name in ("timeout", "wait_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")


def _secrets(value: object) -> tuple[str | bytes, ...]:
    """`ServerConfig.secrets` as a tuple of usable secrets; one bare secret is taken as a tuple of one."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        value = (value,)
    if not isinstance(value, Iterable):
        raise TypeError(f"secrets must be a tuple of str or bytes, not {type(value).__name__}")
    items = tuple(bytes(v) if isinstance(v, (bytearray, memoryview)) else v for v in value)
    for item in items:
        secret_bytes(item)  # AuthError (a ValueError) for an empty or mistyped secret
    return items


def _positive(obj: object, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(obj, name)!r}")


def _not_negative(obj: object, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ValueError(f"{name} must not be negative, got {getattr(obj, name)!r}")
