"""`holepunch lab ...`: bring a NAT lab up, run commands in it, show it, tear it down; run the real
NAT x NAT grid beside the simulator's (`grid`) and trace one real run beside a simulated one (`trace`).
The simulated side comes from the installed predictor (predictor.py: the simulator registers one),
never from importing the simulator.

Rule: testable (`lab_main(argv) -> int`, never `sys.exit`), results on stdout, errors as one
line on stderr; exit codes 0 ok, 1 failed (including "this machine cannot run a lab"), 2 bad
arguments. A lab outlives `up`: its layout is saved as JSON under /run/holepunch-lab/ (the
namespaces live in the kernel), so `run`, `status` and `down` in later processes find it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from ..protocol.techniques import IMPLEMENTED
from ..trace import Trace
from . import netns
from .errors import LabError
from .grid import TRANSPORTS, RealCell, real_grid, run_pair
from .impair import parse_duration, parse_fraction
from .layout import Layout
from .nft import NAT_TYPES, nat_type
from .predictor import find_predictor
from .topology import STATE_DIR, Lab, cleanup_stale


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _site(text: str) -> tuple[str, str]:
    """--site NAME=TYPE."""
    name, sep, kind = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=TYPE, e.g. A=port-restricted")
    try:
        return name, nat_type(kind).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _typed(parse: Callable[[str], float]) -> Callable[[str], float]:
    """Wrap a ValueError-raising parser for argparse."""
    def convert(text: str) -> float:
        try:
            return float(parse(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert


def build_parser() -> argparse.ArgumentParser:
    """up / run / status / down / types / grid / trace."""
    parser = _Parser(prog="holepunch lab", description="A real NAT lab in network namespaces (root).")
    parser.add_argument("--name", default="default", help="which lab (several may run; default 'default')")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="build a lab and verify its NATs")
    up.add_argument("--site", type=_site, action="append", required=True, metavar="NAME=TYPE",
                    help=f"a site and its NAT type ({', '.join(NAT_TYPES)}); repeat")
    up.add_argument("--hosts-per-site", type=int, default=1, help="hosts behind each NAT (default 1)")
    up.add_argument("--loss", type=_typed(parse_fraction), default=0.0, help="random loss, e.g. 5%%")
    up.add_argument("--delay", type=_typed(parse_duration), default=0.0, help="one-way delay, e.g. 20ms")
    up.add_argument("--jitter", type=_typed(parse_duration), default=0.0, help="delay +/- this, e.g. 5ms")
    up.add_argument("--duplicate", type=_typed(parse_fraction), default=0.0, help="duplicated frames, e.g. 1%%")
    up.add_argument("--reorder", type=_typed(parse_fraction), default=0.0, help="frames overtaking, e.g. 1%%")
    up.add_argument("--mapping-timeout", type=float, help="NAT mapping timeout in seconds")
    up.add_argument("--hairpin", action="store_true", help="NATs loop inside-to-public packets back")
    up.add_argument("--prefix", default="hp", help="namespace name prefix (default hp)")
    up.add_argument("--no-verify", action="store_true", help="skip the NAT probe")
    run = sub.add_parser("run", help="run a command on a host: run A -- ping 198.51.100.1")
    run.add_argument("host", help="server, A (site A's host 0), A:1, A:nat, internet")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    status = sub.add_parser("status", help="show the running lab")
    status.add_argument("--json", action="store_true", help="print the saved layout")
    down = sub.add_parser("down", help="tear the lab down")
    down.add_argument("--all", action="store_true", help="also remove every stale lab of this prefix")
    sub.add_parser("types", help="list the NAT types")
    grid = sub.add_parser("grid", help="the real NAT x NAT grid beside the simulator's, cell by cell")
    grid.add_argument("--types", type=_types, default=tuple(NAT_TYPES), metavar="T1,T2,...",
                      help="NAT types to pair (default: all)")
    grid.add_argument("--trials", type=_count, default=1, help="trials per pair (default 1)")
    grid.add_argument("--workers", type=_count, default=6, help="labs at a time (default 6)")
    grid.add_argument("--prefix", default="hpg", help="namespace name prefix (default hpg)")
    trace = sub.add_parser("trace", help="one real run, captured, beside the simulated run")
    trace.add_argument("a", type=_kind, metavar="A_TYPE", help="site A's NAT type")
    trace.add_argument("b", type=_kind, metavar="B_TYPE", help="site B's NAT type")
    trace.add_argument("--kinds", help="only these message kinds, e.g. syn,ack")
    trace.add_argument("--prefix", default="hpg", help="namespace name prefix (default hpg)")
    for cmd in (grid, trace):
        cmd.add_argument("--transport", choices=TRANSPORTS, default="udp", help="udp (default) or tcp")
        cmd.add_argument("--technique", action="append", default=[], metavar="NAME",
                         help="basic (default), or a UDP technique to add (repeatable): "
                              + ", ".join(sorted(t.value for t in IMPLEMENTED)))
        cmd.add_argument("--delay", type=_typed(parse_duration), default=0.0, help="one-way delay, e.g. 20ms")
        cmd.add_argument("--jitter", type=_typed(parse_duration), default=0.0, help="delay +/- this")
        cmd.add_argument("--loss", type=_typed(parse_fraction), default=0.0, help="random loss, e.g. 10%%")
        cmd.add_argument("--timeout", type=float, help="seconds each client punches (default 5 UDP, 6 TCP)")
    return parser


def _types(text: str) -> tuple[str, ...]:
    """--types port-restricted,symmetric."""
    return tuple(_kind(word) for word in text.split(",") if word.strip())


def _kind(text: str) -> str:
    try:
        return nat_type(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, 1 or more")
    return int(text)


def _techniques(args: argparse.Namespace) -> tuple[str, ...]:
    """The --technique names beyond "basic"; ValueError for unknown ones or TCP."""
    chosen = tuple(dict.fromkeys(t for t in args.technique if t != "basic"))
    known = {t.value for t in IMPLEMENTED}
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise ValueError(f"unknown technique {', '.join(unknown)}; choose basic or {', '.join(sorted(known))}")
    if chosen and args.transport == "tcp":
        raise ValueError("techniques apply to UDP only; drop --transport tcp or the techniques")
    return chosen


def lab_main(argv: Sequence[str] | None = None) -> int:
    """Run `holepunch lab ...`; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return _COMMANDS[args.command](args)
    except LabError as exc:
        print(f"holepunch lab: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # bad values argparse could not see (site names, counts)
        print(f"holepunch lab: error: {exc}", file=sys.stderr)
        return 2


def _state_file(args: argparse.Namespace) -> Path:
    return Path(args.state_dir) / f"{args.name}.json"


def _load(args: argparse.Namespace) -> Layout | None:
    path = _state_file(args)
    return Layout.from_json(path.read_text()) if path.exists() else None


def _alive(layout: Layout) -> bool:
    return set(layout.namespaces()) <= set(netns.list_namespaces())


def _up(args: argparse.Namespace) -> int:
    netns.check_environment()
    old = _load(args)
    if old is not None and _alive(old):
        print(f"holepunch lab: error: lab {args.name!r} is already up; run 'holepunch lab down' "
              "first (or use --name)", file=sys.stderr)
        return 1
    lab = Lab(dict(args.site), hosts_per_site=args.hosts_per_site, prefix=args.prefix,
              mapping_timeout=args.mapping_timeout, loss=args.loss, hairpin=args.hairpin,
              delay=args.delay, jitter=args.jitter, duplicate=args.duplicate, reorder=args.reorder)
    with lab:
        verdicts = {} if args.no_verify else lab.verify()
        layout = lab.detach()
        args.state_dir.mkdir(parents=True, exist_ok=True)
        _state_file(args).write_text(layout.to_json())
    for line in _describe(layout):
        print(line)
    for verdict in verdicts.values():
        print("verified " + verdict.describe())
    print(f"lab {args.name!r} up in {lab.build_seconds:.2f} s; 'holepunch lab run A -- COMMAND', "
          "'holepunch lab down'")
    return 0


def _describe(layout: Layout) -> list[str]:
    lines = [f"server   {layout.server_ip}" + (f" and {layout.server_alt_ip}" if layout.server_alt_ip else "")]
    for site in layout.sites:
        hosts = ", ".join(f"{site.name}{'' if i == 0 else f':{i}'}={ip}" for i, ip in enumerate(site.host_ips))
        lines.append(f"site {site.name:<3} {site.nat:<21} public {site.public_ip:<15} hosts {hosts}")
    extras = {"loss": layout.loss, **layout.impairment}
    shown = ", ".join(f"{k} {v:g}" for k, v in extras.items() if v)
    if shown:
        lines.append(f"internet {shown}")
    return lines


def _run(args: argparse.Namespace) -> int:
    layout = _require(args)
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        print("holepunch lab: error: give a command after --, e.g. run A -- ip addr", file=sys.stderr)
        return 2
    lab = Lab.attach(layout)
    return subprocess.run(lab.argv(args.host, command), check=False).returncode


def _require(args: argparse.Namespace) -> Layout:
    layout = _load(args)
    if layout is None:
        raise LabError(f"no lab {args.name!r} is up; start one with 'holepunch lab up --site A=...'")
    return layout


def _status(args: argparse.Namespace) -> int:
    layout = _require(args)
    if args.json:
        print(layout.to_json())
        return 0
    for line in _describe(layout):
        print(line)
    state = "running" if _alive(layout) else "GONE (namespaces missing; run 'holepunch lab down')"
    print(f"lab {args.name!r} ({layout.lab_id}): {state}")
    return 0


def _down(args: argparse.Namespace) -> int:
    layout = _load(args)
    removed: list[str] = []
    if layout is not None:
        lab = Lab.attach(layout)
        lab.close()
        removed = layout.namespaces()
        _state_file(args).unlink(missing_ok=True)
    if args.all:
        removed += cleanup_stale(layout.prefix if layout else "hp", everything=False)
    if layout is None and not args.all:
        print(f"no lab {args.name!r} is up")
        return 0
    print(f"lab {args.name!r} down ({len(removed)} namespaces removed)")
    return 0


def _types_command(args: argparse.Namespace) -> int:
    for kind in NAT_TYPES.values():
        axes = "no NAT" if not kind.translates else f"{kind.mapping} + {kind.filtering}, {kind.allocation}"
        print(f"{kind.name:<21} {axes:<32} {kind.summary}")
    return 0


def _grid(args: argparse.Namespace) -> int:
    techniques = _techniques(args)
    predictor = find_predictor()  # before building anything: without the simulator, say so at once
    netns.check_environment(("ip", "nft", "sh", "conntrack"))
    lab_options = {"delay": args.delay, "jitter": args.jitter, "loss": args.loss}
    options = {**lab_options, "timeout": args.timeout}

    def progress(cell: RealCell) -> None:
        trials = ", ".join("yes" if t.connected else "no" for t in cell.trials)
        print(f"  {cell.a} x {cell.b}: {trials}", file=sys.stderr, flush=True)

    real = real_grid(args.types, args.transport, trials=args.trials, techniques=techniques,
                     workers=args.workers, prefix=args.prefix, timeout=args.timeout,
                     lab_options=lab_options, retry=lambda trial: predictor.unresolved(trial, **options),
                     progress=progress)
    comparison = predictor.compare(real, **options)
    print(comparison.to_text(), end="")
    return 0 if not comparison.disagreements else 1


def _trace(args: argparse.Namespace) -> int:
    techniques = _techniques(args)
    predictor = find_predictor()
    netns.check_environment(("ip", "nft", "sh", "conntrack"))
    lab_options = {"delay": args.delay, "jitter": args.jitter, "loss": args.loss}
    cell = run_pair(args.a, args.b, args.transport, techniques=techniques, timeout=args.timeout,
                    prefix=args.prefix, keep_traces=True, lab_options=lab_options)
    trial = cell.trials[0]
    predicted = predictor.predict_trial(trial, timeout=args.timeout, **lab_options)
    kinds = set(args.kinds.split(",")) if args.kinds else None
    order = ("who punched first is unknown" if trial.skew is None else
             f"A punched {abs(trial.skew) * 1000:.3f} ms {'after' if trial.skew > 0 else 'before'} B")
    print(f"real run ({args.a} x {args.b}, {args.transport}): "
          f"{'connected' if trial.connected else 'not connected'}; {order}")
    for control in cell.controls:
        print(f"negative control: {control.describe()}")
    print(_text(trial.trace, kinds), end="")
    print(f"simulated, same configuration: {'connected' if predicted.connected else 'not connected'}")
    print(_text(predicted.trace, kinds), end="")
    return 0 if trial.connected == predicted.connected and cell.controls_ok else 1


def _text(trace: Trace | None, kinds: set[str] | None) -> str:
    records = [r for r in (trace or []) if kinds is None or r.kind in kinds]
    return Trace(records).to_text()


_COMMANDS = {"up": _up, "run": _run, "status": _status, "down": _down, "types": _types_command,
             "grid": _grid, "trace": _trace}


if __name__ == "__main__":
    sys.exit(lab_main())
