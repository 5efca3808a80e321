"""State diagrams of the protocol machines as images, drawn from the very transition tables.

Rule: no table is copied here; each is imported from where the code that runs on it lives.
"""

from __future__ import annotations

import importlib
from collections.abc import Hashable, Mapping

import ipywidgets as widgets

from holepunch.protocol.states import CLIENT_TRANSITIONS, PEER_TRANSITIONS

from .. import viz
from .common import image, render_png

TITLES = {
    "client": "PeerClient states (CLIENT_TRANSITIONS)",
    "peer": "Handshake with one peer (PEER_TRANSITIONS)",
    "worker": "The Go reference's worker (WORKER_TRANSITIONS)",
}


def transitions(which: str) -> Mapping[tuple[Hashable, Hashable], Hashable]:
    """The table for "client", "peer" or "worker" (alias "reference": the Go reference model)."""
    key = "worker" if which == "reference" else which
    if key == "client":
        return CLIENT_TRANSITIONS
    if key == "peer":
        return PEER_TRANSITIONS
    if key == "worker":
        try:
            module = importlib.import_module("holepunch.protocol.reference")
        except ImportError as exc:
            raise ValueError(f"the reference model is not available here ({exc})") from exc
        return module.WORKER_TRANSITIONS  # type: ignore[no-any-return]
    raise ValueError(f"which must be 'client', 'peer' or 'worker' (or 'reference'), not {which!r}")


def state_machine_view(which: str = "client") -> widgets.Image:
    """An image of the state diagram of "client", "peer" or "worker" ("reference")."""
    table = transitions(which)
    columns = viz.state_layers(table)
    size = (2.4 * len(columns) + 1.0, 1.5 * max(len(c) for c in columns) + 1.8)
    title = TITLES["worker" if which == "reference" else which]
    return image(render_png(lambda ax: viz.state_diagram(table, ax=ax, title=title), size, dpi=80))
