"""What every widget shares: figures drawn off pyplot into PNG bytes, and escaped text.

Rule: a figure is drawn on `viz.new_axes` (a bare `Figure`, never pyplot state) and handed to
an `ipywidgets.Image` as PNG bytes, so an exported notebook keeps a static picture.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
from matplotlib.axes import Axes

from holepunch.trace import TraceRecord

from .. import viz

TIMELINE_SIZE = (9.0, 6.0)
DPI = 72
"""Screen resolution: a two-peer step renders in about 0.2 s at this size."""
TIMELINE_LIMIT = 300
"""Records drawn by the explorers' whole-run timelines; a failing symmetric run has thousands."""


def render_png(draw: Callable[[Axes], Any], figsize: tuple[float, float], dpi: int = DPI) -> bytes:
    """Call `draw(ax)` on fresh pyplot-free axes and return the figure as PNG bytes."""
    ax = viz.new_axes(figsize)
    draw(ax)
    return viz.figure_to_png(ax, dpi=dpi)


def image(png: bytes = b"") -> widgets.Image:
    """A PNG image widget."""
    return widgets.Image(value=png, format="png", layout=widgets.Layout(max_width="100%"))


def text_html(text: str) -> str:
    """Plain text made safe for an `HTML` widget (quotes kept, so it still reads as written)."""
    return html.escape(text, quote=False)


def run_timeline_png(records: Sequence[TraceRecord], *, title: str = "", limit: int = TIMELINE_LIMIT,
                     figsize: tuple[float, float] = TIMELINE_SIZE, dpi: int = DPI) -> bytes:
    """The timeline of a whole run; only the first `limit` records when it is longer."""
    shown = list(records)[:limit]
    if len(records) > limit:
        title = f"{title} (first {limit} of {len(records)} records)".strip()
    if not shown:
        return render_png(lambda ax: ax.text(0.5, 0.5, "empty trace", ha="center"), figsize, dpi)
    return render_png(lambda ax: viz.timeline(shown, ax=ax, title=title or None), figsize, dpi)


def seconds_text(seconds: float) -> str:
    """"45 ms" below one second, "1.2 s" above (the viz cell format)."""
    return viz.style.format_seconds(seconds)
