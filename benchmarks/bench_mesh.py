"""Time to full mesh on loopback: from the last registration to every pair connected.

Rule: print figures, assert nothing. The clock starts when the server takes in the last new
member (the `now` of the registration that made its `PeerJoined`: that same moment it answers
and pushes the newcomer to the others) and stops at the latest `connected_at` over every peer's
view of every other peer, so every pair has proven datagrams flow both ways. Both clocks are
`loop.time()`, i.e. CLOCK_MONOTONIC, which all processes on the machine share.

Two set-ups: all peers in this process on one event loop (`in-process`), or each peer in its own
Python process (`processes`, closer to real use). And two protocols: our client with the
extension (the server pushes newcomers), and `plain`, our client speaking only the reference's
protocol (it learns of newcomers by polling every 100 ms, as reference clients do).

    python benchmarks/bench_mesh.py [--repeat 10] [--sizes 2 3 4 16 64] [--process-sizes 2 3 4 16 64]
                                    [--protocols extension plain] [--json FILE]

To measure an older client, put its `holepunch/` package first on `PYTHONPATH` (peer processes
inherit it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from holepunch.aio.client import Mesh, connect
from holepunch.aio.server import Server, serve
from holepunch.protocol.client import PeerClient
from holepunch.protocol.config import ClientConfig
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.events import ConnectCompleted
from holepunch.protocol.server import RendezvousServer

HOST = "127.0.0.1"
TIMEOUT = 20.0


def client_config(plain: bool) -> ClientConfig:
    """The default client, or one that speaks only the reference's plain protocol."""
    return ClientConfig(extension=not plain)


@dataclass(frozen=True)
class Trial:
    """One run: milliseconds from the last registration to the last pair connected."""

    peers: int
    ms: float
    complete: bool


class JoinClock:
    """When the server took in each new member: the `now` of every registration that added one.

    It wraps the server machine's `receive_datagram` rather than tracing the server: the trace
    describes every reply and push it sends (decoding them again), CPU that in one process the
    peers would lack, which is no part of a mesh's cost (servers do not trace by default).
    """

    def __init__(self, server: Server) -> None:
        machine, inner = server.machine, server.machine.receive_datagram
        self.joins: list[float] = []

        def receive(data: bytes, source: Endpoint, now: float) -> None:
            joined = machine.stats.joined
            inner(data, source, now)
            if machine.stats.joined != joined:
                self.joins.append(now)

        machine.receive_datagram = receive  # type: ignore[method-assign]  # the driver reads it per batch

    def last(self) -> float:
        """When the server took in its last new member."""
        return max(self.joins)


def last_connected(mesh: Mesh) -> float | None:
    """When this peer confirmed its last peer; None if some peer never connected."""
    times = [peer.connected_at for peer in mesh.machine.peers.values()]
    return None if not times or None in times else max(times)  # type: ignore[type-var]


# --- in one process ----------------------------------------------------------------------------


async def trial_in_process(peers: int, plain: bool, session: str) -> Trial:
    """All peers on this event loop."""
    server = await serve(HOST, 0)
    clock = JoinClock(server)
    try:
        cfg = client_config(plain)
        openings = [connect(server.address, session, peers - 1, timeout=TIMEOUT, config=cfg, bind=(HOST, 0))
                    for _ in range(peers)]
        meshes = list(await asyncio.gather(*openings))
        try:
            ends = [last_connected(mesh) for mesh in meshes]
            complete = all(mesh.complete for mesh in meshes) and None not in ends
            ms = (max(e for e in ends if e is not None) - clock.last()) * 1000
        finally:
            await asyncio.gather(*(mesh.close() for mesh in meshes))
    finally:
        await server.close()
    return Trial(peers, ms, complete)


# --- one process per peer ----------------------------------------------------------------------


