"""Simulator speed: events per second on the full NAT x NAT grid, ours against SimPy.

Rule: the workload is the real model (`run_punch` on every ordered pair of `PRESETS`, 20 seeds
each), run once on `simulator.scheduler.Scheduler` and once on `SimPyScheduler` (the same model
on a `simpy.Environment`); both must give the same outcome and the same trace for every seed.
It prints figures and asserts no speed (exit status 1 only if the two schedulers disagree).

    .venv/bin/python benchmarks/bench_simulator.py [--seeds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from anywhere

from simpy_scheduler import SimPyScheduler, simpy_backend  # noqa: E402

from simulator import PRESETS, Outcome, Scheduler, run_punch, two_peers  # noqa: E402

INTERACTIVE_BUDGET = 0.050  # seconds: issue 3 asks for "well under 50 ms" per two-peer scenario
BACKENDS: dict[str, Callable[[], ContextManager[Any]]] = {
    "ours": contextlib.nullcontext,
    "SimPy": simpy_backend,
}
Key = tuple[str, str, int]  # (A's NAT, B's NAT, seed)


@dataclass(frozen=True)
class Run:
    """One two-peer run on one scheduler: timings (seconds), events, and what came out."""

    total: float
    build: float
    events: int
    connected: bool
    time_to_connect: float | None
    fingerprint: int | None
    """Hash of the whole trace (first round only; computed outside the timed window)."""


def one_run(a: Any, b: Any, seed: int, *, fingerprint: bool) -> Run:
    """Build and run `two_peers(a, b, seed=seed)` to completion, as `run_punch` does."""
    start = time.perf_counter()
    scenario = two_peers(a, b, seed=seed)
    built = time.perf_counter()
    outcome: Outcome = run_punch(scenario)
    done = time.perf_counter()
    digest = hash(tuple(outcome.trace.records)) if fingerprint else None
    return Run(done - start, built - start, scenario.scheduler.events_run, outcome.connected,
               outcome.time_to_connect, digest)


def run_grid(seeds: int, rounds: int) -> dict[str, dict[Key, list[Run]]]:
    """Every (cell, seed) on both schedulers, `rounds` times; the two schedulers alternate run by
    run (and swap who goes first), so load from elsewhere on the machine hits both alike."""
    results: dict[str, dict[Key, list[Run]]] = {name: {} for name in BACKENDS}
    names = list(BACKENDS)
    for name in names:  # warm-up: imports, caches
        with BACKENDS[name]():
            one_run(PRESETS[0], PRESETS[-1], 0, fingerprint=False)
    for r in range(rounds):
        gc.collect()
        for a in PRESETS:
            for b in PRESETS:
                for seed in range(seeds):
                    order = names if (seed + r) % 2 == 0 else names[::-1]
                    for name in order:
                        with BACKENDS[name]():
                            run = one_run(a, b, seed, fingerprint=r == 0)
                        results[name].setdefault((a.name, b.name, seed), []).append(run)
    return results


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of non-empty `values`."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Summary:
    """One scheduler's figures over the whole grid."""

    events: int
    grid_best: float
    grid_rounds: list[float]
    build: float
    per_run: list[float]
    worst_sample: float

    @classmethod
    def of(cls, runs: dict[Key, list[Run]]) -> "Summary":
        """Grid time per round (sum of that round's runs); per-run time = best over rounds."""
        rounds = len(next(iter(runs.values())))
        grid_rounds = [sum(rs[i].total for rs in runs.values()) for i in range(rounds)]
        best = min(range(rounds), key=grid_rounds.__getitem__)
        return cls(events=sum(rs[0].events for rs in runs.values()),
                   grid_best=grid_rounds[best], grid_rounds=grid_rounds,
                   build=sum(rs[best].build for rs in runs.values()),
                   per_run=[min(r.total for r in rs) for rs in runs.values()],
                   worst_sample=max(r.total for rs in runs.values() for r in rs))

    @property
    def rate(self) -> float:
        """Events per second over the whole grid (building scenarios included)."""
        return self.events / self.grid_best

    @property
    def run_rate(self) -> float:
        """Events per second while running (scenario building left out)."""
        return self.events / (self.grid_best - self.build)


def mismatches(results: dict[str, dict[Key, list[Run]]]) -> list[str]:
    """Runs where SimPy and ours differ in outcome, event count or trace."""
    ours, simpy_runs = results["ours"], results["SimPy"]
    out = []
    for key, runs in ours.items():
        x, y = runs[0], simpy_runs[key][0]
        same = (x.connected, x.time_to_connect, x.events, x.fingerprint) == (
            y.connected, y.time_to_connect, y.events, y.fingerprint)
        if not same:
            out.append(f"{key}: ours {x} / SimPy {y}")
    return out


def engine_rate(make: Callable[[], Any], n: int) -> float:
    """Events/s of one engine alone: chains of no-op callbacks, one extra call in eight cancelled."""
    sched = make()
    remaining = [n]

    def tick() -> None:
        remaining[0] -= 1
        if remaining[0] > 0:
            sched.call_later(0.001, tick)
            if remaining[0] % 8 == 0:
                sched.call_later(0.0005, tick).cancel()

    for k in range(4):  # four interleaved chains, so the heap is never trivially small
        sched.call_at(k * 0.00025, tick)
    start = time.perf_counter()
    count = sched.run()
    return count / (time.perf_counter() - start)


