"""simulator.viz: the course's pictures of runs, NATs, outcome grids and state machines.

Imported only by notebooks and widgets, never by `simulator` itself (it pulls in matplotlib).
Every function draws on the `ax` it is given (or new pyplot axes) and returns the Axes; none
calls `plt.show()`. Widgets pass `new_axes()` and turn the figure into PNG bytes with
`figure_to_png`.
"""

from __future__ import annotations

from .hops import Hop, endpoint_owners, order_lanes, timeline_hops, timeline_lanes
from .machines import state_diagram, state_layers
from .style import KIND_COLOURS, figure_to_png, kind_colour, new_axes
from .tables import grid_heatmap, grid_pairs, nat_table, outcome_text
from .timeline import timeline
from .topology import topology, topology_layout

__all__ = [
    "Hop", "KIND_COLOURS", "endpoint_owners", "figure_to_png", "grid_heatmap", "grid_pairs",
    "kind_colour", "nat_table", "new_axes", "order_lanes", "outcome_text", "state_diagram",
    "state_layers", "timeline", "timeline_hops", "timeline_lanes", "topology", "topology_layout",
]
