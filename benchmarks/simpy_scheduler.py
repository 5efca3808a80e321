"""The simulator's scheduler interface implemented on SimPy, to run the very same model on both.

Rule: `SimPyScheduler` behaves exactly like `simulator.scheduler.Scheduler` (same order, same
clock, same `run(until)` and `stop()` semantics), so a seed gives the same trace on either;
only the event engine differs, which is what the benchmark compares. Benchmark code only:
nothing under `holepunch/` or `simulator/` imports this module.
"""

from __future__ import annotations

import contextlib
from heapq import heapify, heappop, heappush
from typing import Any, Callable, Iterator

import simpy
from simpy.core import NORMAL, URGENT, StopSimulation
from simpy.events import Event, EventPriority

import simulator.network

# SimPy orders its queue by (time, priority, event id): URGENT (0) before NORMAL (1). A run's
# `until` marker gets a priority after NORMAL, so every event AT `until` still runs, as in
# `Scheduler.run`; SimPy's own `run(until=t)` uses URGENT and would leave those events out.
AFTER_NORMAL = EventPriority(2)


class SimPyHandle:
    """One scheduled callback, as `simulator.scheduler.Handle`; `cancel()` makes it inert."""

    __slots__ = ("when", "callback", "args", "cancelled", "_scheduler")

    def __init__(self, scheduler: "SimPyScheduler", when: float, callback: Callable[..., Any],
                 args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False
        self._scheduler = scheduler

    def cancel(self) -> None:
        """Never run this callback (SimPy cannot unschedule: the event still fires, inert)."""
        self.cancelled = True

    def _on_event(self, event: Event) -> None:
        """The SimPy callback: run ours unless cancelled, counting it like `Scheduler` does."""
        if self.cancelled:
            return
        scheduler = self._scheduler
        scheduler.now = event.env.now
        scheduler.events_run += 1
        self.callback(*self.args)


class _Call(Event):
    """An already-triggered SimPy event (like `Timeout`) that carries one `SimPyHandle`."""

    def __init__(self, env: simpy.Environment, handle: SimPyHandle) -> None:
        # Inlined Event.__init__ plus the triggered state, as SimPy's own Timeout does.
        self.env = env
        self.callbacks = [handle._on_event]
        self._value = None
        self._ok = True
        self.handle = handle


class SimPyScheduler:
    """`Scheduler`'s interface (call_at, call_later, peek, step, run, stop, now, events_run)
    on a `simpy.Environment`."""

    def __init__(self, start: float = 0.0) -> None:
        self.env = simpy.Environment(initial_time=float(start))
        self.now = float(start)
        self.events_run = 0
        self._running = False
        self._stop_event: Event | None = None

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> SimPyHandle:
        """Run `callback(*args)` at absolute time `when` (not earlier than now)."""
        if when < self.now:
            raise ValueError(f"cannot schedule in the past: {when!r} < now {self.now!r}")
        handle = SimPyHandle(self, when, callback, args)
        # `env.timeout(when - now)` would put it at now + (when - now), which can differ from
        # `when` by one ulp and so change the model; `Environment.schedule` minus that addition:
        env = self.env
        heappush(env._queue, (when, NORMAL, next(env._eid), _Call(env, handle)))
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> SimPyHandle:
        """Run `callback(*args)` `delay` seconds from now."""
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay!r}")
        return self.call_at(self.now + delay, callback, *args)

    def peek(self) -> float | None:
        """Time of the next event that will run, or None when nothing is pending."""
        queue = self.env._queue
        while queue and _inert(queue[0][3]):
            heappop(queue)
        return queue[0][0] if queue else None

    def step(self) -> bool:
        """Run exactly one pending event; False if there was none."""
        if self.peek() is None:
            return False
        self.env.step()
        return True

    def stop(self) -> None:
        """Make the current `run()` return after the event that is running now."""
        if self._running and self._stop_event is None:
            # URGENT at the current time: SimPy processes it before any NORMAL event left at now.
            self._stop_event = self._marker(self.now, URGENT)

    def run(self, until: float | None = None, *, stop: Callable[[], bool] | None = None) -> int:
        """Run events up to and including time `until` (all if None), or until stopped; returns
        the number of events run. Same semantics as `Scheduler.run`."""
        if until is not None and until < self.now:
            self.peek()  # nothing can be pending before now; drop inert entries, as ours does
            return 0
        before = self.events_run
        if stop is not None:
            stopped = self._run_checked(until, stop)
        else:
            marker = self._marker(until, AFTER_NORMAL) if until is not None else None
            self._running = True
            try:
                self.env.run()  # returns when a marker raises StopSimulation, or nothing is left
            finally:
                stopped = self._stop_event is not None
                self._running = False
                self._discard(marker, self._stop_event)
                self._stop_event = None
        # `now` is the last event's time (SimPy's clock also moves on inert events, ours not),
        # or `until` when the run reached it; inert entries at the head are dropped unless the
        # run was stopped: exactly as `Scheduler.run`.
        if not stopped:
            self.peek()
            if until is not None and until > self.now:
                self.now = until
        return self.events_run - before

    def _run_checked(self, until: float | None, stop: Callable[[], bool]) -> bool:
        """The rare `run(stop=predicate)`: `Scheduler.run`'s own loop over SimPy's queue (the
        predicate is asked before each queue entry); True if stopped."""
        queue = self.env._queue
        self._running = True
        try:
            while queue:
                if self._stop_event is not None or stop():
                    return True
                when, _, _, event = queue[0]
                if _inert(event):
                    heappop(queue)
                elif until is not None and when > until:
                    return False
                else:
                    self.env.step()
            return self._stop_event is not None
        finally:
            self._running = False
            self._discard(self._stop_event)
            self._stop_event = None

    def _marker(self, at: float, priority: EventPriority) -> Event:
        """A triggered event at absolute time `at` whose processing ends `env.run()`."""
        event = Event(self.env)
        event._ok = True
        event._value = None
        event.callbacks.append(StopSimulation.callback)
        heappush(self.env._queue, (at, priority, next(self.env._eid), event))
        return event

    def _discard(self, *markers: Event | None) -> None:
        """Take run markers off the queue: an early stop leaves the `until` one there, and SimPy
        re-queues the marker that raised StopSimulation (with no callbacks left)."""
        queue = self.env._queue
        kept = [entry for entry in queue if entry[3] not in markers]
        if len(kept) != len(queue):
            queue[:] = kept
            heapify(queue)

    def __len__(self) -> int:
        """Pending events, cancelled ones included (SimPy keeps them queued)."""
        return len(self.env._queue)


def _inert(event: Event) -> bool:
    """True for a queued call whose handle was cancelled."""
    return isinstance(event, _Call) and event.handle.cancelled


@contextlib.contextmanager
def simpy_backend() -> Iterator[None]:
    """Within the block, every `Network()` built without a scheduler runs on SimPy.

    The injection point: `Network.__init__` builds `Scheduler()` by its module-global name, and
    the scenarios build their `Network` themselves, so swapping that one name (in this process,
    for this block only) moves every scenario onto SimPy without touching `simulator/`.
    """
    original = simulator.network.Scheduler
    simulator.network.Scheduler = SimPyScheduler  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        simulator.network.Scheduler = original  # type: ignore[misc]
