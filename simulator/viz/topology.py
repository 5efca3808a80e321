"""The network picture: hosts behind NATs around the internet, with the server on top.

Rule: a fixed, deterministic layout (no random spring layout), so the same topology always
looks the same in the course; networkx is imported only when a graph is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from matplotlib.axes import Axes

from .hops import natural_key
from .style import default_axes, format_seconds

NODE_STYLES: dict[str, tuple[str, str]] = {
    "host": ("o", "#4c72b0"),
    "peer": ("o", "#4c72b0"),
    "nat": ("s", "#dd8452"),
    "server": ("D", "#8172b3"),
    "internet": ("h", "#8c8c8c"),
    "switch": ("h", "#8c8c8c"),
}
_OTHER_STYLE = ("o", "#bbbbbb")
HOP = 1.6
"""Distance between a node and the next one out from the hub."""


def _kind(graph: Any, node: Hashable) -> str:
    return str(graph.nodes[node].get("kind", "host"))


def _centre(graph: Any) -> Hashable:
    """The hub: the internet (or a switch), else the server, else the best-connected node."""
    nodes = sorted(graph.nodes, key=lambda n: natural_key(str(n)))
    for kinds in (("internet", "switch"), ("server",)):
        hubs = [n for n in nodes if _kind(graph, n) in kinds]
        if hubs:
            return max(hubs, key=graph.degree)
    return max(nodes, key=graph.degree)


def _neighbours(graph: Any, node: Hashable) -> list[Hashable]:
    """Neighbours in natural name order, so layouts do not depend on insertion order."""
    return sorted(graph.neighbors(node), key=lambda n: natural_key(str(n)))


def _branches(graph: Any, centre: Hashable) -> list[list[list[Hashable]]]:
    """For each neighbour of the centre, the nodes behind it grouped by distance."""
    seen = {centre}
    branches = []
    for first in _neighbours(graph, centre):
        if first in seen:
            continue
        seen.add(first)
        levels, frontier = [], [first]
        while frontier:
            levels.append(frontier)
            nxt = list(dict.fromkeys(m for n in frontier for m in _neighbours(graph, n) if m not in seen))
            seen.update(nxt)
            frontier = nxt
        branches.append(levels)
    return branches


def _spread(count: int, low: float, high: float) -> list[float]:
    """`count` angles evenly from low to high (the middle one if only one)."""
    if count == 1:
        return [(low + high) / 2]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def topology_layout(graph: Any) -> dict[Hashable, tuple[float, float]]:
    """Node positions: servers fan out above the hub, the NAT-and-host branches below and to
    the sides (first branch on the left), each hop `HOP` further out."""
    if not graph.nodes:
        return {}
    centre = _centre(graph)
    pos: dict[Hashable, tuple[float, float]] = {centre: (0.0, 0.0)}
    branches = _branches(graph, centre)
    up = [b for b in branches if _kind(graph, b[0][0]) == "server"]
    down = [b for b in branches if _kind(graph, b[0][0]) != "server"]
    angles = _spread(len(up), math.radians(150), math.radians(30)) + _spread(len(down), math.pi, 2 * math.pi)
    for branch, angle in zip(up + down, angles):
        direction, across = (math.cos(angle), math.sin(angle)), (-math.sin(angle), math.cos(angle))
        for depth, level in enumerate(branch, start=1):
            for i, node in enumerate(level):
                side = (i - (len(level) - 1) / 2) * 0.7
                pos[node] = (round(HOP * depth * direction[0] + side * across[0], 9),  # no 1e-16 noise
                             round(HOP * depth * direction[1] + side * across[1], 9))
    stray = [n for n in graph.nodes if n not in pos]  # other components: a row underneath
    for i, node in enumerate(stray):
        pos[node] = (float(i) - (len(stray) - 1) / 2, -HOP * (max((len(b) for b in branches), default=1) + 1))
    return pos


def _node_text(graph: Any, node: Hashable) -> str:
    """Name, then address, then NAT behaviour, each on its own line when present."""
    data = graph.nodes[node]
    lines = [str(data.get("label", node))]
    lines += [str(data[key]) for key in ("address", "behavior") if data.get(key) is not None]
    return "\n".join(dict.fromkeys(lines))


def topology(graph: Any, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Draw a networkx graph of hosts, NATs, server and internet; edges show their latency."""
    import networkx  # lazy: only drawing needs it (design rule: `import simulator` stays light)

    if not isinstance(graph, networkx.Graph):
        raise TypeError(f"topology needs a networkx graph, not {type(graph).__name__}")
    pos = topology_layout(graph)
    ax = default_axes(ax, (8.0, 6.0))
    for a, b, data in graph.edges(data=True):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.plot([x0, x1], [y0, y1], color="#999999", lw=1.5, zorder=1)
        latency = data.get("latency")
        if latency is not None:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, format_seconds(float(latency)), fontsize=7,
                    ha="center", va="center", color="#555555", zorder=2,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})
    kinds = list(dict.fromkeys(_kind(graph, n) for n in graph.nodes))
    for kind in kinds:
        nodes = [n for n in graph.nodes if _kind(graph, n) == kind]
        marker, colour = NODE_STYLES.get(kind, _OTHER_STYLE)
        ax.scatter([pos[n][0] for n in nodes], [pos[n][1] for n in nodes], s=380, marker=marker,
                   c=colour, edgecolors="black", linewidths=0.8, zorder=3, label=kind)
    for node in graph.nodes:
        above = pos[node][1] > HOP / 2  # nodes above the hub are labelled above, clear of their links
        ax.text(pos[node][0], pos[node][1] + (0.32 if above else -0.32), _node_text(graph, node),
                fontsize=8, ha="center", va="bottom" if above else "top", zorder=4)
    _topology_finish(ax, pos, title, bool(kinds))
    return ax


def _topology_finish(ax: Axes, pos: dict[Hashable, tuple[float, float]], title: str | None, legend: bool) -> None:
    """Equal scale, room for the labels, no axes frame."""
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, markerscale=0.5)
    if title:
        ax.set_title(title)
