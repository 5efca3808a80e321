"""The punch stepper: walk a run record by record, with its timeline, NAT tables and a sentence.

Rule: the widget only holds controls; what it shows comes from pure functions of the trace
(`viz.timeline`, `tables_at`, `explain_record`). It renders when the current record or the kind
filter changes, and keeps the last pictures so stepping back (or a looping Play) is free.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import ipywidgets as widgets

from holepunch.trace import Action, Trace, TraceRecord

from .. import viz
from ..nat import MappingRow
from ..outcome import Outcome, QuietOutcome
from ..scenarios import Scenario, run_punch
from .common import DPI, TIMELINE_SIZE, image, render_png, text_html
from .explain import explain_record, packet_senders
from .tables import nat_behaviors, tables_at, tables_html

EVENTS, TIMERS = "events", "timers"
"""Filter choices for protocol events and timer records (they carry no message kind)."""
WINDOW = 200
"""Longer traces are drawn as a window of this many records around the current one."""
CACHE = 64


def kind_choices(records: Iterable[TraceRecord]) -> list[str]:
    """The filter choices of a trace: its message kinds in order of appearance, then events, timers."""
    kinds: dict[str, None] = {}
    extra: dict[str, None] = {}
    for r in records:
        if r.action is Action.EVENT:
            extra[EVENTS] = None
        elif r.action is Action.TIMER:
            extra[TIMERS] = None
        elif r.kind:
            kinds[r.kind] = None
    return list(kinds) + [k for k in (EVENTS, TIMERS) if k in extra]


def matches(record: TraceRecord, kinds: Iterable[str]) -> bool:
    """Whether a record belongs to the chosen kinds (no choice at all means every record)."""
    chosen = set(kinds)
    if not chosen:
        return True
    if record.action is Action.EVENT:
        return EVENTS in chosen
    if record.action is Action.TIMER:
        return TIMERS in chosen
    return record.kind in chosen


class PunchStepper(widgets.VBox):
    """Back / next / play over a run's records; see `punch_stepper`."""

    def __init__(self, records: Sequence[TraceRecord], *, scenario: Scenario | None = None,
                 outcome: Outcome | None = None, spacing: str = "time", labels: bool | None = False,
                 window: int = WINDOW, figsize: tuple[float, float] = TIMELINE_SIZE, dpi: int = DPI) -> None:
        if not records:
            raise ValueError("the trace is empty: run the scenario first (or pass a Scenario)")
        if window < 2:
            raise ValueError(f"window must be at least 2 records, got {window}")
        self.records = list(records)
        self.scenario, self.outcome = scenario, outcome
        self.behaviors = nat_behaviors(scenario)
        self.senders = packet_senders(self.records)
        self._draw = {"spacing": spacing, "labels": labels}
        self._window, self._figsize, self._dpi = window, figsize, dpi
        self._cache: OrderedDict[tuple[int, tuple[str, ...]], bytes] = OrderedDict()
        self._quiet = False
        self.steps: list[int] = list(range(len(self.records)))
        """Trace indices the slider steps over (all, or those of the chosen kinds)."""
        self._build_controls()
        super().__init__([self._controls_box(), self.explanation, self.timeline_image, self.tables_html])
        self._render()

    # --- building -----------------------------------------------------------------------------

    def _build_controls(self) -> None:
        last = len(self.records) - 1
        self.back_button = widgets.Button(description="◀ back", layout=widgets.Layout(width="80px"))
        self.next_button = widgets.Button(description="next ▶", layout=widgets.Layout(width="80px"))
        self.slider = widgets.IntSlider(value=0, min=0, max=last, description="record",
                                        continuous_update=False, layout=widgets.Layout(width="420px"))
        self.play = widgets.Play(value=0, min=0, max=last, interval=600, description="play")
        widgets.link((self.play, "max"), (self.slider, "max"))
        widgets.link((self.play, "value"), (self.slider, "value"))
        self.kinds = widgets.SelectMultiple(options=kind_choices(self.records), value=(),
                                            description="only", rows=4)
        self.status = widgets.Label()
        self.explanation = widgets.HTML()
        self.timeline_image = image()
        self.tables_html = widgets.HTML()
        self.back_button.on_click(lambda _: self.back())
        self.next_button.on_click(lambda _: self.next())
        self.slider.observe(self._on_slider, names="value")
        self.kinds.observe(self._on_kinds, names="value")

    def _controls_box(self) -> widgets.Widget:
        steps = widgets.HBox([self.back_button, self.play, self.next_button, self.slider])
        return widgets.VBox([steps, widgets.HBox([self.kinds, self.status])])

    # --- state --------------------------------------------------------------------------------

    @property
    def index(self) -> int:
        """The current step: the slider's value (0 .. number of steps - 1)."""
        return int(self.slider.value)

    @property
    def record_index(self) -> int:
        """Index in the trace of the current record."""
        return self.steps[self.index]

    @property
    def current_record(self) -> TraceRecord:
        """The record the stepper stands on."""
        return self.records[self.record_index]

    @property
    def tables(self) -> dict[str, list[MappingRow]]:
        """Every NAT's table just after the current record (rebuilt from the trace)."""
        return tables_at(self.records, self.record_index, self.behaviors)

    def next(self) -> None:
        """One step forward (stays on the last step)."""
        self.slider.value = min(self.index + 1, self.slider.max)

    def back(self) -> None:
        """One step back (stays on the first step)."""
        self.slider.value = max(self.index - 1, 0)

    # --- reacting -----------------------------------------------------------------------------

    def _on_slider(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._render()

    def _on_kinds(self, change: dict[str, Any]) -> None:
        """Step only over the chosen kinds; stay on the current record, or move to the next match."""
        here = self.record_index
        steps = [i for i, r in enumerate(self.records) if matches(r, self.kinds.value)]
        if not steps:  # cannot happen with choices read off the trace, but keep the old steps
            return
        self._quiet = True
        try:
            self.steps = steps
            self.slider.max = len(steps) - 1
            self.slider.value = next((n for n, i in enumerate(steps) if i >= here), len(steps) - 1)
        finally:
            self._quiet = False
        self._render()

    def _render(self) -> None:
        record, at = self.current_record, self.record_index
        self.status.value = (f"step {self.index + 1} of {len(self.steps)}, "
                             f"record {at + 1} of {len(self.records)}, t = {record.time:.3f} s")
        self.explanation.value = f"<b>{text_html(explain_record(record, self.senders))}</b>"
        self.timeline_image.value = self._timeline_png(at)
        self.tables_html.value = tables_html(self.tables, self.behaviors, at=record.time)
        self.back_button.disabled = self.index == 0
        self.next_button.disabled = self.index >= self.slider.max

    def _timeline_png(self, at: int) -> bytes:
        """The ladder up to record `at` (a window of the trace when it is long), cached."""
        chosen = tuple(self.kinds.value)
        kinds = [k for k in chosen if k not in (EVENTS, TIMERS)] if chosen else None
        key = (at, chosen)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        low = 0
        if len(self.records) > self._window:  # keep about a quarter of the window ahead
            low = min(max(at - self._window * 3 // 4, 0), len(self.records) - self._window)
        shown = self.records[low: low + self._window]
        png = render_png(lambda ax: viz.timeline(shown, upto=at - low, kinds=kinds, ax=ax,
                                                 **self._draw), self._figsize, self._dpi)
        self._cache[key] = png
        if len(self._cache) > CACHE:
            self._cache.popitem(last=False)
        return png


def _source(scenario: Any, trace: Any, outcome: Any) -> tuple[list[TraceRecord], Scenario | None, Outcome | None]:
    """The records, scenario and outcome behind whichever one input was given."""
    given = [x for x in (scenario, trace, outcome) if x is not None]
    if len(given) != 1:
        raise TypeError("punch_stepper needs exactly one of: a Scenario, outcome= or trace=")
    thing = given[0]
    if isinstance(thing, QuietOutcome):
        thing = thing.outcome
    if isinstance(thing, Scenario):
        thing = run_punch(thing) if len(thing.trace) == 0 else Outcome.from_scenario(thing)
    if isinstance(thing, Outcome):
        return list(thing.trace), thing.scenario, thing
    if isinstance(thing, (Trace, list, tuple)):
        records = list(thing)
        if all(isinstance(r, TraceRecord) for r in records):
            return records, None, None
    raise TypeError(f"punch_stepper cannot step through a {type(thing).__name__}: "
                    "give a Scenario, an Outcome or a Trace")


def punch_stepper(scenario: Scenario | Outcome | Trace | None = None, *, trace: Trace | None = None,
                  outcome: Outcome | None = None, spacing: str = "time", labels: bool | None = False,
                  window: int = WINDOW) -> PunchStepper:
    """A stepper over a run: pass a Scenario (run now with `run_punch` if it has not run), an
    Outcome, or a Trace (then NAT tables use default behaviours, see `tables_at`).

    `spacing` and `labels` go to `viz.timeline` (labels off by default: the sentence above the
    picture says what each arrow is, and it keeps a step under a quarter of a second);
    traces longer than `window` records are drawn as a window around the current record.
    """
    records, sc, out = _source(scenario, trace, outcome)
    return PunchStepper(records, scenario=sc, outcome=out, spacing=spacing, labels=labels, window=window)
