"""NAT tables at any instant of a run, rebuilt from the trace, and shown as HTML.

Rule: the simulator core shows a NAT table only as it is *now* (`Scenario.tables()`), so the
stepper replays the trace instead: each outbound TRANSLATE record creates or refreshes a row
exactly as `NatTable` does (RFC 4787 §4.3: only outbound packets refresh; a row whose timeout
has passed is replaced by the next outbound packet), and, for conntrack NATs
(`claim_unsolicited`), each inbound DROP leaves the NAT's own claim. Row keys and permit lists
follow each NAT's `NatBehavior` when known (from the scenario); without it a row is keyed by its
(inside, outside) endpoints, permits list endpoints, and the timeout is `NatBehavior`'s default.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action, TraceRecord

from ..nat import Filtering, Mapping as MappingAxis, MappingRow, NatBehavior

DEFAULT_TIMEOUT = NatBehavior("default").timeout
CLAIM_NOTE = "claimed by an unsolicited inbound packet"  # the text NatTable.rows() uses


@dataclass
class _Row:
    internal: Endpoint | None
    external: Endpoint
    remote: str
    created: float
    refreshed: float
    permits: dict[Endpoint, float] = field(default_factory=dict)


class _Rebuilt:
    """One NAT's table, replayed record by record."""

    def __init__(self, behavior: NatBehavior | None) -> None:
        self.behavior = behavior
        self.timeout = behavior.timeout if behavior is not None else DEFAULT_TIMEOUT
        self.rows: dict[object, _Row] = {}
        self.claims: dict[tuple[int, Endpoint], _Row] = {}

    def _key(self, internal: Endpoint, external: Endpoint, remote: Endpoint) -> tuple[object, str]:
        """The row key and its remote column, as `NatTable._key` forms them."""
        b = self.behavior
        if b is None:
            return (internal, external), ""
        if b.per_flow or b.mapping is MappingAxis.APDM:
            return (internal, remote), str(remote)
        if b.mapping is MappingAxis.ADM:
            return (internal, remote.host), remote.host
        return (internal, None), ""

    def outbound(self, internal: Endpoint, external: Endpoint, remote: Endpoint, now: float) -> None:
        key, shown = self._key(internal, external, remote)
        row = self.rows.get(key)
        if row is not None and now >= row.refreshed + self.timeout:
            del self.rows[key]  # expired: this packet made a new mapping (it moves to the end)
            row = None
        if row is None:
            row = self.rows[key] = _Row(internal, external, shown, now, now)
        row.refreshed = now
        row.permits.setdefault(remote, now)

    def unsolicited(self, external: Endpoint, source: Endpoint, now: float) -> None:
        if self.behavior is None or not self.behavior.claim_unsolicited:
            return
        claim = self.claims.get((external.port, source))
        if claim is None or now >= claim.refreshed + self.timeout:
            claim = self.claims[(external.port, source)] = _Row(None, external, str(source), now, now)
            claim.permits[source] = now
        claim.refreshed = now

    def view(self, now: float, include_expired: bool) -> list[MappingRow]:
        out = []
        for rows, note in ((self.rows.values(), ""), (self.claims.values(), CLAIM_NOTE)):
            for r in rows:
                if include_expired or now < r.refreshed + self.timeout:
                    out.append(MappingRow(r.internal, r.external, r.remote, r.created, r.refreshed,
                                          r.refreshed + self.timeout, self._permits(r), note))
        return out

    def _permits(self, row: _Row) -> tuple[str, ...]:
        filtering = self.behavior.filtering if self.behavior is not None else Filtering.APDF
        if filtering is Filtering.EIF:
            return ("any",)
        if filtering is Filtering.ADF:
            return tuple(dict.fromkeys(p.host for p in row.permits))
        return tuple(str(p) for p in row.permits)


