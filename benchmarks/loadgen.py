"""The server benchmark's load generator: compiles `loadgen.c` on the fly and runs it.

Rule: the generator must not be the bottleneck, so it is C (sendmmsg/recvmmsg, 64 datagrams per
system call) pinned to its own core; this module only builds it into a temporary directory,
starts it and parses its JSON lines. Run alone: `python benchmarks/loadgen.py HOST PORT MODE ...`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SOURCE = Path(__file__).with_name("loadgen.c")


class BuildError(RuntimeError):
    """gcc is missing or the source did not compile."""


def build(directory: str | Path) -> Path:
    """Compile loadgen.c into `directory` and return the binary's path."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise BuildError("the load generator needs a C compiler: install gcc (apt-get install gcc)")
    binary = Path(directory) / "loadgen"
    proc = subprocess.run(
        [compiler, "-O2", "-Wall", "-o", str(binary), str(SOURCE)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise BuildError(f"gcc failed on {SOURCE}:\n{proc.stderr}")
    return binary


def pinned(cpu: int | None) -> Callable[[], None] | None:
    """A preexec_fn that pins the child to one CPU (None: no pinning)."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@dataclass(frozen=True)
class LoadResult:
    """What the generator counted; `replies` are answers told apart from keep-alives."""

    mode: str
    sessions: int
    window: int
    setup_seconds: float
    unregistered: int
    seconds: float
    sent: int
    send_refused: int
    replies: int
    empty: int
    """Datagrams that were not answers: the server's keep-alives."""
    stalls: int
    """Times nothing came back for 20 ms and the window was reopened."""
    lost: int
    per_second: tuple[int, ...]
    """Answers in each whole second of the measured phase."""

    @property
    def rate(self) -> float:
        """Answers per second over the measured phase."""
        return self.replies / self.seconds if self.seconds > 0 else 0.0


def run(
    binary: Path,
    host: str,
    port: int,
    mode: str,
    sessions: int,
    window: int,
    seconds: float,
    *,
    cpu: int | None = None,
    on_setup: Callable[[dict], None] | None = None,
) -> LoadResult:
    """Run the generator to completion; `on_setup` is called when its set-up phase ends."""
    args = [str(binary), host, str(port), mode, str(sessions), str(window), str(seconds)]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True, preexec_fn=pinned(cpu)) as proc:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            record = json.loads(line)
            if "mode" not in record and on_setup is not None:
                on_setup(record)
            lines.append(record)
        if proc.wait() != 0:
            raise RuntimeError(f"loadgen exited with code {proc.returncode}")
    final = lines[-1]
    return LoadResult(**(final | {"per_second": tuple(final["per_second"])}))


def main(argv: list[str] | None = None) -> int:
    """Build and run once, printing the generator's JSON result."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 6:
        print("usage: loadgen.py HOST PORT poll|fresh|echo SESSIONS WINDOW SECONDS", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="holepunch-loadgen-") as tmp:
        host, port, mode, sessions, window, seconds = argv
        result = run(build(tmp), host, int(port), mode, int(sessions), int(window), float(seconds))
    print(json.dumps(vars(result) | {"rate": round(result.rate)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
