"""The classic NAT names as presets over the RFC 4787 axes (docs/nat-model.md says why each).

Rule: a preset is only a `NatBehavior` value; nothing in the simulator branches on its name.
Make a variant with `dataclasses.replace(SYMMETRIC, allocation="SEQUENTIAL", port_delta=2)`.
"""

from __future__ import annotations

from .nat import Filtering, Mapping, NatBehavior, PortAllocation

NO_NAT = NatBehavior("NO_NAT", translates=False, hairpinning=False)
"""A host with a public address: nothing is rewritten or filtered."""

FULL_CONE = NatBehavior("FULL_CONE", Mapping.EIM, Filtering.EIF, PortAllocation.PRESERVE)
"""EIM + EIF: once mapped, anyone may send in (RFC 3489's "full cone")."""

RESTRICTED_CONE = NatBehavior("RESTRICTED_CONE", Mapping.EIM, Filtering.ADF, PortAllocation.PRESERVE)
"""EIM + ADF: only addresses the inside has sent to may send in."""

PORT_RESTRICTED_CONE = NatBehavior(
    "PORT_RESTRICTED_CONE", Mapping.EIM, Filtering.APDF, PortAllocation.PRESERVE
)
"""EIM + APDF: only endpoints (address and port) the inside has sent to may send in."""

SYMMETRIC = NatBehavior("SYMMETRIC", Mapping.APDM, Filtering.APDF, PortAllocation.RANDOM)
"""APDM + APDF with random ports: every new remote endpoint gets a new, unpredictable port."""

LINUX_MASQUERADE = NatBehavior(
    "LINUX_MASQUERADE", Mapping.EIM, Filtering.APDF, PortAllocation.PRESERVE,
    hairpinning=False, per_flow=True, claim_unsolicited=True,
)
"""Linux `masquerade` with conntrack: one entry per flow, the source port kept while the
(port, remote) pair is free, APDF, no hairpinning, and the early-punch race (nat-lab-notes)."""

PRESETS: tuple[NatBehavior, ...] = (
    NO_NAT, FULL_CONE, RESTRICTED_CONE, PORT_RESTRICTED_CONE, SYMMETRIC, LINUX_MASQUERADE,
)
"""Every preset, in the order of the NAT x NAT grid."""


def preset(name: str) -> NatBehavior:
    """Look a preset up by name ("SYMMETRIC" or "symmetric"); `KeyError` lists the choices."""
    for behavior in PRESETS:
        if behavior.name == name.upper():
            return behavior
    raise KeyError(f"no preset {name!r}; choose from {', '.join(b.name for b in PRESETS)}")
