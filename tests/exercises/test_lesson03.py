"""Lesson 3's checks: reply bytes, list order, the reference's fixed expiry and the ExtRegister size."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from simulator.exercises import Feedback
from simulator.exercises.lesson03 import (
    PEERS,
    check_list_order,
    check_reference_removal,
    check_register_length,
    check_reply_bytes,
    plain_replies,
    reference_removal_time,
    register_length,
)

CHECKS = [check_reply_bytes, check_list_order, check_reference_removal, check_register_length]
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.lists(st.one_of(st.text(), st.integers()), max_size=3))


def test_answers_follow_the_lessons_story() -> None:
    # C, A and B join in this order; B's reply lists C then A.
    assert plain_replies(((0.0, "C"), (0.1, "A"), (0.2, "B")))[-1] == b"192.0.2.33:51000,203.0.113.7:40001"
    assert reference_removal_time() == 50.0  # fixed by the FIRST poll (10 s), not slid to 85 s
    assert register_length() == 31


def test_lone_peer_gets_a_zero_byte_reply() -> None:
    assert plain_replies(((0.0, "A"),)) == [b""]


def test_reply_bytes() -> None:
    assert check_reply_bytes(b"192.0.2.33:51000,203.0.113.7:40001")
    assert "bytes" in check_reply_bytes("192.0.2.33:51000,203.0.113.7:40001").message
    assert "order" in check_reply_bytes(b"203.0.113.7:40001,192.0.2.33:51000").message
    assert "spaces" in check_reply_bytes(b"192.0.2.33:51000, 203.0.113.7:40001").message
    assert "OTHER" in check_reply_bytes(b"192.0.2.33:51000,203.0.113.7:40001,198.51.100.20:4000").message
    # The lesson's own story (A, B, then C) gives another reply: not this exercise's answer.
    assert not check_reply_bytes(b"203.0.113.7:40001,198.51.100.20:4000")


@pytest.mark.parametrize("answer", [["B", "C"], "BC", "b, c", (PEERS["B"], PEERS["C"]),
                                    b"198.51.100.20:4000,192.0.2.33:51000", ["198.51.100.20:4000", "192.0.2.33:51000"]])
def test_list_order_right(answer: object) -> None:
    assert check_list_order(answer)


@pytest.mark.parametrize("answer, hint", [("CB", "wrong order"), ("ABC", "OTHER"), ("B", "who is"),
                                          (["C", 5], "Give the letters")])
def test_list_order_wrong(answer: object, hint: str) -> None:
    verdict = check_list_order(answer)
    assert not verdict and hint in verdict.message


def test_reference_removal() -> None:
    assert check_reference_removal(50) and check_reference_removal("50.0")
    assert "OUR server" in check_reference_removal(85).message
    assert not check_reference_removal(40)  # the lesson's own story, not this one


def test_register_length() -> None:
    assert check_register_length(31) and check_register_length(31.0)
    assert "3 bytes" in check_register_length(22).message
    assert "header" in check_register_length(25).message
    assert not check_register_length(31.5) and not check_register_length(True)


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
