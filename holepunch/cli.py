"""The `holepunch` command: server (UDP and TCP), connect, chat, demo and nat-check.

Rule: testable (`main(argv) -> int`, never `sys.exit` inside), results on stdout, logs on stderr,
`-v` counts (INFO, then DEBUG). Bad arguments give one line on stderr saying what is wrong and
how to fix it, and exit code 2; a failed run exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from .commands import nat_check
from .commands import secret as secret_option
from .protocol.config import ClientConfig
from .protocol.endpoint import Endpoint

if TYPE_CHECKING:  # the asyncio layer is imported only by the commands that need it
    from .aio.client import Mesh
    from .aio.tcp_client import TcpMesh

log = logging.getLogger("holepunch.cli")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --- argument types: each says what is wrong and how to fix it -------------------------------------


def server_address(text: str) -> Endpoint:
    """SERVER as HOST:PORT."""
    from .aio.driver import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


RELAY_AFTER = ClientConfig.relay_after
"""Seconds of punching before `connect --relay` falls back to the relay (the config's default)."""

TECHNIQUE_NAMES = ("peer-reflexive", "prediction", "birthday", "relay")
"""Techniques `connect --technique` accepts (holepunch.protocol.techniques.IMPLEMENTED);
`--technique relay` is the same as `--relay`."""


def peer_count(text: str) -> int:
    """--peers: how many OTHER peers to meet."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give the number of other peers") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give the number of OTHER peers, 0 or more")
    return value


def seconds(text: str) -> float:
    """A timeout in seconds, positive."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds, e.g. 10")
    return value


def port_number(text: str) -> int:
    """--port: 0 to 65535 (0 picks a free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number; use 0-65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range; use 0-65535 (0 picks a free port)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser with its subcommands."""
    parser = _Parser(prog="holepunch", description="UDP and TCP NAT hole punching: rendezvous server and peers.")
    verbose = _Parser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr (-v, -vv)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    srv = sub.add_parser("server", parents=[verbose], help="run a rendezvous server")
    srv.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0; '::' for dual-stack)")
    srv.add_argument("--port", type=port_number, default=5000, help="UDP and TCP port (default 5000; 0 picks one)")
    only = srv.add_mutually_exclusive_group()
    only.add_argument("--udp-only", action="store_true", help="serve UDP only (default: UDP and TCP)")
    only.add_argument("--tcp-only", action="store_true", help="serve TCP only (default: UDP and TCP)")
    secret_option.add_option(srv, "register only clients with this session secret; one per line, the first "
                                  "is current, the others still accepted (rotation); serves UDP only")
    srv.add_argument("--stats", type=seconds, nargs="?", const=STATS_EVERY, metavar="SECONDS",
                     help=f"print a stats line (sessions, peers, registrations/s, refusals) every SECONDS "
                          f"(default {STATS_EVERY:g})")
    srv.add_argument("--stats-port", type=port_number, metavar="PORT",
                     help="serve the same stats as JSON at http://127.0.0.1:PORT/stats (0 picks a port)")
    nat_check.add_server_options(srv, port_number)
    nat_check.add_parser(sub, [verbose], server_address, seconds)

    for name, text in (("connect", "punch holes to the other peers and report"), ("chat", "chat with the other peers")):
        cmd = sub.add_parser(name, parents=[verbose], help=text)
        cmd.add_argument("server", type=server_address, metavar="SERVER", help="rendezvous server as HOST:PORT")
        cmd.add_argument("session", metavar="SESSION", help="session ID shared by the peers (UTF-8 text)")
        cmd.add_argument("--peers", type=peer_count, required=True, help="number of OTHER peers to meet")
        cmd.add_argument("--timeout", type=seconds, default=40.0, help="give up after this many seconds (default 40)")
        cmd.add_argument("--wait-timeout", type=seconds, help="punch the peers found so far after this many seconds")
        cmd.add_argument("--tcp", action="store_true", help="punch TCP (simultaneous open) instead of UDP")
        cmd.add_argument("--technique", action="append", default=[], choices=TECHNIQUE_NAMES, metavar="NAME",
                         help="add a UDP technique beyond the basic punch (repeatable): " + ", ".join(TECHNIQUE_NAMES))
        cmd.add_argument("--relay", action="store_true",
                         help=f"allow the server's relay for peers not punched within {RELAY_AFTER:g} s; the "
                              "report says direct or relayed per peer (UDP; both peers need it)")
        cmd.add_argument("--relay-after", type=seconds, default=RELAY_AFTER, metavar="SECONDS",
                         help=f"with --relay: seconds of punching before the relay takes over (default {RELAY_AFTER:g})")
        secret_option.add_option(cmd, "the session secret, on the file's first line: only peers with it can "
                                      "join or punch")
    sub.choices["connect"].add_argument("--json", action="store_true", help="print one JSON document")

    lab = sub.add_parser("lab", add_help=False, help="a real NAT lab in network namespaces (root): "
                         "up, run, status, down, types, grid, trace; see 'holepunch lab --help'")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER)  # parsed by holepunch.lab.cli.lab_main

    demo = sub.add_parser("demo", parents=[verbose], help="a server and peers on this machine, as a timeline")
    demo.add_argument("--peers", type=_demo_peers, default=3, help="number of peers (default 3)")
    demo.add_argument("--host", default="127.0.0.1", help="address for everything (default 127.0.0.1)")
    demo.add_argument("--receives", action="store_true", help="show receives in the timeline too")
    return parser


