"""The sans-IO protocol core: pure state machines, standard library only, time as a parameter.

Rule: nothing under this package imports socket, asyncio, time or module-level random.
"""

from .client import PeerClient
from .config import ClientConfig, ServerConfig
from .endpoint import Endpoint
from .events import (
    ConnectCompleted,
    DataReceived,
    DatagramDropped,
    Event,
    PeerConnected,
    PeerFailed,
    PeerJoined,
    PeerLeft,
    PeerListReceived,
    PunchingStarted,
    Registered,
    RegistrationRefused,
)
from .handshake import Peer
from .messages import MessageKind, PeerInfo, Transmit, classify
from .server import RendezvousServer, ServerStats
from .states import CLIENT_TRANSITIONS, PEER_TRANSITIONS, ClientState, PeerState

__all__ = [
    "CLIENT_TRANSITIONS", "PEER_TRANSITIONS", "ClientConfig", "ClientState", "ConnectCompleted",
    "DataReceived", "DatagramDropped", "Endpoint", "Event", "MessageKind", "Peer", "PeerClient",
    "PeerConnected", "PeerFailed", "PeerInfo", "PeerJoined", "PeerLeft", "PeerListReceived",
    "PeerState", "PunchingStarted", "Registered", "RegistrationRefused", "RendezvousServer",
    "ServerConfig", "ServerStats", "Transmit", "classify",
]
