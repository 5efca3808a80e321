"""A deterministic discrete-event scheduler: a heap of (time, seq, handle).

Rule: time only moves when an event runs, events at the same time run in the order they were
scheduled (the sequence number breaks ties), and nothing here reads a clock. This is the core of
SimPy without its generator processes, which the simulator does not need.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable


class Handle:
    """One scheduled callback; `cancel()` stops it from running (it stays in the heap, inert)."""

    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Never run this callback."""
        self.cancelled = True

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        name = getattr(self.callback, "__qualname__", repr(self.callback))
        return f"<Handle {self.when:.6f} {name}{state}>"


class Scheduler:
    """Runs callbacks in time order; `now` is the time of the event being run (or last run)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)
        self._heap: list[tuple[float, int, Handle]] = []
        self._seq = 0
        self._stopping = False
        self.events_run = 0

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Handle:
        """Run `callback(*args)` at absolute time `when` (not earlier than now)."""
        if when < self.now:
            raise ValueError(f"cannot schedule in the past: {when!r} < now {self.now!r}")
        handle = Handle(when, callback, args)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, handle))
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Handle:
        """Run `callback(*args)` `delay` seconds from now."""
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay!r}")
        return self.call_at(self.now + delay, callback, *args)

    def peek(self) -> float | None:
        """Time of the next event that will run, or None when nothing is pending."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def step(self) -> bool:
        """Run exactly one pending event; False if there was none."""
        if self.peek() is None:
            return False
        when, _, handle = heapq.heappop(self._heap)
        self.now = when
        self.events_run += 1
        handle.callback(*handle.args)
        return True

    def stop(self) -> None:
        """Make the current `run()` return after the event that is running now."""
        self._stopping = True

    def run(self, until: float | None = None, *, stop: Callable[[], bool] | None = None) -> int:
        """Run events up to and including time `until` (all if None), or until stopped.

        A run stops early when a callback calls `stop()`, or when the `stop` predicate (checked
        before each event) is true. Returns the number of events run. When the run ends at
        `until` (not stopped), the clock is advanced to `until`, so later timers start there.
        """
        count = 0
        heap = self._heap
        pop = heapq.heappop
        self._stopping = stopped = False
        while heap:
            if self._stopping or (stop is not None and stop()):
                stopped = True
                break
            when, _, handle = heap[0]
            if handle.cancelled:
                pop(heap)
                continue
            if until is not None and when > until:
                break
            pop(heap)
            self.now = when
            count += 1
            handle.callback(*handle.args)
        self.events_run += count
        stopped = stopped or self._stopping
        self._stopping = False
        if until is not None and until > self.now and not stopped:
            self.now = until
        return count

    def __len__(self) -> int:
        """Pending events, cancelled ones included until they reach the head of the heap."""
        return len(self._heap)
