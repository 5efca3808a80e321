"""Checks for lesson 2 (NAT behaviours): classify NATs from what probes observe.

Rule: a NAT is judged by its RFC 4787 axes, never by its name. `probe` runs the same
experiment as an RFC 5780 behaviour-discovery client (one inside port, servers at two addresses
and two ports, then packets from endpoints never contacted) through a real `NatTable`, and the
mystery NATs are shown to learners only through that experiment's report.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from typing import NamedTuple

from holepunch.protocol.endpoint import Endpoint

from ..nat import Filtering, Mapping, NatBehavior, NatTable
from ..packet import Packet
from ..presets import FULL_CONE, PORT_RESTRICTED_CONE, RESTRICTED_CONE, SYMMETRIC, preset
from . import UNANSWERED, Feedback, not_yet, right
from .lesson00 import unanswered

PUBLIC_IP = "203.0.113.7"
INSIDE = Endpoint("10.0.0.2", 4000)
SERVERS = (Endpoint("198.51.100.1", 5000), Endpoint("198.51.100.1", 6000), Endpoint("198.51.100.2", 5000))
"""Where the inside host sends from `INSIDE`: an address at two ports, then another address."""
STRANGERS = (Endpoint("198.51.100.1", 7000), Endpoint("192.0.2.9", 7000))
"""Who then sends in: a known address at a new port, and an address never contacted."""

CLASSIC = (FULL_CONE, RESTRICTED_CONE, PORT_RESTRICTED_CONE, SYMMETRIC)
MYSTERIES = {
    1: RESTRICTED_CONE,
    2: NatBehavior("MYSTERY_2", Mapping.ADM, Filtering.APDF),
}
ALIASES = {"ADDRESS_RESTRICTED_CONE": "RESTRICTED_CONE", "PORT_RESTRICTED": "PORT_RESTRICTED_CONE"}


class Probe(NamedTuple):
    """What the experiment saw: the public endpoint per server, and who got in."""

    public: tuple[Endpoint, ...]
    let_in: tuple[bool, ...]


def probe(behavior: NatBehavior, seed: int = 2) -> Probe:
    """Send from `INSIDE` to every server, then from every stranger to the first public endpoint."""
    table = NatTable(behavior, PUBLIC_IP, random.Random(seed))
    public = []
    for i, server in enumerate(SERVERS):
        verdict = table.outbound(Packet(i, INSIDE, server, b"", "data", "inside"), float(i))
        assert verdict.packet is not None, "outbound packets are not dropped here"
        public.append(verdict.packet.source)
    let_in = []
    for i, stranger in enumerate(STRANGERS, start=len(SERVERS)):
        verdict = table.inbound(Packet(i, stranger, public[0], b"", "data", "outside"), float(i))
        let_in.append(verdict.packet is not None)
    return Probe(tuple(public), tuple(let_in))


def probe_report(behavior: NatBehavior, seed: int = 2) -> str:
    """The experiment as lines a learner can read (what a STUN-style client would print)."""
    seen = probe(behavior, seed)
    lines = [f"{INSIDE} -> {server}  leaves as {public}" for server, public in zip(SERVERS, seen.public)]
    lines += [f"{stranger} -> {seen.public[0]}  {'let in' if ok else 'dropped'}"
              for stranger, ok in zip(STRANGERS, seen.let_in)]
    return "\n".join(lines)


def mystery_report(number: int) -> str:
    """The probe report of mystery NAT `number` (1 or 2), for the exercises."""
    return probe_report(MYSTERIES[number])


# --- reading answers ------------------------------------------------------------------------------


def _axis(token: object) -> Mapping | Filtering | None:
    if isinstance(token, (Mapping, Filtering)):
        return token
    name = str(token).strip().upper()
    if name in Mapping.__members__:
        return Mapping[name]
    if name in Filtering.__members__:
        return Filtering[name]
    return None


def _preset_axes(text: str) -> tuple[Mapping, Filtering] | None:
    name = re.sub(r"[\s\-]+", "_", text.strip().upper())
    try:
        behavior = preset(ALIASES.get(name, name))
    except KeyError:
        return None
    return (behavior.mapping, behavior.filtering) if behavior.translates else None


def axes_answer(answer: object) -> tuple[Mapping, Filtering] | None:
    """(mapping, filtering) from a preset name, a `NatBehavior`, "EIM+ADF" or ("EIM", "ADF")."""
    if isinstance(answer, NatBehavior):
        return (answer.mapping, answer.filtering) if answer.translates else None
    if isinstance(answer, str):
        found = _preset_axes(answer)
        if found is not None:
            return found
        tokens: Iterable[object] = re.split(r"[\s+,/&]+", answer.strip())
    elif isinstance(answer, (tuple, list)):
        tokens = answer
    else:
        return None
    axes = [a for a in (_axis(t) for t in tokens if str(t).strip()) if a is not None]
    mappings = [a for a in axes if isinstance(a, Mapping)]
    filterings = [a for a in axes if isinstance(a, Filtering)]
    if len(mappings) == 1 and len(filterings) == 1:
        return mappings[0], filterings[0]
    return None


def classic_name(axes: tuple[Mapping, Filtering]) -> str:
    """The classic name of a pair of axes, or "no classic name"."""
    for behavior in CLASSIC:
        if (behavior.mapping, behavior.filtering) == axes:
            return behavior.name
    return "no classic name"


# --- checks ---------------------------------------------------------------------------------------


def _check_mystery(number: int, answer: object) -> Feedback:
    if unanswered(answer):
        return UNANSWERED
    given = axes_answer(answer)
    if isinstance(answer, str) and answer.strip().upper().replace(" ", "_") == "NO_NAT":
        return not_yet("The public endpoint differs from the inside one: something rewrites addresses.")
    if given is None:
        return not_yet(f"Give a NAT type such as \"PORT_RESTRICTED_CONE\" or axes such as "
                       f"(\"EIM\", \"APDF\"), not {answer!r}.")
    truth = MYSTERIES[number]
    mapping, filtering = given
    named = f"{truth.mapping.name} + {truth.filtering.name} ({classic_name((truth.mapping, truth.filtering))})"
    if (mapping, filtering) == (truth.mapping, truth.filtering):
        return right(f"Yes: {named}.")
    hints = []
    if mapping is not truth.mapping:
        hints.append("compare the public ports of the three outbound lines: which destinations share one?")
    if filtering is not truth.filtering:
        hints.append("look at who was let in: the known address at a new port, the new address?")
    return not_yet("Not quite: " + " And ".join(hints))


def check_mystery_1(answer: object) -> Feedback:
    """Exercise 1: the classic name (or the axes) of mystery NAT 1."""
    return _check_mystery(1, answer)


def check_mystery_2(answer: object) -> Feedback:
    """Exercise 2: the RFC 4787 axes of mystery NAT 2 (it has no classic name)."""
    return _check_mystery(2, answer)


def first_syn_passes(behavior: NatBehavior) -> bool:
    """Does peer B's SYN get into a NAT whose inside host has sent only to the server?"""
    table = NatTable(behavior, PUBLIC_IP)
    out = table.outbound(Packet(1, INSIDE, SERVERS[0], b"", "ext-register", "A"), 0.0).packet
    assert out is not None
    syn = Packet(2, Endpoint("192.0.2.20", 4000), out.source, b"SYN", "syn", "B")
    return table.inbound(syn, 0.1).packet is not None


def check_first_syn(answer: object) -> Feedback:
    """Exercise 3: behind which classic NATs does B's first SYN reach A (a set of names)?"""
    if unanswered(answer):
        return UNANSWERED
    items = [answer] if isinstance(answer, (str, NatBehavior)) else answer
    try:
        given = {axes_answer(item) for item in items}  # type: ignore[union-attr]
    except TypeError:
        return not_yet(f"Give a set of NAT type names such as {{\"SYMMETRIC\"}}, not {answer!r}.")
    if None in given:
        return not_yet("Name each NAT as FULL_CONE, RESTRICTED_CONE, PORT_RESTRICTED_CONE or SYMMETRIC.")
    expected = {(b.mapping, b.filtering) for b in CLASSIC if first_syn_passes(b)}
    names = sorted(classic_name(axes) for axes in expected)
    if given == expected:
        return right(f"Yes: only {', '.join(names)}. Every other type filters: a peer's SYN gets in only "
                     "once the inside host has sent towards that peer. That is why both sides punch.")
    return not_yet("Not quite. A has sent only to the server: which filtering lets in an endpoint never contacted?")

