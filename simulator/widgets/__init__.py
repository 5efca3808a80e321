"""simulator.widgets: the course's interactive views of simulated runs (ipywidgets).

Rule: every widget is a factory returning an ipywidgets container around pure functions
(`explain_record`, `tables_at`, `nat_behavior`, `viz.*`); none calls `display()`. Figures are
drawn off pyplot and shown as PNG `Image`s, so an exported notebook keeps static pictures.
Importing `simulator` never imports this package (it pulls in ipywidgets and matplotlib).

    stepper = punch_stepper(two_peers(FULL_CONE, SYMMETRIC))   # a notebook cell ends with: stepper
"""

from __future__ import annotations

from .explain import DROP_GLOSS, KIND_NAMES, explain_record, kind_name, packet_senders
from .explorer import CUSTOM, NatExplorer, nat_behavior, nat_explorer, result_text
from .grid import GridExplorer, grid_explorer
from .machines import state_machine_view, transitions
from .stepper import EVENTS, TIMERS, PunchStepper, kind_choices, matches, punch_stepper
from .tables import nat_behaviors, tables_at, tables_html

__all__ = [
    "CUSTOM", "DROP_GLOSS", "EVENTS", "GridExplorer", "KIND_NAMES", "NatExplorer", "PunchStepper",
    "TIMERS", "explain_record", "grid_explorer", "kind_choices", "kind_name", "matches",
    "nat_behavior", "nat_behaviors", "nat_explorer", "packet_senders", "punch_stepper",
    "result_text", "state_machine_view", "tables_at", "tables_html", "transitions",
]
from .birthday import BirthdayExplorer, birthday_explorer  # lesson 8

__all__ += ["BirthdayExplorer", "birthday_explorer"]
