"""Lesson 5's checks: the connecting cells of the small grid, where A's first SYN dies, keep-alives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holepunch.protocol import ClientConfig
from holepunch.trace import Action
from simulator import (
    FULL_CONE,
    PORT_RESTRICTED_CONE,
    RESTRICTED_CONE,
    nat_grid,
    quiet_period,
)
from simulator.exercises import Feedback
from simulator.exercises.lesson05 import (
    GRID_PRESETS,
    check_connecting_cells,
    check_first_drop,
    check_keepalive_interval,
    connecting_cells,
    failing_run,
    first_syn_drop,
)

CHECKS = [check_connecting_cells, check_first_drop, check_keepalive_interval]
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=3),
                     st.lists(st.integers(), max_size=3))
CONES = (FULL_CONE, RESTRICTED_CONE, PORT_RESTRICTED_CONE)


def test_the_small_grid_connects_exactly_the_cone_pairs() -> None:
    assert set(connecting_cells()) == {(a.name, b.name) for a in CONES for b in CONES}


def test_connecting_cells_right_answers() -> None:
    grid = nat_grid(GRID_PRESETS)
    assert check_connecting_cells({pair for pair, outcome in grid.items() if outcome.connected})
    assert check_connecting_cells([[a, b] for a in CONES for b in CONES])  # behaviours, a list
    assert check_connecting_cells({(a.name.lower(), b.name) for a in CONES for b in CONES})


def test_connecting_cells_wrong_answers_say_what_is_off() -> None:
    cones = {(a.name, b.name) for a in CONES for b in CONES}
    verdict = check_connecting_cells(cones | {("SYMMETRIC", "FULL_CONE")})
    assert not verdict and "1 of your cells does not connect" in verdict.message
    verdict = check_connecting_cells(cones - {("FULL_CONE", "FULL_CONE")})
    assert not verdict and "1 connecting cell is missing" in verdict.message
    assert "set of pairs" in check_connecting_cells("FULL_CONE").message
    assert "set of pairs" in check_connecting_cells([("A", "B", "C")]).message


def test_first_drop_is_at_nat_b_because_of_the_filter() -> None:
    out = failing_run()
    assert first_syn_drop(out) == "NAT B"
    first = next(r for r in out.trace if r.action is Action.DROP and r.actor == "NAT B")
    assert first.kind == "syn" and "filtered" in first.detail


@pytest.mark.parametrize("answer", ["NAT B", "nat b", "  NAT   B "])
def test_first_drop_right(answer: str) -> None:
    assert check_first_drop(answer)


@pytest.mark.parametrize("answer, hint", [("NAT A", "lets it out"), ("peer B", "never reaches"),
                                          ("server", "Not 'server'"), (3, "name of the box")])
def test_first_drop_wrong(answer: object, hint: str) -> None:
    verdict = check_first_drop(answer)
    assert not verdict and hint in verdict.message


@pytest.mark.parametrize("answer", [15, 1, 10.5, 29.9])
def test_keepalive_right(answer: float) -> None:
    assert check_keepalive_interval(answer)


@pytest.mark.parametrize("answer, hint", [(30, "not below"), (45.0, "not below"), (0, "no keep-alives"),
                                          (-5, "no keep-alives"), (0.2, "for nothing"), (float("nan"), "NaN"),
                                          (float("inf"), "not below"), ("15", "number of seconds")])
def test_keepalive_wrong(answer: object, hint: str) -> None:
    verdict = check_keepalive_interval(answer)
    assert not verdict and hint in verdict.message


def test_a_right_interval_really_keeps_the_hole_open_and_none_does_not() -> None:
    assert quiet_period(quiet=65, config=ClientConfig(keepalive_interval=15)).delivered
    assert not quiet_period(quiet=45, keepalive=False).delivered


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