async def peer_child(server: str, session: str, peers: int, plain: bool) -> int:
    """A peer process: connect, print when its last peer connected (monotonic clock) as JSON,
    then hold the mesh open until stdin closes, as a real peer would use it: a peer that exited
    at once would spend its interpreter's teardown on the CPUs the others still punch on."""
    mesh = await connect(server, session, peers, timeout=TIMEOUT, config=client_config(plain), bind=(HOST, 0))
    try:
        print(json.dumps({"complete": mesh.complete, "last_connected": last_connected(mesh)}), flush=True)
        loop = asyncio.get_running_loop()
        closed = loop.create_future()
        loop.add_reader(sys.stdin.fileno(), lambda: closed.done() or closed.set_result(None))
        await closed
    finally:
        await mesh.close()
    return 0


async def _report(proc: asyncio.subprocess.Process) -> dict:  # type: ignore[type-arg]
    """A peer process's one-line report, or {} if it ended without one."""
    assert proc.stdout is not None
    return json.loads((await proc.stdout.readline()).decode() or "{}")  # type: ignore[no-any-return]


async def trial_processes(peers: int, plain: bool, session: str) -> Trial:
    """Each peer a separate Python process; the server stays in this one."""
    server: Server = await serve(HOST, 0)
    clock = JoinClock(server)
    try:
        args = [sys.executable, str(Path(__file__).resolve()), "--peer", str(server.address), session,
                str(peers - 1)] + (["--plain"] if plain else [])
        procs = [await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                      stdout=asyncio.subprocess.PIPE) for _ in range(peers)]
        reports = await asyncio.gather(*(_report(proc) for proc in procs))
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()  # the peers leave
        await asyncio.gather(*(proc.wait() for proc in procs))
        ends = [r.get("last_connected") for r in reports]
        complete = all(r.get("complete") for r in reports) and None not in ends
        ms = (max(e for e in ends if e is not None) - clock.last()) * 1000 if any(ends) else float("nan")
    finally:
        await server.close()
    return Trial(peers, ms, complete)


# --- the machines alone, in memory -------------------------------------------------------------


async def trial_in_memory(peers: int, plain: bool, session: str) -> Trial:
    """The server and the clients with no sockets and no event loop: the protocol's own CPU time.

    Datagrams go into per-machine queues, delivered first in first out, each machine fed its whole
    queue and then pumped once, as the drivers do per wakeup; the clock stands still, so no timer
    fires (the extension needs none on a lossless link). The time is `perf_counter` from before
    the server's batch with the last join to the last `ConnectCompleted`.
    """
    assert not plain, "the plain protocol waits for polls: timers, which this set-up does not run"
    server_at = Endpoint(HOST, 1)
    machines: dict[Endpoint, RendezvousServer | PeerClient] = {server_at: RendezvousServer()}
    for n in range(peers):
        machines[Endpoint(HOST, 2 + n)] = PeerClient(server_at, session.encode(), peers - 1, client_config(plain))
    inbox: dict[Endpoint, list[tuple[bytes, Endpoint]]] = {at: [] for at in machines}
    ready: deque[Endpoint] = deque()
    done = [0]

    def pump(at: Endpoint, machine: RendezvousServer | PeerClient) -> None:
        while (event := machine.next_event()) is not None:
            done[0] += isinstance(event, ConnectCompleted)
        if isinstance(machine, PeerClient):
            machine.sockets_wanted()
        for transmit in machine.datagrams_to_send(0.0):
            queue = inbox.get(transmit.destination)
            if queue is not None:
                if not queue:
                    ready.append(transmit.destination)
                queue.append((transmit.data, at))
        machine.get_timer()

    for at, machine in machines.items():
        if isinstance(machine, PeerClient):
            machine.start(0.0)
            pump(at, machine)
    server, started = machines[server_at], None
    assert isinstance(server, RendezvousServer)
    while ready and done[0] < peers:
        at = ready.popleft()
        machine, batch = machines[at], inbox[at]
        inbox[at] = []
        before, joined = time.perf_counter(), server.stats.joined
        for data, source in batch:
            machine.receive_datagram(data, source, 0.0)
        if machine is server and joined < peers <= server.stats.joined:
            started = before
        pump(at, machine)
    ms = (time.perf_counter() - started) * 1000 if started is not None else float("nan")
    return Trial(peers, ms, done[0] == peers)


