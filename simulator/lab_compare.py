"""The simulator's prediction for a real NAT lab run, and the real grid beside the simulated one.

Rule: the simulator is given the lab's configuration, never the lab's outcome: the NAT types
(as presets with the lab's hairpinning), the lab's link timing (tens of microseconds, plus any
impairment), the clients' timeout, and when each real peer sent its first punch (measured by
the capture: the lab's peers are Python processes that react within about a millisecond,
while a punch crosses the lab in ten microseconds, so who punches first decides races the
simulator's instant hosts would tie). Disagreements are shown (`!!`), never explained away.

Layering: this module builds on `holepunch.lab`'s records (results.py, nft.py), never the other
way round. `holepunch lab grid` and `lab trace` reach it as the predictor registered under the
`holepunch.lab.predictors` entry point (holepunch/lab/predictor.py; this module provides
`predict_trial`, `unresolved` and `compare`). Importing it loads none of the lab's sockets or
processes; `lab_grid`, which runs the real grid, imports them when called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from holepunch.lab.layout import SERVER_IP
from holepunch.lab.nft import NAT_TYPES, SEQUENTIAL_BASE, SEQUENTIAL_SPAN, nat_type
from holepunch.lab.results import CONNECT_TIMEOUT, START_GAP, RealCell, RealGrid, Trial
from holepunch.protocol.config import ClientConfig
from holepunch.protocol.tcp_client import TcpClientConfig
from holepunch.trace import Action, Trace, TraceRecord

from .link import LinkProfile
from .nat import NatBehavior
from .presets import NO_NAT, preset
from .scenarios import Scenario, run_punch, two_peers
from .tcp_nat import TcpNatPolicy, TcpNetwork
from .tcp_scenarios import run_tcp_punch, tcp_two_peers
from .techniques import SYMMETRIC_SEQUENTIAL

LAB_LAN_LATENCY = 20e-6
"""Seconds from a host to its NAT's WAN side in the lab (a veth, a bridge and the NAT), measured
in captures at 10-60 microseconds."""
LAB_WAN_LATENCY = 5e-6
"""Seconds per internet link (NAT to bridge, bridge to NAT): a frame crosses the lab's internet
bridge in about 5 microseconds."""
RACE_RESOLUTION = 100e-6
"""Punch skews closer than this are not resolved by the capture (NAT processing varies by tens
of microseconds): a trial whose outcome hangs on such a skew proves nothing either way."""


def lab_behavior(kind: str, *, hairpin: bool = False) -> NatBehavior:
    """The simulator's `NatBehavior` for a lab NAT type: its preset, with the lab's hairpinning
    (only when asked, and unfiltered: the lab DNATs hairpinned packets through its map) and,
    for `symmetric-sequential`, the lab's port range."""
    lab_type = nat_type(kind)
    if lab_type.name == "symmetric-sequential":
        behavior = dataclasses.replace(
            SYMMETRIC_SEQUENTIAL, ports=(SEQUENTIAL_BASE, SEQUENTIAL_BASE + SEQUENTIAL_SPAN - 1))
    else:
        behavior = preset(lab_type.simulator_preset)
    if not behavior.translates:
        return behavior
    return dataclasses.replace(behavior, hairpinning=hairpin, hairpin_filtering=False)


def lab_tcp_policy(kind: str) -> TcpNatPolicy:
    """The TCP side of a lab NAT: without the input drop rule (`linux-masquerade`) the box's own
    stack answers an unsolicited SYN with RST; the other types drop it silently."""
    lab_type = nat_type(kind)
    rst = lab_type.translates and not lab_type.input_drop
    return TcpNatPolicy(rst_unsolicited=rst)


@dataclass(frozen=True)
class Prediction:
    """What the simulator says one lab trial will do."""

    connected: bool
    time: float | None
    """Simulated seconds from start to both peers connected."""
    explanation: str
    trace: Trace | None = None
    """The simulated run."""


