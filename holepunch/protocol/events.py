"""Events the machines report: frozen dataclasses named as past-tense facts.

Rule: an event says what happened, never what to do; drivers drain them with `next_event()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .endpoint import Endpoint
from .messages import PeerInfo

QUIET_DEFAULT = {"trace": "omit-default"}
"""Field metadata: trace text leaves the field out while it holds its default, so fields added
later (the techniques' ones) do not change the traces of runs that do not use them."""


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every protocol event."""


# --- server events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerJoined(Event):
    """A new endpoint registered under `session` (refreshes of known members are not events)."""

    session: bytes
    endpoint: Endpoint
    extended: bool
    members: int


@dataclass(frozen=True, slots=True)
class PeerLeft(Event):
    """A member was removed: `reason` is "expired" or "left"."""

    session: bytes
    endpoint: Endpoint
    reason: str


@dataclass(frozen=True, slots=True)
class RegistrationRefused(Event):
    """A registration was refused by a limit; `reason` names the limit."""

    session: bytes
    source: Endpoint
    reason: str


# --- events of both machines ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatagramDropped(Event):
    """A datagram was ignored; `reason` says why ("oversize", "malformed", "stranger", ...)."""

    source: Endpoint
    size: int
    reason: str


# --- client events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered(Event):
    """The server answered our registration; `extended` says whether it speaks our extension."""

    extended: bool
    public_endpoint: Endpoint | None


@dataclass(frozen=True, slots=True)
class PeerListReceived(Event):
    """The server listed these peers (a reply or a push)."""

    peers: tuple[PeerInfo, ...]
    push: bool


@dataclass(frozen=True, slots=True)
class PunchingStarted(Event):
    """Registration is over: these peers are punched from now on."""

    peers: tuple[PeerInfo, ...]
    expected: int


@dataclass(frozen=True, slots=True)
class PeerConnected(Event):
    """The handshake with `peer` completed: datagrams flow both ways."""

    peer: Endpoint
    elapsed: float
    technique: str = field(default="basic", metadata=QUIET_DEFAULT)
    """What found the path: "basic", "peer-reflexive", "prediction", "birthday", ..."""
    path: str = field(default="direct", metadata=QUIET_DEFAULT)
    """"direct" or "relayed"."""
    address: Endpoint | None = field(default=None, metadata=QUIET_DEFAULT)
    """Where datagrams to the peer go, when a technique found another address than `peer`."""


@dataclass(frozen=True, slots=True)
class PeerFailed(Event):
    """`peer` was given up; `reason` is the last thing seen from it."""

    peer: Endpoint
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectCompleted(Event):
    """Connect is over: every punched peer connected, or the deadline or a refusal ended it."""

    connected: tuple[Endpoint, ...]
    failed: tuple[Endpoint, ...]
    expected: int
    reason: str = ""
    refused: bool = False
    """True when the server refused the registration (a limit); `reason` has its text."""
    relayed: tuple[Endpoint, ...] = field(default=(), metadata=QUIET_DEFAULT)
    """The peers of `connected` that the server's relay carries (no direct path yet)."""

    @property
    def complete(self) -> bool:
        """True when at least the expected number of peers connected, none failed, and no error."""
        return not self.reason and not self.failed and len(self.connected) >= self.expected


@dataclass(frozen=True, slots=True)
class DataReceived(Event):
    """Application data from a connected peer."""

    peer: Endpoint
    data: bytes


# --- relay fallback (relay_path.py) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerRelayed(Event):
    """No direct path to `peer` after `relay_after` seconds: the server's relay carries its data
    now (both directions proven), while punching goes on in the background."""

    peer: Endpoint
    elapsed: float
    """Seconds from the first punch to the relay's confirmation."""
    reason: str
    """Why the direct punch has not worked so far: the last thing seen from the peer directly."""


@dataclass(frozen=True, slots=True)
class PeerUpgraded(Event):
    """The background punch to a relayed `peer` succeeded: its data goes direct from now on."""

    peer: Endpoint
    elapsed: float
    """Seconds from the first punch to the direct handshake."""
    relayed_for: float
    """Seconds the relay carried the peer."""
    technique: str = "basic"
    """What found the direct path, as in `PeerConnected`."""
    address: Endpoint | None = None
    """Where datagrams to the peer go, when a technique found another address than `peer`."""


@dataclass(frozen=True, slots=True)
class RelayRefused(Event):
    """The server refused to relay for us (`ErrorCode.RELAY_REFUSED`); `reason` is its text
    ("relay-off", "rate-limited", "too-large", "no-such-target", ...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class RequestRefused(Event):
    """The server refused a request or withheld its answer: `reason` names the limit ("rate-limited",
    "amplification", "bad-cookie", "session-full", ...). Reported at most once per source and reason
    per `ServerConfig.refusal_log_interval`; `suppressed` counts the refusals not reported since."""

    source: Endpoint
    reason: str
    suppressed: int = 0
    session: bytes = field(default=b"", metadata=QUIET_DEFAULT)
    """The session asked for, when the refusal concerns one (a limit on sessions or members)."""