# --- the table -----------------------------------------------------------------------------------


class OthersLoad:
    """The share of the machine's CPU that other processes took between `start` and `stop`.

    The load average would count this benchmark's own peer processes; this takes the busy time
    of all CPUs (/proc/stat) minus our own and our children's CPU time. None off Linux.
    """

    def start(self) -> None:
        self._busy, self._own, self._wall = _busy_seconds(), _own_seconds(), time.monotonic()

    def stop(self) -> float | None:
        busy = _busy_seconds()
        if busy is None or self._busy is None:
            return None
        wall = (time.monotonic() - self._wall) * (os.cpu_count() or 1)
        others = (busy - self._busy) - (_own_seconds() - self._own)
        return min(1.0, max(0.0, others / wall)) if wall > 0 else None


def _busy_seconds() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def summary(trials: list[Trial]) -> str:
    """Median, p90 and worst in ms, and how many trials connected every pair."""
    values = sorted(t.ms for t in trials if t.complete)
    ok = f"{len(values)}/{len(trials)}"
    if not values:
        return f"{'-':>8} {'-':>8} {'-':>8} {ok:>7}"
    p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
    return f"{statistics.median(values):>8.1f} {p90:>8.1f} {values[-1]:>8.1f} {ok:>7}"


async def run(args: argparse.Namespace) -> None:
    print(f"Time to full mesh on loopback ({HOST}), from the last registration to every pair "
          f"connected; {args.repeat} trials each, ms")
    print(f"{'set-up':<12} {'protocol':<10} {'peers':>5} {'median':>8} {'p90':>8} {'worst':>8} {'all ok':>7} "
          f"{'others':>6}")
    rows = [("in-process", n) for n in args.sizes] + [("processes", n) for n in args.process_sizes]
    rows += [("in-memory", n) for n in args.memory_sizes]
    results = []
    for setup, peers in rows:
        for protocol in args.protocols:
            if setup == "in-memory" and protocol == "plain":
                continue  # plain peers learn of newcomers by polling: time, not CPU
            trial = {"in-process": trial_in_process, "processes": trial_processes, "in-memory": trial_in_memory}[setup]
            load = OthersLoad()  # the machine is shared: say how much of it others took meanwhile
            load.start()
            trials = []
            for i in range(args.repeat):
                trials.append(await trial(peers, protocol == "plain", f"bench-{setup}-{peers}-{protocol}-{i}"))
            others = load.stop()
            shown = "-" if others is None else f"{others:.0%}"
            print(f"{setup:<12} {protocol:<10} {peers:>5} {summary(trials)} {shown:>6}", flush=True)
            results.append({"setup": setup, "protocol": protocol, "peers": peers, "others": others,
                            "ms": [t.ms for t in trials], "complete": [t.complete for t in trials]})
    print("extension: our client and server (newcomers pushed); plain: our client speaking only the\n"
          "reference's protocol to our server (newcomers learned by polling every 100 ms);\n"
          "in-memory: the same machines without sockets or event loop (the protocol's CPU alone);\n"
          "others: the share of both CPUs other processes took during the row.")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="*", default=[2, 3, 4, 16, 64])
    parser.add_argument("--process-sizes", type=int, nargs="*", default=[2, 3, 4, 16, 64])
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[2, 3, 4, 16, 64])
    parser.add_argument("--protocols", nargs="+", choices=["extension", "plain"], default=["extension", "plain"])
    parser.add_argument("--json", metavar="FILE", help="also save every trial's figure as JSON")
    parser.add_argument("--peer", nargs=3, metavar=("SERVER", "SESSION", "OTHERS"), help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        server, session, others = args.peer
        return asyncio.run(peer_child(server, session, int(others), args.plain))
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
