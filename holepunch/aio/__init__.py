"""asyncio drivers that run the sans-IO machines over real UDP sockets.

Rule: sockets, clocks and event loops live here and nowhere under `holepunch.protocol`.
Library loggers ("holepunch.*") get a NullHandler: applications decide where logs go.
"""

from __future__ import annotations

import logging

from .blocking import BlockingMesh, connect_blocking
from .client import ConnectError, Mesh, MeshClosed, PeerStatus, connect
from .driver import Driver, DriverStats
from .server import Server, serve

logging.getLogger("holepunch").addHandler(logging.NullHandler())

__all__ = [
    "BlockingMesh", "ConnectError", "Driver", "DriverStats", "Mesh", "MeshClosed", "PeerStatus",
    "Server", "connect", "connect_blocking", "serve",
]
