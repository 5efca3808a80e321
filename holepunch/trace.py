"""Trace records: one frozen record per hop or protocol event, shared by real and simulated runs.

Rule: pure data, no I/O. The asyncio driver records sends, receives and events; the simulator
adds link, NAT and drop records; one plotter draws both. `Trace.to_text()` is stable: golden
traces are compared as text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from .protocol.endpoint import Endpoint


class Action(str, enum.Enum):
    """What a record describes."""

    SEND = "send"
    RECEIVE = "receive"
    TRANSLATE = "translate"  # a NAT rewrote the packet: `detail` holds "before -> after"
    LINK = "link"  # the packet entered a link: `detail` holds the delay
    DROP = "drop"  # the packet died: `detail` holds the reason
    TIMER = "timer"
    EVENT = "event"  # a protocol event: `kind` holds its class name


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One step of a run."""

    time: float
    actor: str
    action: Action
    source: Endpoint | None = None
    destination: Endpoint | None = None
    kind: str = ""
    summary: str = ""
    detail: str = ""
    packet: int | None = None
    """Links the hops of one datagram (send, translate, drop or receive) together."""

    def to_text(self) -> str:
        """One stable line: time, actor, action, kind, addresses, summary and detail."""
        route = ""
        if self.source is not None or self.destination is not None:
            route = f" {self.source or '-'} -> {self.destination or '-'}"
        extra = f" [{self.detail}]" if self.detail else ""
        pkt = f" #{self.packet}" if self.packet is not None else ""
        summary = f" {self.summary}" if self.summary else ""
        return f"{self.time:10.6f} {self.actor:<12} {self.action.value:<9} {self.kind:<12}{route}{summary}{extra}{pkt}"


@dataclass
class Trace:
    """An ordered list of records with a stable text form."""

    records: list[TraceRecord] = field(default_factory=list)

    def append(self, record: TraceRecord) -> None:
        """Add one record at the end."""
        self.records.append(record)

    def extend(self, records: Iterable[TraceRecord]) -> None:
        """Add records at the end, in order."""
        self.records.extend(records)

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> TraceRecord:
        return self.records[index]

    def filter(self, *, actor: str | None = None, action: Action | None = None, kind: str | None = None) -> "Trace":
        """The records matching every given criterion."""
        return Trace([
            r for r in self.records
            if (actor is None or r.actor == actor)
            and (action is None or r.action == action)
            and (kind is None or r.kind == kind)
        ])

    def to_text(self) -> str:
        """Every record on its own line, in order."""
        return "\n".join(r.to_text() for r in self.records) + ("\n" if self.records else "")
