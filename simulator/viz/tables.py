"""Tabular pictures: a NAT's mapping table and the NAT-type-by-NAT-type outcome grid.

Rule: accept whatever rows or outcomes the simulator produces (dataclasses, mappings, plain
objects) and show every column they have; never require a particular class.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap

from .style import default_axes, format_seconds, label_of

FAILED_COLOUR, OK_COLOUR, MISSING_COLOUR = "#e06666", "#6aa84f", "#eeeeee"
_ACRONYMS = {"ip": "IP", "nat": "NAT", "id": "ID", "ttl": "TTL", "udp": "UDP", "tcp": "TCP"}


def _row_dict(row: Any) -> dict[str, Any]:
    """A row as a column -> value dict: dataclasses, mappings, named tuples and plain objects."""
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}  # shallow: keep Endpoints
    if isinstance(row, Mapping):
        return dict(row)
    if hasattr(row, "_asdict"):
        return dict(row._asdict())
    if hasattr(row, "__dict__"):
        return dict(vars(row))
    raise TypeError(f"a table row must be a dataclass, mapping or object, not {type(row).__name__}")


def column_header(name: str) -> str:
    """"external_endpoint" -> "External endpoint", "nat_ip" -> "NAT IP"."""
    words = [_ACRONYMS.get(w.lower(), w) for w in str(name).replace("-", "_").split("_") if w]
    if not words:
        return str(name)
    first = words[0] if words[0].isupper() else words[0].capitalize()
    return " ".join([first, *words[1:]])


def cell_text(value: Any) -> str:
    """How a value reads in a cell: endpoints in Go form, floats short, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (set, frozenset, list, tuple)) and not hasattr(value, "_fields"):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def nat_table(rows: Iterable[Any], *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Draw NAT mapping rows as a table, one column per field seen in any row."""
    dicts = [_row_dict(row) for row in rows]
    columns = list(dict.fromkeys(key for d in dicts for key in d))
    ax = default_axes(ax, (max(4.0, 1.3 * len(columns)), 0.9 + 0.3 * max(len(dicts), 1)))
    ax.axis("off")
    if title:
        ax.set_title(title)
    if not dicts:
        ax.text(0.5, 0.5, "no mappings", ha="center", va="center", fontsize=11, color="#777777",
                transform=ax.transAxes)
        return ax
    body = [[cell_text(d.get(c)) for c in columns] for d in dicts]
    table = ax.table(cellText=body, colLabels=[column_header(c) for c in columns], loc="center",
                     cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(columns))))
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(fontweight="bold")
            cell.set_facecolor("#e8e8e8")
    return ax


def _axis_names(grid: Mapping[tuple[Any, Any], Any]) -> tuple[list[Any], list[Any]]:
    """Row names (first NAT) and column names (second NAT), in first-seen order."""
    rows = list(dict.fromkeys(a for a, _ in grid))
    cols = list(dict.fromkeys(b for _, b in grid))
    return rows, cols


def grid_pairs(grid: Mapping[tuple[Any, Any], Any]) -> list[list[tuple[Any, Any]]]:
    """The pair behind each heatmap cell: `grid_pairs(grid)[row][col]` is the key of cell
    (row, col), which sits at data coordinates x=col, y=row (a click maps back by rounding).
    A pair absent from `grid` is still listed; its cell is drawn grey."""
    rows, cols = _axis_names(grid)
    return [[(a, b) for b in cols] for a in rows]


def _outcome(outcome: Any, name: str) -> Any:
    """A field of an outcome object or mapping (None when absent)."""
    if isinstance(outcome, Mapping):
        return outcome.get(name)
    return getattr(outcome, name, None)


def outcome_text(outcome: Any) -> str:
    """The words in one cell: "ok 45 ms" / "fail", with the technique on a second line."""
    if outcome is None:
        return "n/a"
    elapsed = _outcome(outcome, "time_to_connect")
    text = "fail"
    if _outcome(outcome, "connected"):
        text = "ok" if elapsed is None else f"ok {format_seconds(float(elapsed))}"
    technique = _outcome(outcome, "technique")
    return f"{text}\n{label_of(technique)}" if technique else text


def grid_heatmap(grid: Mapping[tuple[Any, Any], Any], *, ax: Axes | None = None,
                 title: str | None = None) -> Axes:
    """Heatmap of which NAT pairs connect (green) or fail (red), each cell annotated."""
    pairs = grid_pairs(grid)
    rows, cols = _axis_names(grid)
    ax = default_axes(ax, (2.0 + 1.3 * max(len(cols), 1), 1.5 + 0.8 * max(len(rows), 1)))
    values = np.full((len(rows), len(cols)), np.nan)
    for r, line in enumerate(pairs):
        for c, pair in enumerate(line):
            if pair in grid:
                values[r, c] = 1.0 if _outcome(grid[pair], "connected") else 0.0
    cmap = ListedColormap([FAILED_COLOUR, OK_COLOUR]).with_extremes(bad=MISSING_COLOUR)
    ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for r, line in enumerate(pairs):
        for c, pair in enumerate(line):
            ax.text(c, r, outcome_text(grid.get(pair)), ha="center", va="center", fontsize=8,
                    color="black", gid="cell")
    _grid_axes(ax, rows, cols)
    if title:
        ax.set_title(title)
    return ax


def _grid_axes(ax: Axes, rows: Sequence[Any], cols: Sequence[Any]) -> None:
    """Tick labels naming the NATs, and white lines between cells."""
    ax.set_xticks(range(len(cols)), labels=[label_of(c) for c in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=[label_of(r) for r in rows])
    ax.set_xlabel("NAT of the second peer")
    ax.set_ylabel("NAT of the first peer")
    ax.set_xticks(np.arange(len(cols) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
