"""asyncio drivers that run the sans-IO machines over real UDP and TCP sockets.

Rule: sockets, clocks and event loops live here and nowhere under `holepunch.protocol`.
"""

from __future__ import annotations

from .blocking import BlockingMesh, BlockingTcpMesh, connect_blocking
from .client import ConnectError, Mesh, MeshClosed, PeerStatus, connect
from .driver import Driver, DriverStats
from .server import Server, Servers, serve, serve_all
from .tcp_client import TcpMesh, TcpPeerStatus, connect_tcp
from .tcp_driver import TcpDriver
from .tcp_io import TcpDriverStats
from .tcp_server import TcpServer, serve_tcp

__all__ = [
    "BlockingMesh", "BlockingTcpMesh", "ConnectError", "Driver", "DriverStats", "Mesh", "MeshClosed",
    "PeerStatus", "Server", "Servers", "TcpDriver", "TcpDriverStats", "TcpMesh", "TcpPeerStatus",
    "TcpServer", "connect", "connect_blocking", "connect_tcp", "serve", "serve_all", "serve_tcp",
]
