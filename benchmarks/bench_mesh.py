"""Time to full mesh on loopback: from the last registration to every pair connected.

Rule: print figures, assert nothing. The clock starts when the server takes in the last peer's
first registration (its `PeerJoined` event in the server's trace: that same moment it answers
and pushes the newcomer to the others) and stops at the latest `connected_at` over every peer's
view of every other peer, so every pair has proven datagrams flow both ways. Both clocks are
`loop.time()`, i.e. CLOCK_MONOTONIC, which all processes on the machine share.

Two set-ups: all peers in this process on one event loop (`in-process`), or each peer in its own
Python process (`processes`, closer to real use; 3 and 16 peers). And two protocols: our client
with the extension (the server pushes newcomers), and `plain`, our client speaking only the
reference's protocol (it learns of newcomers by polling every 100 ms, as reference clients do).

    python benchmarks/bench_mesh.py [--repeat 10] [--sizes 2 3 4 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from holepunch.aio.client import Mesh, connect
from holepunch.aio.server import Server, serve
from holepunch.protocol.config import ClientConfig
from holepunch.trace import Action, Trace

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


def last_join(trace: Trace) -> float:
    """When the server took in its last new member."""
    joins = [r.time for r in trace if r.action is Action.EVENT and r.kind == "PeerJoined"]
    return max(joins)


def last_connected(mesh: Mesh) -> float | None:
    """When this peer confirmed its last peer; None if some peer never connected."""
    times = [peer.connected_at for peer in mesh.machine.peers.values()]
    return None if not times or None in times else max(times)  # type: ignore[type-var]


# --- in one process ----------------------------------------------------------------------------


async def trial_in_process(peers: int, plain: bool, session: str) -> Trial:
    """All peers on this event loop."""
    trace = Trace()
    server = await serve(HOST, 0, trace=trace)
    try:
        cfg = client_config(plain)
        openings = [connect(server.address, session, peers - 1, timeout=TIMEOUT, config=cfg, bind=(HOST, 0))
                    for _ in range(peers)]
        meshes = list(await asyncio.gather(*openings))
        try:
            ends = [last_connected(mesh) for mesh in meshes]
            complete = all(mesh.complete for mesh in meshes) and None not in ends
            ms = (max(e for e in ends if e is not None) - last_join(trace)) * 1000
        finally:
            await asyncio.gather(*(mesh.close() for mesh in meshes))
    finally:
        await server.close()
    return Trial(peers, ms, complete)


# --- one process per peer ----------------------------------------------------------------------


async def peer_child(server: str, session: str, peers: int, plain: bool) -> int:
    """A peer process: connect, print when its last peer connected (monotonic clock) as JSON."""
    mesh = await connect(server, session, peers, timeout=TIMEOUT, config=client_config(plain), bind=(HOST, 0))
    try:
        print(json.dumps({"complete": mesh.complete, "last_connected": last_connected(mesh)}), flush=True)
    finally:
        await mesh.close()
    return 0


async def trial_processes(peers: int, plain: bool, session: str) -> Trial:
    """Each peer a separate Python process; the server stays in this one."""
    trace = Trace()
    server: Server = await serve(HOST, 0, trace=trace)
    try:
        args = [sys.executable, str(Path(__file__).resolve()), "--peer", str(server.address), session,
                str(peers - 1)] + (["--plain"] if plain else [])
        procs = [await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE) for _ in range(peers)]
        outputs = await asyncio.gather(*(proc.communicate() for proc in procs))
        reports = [json.loads(out.decode() or "{}") for out, _ in outputs]
        ends = [r.get("last_connected") for r in reports]
        complete = all(r.get("complete") for r in reports) and None not in ends
        ms = (max(e for e in ends if e is not None) - last_join(trace)) * 1000 if any(ends) else float("nan")
    finally:
        await server.close()
    return Trial(peers, ms, complete)


# --- the table -----------------------------------------------------------------------------------


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
    print(f"{'set-up':<12} {'protocol':<10} {'peers':>5} {'median':>8} {'p90':>8} {'worst':>8} {'all ok':>7}")
    rows = [("in-process", n) for n in args.sizes] + [("processes", n) for n in args.process_sizes]
    for setup, peers in rows:
        for plain in (False, True):
            trial = trial_in_process if setup == "in-process" else trial_processes
            trials = []
            for i in range(args.repeat):
                trials.append(await trial(peers, plain, f"bench-{setup}-{peers}-{plain}-{i}"))
            protocol = "plain" if plain else "extension"
            print(f"{setup:<12} {protocol:<10} {peers:>5} {summary(trials)}", flush=True)
    print("extension: our client and server (newcomers pushed); plain: our client speaking only the\n"
          "reference's protocol to our server (newcomers learned by polling every 100 ms).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 3, 4, 16, 64])
    parser.add_argument("--process-sizes", type=int, nargs="*", default=[3, 16])
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
