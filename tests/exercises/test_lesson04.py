"""Lesson 4's checks: the first SYN through, the 4-peer mesh's datagrams, pairs in a 5-peer mesh."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holepunch.trace import Action
from simulator import PORT_RESTRICTED_CONE, mesh, run_punch, two_peers
from simulator.exercises import Feedback
from simulator.exercises.lesson04 import (
    check_first_syn_through,
    check_mesh_packets,
    check_mesh_pairs,
    first_syn_run,
    first_syn_through,
)

CHECKS = [check_first_syn_through, check_mesh_packets, check_mesh_pairs]
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.lists(st.integers(), max_size=3))


def test_the_lessons_run_drops_the_first_syn_and_lets_the_second_through() -> None:
    """The story the lesson tells must be what the simulator does."""
    out = first_syn_run()
    syns = [r for r in out.trace if r.kind == "syn" and r.action in (Action.SEND, Action.DROP, Action.RECEIVE)]
    first, second = syns[0], next(r for r in syns if r.action is Action.SEND and r.actor != syns[0].actor)
    assert (first.actor, syns[1].action, syns[1].actor) == ("peer B", Action.DROP, "NAT A")
    assert "filtered" in syns[1].detail
    assert second.actor == "peer A"
    through = out.trace[first_syn_through(out)]
    assert (through.actor, through.packet) == ("peer B", second.packet)
    assert out.connected


def test_first_syn_through_right_answer_from_a_fresh_run() -> None:
    out = run_punch(two_peers(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, server_kind="reference"))
    answer = next(i for i, r in enumerate(out.trace) if r.action is Action.RECEIVE and r.kind == "syn")
    assert check_first_syn_through(answer)
    assert check_first_syn_through(out.trace[answer])  # the record itself is fine too


def test_first_syn_through_wrong_answers_get_hints() -> None:
    at = first_syn_through(first_syn_run())
    assert "Off by one" in check_first_syn_through(at + 1).message
    dropped = next(i for i, r in enumerate(first_syn_run().trace) if r.action is Action.DROP and r.kind == "syn")
    assert "did not get through" in check_first_syn_through(dropped).message
    assert "outside" in check_first_syn_through(10_000).message
    assert "an int" in check_first_syn_through(1.5).message
    assert not check_first_syn_through(0)


def test_mesh_packets() -> None:
    out4 = run_punch(mesh(4, PORT_RESTRICTED_CONE))
    assert check_mesh_packets(sum(1 for r in out4.trace if r.action is Action.SEND))
    kinds = out4.packets_by_kind()
    assert "handshake only" in check_mesh_packets(kinds["syn"] + kinds["ack"]).message
    assert "trace records" in check_mesh_packets(len(out4.trace)).message
    assert not check_mesh_packets(out4.packets_sent + 1)


def test_mesh_pairs() -> None:
    assert check_mesh_pairs(10)
    assert "twice" in check_mesh_pairs(20).message
    assert "ONE peer" in check_mesh_pairs(4).message
    assert not check_mesh_pairs(5)


@pytest.mark.parametrize("check", CHECKS)
def test_unanswered(check) -> None:
    for answer in (..., None):
        verdict = check(answer)
        assert isinstance(verdict, Feedback) and not verdict and "Not answered" in verdict.message


@pytest.mark.parametrize("check", CHECKS)
@settings(max_examples=40, deadline=None)
@given(answer=ANYTHING)
def test_checks_never_raise(check, answer) -> None:
    assert isinstance(check(answer), Feedback)
