"""holepunch: NAT hole punching over UDP and TCP, with a sans-IO core.

`import holepunch` stays light: the asyncio API is loaded on first use, so the simulator can use
the protocol and trace types without pulling in asyncio or socket.
"""

from __future__ import annotations

import importlib
from typing import Any

from .protocol import ClientConfig, ClientState, Endpoint, PeerClient, PeerState, RendezvousServer, ServerConfig
from .trace import Action, Trace, TraceRecord

__version__ = "0.1.0"

_LAZY = {
    "connect": "holepunch.aio.client",
    "connect_blocking": "holepunch.aio.blocking",
    "Mesh": "holepunch.aio.client",
    "serve": "holepunch.aio.server",
    "Server": "holepunch.aio.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'holepunch' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Action", "ClientConfig", "ClientState", "Endpoint", "Mesh", "PeerClient", "PeerState",
    "RendezvousServer", "ServerConfig", "Server", "Trace", "TraceRecord", "__version__",
    "connect", "connect_blocking", "serve",
]
