"""What each NAT traversal technique buys: one NAT x NAT grid per technique set, and the birthday
figure over many seeds.

Rule: the techniques are the real `holepunch.protocol` ones, switched on through
`ClientConfig.techniques`; this module only builds runs, counts outcomes and formats tables.
Technique sets are cumulative (basic, +peer-reflexive, +prediction, +birthday, +relay), so each
grid shows what one more technique adds; with the relay every cell connects, relayed where no
hole can be punched. A set naming a technique the client does not implement gives a grid marked
"not implemented" instead of failing.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from collections.abc import Iterable, Sequence
from typing import Any

from holepunch.protocol import ClientConfig, PeerClient
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.techniques import IMPLEMENTED, BirthdayRole, Technique
from holepunch.protocol.techniques.probability import birthday_probability
from holepunch.protocol.techniques.result import ConnectResult

from .driver import Machine
from .nat import Filtering, Mapping, NatBehavior, PortAllocation
from .outcome import Outcome
from .presets import PORT_RESTRICTED_CONE, PRESETS, SYMMETRIC
from .scenarios import run_punch, two_peers

SYMMETRIC_SEQUENTIAL = NatBehavior(
    "SYMMETRIC_SEQUENTIAL", Mapping.APDM, Filtering.APDF, PortAllocation.SEQUENTIAL, port_delta=1
)
"""APDM + APDF with sequential ports: symmetric, but the next port is predictable (RFC 4787 §4.2.1)."""

TECHNIQUE_PRESETS: tuple[NatBehavior, ...] = (*PRESETS, SYMMETRIC_SEQUENTIAL)
"""The presets of the technique grids: the classic ones plus the predictable symmetric NAT."""

_REFLEXIVE = frozenset({Technique.PEER_REFLEXIVE})
TECHNIQUE_SETS: dict[str, frozenset[Technique]] = {
    "basic": frozenset(),
    "+peer-reflexive": _REFLEXIVE,
    "+prediction": _REFLEXIVE | {Technique.PREDICTION},
    "+birthday": _REFLEXIVE | {Technique.PREDICTION, Technique.BIRTHDAY},
    "+relay": _REFLEXIVE | {Technique.PREDICTION, Technique.BIRTHDAY, Technique.RELAY},
}
"""Cumulative technique sets, one grid each; "+relay" falls back to the server's relay for the
pairs no direct technique connects (after `ClientConfig.relay_after`)."""


@dataclass(frozen=True)
class GridCell:
    """One ordered NAT pair under one technique set, over one or more seeds."""

    a: str
    b: str
    runs: int
    successes: int
    times: tuple[float, ...]
    """Time to connect of each successful run (both sides confirmed), in seconds."""
    techniques: tuple[tuple[str, int], ...]
    """What found the path in the successful runs, with counts, most common first."""
    reasons: tuple[str, ...] = ()
    """Peer A's reason in each failed run: the last thing it saw from B."""
    relayed: int = 0
    """Successful runs in which the pair connected through the server's relay, not directly."""

    @property
    def fraction(self) -> float:
        """Share of runs that connected."""
        return self.successes / self.runs if self.runs else 0.0

    @property
    def time(self) -> float | None:
        """Median time to connect of the successful runs."""
        return statistics.median(self.times) if self.times else None

    @property
    def technique(self) -> str:
        """The technique that found the path most often ("" when no run connected)."""
        return self.techniques[0][0] if self.techniques else ""

    @property
    def direct(self) -> int:
        """Successful runs that punched a hole (not relayed)."""
        return self.successes - self.relayed

    def text(self) -> str:
        """"yes 0.208" (every run), "relayed 5.208" (every run, through the relay), "no" (none),
        or "64%" (some)."""
        if self.successes == self.runs and self.time is not None:
            return f"{'relayed' if self.relayed == self.runs else 'yes'} {self.time:.3f}"
        if not self.successes:
            return "no"
        return f"{100 * self.fraction:.0f}%"