def _demo_peers(text: str) -> int:
    from .demo import MAX_PEERS

    value = peer_count(text)
    if not 2 <= value <= MAX_PEERS:
        raise argparse.ArgumentTypeError(f"{value} peers: the demo needs 2 to {MAX_PEERS} (one letter each)")
    return value


# --- entry point ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed, 2 bad arguments)."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["lab"]:  # the lab has its own parser (and needs root, Linux, ip and nft)
        from .lab.cli import lab_main

        return lab_main(words[1:])
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    verbosity = args.verbose + (1 if args.command == "server" else 0)  # the server logs joins by default
    library = logging.getLogger("holepunch")
    handler, old_level = _log_to_stderr(library, verbosity), library.level
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    finally:  # main() may run many times in one process (tests, notebooks): leave no trace
        library.removeHandler(handler)
        library.setLevel(old_level)


def _log_to_stderr(library: logging.Logger, verbosity: int) -> logging.Handler:
    """Send "holepunch.*" logs to stderr: WARNING, then INFO with -v, DEBUG with -vv."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    library.setLevel(max(logging.DEBUG, logging.WARNING - 10 * verbosity))
    library.addHandler(handler)
    return handler


def _fail(command: str, message: str) -> int:
    print(f"holepunch {command}: error: {message}", file=sys.stderr)
    return 1


def _usage(command: str, message: str) -> int:
    """A bad argument found after parsing (e.g. in the environment): one line, exit code 2."""
    print(f"holepunch {command}: error: {message} (see 'holepunch {command} --help')", file=sys.stderr)
    return 2


# --- server ---------------------------------------------------------------------------------------


STATS_EVERY = 5.0
"""Seconds between two `server --stats` lines, and between rate samples for `--stats-port`."""


def cmd_server(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; exit 0 when stopped that way."""
    transports = ("udp",) if args.udp_only else ("tcp",) if args.tcp_only else ("udp", "tcp")
    try:
        config = secret_option.server_config(args)
    except ValueError as exc:
        return _usage("server", str(exc))
    if config is not None:
        transports = ("udp",)  # the secret authenticates UDP registrations: TCP would let anyone in
    try:
        return asyncio.run(_serve(args.host, args.port, transports, args.alt_port, args.alt_host, config,
                                  stats_every=args.stats, stats_port=args.stats_port))
    except KeyboardInterrupt:  # no signal handlers (not the main thread, or Windows)
        return 0
    except OSError as exc:
        return _fail("server", f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}")


