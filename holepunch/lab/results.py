"""What a real grid run yields: the records of controls, trials, cells and grids, and their timing.

Rule: plain frozen records and constants, no I/O, so that code comparing a lab run with a model
(the simulator's lab_compare) reads them without loading the lab's sockets and processes. grid.py
produces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..trace import Trace

TRANSPORTS = ("udp", "tcp")
CONNECT_TIMEOUT = {"udp": 5.0, "tcp": 6.0}
"""Seconds each real client punches before giving up: far beyond the few milliseconds a
connecting pair needs in the lab (TCP allows for the kernel's 1 s SYN retransmission and the
client's retries after an RST), so a "no" is a NAT's doing, not impatience."""
START_GAP = 0.1
"""Seconds between starting A and B, as the simulator's `start_gap`: A registers first and is
pushed B, B is answered with A."""
CONTROL_WAIT = 0.3
"""Seconds the negative control waits for an unsolicited datagram or connection."""


@dataclass(frozen=True)
class Control:
    """One negative control: `sender` reached out, unsolicited, to `target`'s public address."""

    target: str
    sender: str
    transport: str
    reached: bool
    expected: bool
    """A NATed target must not be reached; a public host must (so the check itself works)."""

    @property
    def ok(self) -> bool:
        """True when what happened is what the target's NAT type says."""
        return self.reached == self.expected

    def describe(self) -> str:
        """One line for reports."""
        what = "reached" if self.reached else "was stopped at"
        return f"{self.transport} from {self.sender} {what} {self.target} ({'ok' if self.ok else 'WRONG'})"


@dataclass(frozen=True)
class Trial:
    """One real run of two clients: what each reported, and when each sent its first punch."""

    a: str
    b: str
    transport: str
    reports: tuple[dict[str, Any], dict[str, Any]]
    """The `connect --json` documents of A and B (or {"error": ...})."""
    skew: float | None
    """When A's punch left A's host minus when B's did, in seconds (None if one never punched);
    see `punch_skew`."""
    seconds: float
    trace: Trace | None = None
    techniques: tuple[str, ...] = ()
    shared_nat: bool = False
    """Both hosts sat behind one NAT (the hairpin case)."""
    hairpin: bool = False
    """That NAT hairpins."""

    @property
    def connected(self) -> bool:
        """Both clients report their peer connected: with a connect time (`elapsed_ms`), which a
        report keeps whatever happened after. `connect` exits once it has connected, so over TCP
        the faster side's exit often closes the stream before the slower side reports: that
        report says connected, in state "disconnected" (see tests/test_cli_tcp_race.py)."""
        return all(any(p.get("elapsed_ms") is not None for p in r.get("peers", []))
                   for r in self.reports)

    @property
    def time(self) -> float | None:
        """The slower side's time from its first punch to confirmed, in seconds."""
        times = [p.get("elapsed_ms") for r in self.reports for p in r.get("peers", [])]
        if not self.connected or not times or None in times:
            return None
        return max(times) / 1000.0


@dataclass(frozen=True)
class RealCell:
    """An ordered pair of lab NAT types: the controls and the trials run on it."""

    a: str
    b: str
    transport: str
    trials: tuple[Trial, ...]
    controls: tuple[Control, ...]
    reruns: int = 0
    """Trials run again because `retry` said so (unresolved races, see compare.unresolved)."""

    @property
    def successes(self) -> int:
        """Trials in which both clients connected."""
        return sum(t.connected for t in self.trials)

    @property
    def controls_ok(self) -> bool:
        """Every negative control behaved."""
        return all(c.ok for c in self.controls)

    def text(self) -> str:
        """"yes 0.004" (every trial), "no" (none), "2/3" (some), "control!" (a control failed)."""
        if not self.controls_ok:
            return "control!"
        times = [t.time for t in self.trials if t.time is not None]
        if self.trials and self.successes == len(self.trials):
            return f"yes {max(times):.3f}" if times else "yes"
        return "no" if not self.successes else f"{self.successes}/{len(self.trials)}"


@dataclass(frozen=True)
class RealGrid:
    """The real grid of one transport and technique."""

    transport: str
    technique: str
    types: tuple[str, ...]
    cells: dict[tuple[str, str], RealCell] = field(default_factory=dict)
    seconds: float = 0.0
