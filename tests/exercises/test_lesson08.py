"""Lesson 8's checks: the cells peer-reflexive learning adds, the probes for 50 %, the pair's technique."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holepunch.protocol.techniques import IMPLEMENTED, Technique
from holepunch.protocol.techniques.probability import (
    birthday_probability,
    probes_needed,
)
from simulator import FULL_CONE, PORT_RESTRICTED_CONE, SYMMETRIC, SYMMETRIC_SEQUENTIAL
from simulator.exercises import Feedback
from simulator.exercises.lesson08 import (
    check_pair_technique,
    check_probes_needed,
    check_reflexive_cells,
    fewest_probes,
    pair_answer,
    reflexive_cells,
)
from simulator.techniques import peer_results, run_techniques

CHECKS = [check_reflexive_cells, check_probes_needed, check_pair_technique]
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=3),
                     st.lists(st.integers(), max_size=3))
SYMMETRICS = (SYMMETRIC, SYMMETRIC_SEQUENTIAL)
ADDED = {(FULL_CONE.name, s.name) for s in SYMMETRICS} | {(s.name, FULL_CONE.name) for s in SYMMETRICS}


def test_peer_reflexive_adds_the_symmetric_by_full_cone_cells() -> None:
    assert reflexive_cells() == ADDED


def test_reflexive_cells_right_answers() -> None:
    assert check_reflexive_cells(ADDED)
    assert check_reflexive_cells([[FULL_CONE, s] for s in SYMMETRICS] + [(s, "full_cone") for s in SYMMETRICS])


def test_reflexive_cells_wrong_answers_say_what_is_off() -> None:
    verdict = check_reflexive_cells(ADDED | {("FULL_CONE", "FULL_CONE")})
    assert not verdict and "1 of yours are not added" in verdict.message
    verdict = check_reflexive_cells(ADDED - {("SYMMETRIC", "FULL_CONE")})
    assert not verdict and "1 added cell(s) missing" in verdict.message
    assert "set of pairs" in check_reflexive_cells("FULL_CONE").message


def test_fewest_probes_agree_with_the_formulas() -> None:
    fewest = fewest_probes()
    assert fewest["1-exp(-km/65536)"] == probes_needed(0.5, 256) == 178
    for name, m in fewest.items():
        space = 65536 if "65536" in name else 64512
        exact = "exact" in name
        assert birthday_probability(256, m, space, exact=exact) >= 0.5 > birthday_probability(256, m - 1, space, exact=exact)


@pytest.mark.parametrize("answer", [178, 175, 177])
def test_probes_right(answer: int) -> None:
    assert check_probes_needed(answer)


@pytest.mark.parametrize("answer, hint", [(100, "only 32.3 %"), (0, "only 0.0 %"), (176, "close"),
                                          (256, "fewer suffice"), (178.0, "whole number"), ("178", "whole number"),
                                          (True, "whole number")])
def test_probes_wrong(answer: object, hint: str) -> None:
    verdict = check_probes_needed(answer)
    assert not verdict and hint in verdict.message


def test_the_pair_connects_by_prediction_and_the_results_say_so() -> None:
    out = run_techniques(SYMMETRIC_SEQUENTIAL, PORT_RESTRICTED_CONE, IMPLEMENTED)
    assert out.connected and pair_answer() == "prediction"
    assert {p.technique for r in peer_results(out).values() for p in r.peers} == {"prediction"}
    assert not run_techniques(SYMMETRIC_SEQUENTIAL, PORT_RESTRICTED_CONE, {Technique.PEER_REFLEXIVE}).connected


@pytest.mark.parametrize("answer", ["prediction", " Prediction ", Technique.PREDICTION])
def test_pair_technique_right(answer: object) -> None:
    assert check_pair_technique(answer)


@pytest.mark.parametrize("answer, hint", [("basic", "basic punch fails"), ("peer-reflexive", "filter drops"),
                                          ("birthday", "cheaper"), ("relay", "needs no relay"), ("magic", "Not 'magic'"),
                                          (3, "technique's name")])
def test_pair_technique_wrong(answer: object, hint: str) -> None:
    verdict = check_pair_technique(answer)
    assert not verdict and hint in verdict.message


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