async def _serve(host: str, port: int, transports: tuple[str, ...], alt_port: int = 0, alt_host: str | None = None,
                 config: Any = None, *, stats_every: float | None = None, stats_port: int | None = None) -> int:
    from .aio.server import serve_all

    if alt_port or alt_host:
        server = await nat_check.serve_with_discovery(host, port, transports, alt_port, alt_host, config)
    else:
        server = await serve_all(host, port, transports=transports, config=config)
    log.info("serving %s on port %d", " and ".join(t.upper() for t in server.transports), server.address.port)
    print(f"holepunch server listening on {server.address}", flush=True)
    try:
        stats = await _start_stats(server, stats_every, stats_port)
    except OSError:
        await server.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        await stop.wait()
    finally:
        for closer in stats:
            closer()
        await server.close()
    return 0


async def _start_stats(server: Any, every: float | None, port: int | None) -> list[Any]:
    """Start `--stats` (a line on stdout every `every` s) and `--stats-port` (JSON over HTTP on
    127.0.0.1); returns what stops them."""
    if every is None and port is None:
        return []
    from .aio.stats import StatsView, report_every, serve_stats

    view = StatsView.of(server, asyncio.get_running_loop().time())
    sampler = asyncio.create_task(report_every(view, every or STATS_EVERY, sys.stdout if every else None))
    closers: list[Any] = [sampler.cancel]
    if port is not None:
        try:
            http = await serve_stats(view, port)
        except OSError as exc:
            sampler.cancel()
            raise OSError(exc.errno, f"stats port {port}: {exc.strerror}") from exc
        bound = http.sockets[0].getsockname()[1]
        print(f"holepunch server stats at http://127.0.0.1:{bound}/stats", flush=True)
        closers.append(http.close)
    return closers


# --- connect --------------------------------------------------------------------------------------


def cmd_connect(args: argparse.Namespace) -> int:
    """Punch, print one line per peer (or JSON), exit 0 only if every expected peer connected."""
    try:
        args.secret = secret_option.client_secret(args)
    except ValueError as exc:
        return _usage("connect", str(exc))
    try:
        report = asyncio.run(_connect_report(args))
    except (OSError, ValueError) as exc:  # ConnectError is an OSError
        return _fail("connect", str(exc))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in _report_lines(report):
            print(line)
    return 0 if report["complete"] else 1


async def _connect_report(args: argparse.Namespace) -> dict[str, Any]:
    from .aio.client import connect

    mesh = await connect(args.server, args.session, args.peers, timeout=args.timeout, wait_timeout=args.wait_timeout,
                         transport=_transport(args), config=_udp_config(args), secret=args.secret)
    paths = _paths(mesh)
    # Reached by connect: over TCP a peer that finished first may have closed its stream by now
    # (PeerDisconnected); it connected all the same, and `state` says what it is now.
    reached = set(mesh.connected) | set(mesh.result.connected)
    async with mesh:
        return {
            "server": str(args.server),
            "transport": _transport(args),
            "session": args.session,
            "expected": args.peers,
            "public_endpoint": None if mesh.public_endpoint is None else str(mesh.public_endpoint),
            "extended": mesh.extended,
            "complete": mesh.complete and len(reached) >= args.peers,
            "reason": mesh.result.reason,
            "listed": len(mesh.machine.listed),
            "peers": [
                {
                    "endpoint": str(p.endpoint),
                    "state": p.state.value,
                    "connected": p.endpoint in reached,
                    "elapsed_ms": None if p.elapsed is None else round(p.elapsed * 1000, 3),
                    "reason": p.reason,
                    **paths.get(str(p.endpoint), {}),
                }
                for p in mesh.peers
            ],
        }


def _udp_config(args: argparse.Namespace) -> Any:
    """A ClientConfig with the chosen techniques (and the relay), or None for the defaults (and for TCP)."""
    if not args.technique and not args.relay:
        return None
    if args.tcp:
        what = "--technique" if args.technique else "--relay"
        raise ValueError(f"{what} applies to UDP only; drop --tcp or {what}")
    techniques = frozenset(args.technique) | ({"relay"} if args.relay else set())
    return ClientConfig(techniques=techniques, relay_after=args.relay_after)


