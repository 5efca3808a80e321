"""Checks for lesson 5 (when punching fails): the grid's connecting cells, where a SYN dies,
and the keep-alive interval that keeps a mapping open.

Rule: right answers come from simulator runs of the lesson's scenarios (the grid, the
symmetric x port-restricted trace, a quiet period) or from the NAT's own timeout field; a check
never raises, whatever it is given.
"""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Real
from typing import Any

from holepunch.protocol import ClientConfig
from holepunch.trace import Action

from ..nat import NatBehavior
from ..outcome import Outcome
from ..presets import FULL_CONE, PORT_RESTRICTED_CONE, RESTRICTED_CONE, SYMMETRIC
from ..scenarios import nat_grid, quiet_period, run_punch
from . import UNANSWERED, Feedback, Pair, name_pairs, not_yet, right

GRID_PRESETS: tuple[NatBehavior, ...] = (FULL_CONE, RESTRICTED_CONE, PORT_RESTRICTED_CONE, SYMMETRIC)
"""The exercise's grid: the four classic NAT types, 16 cells."""
MIN_KEEPALIVE = 1.0
"""Shorter keep-alive intervals work but are needlessly chatty; the check asks for at least this."""
PROOF_QUIET = 65.0
"""Quiet period used to show a right interval at work: over two mapping timeouts."""



@lru_cache(maxsize=8)
def connecting_cells(presets: tuple[NatBehavior, ...] = GRID_PRESETS) -> frozenset[Pair]:
    """The (A's NAT, B's NAT) names of the grid cells whose peers connect (cached: runs are
    deterministic, and checks may be called many times)."""
    return frozenset(pair for pair, outcome in nat_grid(presets).items() if outcome.connected)


@lru_cache(maxsize=1)
def failing_run() -> Outcome:
    """The lesson's failing cell: A behind a symmetric NAT, B behind a port-restricted cone (cached)."""
    return run_punch(SYMMETRIC, PORT_RESTRICTED_CONE)


def first_syn_drop(outcome: Outcome, sender: str = "peer A") -> str | None:
    """The actor (a NAT) where the first SYN that `sender` sent was dropped, if any was."""
    sent = [r.packet for r in outcome.trace if r.action is Action.SEND and r.actor == sender and r.kind == "syn"]
    wanted = set(sent)
    return next((r.actor for r in outcome.trace if r.action is Action.DROP and r.packet in wanted), None)


def check_connecting_cells(answer: Any) -> Feedback:
    """Exercise 1: the set of (A's NAT, B's NAT) cells of the GRID_PRESETS grid that connect."""
    if answer is ... or answer is None:
        return UNANSWERED
    pairs = name_pairs(answer)
    if pairs is None:
        return not_yet('Give a set of pairs of NAT names, e.g. {("FULL_CONE", "SYMMETRIC"), ...}.')
    expected = connecting_cells()
    if pairs == expected:
        return right(f"Correct: {len(expected)} of {len(GRID_PRESETS) ** 2} cells connect; every cell "
                     "with a symmetric NAT on either side fails.")
    missing, extra = sorted(expected - pairs), sorted(pairs - expected)
    parts = []
    if extra:
        verb = "does" if len(extra) == 1 else "do"
        parts.append(f"{len(extra)} of your cells {verb} not connect, e.g. {extra[0]}")
    if missing:
        what = "connecting cell is" if len(missing) == 1 else "connecting cells are"
        parts.append(f"{len(missing)} {what} missing, e.g. {missing[0]}")
    return not_yet("Not yet: " + "; ".join(parts) + ".")


def check_first_drop(answer: Any) -> Feedback:
    """Exercise 2: where A's first SYN dies in symmetric (A) x port-restricted (B)."""
    if answer is ... or answer is None:
        return UNANSWERED
    if not isinstance(answer, str):
        return not_yet(f'Give the name of the box, as the trace calls it (e.g. "NAT A"), not a {type(answer).__name__}.')
    where = first_syn_drop(failing_run())
    given = " ".join(answer.split()).upper()
    if where is not None and given == where.upper():
        return right(f"Correct: {where} drops it. A's symmetric NAT sent it from a new public port, one "
                     f"that B never sent to, so B's port-restricted filter refuses it.")
    if given == "NAT A":
        return not_yet("NAT A lets it out (it gives the new destination a new mapping). Follow the "
                       "packet to the other side.")
    if given in {"PEER B", "B"}:
        return not_yet("It never reaches peer B itself. Which box in front of B stops it?")
    return not_yet(f"Not {answer!r}. Find the first DROP record of a SYN sent by peer A.")


def check_keepalive_interval(answer: Any, timeout: float = PORT_RESTRICTED_CONE.timeout) -> Feedback:
    """Exercise 3: a keep-alive interval (seconds) that keeps a `timeout`-second mapping open."""
    if answer is ... or answer is None:
        return UNANSWERED
    if isinstance(answer, bool) or not isinstance(answer, Real):
        return not_yet(f"Give a number of seconds, not a {type(answer).__name__}.")
    seconds = float(answer)
    if math.isnan(seconds):
        return not_yet("That is not a number of seconds (NaN).")
    if seconds <= 0:
        return not_yet("0 (or less) means no keep-alives at all: the mapping expires after the quiet timeout.")
    if seconds >= timeout:
        return not_yet(f"{seconds:g} s is not below the {timeout:g} s timeout: the mapping expires "
                       f"before the next keep-alive, and anything arriving in between is dropped.")
    if seconds < MIN_KEEPALIVE:
        return not_yet(f"{seconds:g} s works, but sends a packet every {seconds:g} s per peer for nothing; "
                       f"anything from {MIN_KEEPALIVE:g} s up to just under {timeout:g} s keeps the hole open.")
    run = quiet_period(quiet=PROOF_QUIET, config=ClientConfig(keepalive_interval=seconds))
    if not run.delivered:  # cannot happen under the 30 s model; say so rather than pass it
        return not_yet(f"In the simulator the message after {PROOF_QUIET:g} s quiet did not arrive: {run.explain()}")
    note = " Real NATs may time out sooner and keep-alives get lost: half the timeout (our 15 s) is safer." \
        if seconds > timeout / 2 else ""
    return right(f"Correct: every {seconds:g} s is below the {timeout:g} s timeout, so the mappings are "
                 f"refreshed by outbound keep-alives in time; after {PROOF_QUIET:g} s quiet the message "
                 f"still arrived.{note}")
