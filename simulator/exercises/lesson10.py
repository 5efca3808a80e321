"""Checks for lesson 10 (the real NAT lab): the port a symmetric NAT opened for the punch, and the
early-punch race of Linux masquerade in the lab and on the internet.

Rule: a check never raises and needs no root: exercise 1 reads the learner's own trace (a real
lab run, or the simulated run for machines without a lab: both name their actors alike), and
exercise 2 asks the simulator, under the lab's timing (`simulator.lab_compare`, imported when
the check runs) and under the course's default internet.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action, TraceRecord

from . import UNANSWERED, Feedback, not_yet, right
from .lesson06 import as_endpoint

MASQUERADE = "linux-masquerade"
LAB_SKEW = 1e-3
"""How far apart the lab's real peers punch (about a millisecond: they are Python processes)."""


def _records(trace: Any) -> list[TraceRecord] | None:
    try:
        return [r for r in trace if isinstance(r, TraceRecord)]
    except TypeError:
        return None


def punch_source(trace: Iterable[TraceRecord], nat: str = "NAT B") -> Endpoint | None:
    """Where `nat` sent its host's first punch (SYN) from: the public side of the first
    outbound SYN translation."""
    return next((r.source for r in trace if r.actor == nat and r.action is Action.TRANSLATE
                 and r.kind == "syn" and r.summary.startswith("outbound")), None)


def registered_source(trace: Iterable[TraceRecord], nat: str = "NAT B") -> Endpoint | None:
    """Where `nat` sent its host's first registration from: what the server saw and listed."""
    return next((r.source for r in trace if r.actor == nat and r.action is Action.TRANSLATE
                 and r.kind in ("ext-register", "register")), None)


def check_punch_port(answer: Any, trace: Any) -> Feedback:
    """Exercise 1: the public endpoint from which B's symmetric NAT sent B's first SYN."""
    if answer is ... or answer is None:
        return UNANSWERED
    records = _records(trace)
    if records is None:
        return not_yet("Pass the run's trace as the second argument.")
    expected = punch_source(records)
    if expected is None:
        return not_yet("This trace has no SYN translated by NAT B: use the trace of the lesson's run.")
    given = as_endpoint(answer)
    if given is None:
        return not_yet(f"Give an endpoint such as \"198.51.100.12:40000\", not {answer!r}.")
    if given == expected:
        listed = registered_source(records)
        return right(f"Correct: {expected}, not {listed}, where the server saw B. A symmetric NAT "
                     "opens a new mapping for every new destination, so A punches a port nobody uses.")
    if given == registered_source(records):
        return not_yet("That is where B's registration came from (what the server listed). Look at "
                       "NAT B's translation of B's first SYN.")
    return not_yet(f"Not {given}. Find NAT B's first 'translate' record of kind syn: its source.")


@functools.lru_cache(maxsize=1)
def race_outcomes() -> tuple[bool, bool]:
    """(in the lab, on the course's internet): does linux-masquerade x linux-masquerade connect?
    The lab's peers punch about a millisecond apart and a punch crosses in microseconds; the
    default internet's links take 20 ms each."""
    from ..lab_compare import predict
    from ..presets import LINUX_MASQUERADE
    from ..scenarios import run_punch

    lab = predict(MASQUERADE, MASQUERADE, "udp", skew=LAB_SKEW).connected
    internet = run_punch(LINUX_MASQUERADE, LINUX_MASQUERADE).connected
    return lab, internet


def check_race(answer: Any) -> Feedback:
    """Exercise 2: (connects in the lab?, connects on the internet with 20 ms links?) for two
    peers behind Linux masquerade without the input drop rule."""
    if answer is ... or answer is None:
        return UNANSWERED
    if not (isinstance(answer, tuple) and len(answer) == 2 and all(isinstance(x, bool) for x in answer)):
        return not_yet("Give two booleans: (in the lab, on the internet), e.g. (True, False).")
    lab, internet = race_outcomes()
    if answer == (lab, internet):
        return right("Correct: in the lab the first punch reaches the other NAT before that NAT's "
                     "host has sent; the NAT answers it itself and its conntrack entry takes the "
                     "port, so the other host's punch leaves from a new port, which the first NAT "
                     "filters. With 20 ms links both punches are out before either arrives.")
    if answer[0] != lab:
        return not_yet("Think about the lab first: who punches first, and where is that punch when "
                       "the other host sends its own, a millisecond later?")
    return not_yet("Now the internet: with 20 ms per link, is a punch sent a millisecond earlier "
                   "already at the other NAT when that NAT's host punches?")
