"""The grid explorer: the NAT x NAT outcome grid as a heatmap and a board of cells to open.

Rule: the grid is `simulator.nat_grid` (or one given); a cell only selects one of its outcomes,
whose timeline and `Outcome.explain()` are shown below. Nothing is re-run on a click.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from .. import viz
from ..nat import NatBehavior
from ..outcome import Outcome
from ..presets import PRESETS, preset
from ..scenarios import nat_grid
from .common import image, render_png, run_timeline_png, seconds_text, text_html

Pair = tuple[str, str]
SELECTED_BORDER = "3px solid #ffbf00"  # the stepper's highlight colour


def _cell_tooltip(pair: Pair, outcome: Outcome) -> str:
    verdict = "not connected"
    if outcome.connected and outcome.time_to_connect is not None:
        verdict = f"connected in {seconds_text(outcome.time_to_connect)}"
    return f"A behind {pair[0]}, B behind {pair[1]}: {verdict}"


class GridExplorer(widgets.VBox):
    """A heatmap of the grid, one button per cell, and the selected cell's run."""

    def __init__(self, grid: Mapping[Pair, Outcome]) -> None:
        if not grid:
            raise ValueError("the grid is empty")
        self.grid = dict(grid)
        self.selected: Pair | None = None
        self.heatmap_image = image(render_png(lambda ax: viz.grid_heatmap(self.grid, ax=ax), self._heatmap_size()))
        self.cells: dict[Pair, widgets.Button] = {}
        board = self._board()
        self.title = widgets.HTML()
        self.explanation = widgets.HTML("Click a cell to see its run.")
        self.timeline_image = image()
        super().__init__([self.heatmap_image, board, self.title, self.explanation, self.timeline_image])

    def _heatmap_size(self) -> tuple[float, float]:
        rows = len({a for a, _ in self.grid})
        cols = len({b for _, b in self.grid})
        return 2.0 + 1.3 * cols, 1.5 + 0.8 * rows

    def _board(self) -> widgets.GridBox:
        """Row labels (A's NAT), column labels (B's NAT) and an ok/fail button per cell."""
        pairs = viz.grid_pairs(self.grid)
        cols = [b for _, b in pairs[0]]
        children: list[widgets.Widget] = [widgets.HTML("<b>A \\ B</b>")]
        children += [widgets.HTML(f"<b>{text_html(c)}</b>") for c in cols]
        for line in pairs:
            children.append(widgets.HTML(f"<b>{text_html(line[0][0])}</b>"))
            for pair in line:
                children.append(self._cell(pair))
        template = f"200px repeat({len(cols)}, 110px)"
        return widgets.GridBox(children, layout=widgets.Layout(grid_template_columns=template))

    def _cell(self, pair: Pair) -> widgets.Widget:
        outcome = self.grid.get(pair)
        if outcome is None:
            return widgets.Label("-")
        ok = outcome.connected
        button = widgets.Button(description="ok" if ok else "fail", button_style="success" if ok else "danger",
                                tooltip=_cell_tooltip(pair, outcome), layout=widgets.Layout(width="100px"))
        button.on_click(lambda _: self.select(pair))
        self.cells[pair] = button
        return button

    def select(self, pair: Pair) -> Outcome:
        """Open a cell: mark it, draw its timeline and explain its outcome."""
        if pair not in self.grid:
            raise KeyError(f"no cell {pair!r}; the grid has {sorted(self.grid)}")
        if self.selected is not None:
            self.cells[self.selected].layout.border = ""
        self.selected = pair
        self.cells[pair].layout.border = SELECTED_BORDER
        outcome = self.grid[pair]
        self.title.value = f"<b>{text_html(_cell_tooltip(pair, outcome))}</b>"
        self.explanation.value = text_html(outcome.explain())
        self.timeline_image.value = run_timeline_png(list(outcome.trace), title=f"A: {pair[0]}, B: {pair[1]}")
        return outcome


def grid_explorer(presets: Sequence[NatBehavior | str] | None = None, *,
                  grid: Mapping[Pair, Outcome] | None = None, **grid_kwargs: Any) -> GridExplorer:
    """Compute `nat_grid(presets, **grid_kwargs)` (all presets by default; names or behaviours)
    or take a ready `grid`, and show it as a heatmap plus a board of cells to open."""
    if grid is None:
        chosen = [preset(p) if isinstance(p, str) else p for p in (presets if presets is not None else PRESETS)]
        grid = nat_grid(chosen, **grid_kwargs)
    elif presets is not None or grid_kwargs:
        raise TypeError("pass either a ready grid, or presets and run options")
    return GridExplorer(grid)
