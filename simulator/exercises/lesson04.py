"""Checks for lesson 4 (UDP hole punching step by step): the first SYN through, a mesh's traffic.

Rule: every right answer is computed by running the lesson's own scenarios in the simulator
(same seed, same trace), never typed in; a check never raises, whatever it is given.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from holepunch.trace import Action, TraceRecord

from ..outcome import Outcome
from ..presets import PORT_RESTRICTED_CONE
from ..scenarios import mesh, run_punch, two_peers
from . import UNANSWERED, Feedback, not_yet, right

MESH_SIZE = 4
"""The lesson's mesh: four peers, all behind port-restricted cone NATs."""
PAIRS_MESH_SIZE = 5
"""The mesh size asked about in the "how many pairs" exercise."""


@lru_cache(maxsize=1)
def first_syn_run() -> Outcome:
    """The lesson's run: port-restricted x port-restricted with the Go reference server, which
    answers only when asked (no push), so B hears of A before A hears of B. Cached: runs are
    deterministic, and checks may be called many times."""
    return run_punch(two_peers(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, server_kind="reference"))


@lru_cache(maxsize=8)
def mesh_run(n: int = MESH_SIZE) -> Outcome:
    """The lesson's mesh of `n` peers behind port-restricted cone NATs, run until all connected
    (cached, like `first_syn_run`)."""
    return run_punch(mesh(n, PORT_RESTRICTED_CONE))


def first_syn_through(outcome: Outcome) -> int:
    """Index in `outcome.trace` of the first record where a peer receives a SYN."""
    return next(i for i, r in enumerate(outcome.trace)
                if r.action is Action.RECEIVE and r.kind == "syn" and r.actor.startswith("peer"))


def _is_count(answer: Any) -> bool:
    return isinstance(answer, int) and not isinstance(answer, bool)


def check_first_syn_through(answer: Any) -> Feedback:
    """Exercise 1: the trace index of the record where the first SYN reaches a peer."""
    if answer is ... or answer is None:
        return UNANSWERED
    outcome = first_syn_run()
    records = list(outcome.trace)
    at = first_syn_through(outcome)
    record = records[at]
    if isinstance(answer, TraceRecord):
        answer = next((i for i, r in enumerate(records) if r == answer), -1)
    if not _is_count(answer):
        return not_yet(f"Give an index into out.trace (an int), not a {type(answer).__name__}.")
    if answer == at:
        return right(f"Correct: record {at} is {record.actor} receiving a SYN at {record.time:.3f} s. "
                     "It got through because that peer had already sent outwards to the sender.")
    if answer == at + 1:
        return not_yet("Off by one: the trace (and the stepper's record slider) count from 0.")
    if 0 <= answer < len(records):
        got = records[answer]
        if got.kind == "syn" and got.action is Action.DROP:
            return not_yet(f"Record {answer} is a SYN being dropped at {got.actor}: that one did not get "
                           "through. Look further down for a peer receiving a SYN.")
        if got.kind == "syn" and got.action is Action.SEND:
            return not_yet(f"Record {answer} is {got.actor} sending a SYN; find where a peer receives one.")
        return not_yet(f"Record {answer} is {got.action.value} {got.kind or '-'} at {got.actor}, "
                       "not a peer receiving a SYN.")
    return not_yet(f"The trace has {len(records)} records (0 to {len(records) - 1}); {answer} is outside it.")


def check_mesh_packets(answer: Any) -> Feedback:
    """Exercise 2: how many datagrams the 4-peer mesh sent in all (registration included)."""
    if answer is ... or answer is None:
        return UNANSWERED
    if not _is_count(answer):
        return not_yet(f"Give a number of packets (an int), not a {type(answer).__name__}.")
    outcome = mesh_run()
    total = outcome.packets_sent
    kinds = outcome.packets_by_kind()
    if answer == total:
        return right(f"Correct: {total} datagrams, of which {kinds['syn']} SYN and {kinds['ack']} ACK; "
                     f"the rest talk to the rendezvous server.")
    if answer == kinds["syn"] + kinds["ack"]:
        return not_yet("That is the handshake only (SYN + ACK): count every datagram sent, the "
                       "registrations and peer lists too (out4.packets_sent).")
    if answer == len(outcome.trace):
        return not_yet("That is the number of trace records: one datagram makes several (send, link, "
                       "translate, receive). Count only the sends.")
    return not_yet(f"Not {answer}. Count the records whose action is SEND, or read out4.packets_sent.")


def check_mesh_pairs(answer: Any) -> Feedback:
    """Exercise 3: how many pairs punch a hole in a mesh of PAIRS_MESH_SIZE peers."""
    if answer is ... or answer is None:
        return UNANSWERED
    if not _is_count(answer):
        return not_yet(f"Give a number of pairs (an int), not a {type(answer).__name__}.")
    n = PAIRS_MESH_SIZE
    outcome = mesh_run(n)
    pairs = len(outcome.pairs)
    if answer == pairs:
        return right(f"Correct: {n} x {n - 1} / 2 = {pairs} pairs, and the simulator connected all of "
                     f"them in {outcome.time_to_connect:.3f} s. Each peer punches {n - 1} holes.")
    if answer == n * (n - 1):
        return not_yet(f"{answer} counts every pair twice (A-B and B-A are one hole).")
    if answer == n - 1:
        return not_yet(f"{answer} is how many holes ONE peer punches; count the pairs of the whole mesh.")
    return not_yet(f"Not {answer}. Every peer pairs with every other peer once.")
