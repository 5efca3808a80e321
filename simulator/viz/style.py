"""Shared look of every plot: the kind palette, new axes, number formats and PNG export.

Rule: one palette for the whole course, so a SYN is the same orange in every figure.
"""

from __future__ import annotations

import enum
import io
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Families share a hue: registrations blue, server replies purple, the punch itself orange and
# green, steady traffic grey and teal. Red is kept for drops and failures only.
KIND_COLOURS: dict[str, str] = {
    "register": "#1f77b4",
    "ext-register": "#6baed6",
    "peer-list": "#6a3d9a",
    "ext-peers": "#9467bd",
    "ext-push": "#c5b0d5",
    "syn": "#ff7f0e",
    "ack": "#2ca02c",
    "keepalive": "#7f7f7f",
    "data": "#17becf",
    "ext-leave": "#8c564b",
    "ext-error": "#e377c2",
    # TCP segments: lighter shades of the UDP punch's hues (SYN orange, ACK green, data teal).
    "tcp-syn": "#fdae6b",
    "tcp-syn-ack": "#a1d99b",
    "tcp-ack": "#74c476",
    "tcp-rst": "#ff9896",
    "tcp-fin": "#c7c7c7",
    "tcp-data": "#9edae5",
}
UNKNOWN_COLOUR = "#444444"
DROP_COLOUR = "#d62728"
CONNECTED_COLOUR = "#2ca02c"
HIGHLIGHT_COLOUR = "#ffbf00"


def kind_colour(kind: str) -> str:
    """The palette colour of a message kind (dark grey for kinds outside the palette)."""
    return KIND_COLOURS.get(kind, UNKNOWN_COLOUR)


def new_axes(figsize: tuple[float, float] = (8.0, 5.0)) -> Axes:
    """Axes on a fresh pyplot-free `Figure`: widgets use these so no figure piles up in pyplot."""
    return Figure(figsize=figsize).add_subplot()


def default_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """`ax` itself, or new axes from pyplot, so a notebook cell shows the figure by itself."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # lazy: only notebooks without their own axes need pyplot

    _, new = plt.subplots(figsize=figsize)
    return new


def figure_to_png(fig: Figure | Axes, *, dpi: int = 100) -> bytes:
    """PNG bytes of a figure (or of the figure holding these axes), for `ipywidgets.Image`."""
    figure = fig.figure if isinstance(fig, Axes) else fig
    if not isinstance(figure, Figure):
        raise TypeError(f"figure_to_png needs a Figure or Axes, not {type(fig).__name__}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def format_seconds(seconds: float) -> str:
    """A duration for a label: "45 ms" below one second, "1.2 s" above."""
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.3g} s"


def label_of(value: Any) -> str:
    """Display text of a name: an Enum's value, anything else as `str`."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)

