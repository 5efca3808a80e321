"""holepunch: NAT hole punching over UDP and TCP, with a sans-IO core.

`import holepunch` stays light: the asyncio API is loaded on first use, so the simulator can use
the protocol and trace types without pulling in asyncio or socket.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from .protocol import ClientConfig, ClientState, Endpoint, PeerClient, PeerState, RendezvousServer, ServerConfig
from .trace import Action, Trace, TraceRecord

__version__ = "0.1.0"

logging.getLogger("holepunch").addHandler(logging.NullHandler())  # applications choose where logs go

_LAZY = frozenset({
    "BlockingMesh", "ConnectError", "Mesh", "Server", "Servers", "TcpMesh", "TcpServer",
    "connect", "connect_blocking", "connect_tcp", "serve", "serve_all", "serve_tcp",
})


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'holepunch' has no attribute {name!r}")
    return getattr(importlib.import_module("holepunch.aio"), name)


__all__ = [
    "Action", "ClientConfig", "ClientState", "Endpoint", "PeerClient", "PeerState",
    "RendezvousServer", "ServerConfig", "Trace", "TraceRecord", "__version__", *sorted(_LAZY),
]
