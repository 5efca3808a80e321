"""simulator: a deterministic discrete-event network with NATs that runs the real protocol code.

Rule: simulated peers and the rendezvous server are the very `holepunch.protocol` machines,
driven by `MachineDriver`; the simulator adds only time, links, NATs and a trace. Importing it
loads no asyncio, socket, plotting, widget or networkx module (networkx: inside `graph()` only).

    >>> from simulator import FULL_CONE, SYMMETRIC, run_punch
    >>> run_punch(FULL_CONE, SYMMETRIC).connected
    False
"""

from __future__ import annotations

from .driver import Machine, MachineDriver, describe_event
from .link import LinkProfile, Link
from .nat import (
    EXPIRED,
    FILTERED,
    HAIRPIN_OFF,
    NO_MAPPING,
    Filtering,
    Mapping,
    MappingRow,
    NatBehavior,
    NatTable,
    NatVerdict,
    PortAllocation,
)
from .network import LOST, NO_ROUTE, Host, NatBox, Network, Realm
from .outcome import Outcome, PairResult, QuietOutcome
from .packet import Packet
from .presets import (
    FULL_CONE,
    LINUX_MASQUERADE,
    NO_NAT,
    PORT_RESTRICTED_CONE,
    PRESETS,
    RESTRICTED_CONE,
    SYMMETRIC,
    preset,
)
from .scenarios import Scenario, format_grid, mesh, nat_grid, quiet_period, run_punch, two_peers
from .scheduler import Handle, Scheduler
from .techniques import (
    SYMMETRIC_SEQUENTIAL,
    TECHNIQUE_PRESETS,
    TECHNIQUE_SETS,
    BirthdayFigure,
    GridCell,
    TechniqueGrid,
    birthday_run,
    birthday_trials,
    format_technique_grids,
    peer_results,
    run_techniques,
    technique_grid,
)

__all__ = [
    "EXPIRED", "FILTERED", "FULL_CONE", "Filtering", "HAIRPIN_OFF", "Handle", "Host",
    "LINUX_MASQUERADE", "LOST", "Link", "LinkProfile", "Machine", "MachineDriver", "Mapping",
    "MappingRow", "NO_MAPPING", "NO_NAT", "NO_ROUTE", "NatBehavior", "NatBox", "NatTable",
    "NatVerdict", "Network", "Outcome", "PORT_RESTRICTED_CONE", "PRESETS", "Packet", "PairResult",
    "PortAllocation", "QuietOutcome", "RESTRICTED_CONE", "Realm", "SYMMETRIC", "Scenario",
    "Scheduler", "describe_event", "format_grid", "mesh", "nat_grid", "preset", "quiet_period",
    "run_punch", "two_peers",
    # techniques (issue 7)
    "BirthdayFigure", "GridCell", "SYMMETRIC_SEQUENTIAL", "TECHNIQUE_PRESETS", "TECHNIQUE_SETS", "TechniqueGrid",
    "birthday_run", "birthday_trials", "format_technique_grids", "peer_results", "run_techniques",
    "technique_grid",
]

# TCP: segments through NATs (RFC 5382), the TCP machines' drivers and scenarios.
from .tcp import CONN_TRANSITIONS, Conn, ConnState, Segment, SegmentKind, TcpOwner, TcpStack, TcpStackConfig  # noqa: E402
from .tcp_driver import TcpClientDriver, TcpServerDriver  # noqa: E402
from .tcp_nat import (  # noqa: E402
    RST_SENT,
    SESSION_TRANSITIONS,
    SessionState,
    TcpNatPolicy,
    TcpNatTable,
    TcpNetwork,
    TcpSessionRow,
)
from .tcp_scenarios import TcpOutcome, run_tcp_punch, tcp_nat_grid, tcp_two_peers  # noqa: E402

__all__ += [
    "CONN_TRANSITIONS", "Conn", "ConnState", "RST_SENT", "SESSION_TRANSITIONS", "Segment", "SegmentKind",
    "SessionState", "TcpClientDriver", "TcpNatPolicy", "TcpNatTable", "TcpNetwork", "TcpOutcome",
    "TcpOwner", "TcpServerDriver", "TcpSessionRow", "TcpStack", "TcpStackConfig", "run_tcp_punch",
    "tcp_nat_grid", "tcp_two_peers",
]

# NAT discovery (RFC 5780 tests): the real NatChecker behind a simulated NAT.
from .discovery import check_nat  # noqa: E402

__all__ += ["check_nat"]
