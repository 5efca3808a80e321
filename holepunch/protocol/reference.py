"""Sans-IO models of the Go reference implementation (4kills/hole-punching, commit d76c376).

Rule: a model for comparison and teaching; never used by our own client or server. The
reference's bugs (wire-protocol.md §6: B1-B6 in the client, B8, B10 and B11 in the server) are
modelled ON PURPOSE here, and only here, so that the simulator and the course can run mixed
sessions and show the reference's behaviour side by side with ours. Our client, server and
drivers never import this module; the simulator, the tests and the course do.

* `ReferenceClient`: the Go client's `Connect` (§4), same machine interface as `PeerClient`.
* `ReferenceServer`: the Go server (§3), same machine interface as `RendezvousServer`.
"""

from .reference_client import (
    CHANNEL_SLOTS,
    ERR_TIMEOUT_PEERS,
    ERR_TIMEOUT_SERVER,
    WORKER_TRANSITIONS,
    ReadLoopBlocked,
    ReferenceClient,
    ReferenceWorker,
    parse_reference_list,
)
from .reference_server import MAX_UDP_PAYLOAD, ReferenceServer

__all__ = [
    "CHANNEL_SLOTS", "ERR_TIMEOUT_PEERS", "ERR_TIMEOUT_SERVER", "MAX_UDP_PAYLOAD",
    "ReadLoopBlocked", "ReferenceClient", "ReferenceServer", "ReferenceWorker",
    "WORKER_TRANSITIONS", "parse_reference_list",
]
