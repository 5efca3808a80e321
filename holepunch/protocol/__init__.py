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
    RequestRefused,
    PeerRelayed,
    PeerUpgraded,
    RelayRefused,
)
from .handshake import Peer
from .messages import MessageKind, PeerInfo, Transmit, classify
from .server import RendezvousServer, ServerStats
from .states import CLIENT_TRANSITIONS, PEER_TRANSITIONS, ClientState, PeerState
from .tcp_client import TcpClientConfig, TcpPeerClient
from .tcp_messages import ERRNO_HELP, Close, Connect, FrameDecoder, Listen, StopListening, Write, explain_errno
from .tcp_server import TcpRendezvousServer, TcpServerConfig, TcpServerStats
from .tcp_states import STREAM_TRANSITIONS, TCP_CLIENT_TRANSITIONS, TCP_PEER_TRANSITIONS, StreamState, TcpPeerState
from .tcp_streams import PeerDisconnected

__all__ = [
    "CLIENT_TRANSITIONS", "PEER_TRANSITIONS", "ClientConfig", "ClientState", "ConnectCompleted",
    "DataReceived", "DatagramDropped", "Endpoint", "Event", "MessageKind", "Peer", "PeerClient",
    "PeerConnected", "PeerFailed", "PeerInfo", "PeerJoined", "PeerLeft", "PeerListReceived",
    "PeerState", "PunchingStarted", "Registered", "RegistrationRefused", "RendezvousServer", "RequestRefused",
    "ServerConfig", "ServerStats", "Transmit", "classify",
    "ERRNO_HELP", "STREAM_TRANSITIONS", "TCP_CLIENT_TRANSITIONS", "TCP_PEER_TRANSITIONS", "Close", "Connect",
    "FrameDecoder", "Listen", "PeerDisconnected", "StopListening", "StreamState", "TcpClientConfig",
    "TcpPeerClient", "TcpPeerState", "TcpRendezvousServer", "TcpServerConfig", "TcpServerStats", "Write",
    "explain_errno",
    "PeerRelayed", "PeerUpgraded", "RelayRefused",
]