def _links(scenario: Scenario, skew: float, delay: float, jitter: float, loss: float) -> None:
    """Give a built scenario the lab's timing: every internet link carries half the lab's
    one-way impairment (a crossing is two links), and the later peer's own link is longer by
    half the skew, so its punch leaves its NAT `skew` seconds after the other's."""
    per_link_loss = 1.0 - (1.0 - loss) ** 0.5
    for name, link in scenario.network.links.items():
        wan = not name.startswith("lan ")
        latency = LAB_WAN_LATENCY + delay / 2 if wan else LAB_LAN_LATENCY
        link.profile = LinkProfile(latency=latency, jitter=jitter / 2 if wan else 0.0,
                                   loss=per_link_loss if wan else 0.0)
    for letter, late in (("A", max(0.0, skew)), ("B", max(0.0, -skew))):
        link = scenario.peer(letter).host.link
        link.profile = dataclasses.replace(link.profile, latency=link.profile.latency + late / 2)


def predict(a: str, b: str, transport: str = "udp", *, skew: float | None = 0.0, delay: float = 0.0,
            jitter: float = 0.0, loss: float = 0.0, timeout: float | None = None,
            techniques: Sequence[str] = (), seed: int = 0) -> Prediction:
    """Simulate peers A and B behind lab NAT types `a` and `b` under the lab's timing: B starts
    START_GAP after A, A's first punch leaves `skew` seconds after B's (negative: before)."""
    timeout = timeout or CONNECT_TIMEOUT[transport]
    nats = (lab_behavior(a), lab_behavior(b))
    if transport == "udp":
        config = ClientConfig(timeout=timeout, techniques=frozenset(techniques))
        scenario = two_peers(*nats, seed=seed, start_gap=START_GAP, config=config)
    elif transport == "tcp":
        if techniques:
            raise ValueError("techniques apply to UDP only")
        scenario = tcp_two_peers(*nats, seed=seed, start_gap=START_GAP,
                                 config=TcpClientConfig(timeout=timeout))
        network = scenario.network
        assert isinstance(network, TcpNetwork)
        for letter, kind in (("A", a), ("B", b)):  # each NAT's own TCP policy (RST or silence)
            table = network.tcp_tables.get(f"NAT {letter}")
            if table is not None:
                table.policy = lab_tcp_policy(kind)
    else:
        raise ValueError(f"transport must be 'udp' or 'tcp', got {transport!r}")
    _links(scenario, skew or 0.0, delay, jitter, loss)
    return _run(scenario, transport, timeout)


def predict_hairpin(kind: str, *, hairpin: bool = True, skew: float | None = 0.0,
                    timeout: float | None = None) -> Prediction:
    """Two UDP peers behind one lab NAT of type `kind` (the simulator's CGNAT slot, with no NAT
    of their own), hairpinning on or off. The simulator does not model TCP hairpinning."""
    timeout = timeout or CONNECT_TIMEOUT["udp"]
    scenario = two_peers(NO_NAT, NO_NAT, cgnat=lab_behavior(kind, hairpin=hairpin),
                         cgnat_peers="AB", start_gap=START_GAP,
                         config=ClientConfig(timeout=timeout))
    _links(scenario, skew or 0.0, 0.0, 0.0, 0.0)
    return _run(scenario, "udp", timeout)


def _run(scenario: Scenario, transport: str, timeout: float) -> Prediction:
    run: Callable[..., Any] = run_punch if transport == "udp" else run_tcp_punch
    outcome = run(scenario, until=timeout + START_GAP + 1.0)
    return Prediction(outcome.connected, outcome.time_to_connect, outcome.explain(), outcome.trace)


def order_matters(a: str, b: str, transport: str, **options: Any) -> bool:
    """Does the simulator's answer for this pair depend on who punches first?"""
    early = predict(a, b, transport, skew=-1e-3, **options).connected
    late = predict(a, b, transport, skew=1e-3, **options).connected
    return early != late


