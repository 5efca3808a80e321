"""How long the course takes to run: every notebook under nbmake, as `make test` runs them.

Rule: print figures, assert nothing about speed. The notebooks run in one pytest process with
nbmake (`--nbmake --nbmake-timeout=120`, the Makefile's options), one after the other; each
notebook's seconds are pytest's own timing of its test (kernel start, every cell, shutdown),
read from a JUnit XML report. The total is the sum of those, and the wall-clock time of the
whole run (pytest and nbmake start-up included) is printed beside it. A notebook that fails is
reported and makes the exit code 1; nothing is written into the notebooks.

    python benchmarks/bench_course.py [--only WORD...] [--lessons-only] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NBMAKE_TIMEOUT = 120
"""Seconds a cell may take (the Makefile's `--nbmake-timeout`)."""


@dataclass(frozen=True)
class Timing:
    """One notebook's run under nbmake."""

    notebook: str
    """Its path from the repository root."""
    seconds: float
    outcome: str
    """"passed", "failed", "error" or "skipped"."""


def notebooks(only: list[str] | None = None, lessons_only: bool = False) -> list[Path]:
    """The lessons, then their solutions (the suite's order), filtered by words in the name."""
    found = sorted(NOTEBOOKS.glob("*.ipynb"))
    if not lessons_only:
        found += sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))
    return [p for p in found if not only or any(word in p.name for word in only)]


def run_nbmake(paths: list[Path], report: Path) -> int:
    """Run the notebooks under nbmake in one pytest process; its exit code."""
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake",
            f"--nbmake-timeout={NBMAKE_TIMEOUT}", f"--junitxml={report}", *map(str, paths)]
    return subprocess.call(argv, cwd=ROOT, stdout=subprocess.DEVNULL)


def read_report(report: Path, paths: list[Path]) -> list[Timing]:
    """Per notebook: pytest's seconds and outcome, in the order the notebooks were given."""
    by_name = {p.name: p for p in paths}
    timings: dict[str, Timing] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        name = case.get("name", "")
        outcome = next((kind for kind in ("failure", "error", "skipped") if case.find(kind) is not None), "passed")
        path = by_name.get(name)
        where = str(path.relative_to(ROOT)) if path is not None else name
        timings[name] = Timing(where, float(case.get("time", "0")), outcome.replace("failure", "failed"))
    missing = [Timing(str(p.relative_to(ROOT)), 0.0, "not run") for p in paths if p.name not in timings]
    return [timings[p.name] for p in paths if p.name in timings] + missing


def print_table(timings: list[Timing], wall: float) -> None:
    """One line per notebook, then the totals."""
    width = max((len(t.notebook) for t in timings), default=10)
    for t in timings:
        flag = "" if t.outcome == "passed" else f"  {t.outcome.upper()}"
        print(f"{t.notebook:<{width}}  {t.seconds:7.2f} s{flag}")
    total = sum(t.seconds for t in timings)
    print(f"{'total (sum of notebooks)':<{width}}  {total:7.2f} s")
    print(f"{'wall clock (pytest, nbmake included)':<{width}}  {wall:7.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="WORD", help="only the notebooks whose name contains a word")
    parser.add_argument("--lessons-only", action="store_true", help="skip the solution notebooks")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    paths = notebooks(args.only, args.lessons_only)
    if not paths:
        print("no notebook matches", file=sys.stderr)
        return 2
    print(f"{len(paths)} notebooks under nbmake (cell timeout {NBMAKE_TIMEOUT} s), one pytest process", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "nbmake.xml"
        start = time.monotonic()
        code = run_nbmake(paths, report)
        wall = time.monotonic() - start
        if not report.exists():
            print(f"pytest wrote no report (exit {code}): is nbmake installed?", file=sys.stderr)
            return 1
        timings = read_report(report, paths)
    print_table(timings, wall)
    if args.json:
        args.json.write_text(json.dumps({"wall_seconds": round(wall, 3),
                                         "notebooks": [asdict(t) for t in timings]}, indent=2) + "\n")
    failed = [t.notebook for t in timings if t.outcome not in ("passed", "skipped")]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or code not in (0, 5) else 0


if __name__ == "__main__":
    raise SystemExit(main())
