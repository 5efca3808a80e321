"""State diagrams drawn straight from the transition tables the code runs on.

Rule: one box per state and one labelled arrow per table entry, so the picture can never
disagree with `holepunch.protocol.states`. Layout is our own (graphviz is not available):
columns by longest path from the first state once cycles are cut, rows by BFS order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from typing import Any

from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .style import default_axes, label_of

Transitions = Mapping[tuple[Hashable, Hashable], Hashable]
COLUMN, ROW, BOX_HEIGHT = 3.8, 1.5, 0.5


def state_name(state: Any) -> str:
    """A state's box text: an Enum's name (IDLE), anything else as text."""
    return str(getattr(state, "name", state))


def _graph(transitions: Transitions) -> tuple[list[Hashable], dict[Hashable, list[Hashable]]]:
    """States in order of first appearance, and each state's successors (no self loops)."""
    states: list[Hashable] = []
    succ: dict[Hashable, list[Hashable]] = {}
    for (state, _), target in transitions.items():
        for s in (state, target):
            if s not in succ:
                states.append(s)
                succ[s] = []
        if target != state and target not in succ[state]:
            succ[state].append(target)
    return states, succ


def _back_edges(states: list[Hashable], succ: dict[Hashable, list[Hashable]]) -> set[tuple[Hashable, Hashable]]:
    """Edges closing a cycle in a depth-first walk from the first state: cut them to layer."""
    back: set[tuple[Hashable, Hashable]] = set()
    done: set[Hashable] = set()
    for root in states:
        if root in done:
            continue
        path, stack = {root}, [(root, iter(succ[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.discard(node)
                done.add(node)
            elif child in path:
                back.add((node, child))
            elif child not in done:
                path.add(child)
                stack.append((child, iter(succ[child])))
    return back


def state_layers(transitions: Transitions) -> list[list[Hashable]]:
    """Columns of the diagram: each state one column right of its furthest predecessor."""
    states, succ = _graph(transitions)
    back = _back_edges(states, succ)
    order = {s: i for i, s in enumerate(_bfs_order(states, succ))}
    indegree = {s: 0 for s in states}
    for s in states:
        for t in succ[s]:
            indegree[t] += (s, t) not in back
    layer = {s: 0 for s in states}
    ready = deque(s for s in states if indegree[s] == 0)
    while ready:
        s = ready.popleft()
        for t in succ[s]:
            if (s, t) in back:
                continue
            layer[t] = max(layer[t], layer[s] + 1)
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    columns: list[list[Hashable]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for s in sorted(states, key=order.__getitem__):
        columns[layer[s]].append(s)
    return columns


def _bfs_order(states: list[Hashable], succ: dict[Hashable, list[Hashable]]) -> list[Hashable]:
    """States in breadth-first order from the first one (unreached ones after, in table order)."""
    seen: dict[Hashable, None] = {}
    for root in states:
        queue = deque([root])
        while queue:
            s = queue.popleft()
            if s not in seen:
                seen[s] = None
                queue.extend(succ[s])
    return list(seen)


def _draw_boxes(ax: Axes, columns: list[list[Hashable]], finals: set[Hashable]) -> dict[Hashable, FancyBboxPatch]:
    """One rounded box per state: the start state green, states with no way out grey."""
    boxes: dict[Hashable, FancyBboxPatch] = {}
    for c, column in enumerate(columns):
        for r, state in enumerate(column):
            x, y = c * COLUMN, -(r - (len(column) - 1) / 2) * ROW
            name = state_name(state)
            width = max(1.2, 0.12 * len(name) + 0.4)
            colour = "#d9ead3" if (c, r) == (0, 0) else "#eeeeee" if state in finals else "#dbe8f6"
            box = FancyBboxPatch((x - width / 2, y - BOX_HEIGHT / 2), width, BOX_HEIGHT,
                                 boxstyle="round,pad=0.06", fc=colour, ec="#333333", lw=1.2, zorder=3)
            box.set_gid("state")
            ax.add_patch(box)
            ax.text(x, y, name, ha="center", va="center", fontsize=9, fontweight="bold", zorder=4)
            boxes[state] = box
    return boxes


def _centre(box: FancyBboxPatch) -> tuple[float, float]:
    return box.get_x() + box.get_width() / 2, box.get_y() + box.get_height() / 2


def _draw_edge(ax: Axes, boxes: dict[Hashable, FancyBboxPatch], state: Hashable, target: Hashable,
               trigger: Any, rad: float) -> tuple[float, float]:
    """A curved arrow between two boxes, its trigger written at the curve's midpoint (returned)."""
    (x0, y0), (x1, y1) = _centre(boxes[state]), _centre(boxes[target])
    arrow = FancyArrowPatch((x0, y0), (x1, y1), patchA=boxes[state], patchB=boxes[target],
                            connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=11,
                            lw=1.0, color="#444444", shrinkA=2, shrinkB=2, zorder=2)
    points = _curve((x0, y0), (x1, y1), rad)  # equal aspect: data and display curves agree
    _arrow_label(ax, arrow, points[len(points) // 2], trigger)
    return points[len(points) // 2]


def _draw_loop(ax: Axes, box: FancyBboxPatch, trigger: Any, k: int) -> tuple[float, float]:
    """The k-th self loop of a state, stacked above its box; returns where its label went."""
    x, y = _centre(box)
    span, rad = box.get_width() * 0.5, -(1.0 + 0.6 * k)
    top = y + BOX_HEIGHT / 2 + 0.06
    arrow = FancyArrowPatch((x - span / 2, top), (x + span / 2, top), connectionstyle=f"arc3,rad={rad}",
                            arrowstyle="-|>", mutation_scale=9, lw=0.9, color="#444444",
                            shrinkA=0, shrinkB=0, zorder=2)
    _arrow_label(ax, arrow, (x, top - rad / 2 * span), trigger)  # arc3 peak: rad/2 * chord
    return x, top - rad / 2 * span


def _arrow_label(ax: Axes, arrow: FancyArrowPatch, at: tuple[float, float], trigger: Any) -> None:
    """Add the arrow and write its trigger on a white patch at `at`."""
    arrow.set_gid("transition")
    ax.add_patch(arrow)
    ax.text(*at, label_of(trigger), fontsize=7, ha="center", va="center", color="#222222", zorder=5,
            gid="trigger", bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85})


RADS = (0.0, 0.2, -0.2, 0.35, -0.35, 0.5, -0.5, 0.7, -0.7, 0.9, -0.9)
"""Curvatures tried in turn for an arrow between two boxes; the first clear one wins."""


def _curve(p0: tuple[float, float], p1: tuple[float, float], rad: float, steps: int = 24) -> list[tuple[float, float]]:
    """Points along arc3's quadratic Bezier (control point at chord middle + rad * (dy, -dx))."""
    (x0, y0), (x1, y1) = p0, p1
    cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
    weights = [((1 - t) ** 2, 2 * (1 - t) * t, t * t) for t in (i / steps for i in range(1, steps))]
    return [(a * x0 + b * cx + c * x1, a * y0 + b * cy + c * y1) for a, b, c in weights]


def _inside(point: tuple[float, float], box: FancyBboxPatch, margin: float) -> bool:
    x, y = point
    return (box.get_x() - margin <= x <= box.get_x() + box.get_width() + margin
            and box.get_y() - margin <= y <= box.get_y() + box.get_height() + margin)


def _choose_rad(boxes: dict[Hashable, FancyBboxPatch], state: Hashable, target: Hashable,
                labels: list[tuple[float, float]]) -> float:
    """The first curvature whose path misses every other box and whose label spot is free."""
    p0, p1 = _centre(boxes[state]), _centre(boxes[target])
    others = [b for s, b in boxes.items() if s not in (state, target)]
    for rad in RADS:
        points = _curve(p0, p1, rad)
        label = points[len(points) // 2]
        if any(_inside(p, b, 0.15) for p in points for b in others):
            continue
        if any(abs(label[0] - x) < 0.9 and abs(label[1] - y) < 0.3 for x, y in labels):
            continue
        return rad
    return RADS[-1]


def state_diagram(transitions: Transitions, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Draw a transition table {(state, trigger): next_state} as boxes and labelled arrows."""
    if not transitions:
        raise ValueError("state_diagram needs at least one transition")
    columns = state_layers(transitions)
    ax = default_axes(ax, (2.4 * len(columns) + 1.0, 1.5 * max(len(c) for c in columns) + 1.8))
    _, succ = _graph(transitions)
    boxes = _draw_boxes(ax, columns, {s for s in succ if not succ[s]})
    loops: dict[Hashable, int] = {}
    labels: list[tuple[float, float]] = []
    curves: list[tuple[float, float]] = []
    for (state, trigger), target in transitions.items():
        if state == target:
            loops[state] = loops.get(state, 0) + 1
            labels.append(_draw_loop(ax, boxes[state], trigger, loops[state] - 1))
        else:
            rad = _choose_rad(boxes, state, target, labels)
            labels.append(_draw_edge(ax, boxes, state, target, trigger, rad))
            curves.extend(_curve(_centre(boxes[state]), _centre(boxes[target]), rad, steps=8))
    _diagram_finish(ax, list(boxes.values()), labels + curves, title)
    return ax


def _diagram_finish(ax: Axes, boxes: list[FancyBboxPatch], points: list[tuple[float, float]],
                    title: str | None) -> None:
    """Limits around every box, curve and label; equal scale so labels sit on their curves."""
    xs = [p[0] for p in points] + [b.get_x() for b in boxes] + [b.get_x() + b.get_width() for b in boxes]
    ys = [p[1] for p in points] + [b.get_y() for b in boxes] + [b.get_y() + b.get_height() for b in boxes]
    ax.set_xlim(min(xs) - 0.4, max(xs) + 0.4)
    ax.set_ylim(min(ys) - 0.4, max(ys) + 0.4)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
