"""Lesson 10's checks: right answers pass, wrong and missing ones fail with a hint, none raises.

Exercise 1 is judged on a simulated run of the lesson's configuration (the same actor names as
a lab capture; the lab run itself is tested in tests/lab); exercise 2 asks the simulator.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holepunch.trace import Trace
from simulator.exercises import Feedback
from simulator.exercises.lesson10 import (
    check_punch_port,
    check_race,
    punch_source,
    race_outcomes,
    registered_source,
)
from simulator.lab_compare import predict

ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                     st.tuples(st.booleans(), st.booleans()), st.tuples(st.integers(), st.text(max_size=3)),
                     st.lists(st.booleans(), max_size=3))


@pytest.fixture(scope="module")
def trace() -> Trace:
    """The lesson's configuration in the simulator: A behind port-restricted, B behind symmetric."""
    outcome = predict("port-restricted", "symmetric", "udp", timeout=2.0)
    assert not outcome.connected
    return outcome.trace


def test_the_punch_port_is_the_symmetric_nats_new_mapping(trace: Trace) -> None:
    new, listed = punch_source(trace), registered_source(trace)
    assert new is not None and listed is not None and new.host == listed.host and new != listed
    assert check_punch_port(str(new), trace)
    assert check_punch_port(new, trace) and check_punch_port((new.host, new.port), trace)
    wrong = check_punch_port(str(listed), trace)
    assert not wrong and "registration" in wrong.message
    assert not check_punch_port("198.51.100.99:1", trace)
    assert not check_punch_port("not an endpoint", trace)


def test_the_punch_port_check_needs_a_trace_with_a_punch() -> None:
    assert "no SYN translated by NAT B" in check_punch_port("198.51.100.20:1", Trace()).message
    assert "trace as the second argument" in check_punch_port("198.51.100.20:1", 42).message


def test_the_race_answer_is_what_the_simulator_says() -> None:
    assert race_outcomes() == (False, True)
    assert check_race((False, True))
    assert "lab first" in check_race((True, True)).message
    assert "internet" in check_race((False, False)).message
    assert not check_race([False, True]) and not check_race((0, 1))


@pytest.mark.parametrize("check", [check_race, lambda a: check_punch_port(a, Trace())])
def test_missing_answers_say_so(check: Any) -> None:
    for answer in (..., None):
        feedback = check(answer)
        assert isinstance(feedback, Feedback) and not feedback and "Not answered" in feedback.message


@settings(max_examples=40, deadline=None)
@given(ANYTHING)
def test_no_answer_makes_a_check_raise(answer: Any) -> None:
    assert isinstance(check_race(answer), Feedback)
    assert isinstance(check_punch_port(answer, Trace()), Feedback)
