"""The real NAT x NAT grid: the real client punching through real NATs, every ordered pair of types.

Rule: only what the real programs report counts. Per pair a lab is built (sites A and B), the
real server runs on "server", and per trial two real `python -m holepunch connect ... --json`
clients run at once in A and B. Before any punching a negative control must pass: a stranger's
datagram (or TCP connect) to a NATed host's public address is dropped, and reaches a public
host (so the control can fail). Conntrack and the NAT maps are flushed before every trial (old
entries would decide it), and every trial is captured (capture.py) to measure who punched first.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .capture import Capture, Frame, in_namespace
from .errors import LabError
from .nft import NAT_TYPES, nat_type
from .results import (
    CONNECT_TIMEOUT,
    CONTROL_WAIT,
    START_GAP,
    TRANSPORTS,
    Control,
    RealCell,
    RealGrid,
    Trial,
)
from .topology import Lab

__all__ = [  # the result records and constants of results.py are re-exported: they are the grid's
    "CONNECT_TIMEOUT", "CONTROL_WAIT", "SERVER_PORT", "START_GAP", "TRANSPORTS", "Control", "RealCell",
    "RealGrid", "Trial", "client_argv", "host_ip", "host_nat", "negative_control", "punch_skew", "punches",
    "real_grid", "run_hairpin", "run_pair", "run_trial", "start_server", "technique_text",
]

SERVER_PORT = 5000


# --- the server and the clients ---------------------------------------------------------------------

def start_server(lab: Lab, transport: str) -> subprocess.Popen[str]:
    """The real rendezvous server on "server", serving `transport` on SERVER_PORT; returns once
    it listens."""
    only = "--udp-only" if transport == "udp" else "--tcp-only"
    log = tempfile.TemporaryFile("w+")  # its join log, unread unless it fails (a pipe would fill)
    proc = lab.popen("server", [sys.executable, "-m", "holepunch", "server", "--host", lab.server_ip,
                                "--port", str(SERVER_PORT), only],
                     stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    if "listening" not in proc.stdout.readline():
        proc.kill()
        proc.wait()
        log.seek(0)
        raise LabError(f"the rendezvous server did not start: {log.read().strip()}")
    return proc


def client_argv(lab: Lab, session: str, transport: str, timeout: float,
                techniques: Sequence[str] = ()) -> list[str]:
    """`python -m holepunch connect SERVER SESSION --peers 1 --json --timeout T [--tcp]
    [--technique NAME ...]`."""
    argv = [sys.executable, "-m", "holepunch", "connect", f"{lab.server_ip}:{SERVER_PORT}", session,
            "--peers", "1", "--json", "--timeout", str(timeout)]
    argv += ["--tcp"] if transport == "tcp" else []
    for name in techniques:
        argv += ["--technique", name]
    return argv


def technique_text(techniques: Sequence[str]) -> str:
    """"basic", or the techniques added to it ("+peer-reflexive+prediction")."""
    return "".join(f"+{t}" for t in techniques) or "basic"


def _report(proc: subprocess.Popen[str], limit: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": f"still running after {limit:g} s"}
    if proc.returncode == 2:  # bad arguments: not an outcome, a mistake
        raise LabError(f"holepunch connect rejected its arguments: {err.strip()}")
    try:
        return dict(json.loads(out))
    except ValueError:
        return {"error": (err.strip().splitlines() or ["no output"])[-1]}


def run_trial(lab: Lab, transport: str, session: str, *, hosts: tuple[str, str] = ("A", "B"),
              timeout: float | None = None, techniques: Sequence[str] = (),
              keep_trace: bool = False) -> Trial:
    """Flush the NATs, then run the clients of `hosts` (the second START_GAP later) under capture."""
    timeout = timeout or CONNECT_TIMEOUT[transport]
    lab.flush()
    began = time.monotonic()
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    argv = client_argv(lab, session, transport, timeout, techniques)
    with Capture(lab) as capture:
        first = lab.popen(hosts[0], argv, **pipes)
        time.sleep(START_GAP)
        second = lab.popen(hosts[1], argv, **pipes)
        reports = (_report(first, timeout + 30), _report(second, timeout + 30))
    frames = capture.frames
    trace = capture.trace(since=frames[0].time) if keep_trace and frames else None
    site = hosts[0].partition(":")[0]
    shared = site == hosts[1].partition(":")[0]
    return Trial(host_nat(lab, hosts[0]), host_nat(lab, hosts[1]), transport, reports,
                 punch_skew(frames, lab, transport, hosts), time.monotonic() - began, trace,
                 tuple(techniques), shared, lab.site(site).hairpin)


def host_nat(lab: Lab, host: str) -> str:
    """The NAT type name of a host's site."""
    return lab.sites[host.partition(":")[0]]


