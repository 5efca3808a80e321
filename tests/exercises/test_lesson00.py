"""Lesson 0's checks: the right answers pass, wrong and missing ones fail without raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from holepunch.protocol.endpoint import Endpoint
from simulator import PORT_RESTRICTED_CONE, run_punch
from simulator.exercises import Feedback
from simulator.exercises.lesson00 import (
    check_public_endpoint,
    check_symmetric_b,
    check_time_to_connect,
    endpoint_answer,
    number_answer,
)

CHECKS = [check_public_endpoint, check_time_to_connect, check_symmetric_b]
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.lists(st.text(), max_size=3), st.tuples(st.text(), st.integers()))


def test_the_lessons_run_is_what_the_answers_say() -> None:
    outcome = run_punch(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE)
    assert outcome.listed["A"] == Endpoint("198.51.100.10", 4000)
    assert outcome.time_to_connect == pytest.approx(0.166)


@pytest.mark.parametrize("answer", ["198.51.100.10:4000", Endpoint("198.51.100.10", 4000),
                                    ("198.51.100.10", 4000), b"198.51.100.10:4000"])
def test_public_endpoint_right(answer: object) -> None:
    assert check_public_endpoint(answer)


@pytest.mark.parametrize("answer", ["10.0.1.2:4000", "198.51.100.20:4000", "198.51.100.10", 4000])
def test_public_endpoint_wrong(answer: object) -> None:
    verdict = check_public_endpoint(answer)
    assert not verdict and verdict.message


def test_private_address_gets_a_specific_hint() -> None:
    assert "private" in check_public_endpoint("10.0.1.2:4000").message


def test_slow_links_take_longer() -> None:
    slow = run_punch(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, latency=0.1)
    assert slow.time_to_connect == pytest.approx(0.806)


@pytest.mark.parametrize("answer", [0.806, "0.806", 0.8065])
def test_time_to_connect_right(answer: object) -> None:
    assert check_time_to_connect(answer)


def test_time_to_connect_in_milliseconds_is_named() -> None:
    verdict = check_time_to_connect(806)
    assert not verdict and "milliseconds" in verdict.message


def test_time_to_connect_of_the_lessons_run_is_named() -> None:
    verdict = check_time_to_connect(0.166)
    assert not verdict and "latency=0.1" in verdict.message


@pytest.mark.parametrize("answer", [0.8, 0.1, True, "fast", float("inf")])
def test_time_to_connect_wrong(answer: object) -> None:
    assert not check_time_to_connect(answer)


def test_symmetric_b() -> None:
    assert check_symmetric_b(False)
    assert not check_symmetric_b(True)
    assert not check_symmetric_b("no")
    assert not check_symmetric_b(0)  # 0 is not a yes/no answer


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("answer", [..., None])
def test_unanswered_is_not_yet(check, answer: object) -> None:
    verdict = check(answer)
    assert isinstance(verdict, Feedback) and not verdict and "Not answered" in verdict.message


@pytest.mark.parametrize("check", CHECKS)
@settings(max_examples=40, deadline=None)
@given(answer=ANYTHING)
def test_checks_never_raise(check, answer: object) -> None:
    assert isinstance(check(answer), Feedback)


def test_readers() -> None:
    assert endpoint_answer(" 1.2.3.4:5 ") == Endpoint("1.2.3.4", 5)
    assert endpoint_answer(("1.2.3.4", True)) is None
    assert endpoint_answer("nonsense") is None
    assert number_answer("2.5") == 2.5 and number_answer(False) is None and number_answer("nan") is None