def _paths(mesh: Any) -> dict[str, dict[str, str]]:
    """Per peer (UDP): the path ("direct" or "relayed") and the technique that found it."""
    result = getattr(mesh.machine, "connect_result", None)
    if result is None:
        return {}
    return {str(p.peer): {"path": p.path, "technique": p.technique} for p in result().peers if p.connected}


def _transport(args: argparse.Namespace) -> str:
    return "tcp" if args.tcp else "udp"


def _report_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for peer in report["peers"]:
        if peer["connected"]:
            how = f" {peer['path']} by {peer['technique']}" if "path" in peer else ""
            since = f"; closed since: {peer['reason']}" if peer["state"] == "disconnected" else ""
            lines.append(f"connected {peer['endpoint']}{how} in {peer['elapsed_ms']:.1f} ms{since}")
        else:
            lines.append(f"failed {peer['endpoint']}: {peer['reason'] or peer['state']}")
    missing = report["expected"] - len(report["peers"])
    if missing > 0:
        why = f" ({report['reason']})" if report["reason"] else ""
        lines.append(f"missing {missing} of {report['expected']} expected peers: the server listed {report['listed']}{why}")
    return lines


# --- chat -----------------------------------------------------------------------------------------


def cmd_chat(args: argparse.Namespace) -> int:
    """Connect, then send each stdin line to every peer and print what they send; EOF quits."""
    try:
        args.secret = secret_option.client_secret(args)
    except ValueError as exc:
        return _usage("chat", str(exc))
    try:
        return asyncio.run(_chat(args, sys.stdin, sys.stdout))
    except (OSError, ValueError) as exc:  # ConnectError is an OSError
        return _fail("chat", str(exc))


async def _chat(args: argparse.Namespace, lines_in: TextIO, out: TextIO) -> int:
    from .aio.client import connect

    opening = connect(args.server, args.session, args.peers, timeout=args.timeout, wait_timeout=args.wait_timeout,
                      transport=_transport(args), config=_udp_config(args), secret=args.secret)
    async with opening as mesh:
        if not mesh.connected:
            return _fail("chat", f"no peer connected ({mesh.result.reason or 'nobody else listed'})")
        peers = ", ".join(str(p) for p in mesh.connected)
        print(f"chatting with {len(mesh.connected)} peer(s): {peers}; Ctrl-D quits", file=sys.stderr)
        end = "\n" if args.tcp else ""  # a stream has no datagram boundaries: end each line
        printer = asyncio.create_task(_print_incoming(mesh, out))
        try:
            async for line in _read_lines(lines_in):
                for peer in mesh.connected:
                    mesh.send(peer, (line + end).encode())
        finally:
            printer.cancel()
    return 0


async def _print_incoming(mesh: Mesh | TcpMesh, out: TextIO) -> None:
    async for peer, data in mesh:
        print(f"<{peer}> {data.decode('utf-8', 'replace').rstrip(chr(10))}", file=out, flush=True)


async def _read_lines(stream: TextIO) -> AsyncIterator[str]:
    """Lines of a blocking text stream, read by a daemon thread (works for ttys, pipes and files)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def reader() -> None:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, name="holepunch-stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


# --- demo -----------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the in-process demo and print its timeline; exit 0 if every peer connected."""
    from .demo import format_report, run_demo

    try:
        result = asyncio.run(run_demo(args.peers, args.host))
    except OSError as exc:
        return _fail("demo", f"cannot run on {args.host}: {exc}")
    print("\n".join(format_report(result, receives=args.receives)))
    return 0 if result.ok else 1


_COMMANDS = {"server": cmd_server, "connect": cmd_connect, "chat": cmd_chat, "demo": cmd_demo,
             "nat-check": nat_check.cmd_nat_check}
