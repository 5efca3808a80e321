"""The birthday explorer: sliders for sockets k and probes m, simulated trials against the formula.

Rule: the measured figure is `simulator.techniques.birthday_trials` (real birthday probing in the
simulator, one run per seed) and the analytic ones are `birthday_probability`; the widget only
holds controls. Moving a slider redraws the formula (cheap); only the button runs the simulator.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
from matplotlib.axes import Axes

from holepunch.protocol.techniques.probability import birthday_probability

from ..presets import SYMMETRIC
from ..techniques import BirthdayFigure, birthday_trials
from .common import image, render_png, text_html

FIGURE_SIZE = (7.0, 3.6)
MAX_SOCKETS = 1024
MAX_PROBES = 1024
MAX_TRIALS = 200
CURVE_POINTS = 60


def formula_text(k: int, m: int, space: int) -> str:
    """One line with both analytic chances for k sockets and m probes."""
    exact = birthday_probability(k, m, space, exact=True)
    approx = birthday_probability(k, m)
    return (f"k={k} sockets x m={m} probes: exact 1-C(N-k,m)/C(N,m) = {100 * exact:.1f} % over N={space} ports; "
            f"1-exp(-k*m/65536) = {100 * approx:.1f} %")


def draw_curve(ax: Axes, k: int, m: int, space: int, measured: BirthdayFigure | None = None) -> Axes:
    """The chance as a function of the probes m for k sockets, with the measured point if any."""
    top = max(2 * m, 64, min(MAX_PROBES, space))
    ms = [round(i * top / CURVE_POINTS) for i in range(CURVE_POINTS + 1)]
    ax.plot(ms, [birthday_probability(k, x, space, exact=True) for x in ms], label="exact (hypergeometric)")
    ax.plot(ms, [birthday_probability(k, x) for x in ms], linestyle="--", label="1 - exp(-k m / 65536)")
    ax.axvline(m, color="grey", linewidth=0.8)
    if measured is not None and measured.k == k:
        ax.plot([measured.m], [measured.fraction], "o", color="black",
                label=f"simulated: {measured.successes}/{measured.runs} runs")
    ax.set_xlabel("probes m from the easy side")
    ax.set_ylabel("chance to connect")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"birthday probing with k={k} sockets on the hard side")
    ax.legend(loc="lower right", fontsize=8)
    return ax


class BirthdayExplorer(widgets.VBox):
    """Sliders for k and m, a run button and the formula curve; see `birthday_explorer`."""

    def __init__(self, k: int, m: int, trials: int, **options: Any) -> None:
        low, high = options.get("hard", SYMMETRIC).ports
        self.space = high - low + 1
        self.options = options
        self.k = widgets.IntSlider(value=k, min=1, max=MAX_SOCKETS, description="sockets k")
        self.m = widgets.IntSlider(value=m, min=1, max=MAX_PROBES, description="probes m")
        self.trials = widgets.IntSlider(value=trials, min=1, max=MAX_TRIALS, description="trials")
        self.run_button = widgets.Button(description="run trials", button_style="primary",
                                         tooltip="simulate birthday probing once per seed")
        self.formula = widgets.HTML()
        self.result = widgets.HTML("Press <i>run trials</i> to simulate.")
        self.figure_image = image()
        self.last: BirthdayFigure | None = None
        """The latest simulated figure (None before the first run)."""
        for slider in (self.k, self.m):
            slider.observe(lambda _: self._redraw(), names="value")
        self.run_button.on_click(lambda _: self.run())
        controls = widgets.HBox([widgets.VBox([self.k, self.m, self.trials]), self.run_button])
        super().__init__([controls, self.formula, self.result, self.figure_image])
        self._redraw()

    def _redraw(self) -> None:
        k, m = self.k.value, self.m.value
        self.formula.value = text_html(formula_text(k, m, self.space))
        last = self.last if self.last is not None and (self.last.k, self.last.m) == (k, m) else None
        self.figure_image.value = render_png(lambda ax: draw_curve(ax, k, m, self.space, last), FIGURE_SIZE)

    def run(self) -> BirthdayFigure:
        """Simulate `trials` runs (seeds 0..trials-1) at the sliders' k and m and show the result."""
        self.run_button.disabled = True
        try:
            figure = birthday_trials(self.k.value, self.m.value, range(self.trials.value), **self.options)
        finally:
            self.run_button.disabled = False
        self.last = figure
        self.result.value = "<b>simulated:</b> " + text_html(figure.to_text())
        self._redraw()
        return figure


def birthday_explorer(k: int = 256, m: int = 256, trials: int = 20, **options: Any) -> BirthdayExplorer:
    """Sliders for sockets `k` and probes `m`, and a button that runs `trials` simulated birthday
    runs (`birthday_trials`, `options` passed on) to set beside the formula's curve."""
    for name, value, top in (("k", k, MAX_SOCKETS), ("m", m, MAX_PROBES), ("trials", trials, MAX_TRIALS)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ValueError(f"{name} must be an int from 1 to {top}, got {value!r}")
    return BirthdayExplorer(k, m, trials, **options)
