"""Run every benchmarks/bench_*.py in turn and print their figures (`make bench` calls this).

Rule: benchmarks print figures and never fail on a slow result; this script fails only when a
benchmark itself crashes. Each runs in its own process, so one cannot disturb the next.

    python benchmarks/run_all.py [--only server mesh] [--list]
    python benchmarks/run_all.py --only course     # bench_course.py: every notebook under nbmake
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[Path]:
    """Every bench_*.py beside this script, in name order."""
    return sorted(HERE.glob("bench_*.py"))


def machine() -> str:
    """One line about the machine, so figures are never read without it."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " load average %.2f %.2f %.2f;" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    return (f"{cpus} CPUs ({model}); Python {platform.python_version()}; "
            f"{platform.system()} {platform.release()};{load}")


def run(path: Path) -> int:
    """Run one benchmark with this interpreter; its output goes straight to ours."""
    print(f"\n=== {path.name} ===", flush=True)
    start = time.monotonic()
    code = subprocess.call([sys.executable, str(path)], cwd=HERE.parent)
    print(f"--- {path.name}: {'ok' if code == 0 else f'FAILED (exit {code})'} "
          f"in {time.monotonic() - start:.0f} s", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="WORD", help="run the benchmarks whose name contains a word")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    args = parser.parse_args(argv)
    found = [p for p in benchmarks() if not args.only or any(word in p.stem for word in args.only)]
    if args.list:
        print("\n".join(p.name for p in found))
        return 0
    print(f"Machine: {machine()}")
    failed = [p.name for p in found if run(p) != 0]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"\n{len(found)} benchmark(s) done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
