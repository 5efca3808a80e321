"""Lesson 2's checks: mystery NATs are classified by their axes; wrong answers get hints, never errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from simulator import FULL_CONE, PORT_RESTRICTED_CONE, RESTRICTED_CONE, SYMMETRIC, Filtering, Mapping, NatBehavior
from simulator.exercises import Feedback
from simulator.exercises.lesson02 import (
    SERVERS,
    axes_answer,
    check_first_syn,
    check_mystery_1,
    check_mystery_2,
    first_syn_passes,
    mystery_report,
    probe,
)

CHECKS = [check_mystery_1, check_mystery_2, check_first_syn]
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.lists(st.text(), max_size=3), st.tuples(st.text(), st.text()))


@pytest.mark.parametrize("behavior, same_ports, let_in", [
    (FULL_CONE, (True, True), (True, True)),
    (RESTRICTED_CONE, (True, True), (True, False)),
    (PORT_RESTRICTED_CONE, (True, True), (False, False)),
    (SYMMETRIC, (False, False), (False, False)),
    (NatBehavior("ADM", Mapping.ADM, Filtering.APDF), (True, False), (False, False)),
])
def test_probe_table(behavior: NatBehavior, same_ports: tuple[bool, bool], let_in: tuple[bool, bool]) -> None:
    seen = probe(behavior)
    assert len(seen.public) == len(SERVERS)
    assert (seen.public[1] == seen.public[0], seen.public[2] == seen.public[0]) == same_ports
    assert seen.let_in == let_in


def test_mystery_reports_show_what_the_exercises_say() -> None:
    one, two = mystery_report(1).splitlines(), mystery_report(2).splitlines()
    assert len({line.rsplit(" ", 1)[1] for line in one[:3]}) == 1  # one public endpoint for all
    assert one[3].endswith("let in") and one[4].endswith("dropped")
    assert two[0].rsplit(" ", 1)[1] == two[1].rsplit(" ", 1)[1] != two[2].rsplit(" ", 1)[1]
    assert two[3].endswith("dropped") and two[4].endswith("dropped")


@pytest.mark.parametrize("answer", ["RESTRICTED_CONE", "restricted cone", "address-restricted cone",
                                    RESTRICTED_CONE, ("EIM", "ADF"), "EIM + ADF", [Mapping.EIM, Filtering.ADF]])
def test_mystery_1_right(answer: object) -> None:
    assert check_mystery_1(answer)


@pytest.mark.parametrize("answer, hint", [
    ("FULL_CONE", "who was let in"),
    ("PORT_RESTRICTED_CONE", "who was let in"),
    ("SYMMETRIC", "public ports"),
    ("NO_NAT", "rewrites"),
    ("cone", "Give a NAT type"),
])
def test_mystery_1_wrong(answer: object, hint: str) -> None:
    verdict = check_mystery_1(answer)
    assert not verdict and hint in verdict.message


@pytest.mark.parametrize("answer", [("ADM", "APDF"), "ADM+APDF", "apdf, adm"])
def test_mystery_2_right(answer: object) -> None:
    assert check_mystery_2(answer)


@pytest.mark.parametrize("answer", ["SYMMETRIC", "PORT_RESTRICTED_CONE", ("ADM", "ADF"), ("APDM", "APDF")])
def test_mystery_2_wrong(answer: object) -> None:
    assert not check_mystery_2(answer)


def test_axes_answer_needs_exactly_one_of_each() -> None:
    assert axes_answer("EIM ADM APDF") is None
    assert axes_answer("EIM") is None
    assert axes_answer(object()) is None


def test_first_syn() -> None:
    assert [first_syn_passes(b) for b in (FULL_CONE, RESTRICTED_CONE, PORT_RESTRICTED_CONE, SYMMETRIC)] == [
        True, False, False, False]
    assert check_first_syn({"FULL_CONE"}) and check_first_syn("full cone") and check_first_syn([FULL_CONE])
    assert not check_first_syn({"FULL_CONE", "RESTRICTED_CONE"})
    assert not check_first_syn(set())
    assert "Name each NAT" in check_first_syn({"cone"}).message


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("answer", [..., None])
def test_unanswered_is_not_yet(check, answer: object) -> None:
    verdict = check(answer)
    assert isinstance(verdict, Feedback) and not verdict


@pytest.mark.parametrize("check", CHECKS)
@settings(max_examples=40, deadline=None)
@given(answer=ANYTHING)
def test_checks_never_raise(check, answer: object) -> None:
    assert isinstance(check(answer), Feedback)
