"""The NAT explorer: pick each NAT's RFC 4787 axes (or a preset), run two peers, see the result.

Rule: the dropdowns only choose a `NatBehavior` (`nat_behavior`, a pure function); the run is
`run_punch` with a fixed seed, so the same choices always give the same timeline and verdict.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..nat import Filtering, Mapping, NatBehavior, PortAllocation
from ..outcome import Outcome
from ..presets import PRESETS, PORT_RESTRICTED_CONE, preset
from ..scenarios import run_punch
from .common import image, run_timeline_png, seconds_text, text_html

CUSTOM = "custom"
"""The preset choice shown once an axis no longer matches the chosen preset."""
SIDES = ("a", "b")
AXES = ("mapping", "filtering", "allocation")


def nat_behavior(preset_name: str, mapping: Mapping, filtering: Filtering,
                 allocation: PortAllocation) -> NatBehavior:
    """The behaviour the dropdowns describe: the preset itself while its axes are unchanged
    (so LINUX_MASQUERADE keeps its conntrack flags and NO_NAT stays un-NATed), else a custom
    NAT named after its axes ("APDM+APDF, random ports")."""
    if preset_name != CUSTOM:
        base = preset(preset_name)
        if not base.translates or (base.mapping, base.filtering, base.allocation) == (mapping, filtering, allocation):
            return base
    name = f"{mapping.name}+{filtering.name}"
    if allocation is not PortAllocation.PRESERVE:
        name += f", {allocation.value} ports"
    return NatBehavior(name, mapping, filtering, allocation)


def result_text(outcome: Outcome) -> str:
    """"connected in 166 ms" or "not connected: <why, from the trace>"."""
    if outcome.connected and outcome.time_to_connect is not None:
        return f"connected in {seconds_text(outcome.time_to_connect)}"
    return f"not connected: {outcome.explain()}"


def _axis_dropdown(kind: type[Any], description: str) -> widgets.Dropdown:
    options = [(f"{member.name} ({member.value})", member) for member in kind]
    return widgets.Dropdown(options=options, description=description,
                            style={"description_width": "70px"}, layout=widgets.Layout(width="330px"))


class NatExplorer(widgets.VBox):
    """Dropdowns for two NATs and the links, a Run button, the verdict and the timeline."""

    def __init__(self, nat_a: NatBehavior, nat_b: NatBehavior, *, seed: int, run: bool) -> None:
        self.seed = seed
        self.outcome: Outcome | None = None
        self.controls: dict[str, widgets.ValueWidget] = {}
        self.descriptions: dict[str, widgets.Label] = {}
        self._quiet = False
        columns = [self._side(side, start) for side, start in zip(SIDES, (nat_a, nat_b))]
        self.controls["loss"] = widgets.FloatSlider(value=0.0, min=0.0, max=0.5, step=0.01,
                                                    description="loss", readout_format=".2f")
        self.controls["latency"] = widgets.IntSlider(value=20, min=1, max=300, description="latency ms")
        self.run_button = widgets.Button(description="Run", button_style="primary")
        self.run_button.on_click(lambda _: self.run())
        self.result = widgets.HTML()
        self.timeline_image = image()
        links = widgets.HBox([self.controls["loss"], self.controls["latency"], self.run_button])
        super().__init__([widgets.HBox(columns), links, self.result, self.timeline_image])
        if run:
            self.run()

    def _side(self, side: str, start: NatBehavior) -> widgets.VBox:
        """One NAT's column: preset, three axes, and a line describing the result."""
        names = [b.name for b in PRESETS]
        known = start.name in names and preset(start.name) == start
        self.controls[f"{side}_preset"] = widgets.Dropdown(
            options=names + [CUSTOM], value=start.name if known else CUSTOM, description="preset",
            style={"description_width": "70px"}, layout=widgets.Layout(width="330px"))
        for axis, kind in zip(AXES, (Mapping, Filtering, PortAllocation)):
            self.controls[f"{side}_{axis}"] = _axis_dropdown(kind, axis)
        self.descriptions[side] = widgets.Label()
        self._fill(side, start)
        self.controls[f"{side}_preset"].observe(lambda _: self._on_preset(side), names="value")
        for axis in AXES:
            self.controls[f"{side}_{axis}"].observe(lambda _: self._on_axis(side), names="value")
        head = widgets.HTML(f"<b>NAT of peer {side.upper()}</b>")
        return widgets.VBox([head, self.controls[f"{side}_preset"],
                             *(self.controls[f"{side}_{axis}"] for axis in AXES), self.descriptions[side]])

    def _fill(self, side: str, behavior: NatBehavior) -> None:
        """Show a behaviour's axes without flipping the preset to custom."""
        self._quiet = True
        try:
            for axis in AXES:
                self.controls[f"{side}_{axis}"].value = getattr(behavior, axis)
                self.controls[f"{side}_{axis}"].disabled = not behavior.translates
        finally:
            self._quiet = False
        self.descriptions[side].value = f"{behavior.name}: {behavior.describe()}"

    def _on_preset(self, side: str) -> None:
        name = self.controls[f"{side}_preset"].value
        if name != CUSTOM:
            self._fill(side, preset(name))

    def _on_axis(self, side: str) -> None:
        if self._quiet:
            return
        behavior = self.behavior(side)
        if self.controls[f"{side}_preset"].value != CUSTOM and behavior.name not in {b.name for b in PRESETS}:
            self._quiet = True
            try:
                self.controls[f"{side}_preset"].value = CUSTOM
            finally:
                self._quiet = False
        self.descriptions[side].value = f"{behavior.name}: {behavior.describe()}"

    def behavior(self, side: str) -> NatBehavior:
        """The behaviour the controls of NAT `side` ("a" or "b") describe."""
        if side not in SIDES:
            raise ValueError(f"side must be 'a' or 'b', not {side!r}")
        c = self.controls
        return nat_behavior(c[f"{side}_preset"].value, c[f"{side}_mapping"].value,
                            c[f"{side}_filtering"].value, c[f"{side}_allocation"].value)

    def run(self) -> Outcome:
        """Run the two-peer scenario the controls describe; show and return its outcome."""
        a, b = self.behavior("a"), self.behavior("b")
        self.result.value = "running..."
        outcome = run_punch(a, b, seed=self.seed, latency=self.controls["latency"].value / 1000,
                            loss=self.controls["loss"].value)
        self.outcome = outcome
        self.result.value = text_html(result_text(outcome))
        self.timeline_image.value = run_timeline_png(list(outcome.trace), title=f"A: {a.name}, B: {b.name}")
        return outcome


def nat_explorer(nat_a: NatBehavior | str = PORT_RESTRICTED_CONE, nat_b: NatBehavior | str = PORT_RESTRICTED_CONE,
                 *, seed: int = 0, run: bool = True) -> NatExplorer:
    """Two NATs' axes (or presets), link loss and latency, and a Run button that punches.

    Starts from `nat_a` and `nat_b` (behaviours or preset names) and, with `run`, shows that
    run at once. Every run uses `seed`, so only the controls change the result.
    """
    def resolve(value: NatBehavior | str) -> NatBehavior:
        return preset(value) if isinstance(value, str) else value
    return NatExplorer(resolve(nat_a), resolve(nat_b), seed=seed, run=run)
