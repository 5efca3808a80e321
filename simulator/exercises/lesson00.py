"""Checks for lesson 0 (welcome): read the outcome of one simulated punch.

Rule: the right answers are computed by running the simulator on the lesson's scenario, never
typed in, so they follow the library. The answer readers (`endpoint_answer`, `number_answer`,
`unanswered`) are shared by the other lessons' checks; none of them raises on any input.
"""

from __future__ import annotations

import math
from functools import lru_cache

from holepunch.protocol.endpoint import Endpoint

from ..nat import NatBehavior
from ..outcome import Outcome
from ..presets import PORT_RESTRICTED_CONE, SYMMETRIC
from ..scenarios import run_punch
from . import UNANSWERED, Feedback, not_yet, right

# --- answer readers (used by every lesson's checks) ---------------------------------------------


def unanswered(answer: object) -> bool:
    """True for the notebook's placeholder (`...`) and for None."""
    return answer is Ellipsis or answer is None


def endpoint_answer(answer: object) -> Endpoint | None:
    """An endpoint from an `Endpoint`, a (host, port) pair or "host:port" text (str or bytes)."""
    if isinstance(answer, bytes):
        answer = answer.decode("ascii", "replace")
    if isinstance(answer, str):
        try:
            return Endpoint.parse(answer.strip())
        except ValueError:
            return None
    if isinstance(answer, tuple) and len(answer) == 2:
        host, port = answer
        if isinstance(host, str) and isinstance(port, int) and not isinstance(port, bool):
            return Endpoint(host, port)
    return None


def number_answer(answer: object) -> float | None:
    """A finite number from an int, a float or numeric text; None for anything else (bools too)."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, str):
        try:
            answer = float(answer.strip())
        except ValueError:
            return None
    if isinstance(answer, (int, float)) and math.isfinite(answer):
        return float(answer)
    return None


# --- the lesson's run ---------------------------------------------------------------------------


SLOW_LATENCY = 0.1
"""Exercise 2's links: 100 ms each way instead of the lesson's 20 ms."""


@lru_cache(maxsize=4)
def welcome_outcome(nat_b: NatBehavior = PORT_RESTRICTED_CONE, latency: float = 0.02) -> Outcome:
    """The lesson's punch: peer A behind a port-restricted cone, peer B behind `nat_b`."""
    return run_punch(PORT_RESTRICTED_CONE, nat_b, latency=latency)


def check_public_endpoint(answer: object) -> Feedback:
    """Exercise 1: the public endpoint the rendezvous server saw for peer A."""
    if unanswered(answer):
        return UNANSWERED
    expected = welcome_outcome().listed["A"]
    given = endpoint_answer(answer)
    if given is None:
        return not_yet(f"Give an endpoint such as \"192.0.2.1:1234\", not {answer!r}.")
    if given == expected:
        return right(f"Yes: the server saw peer A at {expected}, its NAT's public address and port.")
    if given.host.startswith("10."):
        return not_yet(f"{given} is peer A's private address on its LAN; the server sees what the NAT made of it.")
    return not_yet(f"Not {given}. Look at outcome.listed, or at the 'translate' lines of the trace.")


def check_time_to_connect(answer: object) -> Feedback:
    """Exercise 2: the time to connect (seconds after both started) over 100 ms links."""
    if unanswered(answer):
        return UNANSWERED
    expected = welcome_outcome(latency=SLOW_LATENCY).time_to_connect
    lesson = welcome_outcome().time_to_connect
    assert expected is not None and lesson is not None, "the lesson's punches must connect"
    value = number_answer(answer)
    if value is None:
        return not_yet(f"Give a number of seconds, such as 0.5, not {answer!r}.")
    if abs(value - expected) <= 0.0015:
        return right(f"Yes: {expected:.3f} s, {expected / lesson:.1f} times as long: the punch is a few "
                     "trips across the links, so it scales with their latency.")
    if abs(value / 1000 - expected) <= 0.0015:
        return not_yet("That looks like milliseconds: the simulator counts in seconds.")
    if abs(value - lesson) <= 0.0015:
        return not_yet("That is the time over the lesson's 20 ms links; run it again with latency=0.1.")
    return not_yet(f"Not {value:g} s. Run run_punch(..., latency=0.1) and read its time_to_connect.")


def check_symmetric_b(answer: object) -> Feedback:
    """Exercise 3: does the punch succeed when peer B sits behind a symmetric NAT instead?"""
    if unanswered(answer):
        return UNANSWERED
    if not isinstance(answer, bool):
        return not_yet(f"Answer True (it connects) or False (it does not), not {answer!r}.")
    connected = welcome_outcome(SYMMETRIC).connected
    if answer == connected and connected:
        return right("Right: it connects.")
    if answer == connected:
        return right("Right: it does not connect. B's NAT gives each destination a new public port, so "
                     "A punches towards a port that B never uses for A. Lessons 2 and 5 say why.")
    return not_yet("Run it: run_punch(PORT_RESTRICTED_CONE, SYMMETRIC).connected, and read .explain().")
