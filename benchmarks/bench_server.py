"""Rendezvous server throughput and memory on one core, driven by a C load generator on another.

Rule: print figures, assert nothing. The server under test is the real one (`holepunch.aio.serve`
with the default `ServerConfig`, in a subprocess pinned to CPU 0); the load generator
(`loadgen.c`, pinned to CPU 1) keeps a window of requests in flight and counts answers. Three
echo servers with no protocol at all give the ceiling this machine's system calls allow:
C (recvfrom + sendto), Python blocking, and Python with the same asyncio reader as our driver.

    python benchmarks/bench_server.py [--seconds 6] [--window 1024] [--repeat 1] [--only WORD...] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402  (a sibling script, not a package)

SERVER_CPU, LOADGEN_CPU = 0, 1
HOST = "127.0.0.1"


# --- the processes under test (this script re-runs itself with --child KIND) ----------------------


def child_main(kind: str) -> int:
    """Serve on a free port, print "ready PORT", and on stdin EOF print counters as JSON and exit."""
    if kind == "pyecho":
        return _blocking_echo()
    return asyncio.run(_async_child(kind))


def _blocking_echo() -> int:
    """The Python floor: one recvfrom and one sendto per datagram, nothing else."""
    sock = _udp_socket()
    print(f"ready {sock.getsockname()[1]}", flush=True)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:  # killed by the parent: there is nothing to report
        data, addr = recvfrom(65535)
        sendto(data, addr)


async def _async_child(kind: str) -> int:
    loop = asyncio.get_running_loop()
    if kind == "server":
        from holepunch.aio.server import serve

        server = await serve(HOST, 0)
        port, report = server.address.port, lambda: _server_report(server)
    else:
        sock = _udp_socket()
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), _echo_batch, sock)
        port, report = sock.getsockname()[1], lambda: {}
    print(f"ready {port}", flush=True)
    done = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: done.done() or done.set_result(None))
    await done
    print(json.dumps(report()), flush=True)
    return 0


def _echo_batch(sock: socket.socket) -> None:
    """The asyncio floor: what our driver does per wakeup (up to 256 datagrams), minus the protocol."""
    recvfrom, sendto = sock.recvfrom, sock.sendto
    for _ in range(256):
        try:
            data, addr = recvfrom(65535)
        except BlockingIOError:
            return
        sendto(data, addr)


def _server_report(server) -> dict:  # type: ignore[no-untyped-def]
    stats, io = server.stats, server.io_stats
    counters = ("datagrams", "registrations", "replies", "pushes", "keepalives", "joined", "expired")
    report = {name: getattr(stats, name) for name in counters}
    report.update(sessions=server.machine.session_count, members=server.machine.member_count)
    report.update(received=io.received, sent=io.sent, send_errors=io.send_errors)
    report["refused"] = dict(getattr(stats, "refused", {}))  # the guards: must stay empty for polls
    return report


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
    sock.bind((HOST, 0))
    return sock


# --- one measurement ---------------------------------------------------------------------------


@dataclass
class Measurement:
    """One scenario: the generator's counts and the server process's memory, in MB."""

    name: str
    load: loadgen.LoadResult
    rss_start: float
    rss_after_setup: float = 0.0
    rss_end: float = 0.0
    peak: float = 0.0
    cpu_seconds: float = 0.0
    """CPU time the server used during the measured phase: immune to other processes' load."""
    others: float = 0.0
    """Share of CPU 0 that other processes took during the measured phase (0 on a quiet machine)."""
    server: dict = field(default_factory=dict)

    @property
    def answers(self) -> int:
        """Answers counted by the generator (it tells keep-alives apart)."""
        return self.load.replies

    @property
    def rate(self) -> float:
        """Answers per second of wall-clock time."""
        return self.answers / self.load.seconds

    @property
    def best_second(self) -> int:
        """Answers in the best whole second."""
        return max(self.load.per_second, default=0)

    @property
    def per_cpu_second(self) -> float:
        """Answers per second of the server's own CPU time."""
        return self.answers / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of `pid` from /proc, in MB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid` so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_busy(cpu: int) -> tuple[float, float]:
    """(busy, total) seconds of one CPU since boot, from /proc/stat; steal counts as busy."""
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{cpu} "):
                ticks = [int(v) for v in line.split()[1:]]
                idle = ticks[3] + ticks[4]  # idle and iowait
                hz = os.sysconf("SC_CLK_TCK")
                return (sum(ticks[:8]) - idle) / hz, sum(ticks[:8]) / hz
    return 0.0, 0.0


def start_child(command: list[str]) -> tuple[subprocess.Popen, int]:
    """Start a server process pinned to SERVER_CPU and wait for its "ready PORT" line."""
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        preexec_fn=loadgen.pinned(SERVER_CPU),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError(f"{command} did not start: {line!r}")
    return proc, int(line.split()[1])


def stop_child(proc: subprocess.Popen, reports: bool) -> dict:
    """Close its stdin (our servers then print their counters) and collect the report."""
    assert proc.stdin is not None and proc.stdout is not None
    report: dict = {}
    try:
        proc.stdin.close()
        line = proc.stdout.readline() if reports and proc.poll() is None else ""
        report = json.loads(line) if line.strip().startswith("{") else {}
        proc.wait(timeout=5)
    except (subprocess.TimeoutExpired, BrokenPipeError, json.JSONDecodeError):
        pass
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    return report


def measure(name: str, command: list[str], binary: Path, mode: str, sessions: int, window: int,
            seconds: float) -> Measurement:
    """Start the server, load it, read its memory, stop it."""
    proc, port = start_child(command)
    try:
        m = Measurement(name, None, memory_mb(proc.pid)["VmRSS"])  # type: ignore[arg-type]

        busy: list[tuple[float, float]] = []

        def after_setup(_: dict) -> None:
            m.rss_after_setup = memory_mb(proc.pid)["VmRSS"]
            m.cpu_seconds = -cpu_seconds(proc.pid)
            busy.append(cpu_busy(SERVER_CPU))

        m.load = loadgen.run(binary, HOST, port, mode, sessions, window, seconds,
                             cpu=LOADGEN_CPU, on_setup=after_setup)
        m.cpu_seconds += cpu_seconds(proc.pid)
        (busy0, total0), (busy1, total1) = busy[0], cpu_busy(SERVER_CPU)
        if total1 > total0:  # what CPU 0 did besides our server (softirqs for it count as others)
            m.others = max(0.0, (busy1 - busy0 - m.cpu_seconds) / (total1 - total0))
        memory = memory_mb(proc.pid)
        m.rss_end, m.peak = memory["VmRSS"], memory["VmHWM"]
    finally:
        report = stop_child(proc, reports=command[-1] == "server")
    m.server = report
    return m


# --- the table -----------------------------------------------------------------------------------


def scenarios(binary: Path, args: argparse.Namespace) -> list[tuple[str, list[str], str, int]]:
    """(name, server command, loadgen mode, sessions) for every row of the table."""
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    rows = [
        ("echo, C (kernel ceiling)", [str(binary), "--echo-server", str(_free_port())], "echo", 1000),
        ("echo, Python blocking", me + ["pyecho"], "echo", 1000),
        ("echo, Python asyncio reader", me + ["aioecho"], "echo", 1000),
    ]
    for sessions in args.sessions:
        rows.append((f"server, polls, {sessions:,} sessions", me + ["server"], "poll", sessions))
    rows.append(("server, fresh session each", me + ["server"], "fresh", 1))
    if args.only:
        rows = [row for row in rows if any(word in row[0] for word in args.only)]
    return rows


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def print_table(results: list[Measurement]) -> None:
    """One line per scenario; the server's rate also as a share of the bare asyncio echo's."""
    floor = next((r for r in results if "asyncio" in r.name), None)
    print(f"{'scenario':<32} {'answered/s':>10} {'best 1 s':>9} {'per CPU s':>9} {'of echo':>7} "
          f"{'others':>6} {'lost':>6} {'k-alive':>7} {'RSS set':>7} {'RSS end':>7} {'peak':>6} {'sessions':>8}")
    for r in results:
        share = ""
        if floor is not None and floor.per_cpu_second and r.name.startswith("server"):
            share = f"{r.per_cpu_second / floor.per_cpu_second:.0%}"
        keepalives, sessions = r.server.get("keepalives", ""), r.server.get("sessions", "")
        print(f"{r.name:<32} {r.rate:>10,.0f} {r.best_second:>9,} {r.per_cpu_second:>9,.0f} {share:>7} "
              f"{r.others:>6.0%} {r.load.lost:>6} {keepalives!s:>7} {r.rss_after_setup:>7.1f} {r.rss_end:>7.1f} "
              f"{r.peak:>6.1f} {sessions!s:>8}")
        if r.server.get("refused"):
            print(f"    refused by the server's guards: {r.server['refused']}")
    print("answered/s: answers (keep-alives excluded) over the whole measured phase; best 1 s: the best\n"
          "whole second; per CPU s: answers per second of the server process's own CPU time (what\n"
          "other load on the machine cannot lower); of echo: per CPU s relative to the bare asyncio\n"
          "echo; others: share of the server's CPU taken by other processes meanwhile.\n"
          "lost: requests never answered; k-alive: 0-byte keep-alives the server sent.\n"
          "Memory in MB: RSS after the set-up registrations, at the end, and peak (VmHWM).")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=("server", "pyecho", "aioecho"), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per scenario")
    parser.add_argument("--window", type=int, default=1024, help="requests in flight")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--only", nargs="+", help="run the scenarios whose name contains a word")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario; the best is shown")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    if len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than 2 CPUs available; server and load generator share one", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="holepunch-bench-") as tmp:
        binary = loadgen.build(tmp)
        results = []
        for name, command, mode, sessions in scenarios(binary, args):
            runs = []
            for _ in range(args.repeat):
                runs.append(measure(name, command, binary, mode, sessions, args.window, args.seconds))
                r = runs[-1]
                print(f"  {name}: {r.rate:,.0f}/s, {r.per_cpu_second:,.0f} per CPU s, others on CPU "
                      f"{SERVER_CPU} {r.others:.0%}, per second {list(r.load.per_second)}",
                      file=sys.stderr, flush=True)
                time.sleep(0.2)
            results.append(max(runs, key=lambda r: r.rate))
    print(f"Server throughput: server on CPU {SERVER_CPU}, load generator on CPU {LOADGEN_CPU}, "
          f"window {args.window}, {args.seconds:g} s per row" + (f", best of {args.repeat}" if args.repeat > 1 else ""))
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps([_as_dict(r) for r in results], indent=1))
    return 0


def _as_dict(r: Measurement) -> dict:
    return {"name": r.name, "rate": round(r.rate), "per_cpu_second": round(r.per_cpu_second),
            "cpu_seconds": r.cpu_seconds, "others": r.others, "load": vars(r.load), "rss_start": r.rss_start,
            "rss_after_setup": r.rss_after_setup, "rss_end": r.rss_end, "peak": r.peak, "server": r.server}


if __name__ == "__main__":
    raise SystemExit(main())
