"""A trace that the simulator fills at full speed: raw tuples now, `TraceRecord`s on first look.

Rule: the hot path appends plain tuples in `TraceRecord` field order (building a frozen slotted
dataclass costs about ten times more); any read of `records` turns the pending tuples into
records first, so to every reader this is an ordinary `holepunch.trace.Trace`.
"""

from __future__ import annotations

from typing import Any

from holepunch.trace import Trace, TraceRecord


class LiveTrace(Trace):
    """A `Trace` with a cheap `emit(tuple)` for the simulator's hot path."""

    def __init__(self) -> None:  # no super().__init__: `records` is a property here
        self._pending: list[tuple[Any, ...]] = []
        self._built: list[TraceRecord] = []
        self.emit = self._pending.append
        """Append one record given as a tuple in `TraceRecord` field order."""

    @property  # type: ignore[override]
    def records(self) -> list[TraceRecord]:
        """Every record so far, in order (pending tuples are built now)."""
        pending = self._pending
        if pending:
            self._built.extend([TraceRecord(*fields) for fields in pending])
            pending.clear()
        return self._built

    def __len__(self) -> int:
        return len(self._built) + len(self._pending)

    def snapshot(self) -> Trace:
        """A plain, independent `Trace` holding the records so far."""
        return Trace(list(self.records))