def engine_only(n: int = 100_000, repeats: int = 5) -> dict[str, float]:
    """Best of `repeats` (the two engines alternating) for each engine, without the model."""
    makers: dict[str, Callable[[], Any]] = {"ours": Scheduler, "SimPy": SimPyScheduler}
    best = {name: 0.0 for name in makers}
    for _ in range(repeats):
        for name, make in makers.items():
            best[name] = max(best[name], engine_rate(make, n))
    return best


def print_report(results: dict[str, dict[Key, list[Run]]], seeds: int, rounds: int) -> bool:
    """Print every table; True if the schedulers agree on every run."""
    summaries = {name: Summary.of(runs) for name, runs in results.items()}
    runs_per = len(PRESETS) ** 2 * seeds
    print(f"Simulator benchmark: {len(PRESETS)}x{len(PRESETS)} NAT grid (simulator.PRESETS) x "
          f"{seeds} seeds = {runs_per} two-peer runs per scheduler, {rounds} round(s), the two "
          "schedulers interleaved run by run.\n")
    print_speed(summaries)
    print_runs(summaries)
    bad = mismatches(results)
    print(f"\nIdentical on both schedulers (connected, time to connect, events run, whole trace): "
          f"{runs_per - len(bad)}/{runs_per} runs")
    for line in bad[:10]:
        print("  DIFFERS", line)
    print_cells(results, seeds)
    print_engine()
    return not bad


def print_speed(summaries: dict[str, Summary]) -> None:
    """Events/s table and the verdict."""
    print(f"{'scheduler':<10}{'events':>10}{'grid s (best)':>15}{'rounds s':>22}"
          f"{'events/s':>11}{'ev/s running':>14}")
    for name, s in summaries.items():
        rounds = " ".join(f"{t:.2f}" for t in s.grid_rounds)
        print(f"{name:<10}{s.events:>10}{s.grid_best:>15.2f}{rounds:>22}{s.rate:>11,.0f}"
              f"{s.run_rate:>14,.0f}")
    ratio = summaries["ours"].rate / summaries["SimPy"].rate
    verdict = "yes" if ratio >= 1.0 else "NO"
    print(f"ours / SimPy events/s: {ratio:.2f}x -> at least as fast as SimPy: {verdict}")


def print_runs(summaries: dict[str, Summary]) -> None:
    """Per-run time distribution (build + run + outcome) against the interactive budget."""
    print("\nPer two-peer run, ms (best of rounds; build + run + outcome):")
    print(f"{'scheduler':<10}{'median':>9}{'p90':>9}{'max':>9}{'worst sample':>14}"
          f"{'runs over ' + format(INTERACTIVE_BUDGET * 1e3, '.0f') + ' ms':>18}")
    for name, s in summaries.items():
        over = sum(t > INTERACTIVE_BUDGET for t in s.per_run)
        print(f"{name:<10}{statistics.median(s.per_run) * 1e3:>9.1f}"
              f"{percentile(s.per_run, 90) * 1e3:>9.1f}{max(s.per_run) * 1e3:>9.1f}"
              f"{s.worst_sample * 1e3:>14.1f}{over:>18}")


def print_cells(results: dict[str, dict[Key, list[Run]]], seeds: int) -> None:
    """Connected seeds per cell and each cell's median run time (ours), rows A, columns B."""
    ours = results["ours"]
    names = [p.name for p in PRESETS]
    short = {n: n.replace("PORT_RESTRICTED_CONE", "PORT_RESTR").replace("LINUX_MASQUERADE",
             "LINUX_MASQ").replace("RESTRICTED_CONE", "RESTRICTED") for n in names}
    print(f"\nPer cell (ours): connected seeds of {seeds} / median ms per run; "
          "rows = peer A's NAT, columns = peer B's")
    print(f"{'':<11}" + "".join(f"{short[b]:>15}" for b in names))
    for a in names:
        cells = []
        for b in names:
            runs = [ours[(a, b, s)] for s in range(seeds)]
            connected = sum(rs[0].connected for rs in runs)
            ms = statistics.median(min(r.total for r in rs) for rs in runs) * 1e3
            cells.append(f"{f'{connected}/{seeds} {ms:.1f}':>15}")
        print(f"{short[a]:<11}" + "".join(cells))


def print_engine() -> None:
    """The engines without the model: what the scheduler itself costs."""
    rates = engine_only()
    print("\nEngine alone, best of 5 (no-op callbacks, 1 in 8 cancelled): "
          + ", ".join(f"{name} {rate:,.0f} events/s" for name, rate in rates.items())
          + f" ({rates['ours'] / rates['SimPy']:.2f}x)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the grid on both schedulers and print the report; 1 if they ever disagree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per grid cell (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (default 2)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.rounds < 1:
        parser.error("--seeds and --rounds must be at least 1")
    started = time.perf_counter()
    results = run_grid(args.seeds, args.rounds)
    agree = print_report(results, args.seeds, args.rounds)
    print(f"\n(benchmark took {time.perf_counter() - started:.0f} s)")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
