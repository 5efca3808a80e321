"""Techniques beyond the basic punch, each an option of the peer client (`ClientConfig.techniques`).

Rule: this package holds the technique names and the pure pieces (probe plans, probabilities,
results); `engine.py` runs them inside `PeerClient`. Every technique talks only to peers that
the server listed as extended, with extended messages, so a reference peer never sees one
(wire-protocol.md §7). With no technique the client is the reference-compatible basic punch.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Technique(str, enum.Enum):
    """One NAT traversal technique; the value is the name results and traces show."""

    PEER_REFLEXIVE = "peer-reflexive"
    """Adopt the address a valid PUNCH of a listed peer came from (RFC 8445 §7.3.1.3)."""
    DISCOVERY = "discovery"
    """NAT behaviour discovery (issue 7, technique 2): not implemented yet."""
    PREDICTION = "prediction"
    """Probe the ports a sequential-allocation symmetric NAT will hand out next."""
    BIRTHDAY = "birthday"
    """Many sockets on the hard side, random probes from the easy side (birthday paradox)."""
    RELAY = "relay"
    """Fall back to the rendezvous server's relay after `relay_after` seconds without a direct path
    (`relay_path.py`; the server side is `relay.py`); punching goes on and upgrades to direct."""


BASIC = "basic"
"""The technique name of a path found by the plain SYN/ACK punch towards the listed endpoint."""

IMPLEMENTED: frozenset[Technique] = frozenset(
    {Technique.PEER_REFLEXIVE, Technique.PREDICTION, Technique.BIRTHDAY, Technique.RELAY}
)
"""Techniques the client runs today; the others are named so that results and grids have a slot."""

DIRECT: frozenset[Technique] = frozenset({Technique.PEER_REFLEXIVE, Technique.PREDICTION, Technique.BIRTHDAY})
"""Implemented techniques that find a direct path (every one but the relay)."""

PROBING: frozenset[Technique] = frozenset({Technique.PREDICTION, Technique.BIRTHDAY})
"""Techniques that send probes to addresses the server did not list."""

PROBE_CODES: dict[Technique, int] = {Technique.PREDICTION: 1, Technique.BIRTHDAY: 2}
"""The PROBE field of an `ExtPunch` sent as a probe (messages.py, Tag.PROBE)."""


class BirthdayRole(str, enum.Enum):
    """Which half of birthday probing a client plays."""

    AUTO = "auto"
    """Hard if the client knows its NAT maps per destination, easy if it knows it does not, and
    both while it does not know (`PeerClient.nat_hard` is None until NAT discovery sets it)."""
    HARD = "hard"
    """Open `birthday_sockets` sockets and punch from each: many mappings on our NAT."""
    EASY = "easy"
    """Probe `birthday_probes` random ports at the peer's address."""
    BOTH = "both"


def coerce_techniques(value: Iterable[Technique | str]) -> frozenset[Technique]:
    """A technique set from names or members; `ValueError` names the choices or what is missing."""
    if isinstance(value, (str, Technique)):
        value = (value,)
    chosen: set[Technique] = set()
    for item in value:
        try:
            chosen.add(Technique(item))
        except ValueError:
            names = ", ".join(t.value for t in Technique)
            raise ValueError(f"unknown technique {item!r}; choose from {names}") from None
    missing = sorted(t.value for t in chosen - IMPLEMENTED)
    if missing:
        raise ValueError(f"technique {', '.join(missing)} is not implemented yet")
    return frozenset(chosen)


def resolve_role(role: BirthdayRole, nat_hard: bool | None) -> frozenset[BirthdayRole]:
    """The halves a client plays: `role` itself, or for AUTO what `nat_hard` says (both if unknown)."""
    if role is BirthdayRole.AUTO:
        role = BirthdayRole.BOTH if nat_hard is None else (BirthdayRole.HARD if nat_hard else BirthdayRole.EASY)
    if role is BirthdayRole.BOTH:
        return frozenset({BirthdayRole.HARD, BirthdayRole.EASY})
    return frozenset({role})


__all__ = [
    "BASIC", "DIRECT", "IMPLEMENTED", "PROBE_CODES", "PROBING", "BirthdayRole", "Technique", "coerce_techniques",
    "resolve_role",
]