def from_first_punch(trace: Iterable[TraceRecord], seconds: float = 0.3,
                     kinds: Iterable[str] | None = None) -> Trace:
    """The records from the first punch (UDP SYN or TCP SYN to a peer, not to the server at
    SERVER_IP, which the lab and the simulator share) on, for `seconds`, timed from it: a real
    and a simulated run, whose set-up takes different times, line up there."""
    records = list(trace)
    start = next((r.time for r in records if r.action is Action.SEND and r.kind in ("syn", "tcp-syn")
                  and r.actor.startswith("peer") and r.destination is not None
                  and r.destination.host != SERVER_IP), None)
    if start is None:
        return Trace()
    wanted = set(kinds) if kinds is not None else None
    return Trace([dataclasses.replace(r, time=round(r.time - start, 6)) for r in records
                  if start <= r.time <= start + seconds and (wanted is None or r.kind in wanted)])


# --- real beside simulated ------------------------------------------------------------------------

@dataclass(frozen=True)
class CellComparison:
    """One ordered pair: the real trials and the simulator's prediction for each of them."""

    real: RealCell
    predictions: tuple[Prediction, ...]
    race: bool
    """The simulator's answer depends on who punches first (then each trial's skew decides)."""
    ties: tuple[bool, ...] = ()
    """Per trial: still `unresolved` after its reruns, a tie finer than the capture resolves,
    for which the simulator gives both answers within the resolution: either outcome agrees."""

    @property
    def agrees(self) -> bool:
        """Every trial came out as predicted (or was a tie), and the negative controls behaved."""
        ties = self.ties or (False,) * len(self.predictions)
        return self.real.controls_ok and all(
            t.connected == p.connected or tie for t, p, tie in zip(self.real.trials, self.predictions, ties))

    def simulated_text(self) -> str:
        """The simulator's cell: "yes 0.000", "no", or "k/n" over the trials' skews."""
        wins = sum(p.connected for p in self.predictions)
        times = [p.time for p in self.predictions if p.time is not None]
        if wins == len(self.predictions):
            return f"yes {max(times):.3f}" if times else "yes"
        return "no" if not wins else f"{wins}/{len(self.predictions)}"


@dataclass(frozen=True)
class GridComparison:
    """A real grid and the simulator's predictions for it."""

    real: RealGrid
    cells: dict[tuple[str, str], CellComparison]
    options: Mapping[str, float]

    @property
    def disagreements(self) -> list[tuple[str, str]]:
        """Pairs where the lab and the simulator differ."""
        return [pair for pair, cell in self.cells.items() if not cell.agrees]

    def to_text(self) -> str:
        """See `format_comparison`."""
        return format_comparison(self)


def predict_trial(trial: Trial, **options: Any) -> Prediction:
    """The simulator's answer for one real trial (its NAT types, transport, techniques and
    measured skew), under the lab's `options` (delay, jitter, loss, timeout)."""
    if trial.shared_nat:
        return predict_hairpin(trial.a, hairpin=trial.hairpin, skew=trial.skew,
                               timeout=options.get("timeout"))
    return predict(trial.a, trial.b, trial.transport, skew=trial.skew, techniques=trial.techniques,
                   **options)


def real_techniques(real: RealGrid) -> tuple[str, ...]:
    """The techniques a real grid ran with (its name is "basic" or "+a+b")."""
    return tuple(t for t in real.technique.split("+") if t and t != "basic")


def compare(real: RealGrid, **options: Any) -> GridComparison:
    """Predict every trial of a real grid under the same `options` (delay, jitter, loss, timeout)."""
    cells = {}
    for pair, cell in real.cells.items():
        predictions = tuple(predict_trial(t, **options) for t in cell.trials)
        race = order_matters(*pair, real.transport, techniques=real_techniques(real), **options)
        ties = tuple(unresolved(t, **options) for t in cell.trials)
        cells[pair] = CellComparison(cell, predictions, race, ties)
    return GridComparison(real, cells, dict(options))