def host_ip(lab: Lab, host: str) -> str:
    """The address of a host ("A", "A:1") on its own interface."""
    site, _, index = host.partition(":")
    return lab.host_ip(site, int(index or 0))


def punch_skew(frames: Sequence[Frame], lab: Lab, transport: str,
               hosts: tuple[str, str] = ("A", "B")) -> float | None:
    """The first host's punch time minus the second's, for the punches that decide a race.
    UDP: the first ones (an early punch leaves a NAT entry that later punches cannot undo).
    TCP: the closest pair of SYNs, since an RST clears both NATs' sessions and every retry is a
    new race."""
    first, second = hosts
    times = [[f.time for f in punches(frames, host_ip(lab, me), lab.public_ip(other.partition(":")[0]))]
             for me, other in ((first, second), (second, first))]
    if not times[0] or not times[1]:
        return None
    if transport == "udp":
        return times[0][0] - times[1][0]
    return min((x - y for x in times[0] for y in times[1]), key=abs)


def punches(frames: Sequence[Frame], host_ip: str, to_ip: str) -> list[Frame]:
    """The datagrams (or TCP SYNs) the host `host_ip` sent to `to_ip`, where they left the host:
    on its NAT's LAN side, or on the host's own interface for a public host."""
    return [f for f in frames
            if f.source.host == host_ip and f.destination.host == to_ip
            and (f.point.side == "lan" and not f.outgoing or f.point.side == "host" and f.outgoing)
            and (f.proto == 17 or f.proto == 6 and f.flags & 18 == 2)]


# --- the negative control ---------------------------------------------------------------------------

def negative_control(lab: Lab, transport: str,
                     pairs: Sequence[tuple[str, str]] = (("A", "B"), ("B", "A"))) -> list[Control]:
    """For each (target, sender): the sender sends, unsolicited, to the target's public address
    (a fresh port, no mapping): it must be dropped unless the target has no NAT. Then every NAT
    is flushed."""
    check = _udp_reaches if transport == "udp" else _tcp_reaches
    controls = [Control(target, sender, transport, check(lab, target, sender),
                        not nat_type(host_nat(lab, target)).translates)
                for target, sender in pairs]
    lab.flush()
    return controls


def _socket_on(lab: Lab, host: str, kind: int) -> socket.socket:
    return in_namespace(lab.namespace(host), lambda: socket.socket(socket.AF_INET, kind))


def _public(lab: Lab, host: str) -> str:
    return lab.public_ip(host.partition(":")[0])


def _udp_reaches(lab: Lab, target: str, sender: str) -> bool:
    with _socket_on(lab, target, socket.SOCK_DGRAM) as inside, \
            _socket_on(lab, sender, socket.SOCK_DGRAM) as stranger:
        inside.bind((host_ip(lab, target), 0))
        inside.settimeout(CONTROL_WAIT)
        public = (_public(lab, target), inside.getsockname()[1])
        for _ in range(3):
            stranger.sendto(b"unsolicited", public)
        try:
            return inside.recvfrom(64)[0] == b"unsolicited"
        except OSError:  # TimeoutError is an OSError
            return False


