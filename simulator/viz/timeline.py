"""The ladder (sequence) diagram of a trace: one lane per actor, time flowing down.

Rule: draw only what `hops.py` derived from the records, so a simulated run and a real run are
drawn by the same code. Lanes and the time axis come from the whole trace, so stepping through
a run with `upto` never moves anything already drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from holepunch.trace import Action, TraceRecord

from .hops import Hop, endpoint_owners, lane_role, timeline_hops, timeline_lanes
from .style import (CONNECTED_COLOUR, DROP_COLOUR, HIGHLIGHT_COLOUR, KIND_COLOURS, default_axes,
                    kind_colour)

_BACKING = {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}
"""A translucent white patch behind text that must stay readable over arrows."""
LABEL_LIMIT = 80
"""Traces with more arrows than this get no per-arrow labels or NAT notes unless asked, and
each drop reason is written once per lane instead of at every drop."""


@dataclass(frozen=True)
class _Ladder:
    """Where things go: lane x positions, the time-to-y map and whether to write labels."""

    ax: Axes
    x: dict[str, float]
    y: Callable[[float], float]
    labels: bool
    written: set[tuple[str, str]] = field(default_factory=set)
    """(lane, reason) pairs already written, when labels are off."""

    def inward(self, lane: str) -> tuple[float, str]:
        """Offset and alignment that put text on the server's side of a lane."""
        left = self.x[lane] < (len(self.x) - 1) / 2
        return (0.06, "left") if left else (-0.06, "right")


def _time_axis(records: Sequence[TraceRecord], spacing: str) -> tuple[Callable[[float], float], list[float]]:
    """y of a time, and the distinct times: "time" is linear, "order" gives each instant a row."""
    times = sorted({r.time for r in records})
    if spacing == "time":
        return float, times
    if spacing == "order":
        rank = {t: float(i) for i, t in enumerate(times)}
        return lambda t: rank[t], times
    raise ValueError(f"spacing must be 'time' or 'order', not {spacing!r}")


def _kind_filter(kinds: Iterable[object] | str | None) -> Callable[[str], bool]:
    """Membership test for the `kinds` argument (strings or MessageKind members)."""
    if kinds is None:
        return lambda kind: True
    wanted = {kinds} if isinstance(kinds, str) else {str(getattr(k, "value", k)) for k in kinds}
    return wanted.__contains__


def _stop(upto: int | None, length: int) -> int:
    """How many records to draw for `upto` (an index into the trace, negative from the end)."""
    if upto is None:
        return length
    if not -length <= upto < length:
        raise IndexError(f"upto={upto} is outside a trace of {length} records")
    return upto % length + 1


def _draw_lanes(ladder: _Ladder, lanes: Sequence[str], top: float, bottom: float) -> None:
    """Vertical lane lines (NATs dashed) with the actor names along the top."""
    for lane in lanes:
        nat = lane_role(lane)[0] == "nat"
        ladder.ax.plot([ladder.x[lane]] * 2, [top, bottom], color="#b0b0b0", lw=1.0,
                       ls="--" if nat else "-", zorder=1)
    ladder.ax.set_xticks([ladder.x[lane] for lane in lanes], labels=list(lanes), fontweight="bold")
    ladder.ax.xaxis.tick_top()
    ladder.ax.tick_params(axis="x", length=0)


def _draw_hop(ladder: _Ladder, hop: Hop, highlight: bool) -> FancyArrowPatch:
    """One arrow; dashed when the packet never reached a lane, thick when just stepped to."""
    x0, x1 = ladder.x[hop.src], ladder.x[hop.dst]
    head = (x0 + (x1 - x0) * hop.reach, ladder.y(hop.t1))
    arrow = FancyArrowPatch((x0, ladder.y(hop.t0)), head, arrowstyle="-|>", mutation_scale=7,
                            lw=2.2 if highlight else 0.8, color=kind_colour(hop.kind),
                            ls="-" if hop.reach >= 1.0 else "--", shrinkA=0, shrinkB=0, zorder=3)
    arrow.set_gid("hop")
    ladder.ax.add_patch(arrow)
    if ladder.labels:
        middle = ((x0 + head[0]) / 2, (ladder.y(hop.t0) + head[1]) / 2)
        ladder.ax.text(*middle, hop.kind, fontsize=6, color=kind_colour(hop.kind), ha="center",
                       va="bottom", zorder=4)
    if hop.dropped is not None:
        _draw_drop(ladder, head, hop.dst, hop.dropped)
    return arrow


