"""Checks for lesson 9 (security): the reflection's amplification factor, what the budget lets
through, and why the server refuses an intruder.

Rule: right answers come from simulator runs (`reflection_attack`, `two_peers` with a session
secret), never hard-coded; a check never raises, whatever it is given.
"""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Real
from typing import Any

from holepunch.protocol import ClientConfig, ServerConfig

from ..attacks import reflection_attack
from ..presets import PORT_RESTRICTED_CONE
from ..scenarios import run_punch, two_peers
from . import UNANSWERED, Feedback, not_yet, right

SESSION_SIZE = 50
REQUESTS = 50
"""The lesson's attack: 50 forged plain registrations into a session of 50."""
SECRET = "class secret"
"""The session secret of the lesson's class; the intruder guesses something else."""
TOLERANCE = 0.05
"""Relative error accepted on a factor read off a printout."""


@lru_cache(maxsize=2)
def attack(protected: bool) -> Any:
    """The lesson's reflection attack, against the default server or an unprotected one (cached)."""
    config = ServerConfig() if protected else ServerConfig(amplification_factor=None)
    return reflection_attack(config, session_size=SESSION_SIZE, requests=REQUESTS)


@lru_cache(maxsize=1)
def intruder_refusal() -> str:
    """The refusal reason the server counts for a client with the wrong secret (cached)."""
    scenario = two_peers(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, config=ClientConfig(secret="a guess"),
                         server_config=ServerConfig(secrets=(SECRET,)))
    run_punch(scenario)
    refused = scenario.server.machine.stats.refused  # type: ignore[attr-defined]
    return max(refused, key=refused.__getitem__) if refused else ""


def _number(answer: Any) -> float | None:
    """A finite real number (bools excluded), or None."""
    if isinstance(answer, bool) or not isinstance(answer, Real):
        return None
    try:
        value = float(answer)
    except (OverflowError, ValueError):  # a huge int
        return None
    return value if math.isfinite(value) else None  # NaN and infinities are no answer


def check_amplification(answer: Any) -> Feedback:
    """Exercise 1: the on-the-wire amplification factor of the unprotected attack (within 5 %)."""
    if answer is ... or answer is None:
        return UNANSWERED
    value = _number(answer)
    if value is None:
        return not_yet("Give a number, e.g. 12.5 (bytes to the victim per byte from the attacker).")
    report = attack(False)
    expected = report.amplification
    if abs(value - expected) <= TOLERANCE * expected:
        return right(f"Correct: about {expected:.1f}x. Each {report.request_size}-byte request (plus 28 bytes of "
                     f"headers) brings the victim a list of {SESSION_SIZE} members, up to {report.largest_reply} bytes.")
    if abs(value - report.payload_amplification) <= TOLERANCE * report.payload_amplification:
        return not_yet("That is the payload-only ratio: count the 28 header bytes of every datagram too "
                       "(`report.amplification`).")
    return not_yet(f"Not quite: divide the victim's bytes on the wire by the attacker's (both with 28 header bytes "
                   f"per datagram). Your answer was {value:g}.")


def check_replies_under_budget(answer: Any) -> Feedback:
    """Exercise 2: how many peer lists the victim still receives from the default server."""
    if answer is ... or answer is None:
        return UNANSWERED
    value = _number(answer)
    if value is None or value != int(value):
        return not_yet("Give a whole number of datagrams.")
    report = attack(True)
    expected = report.victim_datagrams
    if int(value) == expected:
        return right(f"Correct: {expected} of {REQUESTS}. The forged requests earn 3x their bytes, and a full list "
                     f"costs {report.largest_reply} + 28 bytes, so only every few requests buy one; the rest are "
                     "withheld and counted as `amplification` refusals.")
    if int(value) == REQUESTS:
        return not_yet("The server answers every request only when the budget is off. Run the attack with "
                       "the default ServerConfig() and read `victim_datagrams`.")
    return not_yet(f"Not quite: run the attack with ServerConfig() and read `victim_datagrams`. Your answer was {value:g}.")


def check_intruder_refusal(answer: Any) -> Feedback:
    """Exercise 3: the refusal reason counted in `stats.refused` for an intruder with a wrong secret."""
    if answer is ... or answer is None:
        return UNANSWERED
    if not isinstance(answer, str):
        return not_yet('Give the reason as a string, e.g. "rate-limited".')
    expected = intruder_refusal()
    if answer.strip().lower().replace("_", "-") == expected:
        return right(f'Correct: "{expected}". Its registration carries no valid MAC, so the server answers '
                     "ExtError BAD_AUTH and the intruder\'s connect ends, refused.")
    return not_yet(f'Not quite: run the class with a wrong secret and look at `server.machine.stats.refused`. '
                   f"Your answer was {answer!r}.")