def unresolved(trial: Trial, **options: Any) -> bool:
    """True when the trial's outcome hangs on a skew finer than the capture resolves: its skew is
    within RACE_RESOLUTION of zero and the simulator's answer changes within that band. Such a
    trial proves nothing either way and is run again (`real_grid(retry=...)`)."""
    if trial.skew is None or abs(trial.skew) >= RACE_RESOLUTION:
        return False
    answers = {predict(trial.a, trial.b, trial.transport, skew=s, techniques=trial.techniques,
                       **options).connected
               for s in (-RACE_RESOLUTION, 0.0, trial.skew, RACE_RESOLUTION)}
    return len(answers) > 1


def lab_grid(types: Sequence[str] | None = None, transport: str = "udp", *, trials: int = 1,
             workers: int = 4, prefix: str = "hpg", delay: float = 0.0, jitter: float = 0.0,
             loss: float = 0.0, techniques: Sequence[str] = (), timeout: float | None = None,
             progress: Callable[[RealCell], None] | None = None) -> GridComparison:
    """Run the real grid (re-running unresolved races) and set the simulator's beside it: what
    `holepunch lab grid` prints, from Python (root only, as the lab)."""
    # The lab's processes and sockets, imported only when a real grid runs.
    from holepunch.lab.grid import real_grid

    options: dict[str, Any] = {"delay": delay, "jitter": jitter, "loss": loss, "timeout": timeout}
    lab_options = {"delay": delay, "jitter": jitter, "loss": loss}
    real = real_grid(tuple(types or NAT_TYPES), transport, trials=trials, techniques=techniques,
                     workers=workers, prefix=prefix, timeout=timeout, lab_options=lab_options,
                     retry=lambda trial: unresolved(trial, **options), progress=progress)
    return compare(real, **options)


SHORT = {"none": "none", "full-cone": "full", "restricted-cone": "restr", "port-restricted": "port",
         "symmetric": "sym", "symmetric-sequential": "sym-seq", "linux-masquerade": "masq"}


def format_comparison(comparison: GridComparison) -> str:
    """Two grids side by side (rows: A's NAT, columns: B's): each cell "real | simulated", "!!"
    before a cell where they differ, "~" after a pair whose answer depends on who punches first."""
    real = comparison.real
    names = real.types
    width = 15
    head = " " * 8 + "".join(f"{SHORT.get(n, n):>{width}}" for n in names)
    title = (f"{real.transport.upper()} grid, technique {real.technique}: real | simulated "
             "(!! = they differ, ~ = who punched first decided, ? = a tie the capture cannot order)")
    lines = [title, head]
    for a in names:
        cells = []
        for b in names:
            cell = comparison.cells[(a, b)]
            text = f"{_short(cell.real.text())}|{_short(cell.simulated_text())}"
            marks = ("~" if cell.race else "") + ("?" if any(cell.ties) else "")
            text = ("!!" if not cell.agrees else "") + text + marks
            cells.append(f"{text:>{width}}")
        lines.append(f"{SHORT.get(a, a):<8}" + "".join(cells))
    bad = comparison.disagreements
    lines.append(f"{len(comparison.cells) - len(bad)} of {len(comparison.cells)} pairs agree"
                 + (f"; differ: {', '.join(f'{a} x {b}' for a, b in bad)}" if bad else "")
                 + f"; {sum(len(c.real.trials) for c in comparison.cells.values())} trials "
                 f"({sum(c.real.reruns for c in comparison.cells.values())} unresolved races run "
                 f"again, {sum(sum(c.ties) for c in comparison.cells.values())} still tied) "
                 f"in {real.seconds:.0f} s")
    return "\n".join(lines) + "\n"


def _short(text: str) -> str:
    """"yes 0.004" -> "yes" (times differ between a lab and a model and are not compared)."""
    return text.split()[0] if text.startswith("yes") else text
