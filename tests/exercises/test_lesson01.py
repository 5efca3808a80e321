"""Lesson 1's checks: the stories' answers are pinned, wrong and missing answers fail without raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from holepunch.protocol.endpoint import Endpoint
from simulator.exercises import Feedback
from simulator.exercises.lesson01 import (
    check_expiry,
    check_let_in,
    check_second_packet,
    expiry_time,
    let_in,
    second_packet_endpoint,
)

CHECKS = [check_second_packet, check_expiry, check_let_in]
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.lists(st.text(), max_size=3), st.sets(st.integers(), max_size=3))


def test_answers_follow_the_lessons_story() -> None:
    # The lesson's markdown tells these stories; these are the answers it implies.
    assert second_packet_endpoint() == Endpoint("203.0.113.7", 40001)
    assert expiry_time() == 42.0  # 30 s after the last OUTBOUND packet, at 12 s
    assert let_in() == {"a", "c"}


@pytest.mark.parametrize("answer", ["203.0.113.7:40001", Endpoint("203.0.113.7", 40001)])
def test_second_packet_right(answer: object) -> None:
    assert check_second_packet(answer)


@pytest.mark.parametrize("answer, hint", [
    ("203.0.113.7:40000", "Which port"),
    ("203.0.113.7:5000", "does not keep"),
    ("192.168.1.11:40001", "public address"),
    ("port 40001", "Give an endpoint"),
])
def test_second_packet_wrong(answer: object, hint: str) -> None:
    verdict = check_second_packet(answer)
    assert not verdict and hint in verdict.message


def test_expiry() -> None:
    assert check_expiry(42) and check_expiry(42.0) and check_expiry("42")
    assert "refresh" in check_expiry(30).message
    assert "Inbound packets do not refresh" in check_expiry(68).message  # refreshed by c at 38 s
    assert not check_expiry(41.9)


@pytest.mark.parametrize("answer", [{"a", "c"}, ["A", "C"], "a, c", ("c", "a")])
def test_let_in_right(answer: object) -> None:
    assert check_let_in(answer)


@pytest.mark.parametrize("answer, hint", [
    ({"a", "b", "c"}, "stranger"),
    ({"a", "c", "d"}, "45 s"),
    ({"a"}, "c comes"),
    (set(), "a and c come"),
])
def test_let_in_wrong(answer: object, hint: str) -> None:
    verdict = check_let_in(answer)
    assert not verdict and hint in verdict.message


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