@dataclass(frozen=True)
class TechniqueGrid:
    """The NAT x NAT grid of one technique set."""

    name: str
    techniques: frozenset[Technique]
    cells: dict[tuple[str, str], GridCell] = field(default_factory=dict)
    missing: frozenset[Technique] = frozenset()
    """Techniques of the set that the client does not implement yet (then `cells` is empty)."""

    @property
    def implemented(self) -> bool:
        """False when the set needs a technique that does not exist yet."""
        return not self.missing

    def connected(self, a: str, b: str) -> bool:
        """True when every run of the pair connected (directly or through the relay)."""
        cell = self.cells[a, b]
        return cell.successes == cell.runs

    def relayed(self, a: str, b: str) -> bool:
        """True when every run of the pair connected through the relay (no hole was punched)."""
        cell = self.cells[a, b]
        return cell.relayed == cell.runs

    def to_text(self, what: str = "outcome") -> str:
        """The grid as a table (rows: peer A's NAT, columns: B's), or why there is none.

        `what` is "outcome" ("yes 0.208", "no", "64%") or "technique" (what found the path)."""
        if what not in ("outcome", "technique"):
            raise ValueError(f"what must be 'outcome' or 'technique', got {what!r}")
        title = f"{self.name}: " + (", ".join(sorted(t.value for t in self.techniques)) or "basic punch only")
        if not self.implemented:
            missing = ", ".join(sorted(t.value for t in self.missing))
            return f"{title}\n  not implemented yet: {missing}\n"
        rows = list(dict.fromkeys(a for a, _ in self.cells))
        cols = list(dict.fromkeys(b for _, b in self.cells))
        texts = {pair: cell.text() if what == "outcome" else cell.technique or "-" for pair, cell in self.cells.items()}
        width = max(len(name) for name in [*rows, *cols, *texts.values()]) + 1
        lines = [title, " " * width + "".join(f"{c:>{width}}" for c in cols)]
        for a in rows:
            lines.append(f"{a:<{width}}" + "".join(f"{texts.get((a, b), '-'):>{width}}" for b in cols))
        return "\n".join(lines) + "\n"


def run_techniques(nat_a: NatBehavior, nat_b: NatBehavior, techniques: Iterable[Technique | str] = (),
                   *, config: ClientConfig | None = None, **options: Any) -> Outcome:
    """`run_punch(nat_a, nat_b)` with both peers using `techniques` (on top of `config`)."""
    cfg = dataclasses.replace(config or ClientConfig(), techniques=frozenset(techniques))
    return run_punch(nat_a, nat_b, config=cfg, **options)


def peer_results(outcome: Outcome) -> dict[str, ConnectResult]:
    """Each peer's `ConnectResult` (path, technique, time, reason), by peer letter."""
    if outcome.scenario is None:
        raise ValueError("this outcome has no scenario to read the peers' results from")
    return {letter: driver.machine.connect_result() for letter, driver in outcome.scenario.peers.items()
            if isinstance(driver.machine, PeerClient)}


def pair_technique(outcome: Outcome) -> str:
    """What connected the pair: the technique a peer reports other than "basic", else "basic"."""
    found = [p.technique for r in peer_results(outcome).values() for p in r.peers if p.connected]
    special = sorted({t for t in found if t != "basic"})
    return "+".join(special) or ("basic" if found else "")


def technique_grid(sets: dict[str, Iterable[Technique | str]] | None = None,
                   presets: Sequence[NatBehavior] = TECHNIQUE_PRESETS, *, seeds: Iterable[int] = (0,),
                   config: ClientConfig | None = None, **options: Any) -> dict[str, TechniqueGrid]:
    """One grid per technique set (default `TECHNIQUE_SETS`) over every ordered pair of `presets`,
    each cell run once per seed; `options` go to `two_peers` (latency, loss, ...)."""
    seeds = tuple(seeds)
    grids: dict[str, TechniqueGrid] = {}
    for name, chosen in (TECHNIQUE_SETS if sets is None else sets).items():
        techniques = frozenset(Technique(t) for t in chosen)
        missing = techniques - IMPLEMENTED
        if missing:
            grids[name] = TechniqueGrid(name, techniques, {}, frozenset(missing))
            continue
        cells = {(a.name, b.name): _cell(a, b, techniques, seeds, config, options)
                 for a in presets for b in presets}
        grids[name] = TechniqueGrid(name, techniques, cells)
    return grids


