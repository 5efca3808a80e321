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

    @property
    def complete(self) -> bool:
        """True when at least the expected number of peers connected, none failed, and no error."""
        return not self.reason and not self.failed and len(self.connected) >= self.expected


@dataclass(frozen=True, slots=True)
class DataReceived(Event):
    """Application data from a connected peer."""

    peer: Endpoint
    data: bytes
