"""Lesson 9's checks: the reflection's factor, the replies under the budget, the intruder's refusal."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.exercises import Feedback
from simulator.exercises.lesson09 import (
    attack,
    check_amplification,
    check_intruder_refusal,
    check_replies_under_budget,
    intruder_refusal,
)

CHECKS = [check_amplification, check_replies_under_budget, check_intruder_refusal]
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.lists(st.integers(), max_size=3))


def test_the_unprotected_server_amplifies_and_the_default_one_stays_within_three() -> None:
    assert attack(False).amplification > 10
    assert attack(True).amplification <= 3.0
    assert 0 < attack(True).victim_datagrams < attack(False).victim_datagrams


def test_right_answers_pass() -> None:
    assert check_amplification(attack(False).amplification)
    assert check_amplification(round(attack(False).amplification, 1))
    assert check_replies_under_budget(attack(True).victim_datagrams)
    assert intruder_refusal() == "bad-auth"
    assert check_intruder_refusal("bad-auth") and check_intruder_refusal(" BAD_AUTH ")


def test_wrong_answers_fail_with_a_hint() -> None:
    payload = check_amplification(attack(False).payload_amplification)
    assert not payload and "payload" in payload.message
    assert not check_amplification(1.0)
    assert not check_replies_under_budget(50) and not check_replies_under_budget(attack(True).victim_datagrams + 1)
    assert not check_intruder_refusal("rate-limited")


def test_unanswered_is_not_right() -> None:
    for check in CHECKS:
        assert not check(...) and not check(None)


@settings(max_examples=60, deadline=None)
@given(ANYTHING)
def test_checks_never_raise(answer: object) -> None:
    for check in CHECKS:
        assert isinstance(check(answer), Feedback)
