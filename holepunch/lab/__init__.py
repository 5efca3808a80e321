"""A real NAT lab: network namespaces, a bridge for the internet, and nftables NATs of every type.

Rule: Linux and root only, standard library only (it drives `ip`, `nft` and `/proc/sys` through
subprocesses); nothing in `holepunch` imports it. Start with `Lab` (docs/lab.md):

    with Lab(sites={"A": "port-restricted", "B": "symmetric"}) as lab:
        lab.verify()                       # RFC 5780 probe: each NAT is what was asked for
        lab.run("A", ["ip", "addr"])       # any command on any host
"""

from __future__ import annotations

from .errors import (
                     CommandError,
                     LabError,
                     LabStateError,
                     LabUnavailable,
                     NotLinuxError,
                     NotRootError,
                     ToolMissingError,
                     VerifyError,
)
from .impair import Impairment
from .layout import Layout
from .nft import NAT_TYPES, SIMULATOR_PRESET, NatType, nat_type
from .probe import Verdict
from .topology import Lab, cleanup_stale

__all__ = [
                     "NAT_TYPES",
                     "SIMULATOR_PRESET",
                     "CommandError",
                     "Impairment",
                     "Lab",
                     "LabError",
                     "LabStateError",
                     "LabUnavailable",
                     "Layout",
                     "NatType",
                     "NotLinuxError",
                     "NotRootError",
                     "ToolMissingError",
                     "Verdict",
                     "VerifyError",
                     "cleanup_stale",
                     "nat_type",
]
