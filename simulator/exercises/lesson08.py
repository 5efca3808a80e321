"""Checks for lesson 8 (when the basic punch is not enough): the cells peer-reflexive learning
adds, the probes birthday probing needs, and the technique that connected a pair.

Rule: right answers come from simulator runs of the lesson's grids and pairs (`technique_grid`,
`run_techniques`, `pair_technique`) or from `birthday_probability`; a check never raises,
whatever it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache, partial
from numbers import Integral
from typing import Any

from holepunch.protocol.techniques import IMPLEMENTED, Technique
from holepunch.protocol.techniques.probability import birthday_probability

from ..nat import NatBehavior
from ..presets import FULL_CONE, PORT_RESTRICTED_CONE, SYMMETRIC
from ..techniques import (
    SYMMETRIC_SEQUENTIAL,
    TECHNIQUE_SETS,
    pair_technique,
    run_techniques,
    technique_grid,
)
from . import UNANSWERED, Feedback, Pair, name_pairs, not_yet, right

LESSON_PRESETS: tuple[NatBehavior, ...] = (FULL_CONE, PORT_RESTRICTED_CONE, SYMMETRIC, SYMMETRIC_SEQUENTIAL)
"""The lesson's technique grids: two cones, the random symmetric NAT and the predictable one."""
SOCKETS = 256
"""Exercise 2's k: the hard side's open sockets."""
TARGET = 0.5
"""Exercise 2's chance to reach."""
SPACES = (65536, 64512)
"""Port spaces a learner may count over: all 16-bit ports, or the simulator's 1024-65535."""
PAIR = (SYMMETRIC_SEQUENTIAL, PORT_RESTRICTED_CONE)
"""Exercise 3's pair: A behind the predictable symmetric NAT, B behind a port-restricted cone."""



@lru_cache(maxsize=1)
def reflexive_cells() -> frozenset[Pair]:
    """Cells of the lesson grid that connect with peer-reflexive learning but not with the basic
    punch alone (cached: runs are deterministic)."""
    sets: dict[str, Iterable[Technique | str]] = {name: TECHNIQUE_SETS[name] for name in ("basic", "+peer-reflexive")}
    grids = technique_grid(sets, LESSON_PRESETS)
    basic, learned = grids["basic"], grids["+peer-reflexive"]
    return frozenset(pair for pair in learned.cells if learned.connected(*pair) and not basic.connected(*pair))


def fewest_probes(k: int = SOCKETS, target: float = TARGET) -> dict[str, int]:
    """The fewest probes m reaching `target` with k sockets, per way of counting: the textbook
    approximation, and the exact formula over each of `SPACES`."""
    ways: dict[str, Callable[[int], float]] = {"1-exp(-km/65536)": lambda m: birthday_probability(k, m)}
    for space in SPACES:
        ways[f"exact over {space} ports"] = partial(birthday_probability, k, space=space, exact=True)
    return {name: next(m for m in range(1, 65536) if chance(m) >= target) for name, chance in ways.items()}


@lru_cache(maxsize=1)
def pair_answer() -> str:
    """What connected exercise 3's pair with every implemented technique switched on (cached)."""
    return pair_technique(run_techniques(*PAIR, IMPLEMENTED))


def check_reflexive_cells(answer: Any) -> Feedback:
    """Exercise 1: the (A's NAT, B's NAT) cells over LESSON_PRESETS that peer-reflexive learning adds."""
    if answer is ... or answer is None:
        return UNANSWERED
    pairs = name_pairs(answer)
    if pairs is None:
        return not_yet('Give a set of pairs of NAT names, e.g. {("FULL_CONE", "SYMMETRIC"), ...}.')
    expected = reflexive_cells()
    if pairs == expected:
        return right(f"Correct: {len(expected)} cells, a symmetric NAT facing a full cone. The full cone lets "
                     "the symmetric side's PUNCH in from its unlisted port, and the cone side adopts that "
                     "address (RFC 8445 §7.3.1.3).")
    extra, missing = sorted(pairs - expected), sorted(expected - pairs)
    parts = []
    if extra:
        parts.append(f"{len(extra)} of yours are not added by peer-reflexive learning, e.g. {extra[0]} "
                     "(it connected already, or still fails)")
    if missing:
        parts.append(f"{len(missing)} added cell(s) missing, e.g. {missing[0]}")
    return not_yet("Not yet: " + "; ".join(parts) + ".")


def check_probes_needed(answer: Any) -> Feedback:
    """Exercise 2: the fewest probes m that give at least TARGET with k = SOCKETS open sockets."""
    if answer is ... or answer is None:
        return UNANSWERED
    if isinstance(answer, bool) or not isinstance(answer, Integral):
        return not_yet(f"Give a whole number of probes, not a {type(answer).__name__}.")
    m = int(answer)
    fewest = fewest_probes()
    if m in fewest.values():
        ways = ", ".join(f"{value} by {name}" for name, value in fewest.items())
        return right(f"Correct: m = {m} probes give {100 * birthday_probability(SOCKETS, m):.1f} % "
                     f"(the fewest: {ways}). The chance grows with the product k*m: half the probes "
                     f"need twice the sockets.")
    if m < min(fewest.values()):
        chance = birthday_probability(SOCKETS, max(m, 0)) if 0 <= m <= 65536 else 0.0
        return not_yet(f"{m} probes give only {100 * chance:.1f} %: not enough for {100 * TARGET:.0f} %.")
    if m <= max(fewest.values()):
        return not_yet(f"{m} is close, but not the fewest under any one way of counting: try the smallest m "
                       f"with 1 - exp(-{SOCKETS}*m/65536) >= {TARGET}.")
    return not_yet(f"{m} probes are enough, but fewer suffice: find the smallest m with "
                   f"1 - exp(-{SOCKETS}*m/65536) >= {TARGET} (or use probes_needed).")


def check_pair_technique(answer: Any) -> Feedback:
    """Exercise 3: the technique that connected SYMMETRIC_SEQUENTIAL (A) x PORT_RESTRICTED_CONE (B)."""
    if answer is ... or answer is None:
        return UNANSWERED
    if isinstance(answer, Technique):
        answer = answer.value
    if not isinstance(answer, str):
        return not_yet(f'Give the technique\'s name as results show it (e.g. "basic"), not a {type(answer).__name__}.')
    given, expected = answer.strip().lower(), pair_answer()
    if given == expected:
        return right(f"Correct: {expected}. A's NAT hands out ports one after another, so B's probes at "
                     "the next few ports after the listed one meet the mapping A opened towards B.")
    hints = {
        "basic": "The basic punch fails here: A's symmetric NAT sends from an unlisted port that B's filter refuses.",
        "peer-reflexive": "Peer-reflexive learning needs A's PUNCH to get in, but B's port-restricted filter drops it.",
        "birthday": "Birthday probing is on too, but something cheaper connected first: look at the NAT's port allocation.",
        "relay": "The relay is on too, but it takes over only after relay_after seconds without a direct "
                 "path: this pair needs no relay, a direct technique connects it within a second.",
    }
    return not_yet(hints.get(given, f"Not {answer!r}. Read `peer_results(out)` or `pair_technique(out)` for this pair."))