def _cell(a: NatBehavior, b: NatBehavior, techniques: frozenset[Technique], seeds: tuple[int, ...],
          config: ClientConfig | None, options: dict[str, Any]) -> GridCell:
    times: list[float] = []
    found: Counter[str] = Counter()
    reasons: list[str] = []
    relayed = 0
    for seed in seeds:
        outcome = run_techniques(a, b, techniques, config=config, seed=seed, **options)
        if outcome.connected and outcome.time_to_connect is not None:
            times.append(outcome.time_to_connect)
            relay = any(p.relayed for p in outcome.pairs)
            relayed += relay
            found["relay" if relay else pair_technique(outcome)] += 1
        else:
            reasons.extend(p.reason for p in peer_results(outcome)["A"].peers)
    return GridCell(a.name, b.name, len(seeds), len(times), tuple(times), tuple(found.most_common()),
                    tuple(reasons), relayed)


def format_technique_grids(grids: dict[str, TechniqueGrid], what: str = "outcome") -> str:
    """Every grid, one after another (`what` as in `TechniqueGrid.to_text`)."""
    return "\n".join(grid.to_text(what) for grid in grids.values())


# --- the birthday figure ----------------------------------------------------------------------


@dataclass(frozen=True)
class BirthdayFigure:
    """Birthday probing over many seeds next to the analytic chance."""

    k: int
    m: int
    runs: int
    successes: int
    space: int
    """Ports the hard NAT allocates from (64,512 for the simulator's 1024-65535)."""

    @property
    def fraction(self) -> float:
        """Share of seeds that connected."""
        return self.successes / self.runs

    @property
    def expected(self) -> float:
        """The exact chance: 1 - C(space-k, m)/C(space, m)."""
        return birthday_probability(self.k, self.m, self.space, exact=True)

    @property
    def approximation(self) -> float:
        """The textbook 1 - exp(-k*m/65536)."""
        return birthday_probability(self.k, self.m)

    def to_text(self) -> str:
        """One line with the measured and the analytic figures."""
        return (f"k={self.k} sockets x m={self.m} probes: {self.successes}/{self.runs} seeds connected "
                f"({100 * self.fraction:.1f} %); exact {100 * self.expected:.1f} % over {self.space} ports, "
                f"1-exp(-km/65536) {100 * self.approximation:.1f} %")


def birthday_trials(k: int = 256, m: int = 256, seeds: Iterable[int] = range(200), *,
                    hard: NatBehavior = SYMMETRIC, easy: NatBehavior = PORT_RESTRICTED_CONE,
                    config: ClientConfig | None = None, **options: Any) -> BirthdayFigure:
    """Birthday probing alone between a `hard` peer A (k sockets) and an `easy` peer B (m probes),
    once per seed (`birthday_run`); the figure to set beside `birthday_probability`."""
    seeds = tuple(seeds)
    wins = sum(birthday_run(k, m, s, hard=hard, easy=easy, config=config, **options).connected for s in seeds)
    low, high = hard.ports
    return BirthdayFigure(k, m, len(seeds), wins, high - low + 1)


def birthday_run(k: int, m: int, seed: int, *, hard: NatBehavior = SYMMETRIC,
                 easy: NatBehavior = PORT_RESTRICTED_CONE, config: ClientConfig | None = None,
                 **options: Any) -> Outcome:
    """One birthday run: A plays the hard half, B the easy half, as NAT discovery would set them.

    One sweep each: the easy side starts probing once the hard side has opened its k mappings
    (`escalation_delay` later by the time k paced sends take, plus a round trip), so the run
    connects exactly when one of the m probed ports is one of the k mapped ones.
    """
    base = dataclasses.replace(config or ClientConfig(), techniques=frozenset({Technique.BIRTHDAY}),
                               birthday_sockets=k, birthday_probes=m, max_sweeps=1)
    lead = base.escalation_delay + k * base.probe_interval + 0.2
    timeout = lead + m * base.probe_interval + 0.5
    configs = {
        "A": dataclasses.replace(base, birthday_role=BirthdayRole.HARD, timeout=timeout),
        "B": dataclasses.replace(base, birthday_role=BirthdayRole.EASY, escalation_delay=lead, timeout=timeout),
    }

    def factory(letter: str, server: Endpoint, session: bytes, expected: int, rng: random.Random) -> Machine:
        return PeerClient(server, session, expected, configs[letter], rng=rng)

    return run_punch(two_peers(hard, easy, seed=seed, client_factory=factory, **options))
