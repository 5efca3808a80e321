"""Checks for lesson 1 (addresses and NAT): a NAT table driven by hand, with a hand-advanced clock.

Rule: each exercise's story is data in this module (`PORT_STORY`, `EXPIRY_STORY`), and the
right answer comes from replaying that story through a real `NatTable`; the lesson's markdown
tells the same story in words, and the tests pin the answers it implies.
"""

from __future__ import annotations

from typing import NamedTuple

from holepunch.protocol.endpoint import Endpoint

from ..nat import NatBehavior, NatTable, PortAllocation
from ..packet import Packet
from ..presets import PORT_RESTRICTED_CONE
from . import UNANSWERED, Feedback, not_yet, right
from .lesson00 import endpoint_answer, number_answer, unanswered

PUBLIC_IP = "203.0.113.7"
SERVER = Endpoint("198.51.100.1", 5000)
LAPTOP_A = Endpoint("192.168.1.10", 5000)
LAPTOP_B = Endpoint("192.168.1.11", 5000)
STRANGER = Endpoint("192.0.2.66", 5000)

SEQUENTIAL_ROUTER = NatBehavior("SEQUENTIAL_ROUTER", allocation=PortAllocation.SEQUENTIAL, ports=(40000, 40999))
"""Exercise 1's router: EIM + APDF like a port-restricted cone, but it hands out public ports
one after another from 40000 instead of keeping the inside port."""


class Step(NamedTuple):
    """One moment of a story: at `time`, a packet goes `out` (from inside) or comes in."""

    time: float
    direction: str  # "out" or "in"
    inside: Endpoint  # the inside host that sends it (out), or whose mapping it targets (in)
    remote: Endpoint  # the destination (out) or the source (in)
    label: str = ""


PORT_STORY = (
    Step(0.0, "out", LAPTOP_A, SERVER, "first packet"),
    Step(1.0, "out", LAPTOP_B, SERVER, "second packet"),
)
"""Exercise 1: laptops A and B, both on inside port 5000, each send to the server once."""

EXPIRY_STORY = (
    Step(0.0, "out", LAPTOP_A, SERVER),
    Step(5.0, "in", LAPTOP_A, SERVER, "a"),
    Step(12.0, "out", LAPTOP_A, SERVER),
    Step(20.0, "in", LAPTOP_A, STRANGER, "b"),
    Step(38.0, "in", LAPTOP_A, SERVER, "c"),
    Step(45.0, "in", LAPTOP_A, SERVER, "d"),
)
"""Exercises 2 and 3: a laptop behind a port-restricted cone (30 s timeout) talks to a server;
inbound packets a to d aim at the laptop's public endpoint."""


def replay(behavior: NatBehavior, story: tuple[Step, ...]) -> tuple[NatTable, list[Packet | None]]:
    """Run a story through a fresh table; return it and each step's packet after the NAT (or None)."""
    table = NatTable(behavior, PUBLIC_IP)
    results: list[Packet | None] = []
    public: dict[Endpoint, Endpoint] = {}
    for i, step in enumerate(story):
        if step.direction == "out":
            verdict = table.outbound(Packet(i, step.inside, step.remote, b"", "data", "inside"), step.time)
            if verdict.packet is not None:
                public[step.inside] = verdict.packet.source
        else:
            target = public.get(step.inside, Endpoint(PUBLIC_IP, step.inside.port))
            verdict = table.inbound(Packet(i, step.remote, target, b"", "data", "outside"), step.time)
        results.append(verdict.packet)
    return table, results


def second_packet_endpoint() -> Endpoint:
    """Exercise 1's answer: the public source of the second packet of `PORT_STORY`."""
    _, packets = replay(SEQUENTIAL_ROUTER, PORT_STORY)
    second = packets[1]
    assert second is not None, "an outbound packet is never dropped here"
    return second.source


def expiry_time() -> float:
    """Exercise 2's answer: when the laptop's mapping of `EXPIRY_STORY` times out."""
    table, _ = replay(PORT_RESTRICTED_CONE, EXPIRY_STORY)
    rows = table.rows(EXPIRY_STORY[-1].time, include_expired=True)
    return rows[0].expires


def let_in() -> set[str]:
    """Exercise 3's answer: the labels of the inbound packets of `EXPIRY_STORY` that got in."""
    _, packets = replay(PORT_RESTRICTED_CONE, EXPIRY_STORY)
    return {step.label for step, pkt in zip(EXPIRY_STORY, packets) if step.direction == "in" and pkt is not None}


def check_second_packet(answer: object) -> Feedback:
    """Exercise 1: the public endpoint the sequential router assigns to laptop B's packet."""
    if unanswered(answer):
        return UNANSWERED
    expected = second_packet_endpoint()
    given = endpoint_answer(answer)
    if given is None:
        return not_yet(f"Give an endpoint such as \"{PUBLIC_IP}:1234\", not {answer!r}.")
    if given == expected:
        return right(f"Yes: {expected}. The first mapping took port 40000, so laptop B's gets the next one.")
    if given.host != PUBLIC_IP:
        return not_yet(f"The packet leaves with the NAT's public address, {PUBLIC_IP}, as its source.")
    if given.port == LAPTOP_B.port:
        return not_yet("This router does not keep inside ports: it hands them out one after another.")
    return not_yet(f"Not port {given.port}. Which port did laptop A's mapping take, and which comes next?")


def check_expiry(answer: object) -> Feedback:
    """Exercise 2: the time at which the laptop's mapping expires."""
    if unanswered(answer):
        return UNANSWERED
    expected, timeout = expiry_time(), PORT_RESTRICTED_CONE.timeout
    last_out = max(step.time for step in EXPIRY_STORY if step.direction == "out")
    value = number_answer(answer)
    if value is None:
        return not_yet(f"Give a time in seconds, such as 30, not {answer!r}.")
    if abs(value - expected) < 1e-6:
        return right(f"Yes: {expected:g} s, {timeout:g} s after the last outbound packet (t = {last_out:g} s).")
    if abs(value - timeout) < 1e-6:
        return not_yet(f"The laptop sent again at t = {last_out:g} s: outbound packets refresh the mapping.")
    if value > expected:
        return not_yet("Inbound packets do not refresh a mapping (RFC 4787 §4.3): only outbound ones do.")
    return not_yet(f"Not {value:g} s. When did the laptop last send, and how long is the timeout?")


def check_let_in(answer: object) -> Feedback:
    """Exercise 3: which of the inbound packets a, b, c, d reach the laptop (a set of labels)."""
    if unanswered(answer):
        return UNANSWERED
    if isinstance(answer, str):
        answer = [c for c in answer if c.isalpha()]
    try:
        given = {str(label).strip().lower() for label in answer}  # type: ignore[attr-defined]
    except TypeError:
        return not_yet(f"Give the letters of the packets that get in, such as {{\"a\", \"b\"}}, not {answer!r}.")
    expected = let_in()
    if given == expected:
        return right(f"Yes: {', '.join(sorted(expected))}. b came from an endpoint the laptop never sent "
                     "to (filtered), and d came after the mapping had expired.")
    hints = []
    if "b" in given:
        hints.append("b comes from a stranger, and this NAT filters by address and port")
    if "d" in given:
        hints.append("at t = 45 s the mapping is gone")
    missing = sorted(expected - given)
    if missing:
        verb = "comes" if len(missing) == 1 else "come"
        hints.append(f"{' and '.join(missing)} {verb} from the server while the mapping is alive")
    return not_yet("Not quite: " + ("; ".join(hints) or "check each packet against the table") + ".")