def _just_stepped(hop: Hop, last: int | None) -> bool:
    """True if the stepper's current record ends this hop (or launches it, if still in flight)."""
    if last is None:
        return False
    return hop.end == last or (hop.end is None and hop.start == last)


def _draw_drop(ladder: _Ladder, at: tuple[float, float], lane: str, reason: str) -> None:
    """A red X where a packet died, with the reason beside it."""
    ladder.ax.plot(*at, marker="x", color=DROP_COLOUR, markersize=9, mew=2.2, ls="none", zorder=5,
                   gid="drop")
    if not ladder.labels and (lane, reason) in ladder.written:
        return
    ladder.written.add((lane, reason))
    dx, align = ladder.inward(lane)
    ladder.ax.text(at[0] + dx, at[1], reason, fontsize=6.5, color=DROP_COLOUR, ha=align, va="top",
                   zorder=5, gid="drop-reason", bbox=_BACKING)


def _draw_records(ladder: _Ladder, records: Sequence[TraceRecord], hops: Sequence[Hop],
                  wanted: Callable[[str], bool]) -> None:
    """What single records add: NAT rewrites, drops that end no arrow, connected bands."""
    dropped_by_hop = {h.end for h in hops if h.dropped is not None}
    for index, r in enumerate(records):
        if r.actor not in ladder.x:
            continue
        if r.action is Action.TRANSLATE and ladder.labels and wanted(r.kind) and r.detail:
            dx, align = ladder.inward(r.actor)
            note = r.detail.replace(" -> ", " ->\n", 1)  # two short lines: both NATs' notes fit
            ladder.ax.text(ladder.x[r.actor] + dx, ladder.y(r.time), note, fontsize=5.5,
                           color="#555555", ha=align, va="bottom", zorder=4, gid="nat-note")
        elif r.action is Action.DROP and wanted(r.kind) and index not in dropped_by_hop:
            _draw_drop(ladder, (ladder.x[r.actor], ladder.y(r.time)), r.actor,
                       r.detail or r.summary or "dropped")
        elif r.action is Action.EVENT and r.kind in ("PeerConnected", "PeerFailed"):
            _draw_event(ladder, r)


def _draw_event(ladder: _Ladder, r: TraceRecord) -> None:
    """A band across the ladder when a peer connects (a red note when it gives up)."""
    connected = r.kind == "PeerConnected"
    colour = CONNECTED_COLOUR if connected else DROP_COLOUR
    y = ladder.y(r.time)
    if connected:
        ladder.ax.axhline(y, color=colour, lw=1.0, alpha=0.35, zorder=2, gid="connected")
    ladder.ax.plot(ladder.x[r.actor], y, marker="*" if connected else "o", color=colour,
                   markersize=10 if connected else 6, ls="none", zorder=6)
    dx, align = ladder.inward(r.actor)
    what = "connected" if connected else "failed"
    text = f"{r.actor} {what}: {r.summary}" if r.summary else f"{r.actor} {what}"
    # Left lanes write above the band, right lanes below, so both ends of a pair stay legible.
    ladder.ax.text(ladder.x[r.actor] + dx, y, text, fontsize=7, color=colour, ha=align,
                   va="bottom" if align == "left" else "top", zorder=6, gid=what, bbox=_BACKING)


def _draw_highlight(ladder: _Ladder, r: TraceRecord) -> None:
    """Mark the record the stepper stands on: a "now" line and a ring on its lane."""
    y = ladder.y(r.time)
    ladder.ax.axhline(y, color=HIGHLIGHT_COLOUR, lw=1.2, alpha=0.6, zorder=2, gid="now")
    if r.actor in ladder.x:
        ladder.ax.plot(ladder.x[r.actor], y, marker="o", markersize=14, mfc="none",
                       mec=HIGHLIGHT_COLOUR, mew=2.2, ls="none", zorder=7, gid="highlight")
    ladder.ax.set_xlabel(r.to_text().strip(), fontsize=7, family="monospace")


