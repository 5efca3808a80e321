"""The scheduler: time order, FIFO ties, cancellation, run(until) and stop."""

from __future__ import annotations

import pytest

from simulator import Scheduler


def test_events_run_in_time_order_whatever_the_scheduling_order() -> None:
    sched, seen = Scheduler(), []
    for when in (3.0, 1.0, 2.0, 0.5):
        sched.call_at(when, seen.append, when)
    sched.run()
    assert seen == [0.5, 1.0, 2.0, 3.0]
    assert sched.now == 3.0


def test_ties_run_in_the_order_they_were_scheduled() -> None:
    sched, seen = Scheduler(), []
    for name in "abcde":
        sched.call_at(1.0, seen.append, name)
    sched.call_at(0.5, seen.append, "first")
    sched.run()
    assert seen == ["first", "a", "b", "c", "d", "e"]


def test_callbacks_scheduled_for_now_run_after_those_already_due_now() -> None:
    sched, seen = Scheduler(), []

    def spawn() -> None:
        seen.append("spawn")
        sched.call_later(0.0, seen.append, "child")

    sched.call_at(1.0, spawn)
    sched.call_at(1.0, seen.append, "sibling")
    sched.run()
    assert seen == ["spawn", "sibling", "child"]


def test_call_later_counts_from_the_current_time() -> None:
    sched, seen = Scheduler(start=10.0), []
    sched.call_later(2.5, lambda: seen.append(sched.now))
    sched.run()
    assert seen == [12.5]


def test_step_runs_exactly_one_event_and_peek_shows_the_next_time() -> None:
    sched, seen = Scheduler(), []
    sched.call_at(1.0, seen.append, 1)
    sched.call_at(2.0, seen.append, 2)
    assert sched.peek() == 1.0
    assert sched.step() is True
    assert seen == [1] and sched.now == 1.0 and sched.peek() == 2.0
    assert sched.step() is True
    assert sched.step() is False
    assert sched.peek() is None


def test_cancelled_events_never_run_and_are_invisible_to_peek() -> None:
    sched, seen = Scheduler(), []
    early = sched.call_at(1.0, seen.append, "early")
    sched.call_at(2.0, seen.append, "late")
    early.cancel()
    assert sched.peek() == 2.0
    sched.run()
    assert seen == ["late"]


def test_run_until_stops_at_the_bound_and_moves_the_clock_there() -> None:
    sched, seen = Scheduler(), []
    for when in (1.0, 2.0, 3.0):
        sched.call_at(when, seen.append, when)
    assert sched.run(until=2.0) == 2  # an event exactly at `until` runs
    assert seen == [1.0, 2.0]
    assert sched.now == 2.0
    sched.run(until=2.5)
    assert sched.now == 2.5 and seen == [1.0, 2.0]
    sched.run(until=10.0)
    assert seen == [1.0, 2.0, 3.0] and sched.now == 10.0


def test_stop_from_a_callback_ends_the_run_after_that_event() -> None:
    sched, seen = Scheduler(), []
    sched.call_at(1.0, seen.append, 1)
    sched.call_at(2.0, sched.stop)
    sched.call_at(3.0, seen.append, 3)
    sched.run(until=10.0)
    assert seen == [1] and sched.now == 2.0  # not advanced to 10: the run was stopped
    sched.run(until=10.0)  # a new run starts fresh
    assert seen == [1, 3]


def test_stop_predicate_is_checked_before_each_event() -> None:
    sched, seen = Scheduler(), []
    for when in (1.0, 2.0, 3.0):
        sched.call_at(when, seen.append, when)
    sched.run(stop=lambda: len(seen) >= 2)
    assert seen == [1.0, 2.0]


def test_the_past_and_negative_delays_are_refused() -> None:
    sched = Scheduler(start=5.0)
    with pytest.raises(ValueError, match="past"):
        sched.call_at(4.0, print)
    with pytest.raises(ValueError, match="negative"):
        sched.call_later(-1.0, print)