def _tcp_reaches(lab: Lab, target: str, sender: str) -> bool:
    with _socket_on(lab, target, socket.SOCK_STREAM) as listener, \
            _socket_on(lab, sender, socket.SOCK_STREAM) as stranger:
        listener.bind((host_ip(lab, target), 0))
        listener.listen(1)
        stranger.settimeout(CONTROL_WAIT)
        try:
            stranger.connect((_public(lab, target), listener.getsockname()[1]))
        except OSError:  # timed out (dropped) or refused (the NAT box answered RST)
            return False
        return True


# --- pairs and grids --------------------------------------------------------------------------------

def run_pair(a: str, b: str, transport: str, *, trials: int = 1, techniques: Sequence[str] = (),
             timeout: float | None = None, prefix: str = "hpg", keep_traces: bool = False,
             lab_options: Mapping[str, Any] | None = None,
             retry: Callable[[Trial], bool] | None = None) -> RealCell:
    """Build a lab with A and B behind NATs of types `a` and `b`, check the negative control,
    run `trials` trials. `retry(trial)` True re-runs that trial (at most twice more)."""
    with Lab({"A": a, "B": b}, prefix=prefix, server_alt=False, **dict(lab_options or {})) as lab:
        return _trials(lab, transport, ("A", "B"), (("A", "B"), ("B", "A")), trials=trials,
                       techniques=techniques, timeout=timeout, keep_traces=keep_traces, retry=retry)


def run_hairpin(kind: str, transport: str = "udp", *, hairpin: bool = True, trials: int = 1,
                timeout: float | None = None, prefix: str = "hpg", keep_traces: bool = False) -> RealCell:
    """Two hosts behind one NAT of type `kind` (hairpinning on or off) punch to each other's
    public endpoint; the negative control sends from the server to each of them."""
    with Lab({"A": kind}, hosts_per_site=2, hairpin=hairpin, prefix=prefix, server_alt=False) as lab:
        return _trials(lab, transport, ("A", "A:1"), (("A", "server"), ("A:1", "server")),
                       trials=trials, timeout=timeout, keep_traces=keep_traces)


def _trials(lab: Lab, transport: str, hosts: tuple[str, str], controls: Sequence[tuple[str, str]], *,
            trials: int, techniques: Sequence[str] = (), timeout: float | None = None,
            keep_traces: bool = False, retry: Callable[[Trial], bool] | None = None) -> RealCell:
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be 'udp' or 'tcp', got {transport!r}")
    start_server(lab, transport)
    checked = negative_control(lab, transport, controls)
    done: list[Trial] = []
    reruns = 0
    for i in range(trials):
        for attempt in range(3):
            trial = run_trial(lab, transport, f"grid-{i}-{attempt}", hosts=hosts, timeout=timeout,
                              techniques=techniques, keep_trace=keep_traces)
            if retry is None or attempt == 2 or not retry(trial):
                break
            reruns += 1
        done.append(trial)
    return RealCell(host_nat(lab, hosts[0]), host_nat(lab, hosts[1]), transport, tuple(done),
                    tuple(checked), reruns)


def real_grid(types: Sequence[str] = tuple(NAT_TYPES), transport: str = "udp", *, trials: int = 1,
              techniques: Sequence[str] = (), workers: int = 4, prefix: str = "hpg",
              timeout: float | None = None, lab_options: Mapping[str, Any] | None = None,
              retry: Callable[[Trial], bool] | None = None,
              progress: Callable[[RealCell], None] | None = None) -> RealGrid:
    """Every ordered pair of `types`, one lab per pair, `workers` labs at a time."""
    names = tuple(nat_type(t).name for t in types)
    began = time.monotonic()
    pairs = [(a, b) for a in names for b in names]

    def one(pair: tuple[str, str]) -> RealCell:
        cell = run_pair(*pair, transport, trials=trials, techniques=techniques, timeout=timeout,
                        prefix=prefix, lab_options=lab_options, retry=retry)
        if progress is not None:
            progress(cell)
        return cell

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        cells = dict(zip(pairs, pool.map(one, pairs)))
    return RealGrid(transport, technique_text(techniques), names, cells, time.monotonic() - began)