def _legend(ax: Axes, hops: Sequence[Hop], drops: bool, connects: bool) -> None:
    """One legend entry per kind drawn (palette order), plus drops and connections if any."""
    kinds = {h.kind for h in hops}
    ordered = [k for k in KIND_COLOURS if k in kinds] + sorted(kinds - KIND_COLOURS.keys())
    handles = [Line2D([], [], color=kind_colour(k), lw=2, label=k) for k in ordered]
    if drops:
        handles.append(Line2D([], [], color=DROP_COLOUR, marker="x", mew=2, ls="none", label="dropped"))
    if connects:
        handles.append(Line2D([], [], color=CONNECTED_COLOUR, marker="*", ls="-", alpha=0.6, label="connected"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)


def _limits(ladder: _Ladder, times: Sequence[float]) -> tuple[float, float]:
    """y of the top and bottom of the ladder (time runs down), with a little room."""
    top, bottom = (ladder.y(times[0]), ladder.y(times[-1])) if times else (0.0, 1.0)
    pad = (bottom - top) * 0.04 or 0.5
    return top - pad, bottom + pad


def timeline(trace: Iterable[TraceRecord], *, lanes: Sequence[str] | None = None, upto: int | None = None,
             kinds: Iterable[object] | str | None = None, ax: Axes | None = None, title: str | None = None,
             spacing: str = "time", labels: bool | None = None) -> Axes:
    """Draw a trace as a ladder diagram and return the Axes.

    `lanes` picks and orders the actors (default `timeline_lanes`); `upto` draws
    records[:upto+1] and highlights the last; `kinds` keeps only those message kinds (connection
    bands always show); `spacing="order"` gives every instant its own row (for runs with long
    idle gaps); `labels` writes kinds on arrows and NAT rewrites (default: only for traces of up
    to `LABEL_LIMIT` arrows, to stay readable).
    """
    records = list(trace)
    lane_names = list(lanes) if lanes is not None else timeline_lanes(records)
    shown = records[: _stop(upto, len(records))]
    wanted = _kind_filter(kinds)
    y, times = _time_axis(records, spacing)
    owners = endpoint_owners(records)
    hops = [h for h in timeline_hops(shown, lane_names, owners) if wanted(h.kind)]
    total = len(hops) if upto is None else sum(wanted(h.kind) for h in timeline_hops(records, lane_names, owners))
    ax = default_axes(ax, (max(6.0, 1.7 * len(lane_names) + 2), min(16.0, max(4.0, 3 + 0.15 * total))))
    ladder = _Ladder(ax, {lane: float(i) for i, lane in enumerate(lane_names)}, y,
                     total <= LABEL_LIMIT if labels is None else labels)
    top, bottom = _limits(ladder, times)
    _draw_lanes(ladder, lane_names, top, bottom)
    last = len(shown) - 1 if upto is not None else None
    for hop in hops:
        _draw_hop(ladder, hop, highlight=_just_stepped(hop, last))
    _draw_records(ladder, shown, hops, wanted)
    if upto is not None:
        _draw_highlight(ladder, shown[-1])
    _axes_finish(ladder, times, spacing, (top, bottom), title)
    _legend(ax, hops, any(r.action is Action.DROP and wanted(r.kind) for r in shown),
            any(r.kind == "PeerConnected" for r in shown))
    return ax


def _axes_finish(ladder: _Ladder, times: Sequence[float], spacing: str, span: tuple[float, float],
                 title: str | None) -> None:
    """Limits (time down), time ticks and title."""
    ax = ladder.ax
    ax.set_xlim(-0.6, max(len(ladder.x) - 0.4, 0.6))
    ax.set_ylim(span[1], span[0])
    ax.set_ylabel("time (s)")
    if spacing == "order" and times:
        picks = sorted({round(i * (len(times) - 1) / 11) for i in range(12)})
        ax.set_yticks([float(i) for i in picks], labels=[f"{times[i]:.3f}" for i in picks])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, pad=22)