def _nat_names(records: Sequence[TraceRecord], behaviors: Mapping[str, NatBehavior]) -> list[str]:
    names = dict.fromkeys(behaviors)
    names.update(dict.fromkeys(r.actor for r in records if r.action is Action.TRANSLATE))
    return list(names)


def _replay(table: _Rebuilt, r: TraceRecord) -> None:
    """Apply one record of this NAT to its table."""
    if r.action is Action.TRANSLATE and r.summary in ("outbound", "hairpin"):
        first, _, rest = r.detail.partition(", ")
        inside, _, outside = first.partition(" -> ")
        remote = Endpoint.parse(rest.partition(" -> ")[0]) if rest and r.summary == "hairpin" else r.destination
        if remote is not None:
            table.outbound(Endpoint.parse(inside), Endpoint.parse(outside), remote, r.time)
    elif r.action is Action.DROP and r.summary == "inbound" and r.source and r.destination:
        table.unsolicited(r.destination, r.source, r.time)


def tables_at(trace: Sequence[TraceRecord], index: int, behaviors: Mapping[str, NatBehavior] | None = None,
              *, now: float | None = None, include_expired: bool = False) -> dict[str, list[MappingRow]]:
    """Every NAT's table just after `trace[index]`, by NAT name (see the module rule).

    `behaviors` maps NAT names to their behaviour (`nat_behaviors(scenario)`); `now` is the time
    at which rows count as live (default: that record's time).
    """
    if not -len(trace) <= index < len(trace):
        raise IndexError(f"index {index} is outside a trace of {len(trace)} records")
    behaviors = dict(behaviors or {})
    records = trace[: index % len(trace) + 1]
    tables = {name: _Rebuilt(behaviors.get(name)) for name in _nat_names(trace, behaviors)}
    for r in records:
        table = tables.get(r.actor)
        if table is not None:
            _replay(table, r)
    at = records[-1].time if now is None else now
    return {name: table.view(at, include_expired) for name, table in tables.items()}


def nat_behaviors(scenario: object) -> dict[str, NatBehavior]:
    """NAT name -> behaviour, from a `Scenario` (or anything with `.network.nats`)."""
    nats = getattr(getattr(scenario, "network", None), "nats", None) or {}
    return {name: box.behavior for name, box in nats.items()}


_COLUMNS = ("inside", "public", "remote", "created", "refreshed", "expires", "who may send in")


def _cells(row: MappingRow) -> list[str]:
    inside = str(row.internal) if row.internal is not None else "(NAT itself)"
    permits = ", ".join(row.permits) or "-"
    if row.note:
        permits += f" [{row.note}]"
    return [inside, str(row.external), row.remote or "*", f"{row.created:.3f}",
            f"{row.refreshed:.3f}", f"{row.expires:.3f}", permits]


def tables_html(tables: Mapping[str, Sequence[MappingRow]], behaviors: Mapping[str, NatBehavior] | None = None,
                *, at: float | None = None) -> str:
    """The tables as small HTML tables (exported notebooks show them as they are)."""
    behaviors = behaviors or {}
    when = f" at {at:.3f} s" if at is not None else ""
    parts = [f"<div style='font-size:12px'><b>NAT tables{when}</b>"]
    if not tables:
        parts.append("<p>No NAT in this run.</p>")
    style = "style='border:1px solid #ccc;padding:2px 6px;font-family:monospace'"
    for name, rows in tables.items():
        behavior = behaviors.get(name)
        about = f" ({html.escape(behavior.name)}: {html.escape(behavior.describe())})" if behavior else ""
        parts.append(f"<div><i>{html.escape(name)}</i>{about}</div>")
        if not rows:
            parts.append("<div style='color:#777'>no mappings</div>")
            continue
        head = "".join(f"<th {style}>{c}</th>" for c in _COLUMNS)
        body = "".join("<tr>" + "".join(f"<td {style}>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>"
                       for r in rows)
        parts.append(f"<table style='border-collapse:collapse'><tr>{head}</tr>{body}</table>")
    return "".join(parts) + "</div>"
