"""`holepunch nat-check SERVER` and the discovery half of `holepunch server --alt-port PORT`.

Rule: as cli.py: `main(argv) -> int`-friendly functions, the verdict on stdout, errors as one line
on stderr; the check itself is `holepunch.aio.discovery.nat_check`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
from typing import Any


def ip_literal(text: str) -> str:
    """--alt-host: an IP address (it is announced in replies, which carry addresses only)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address; give the alternate address, "
                                         f"e.g. 192.0.2.8") from None


def add_server_options(srv: argparse.ArgumentParser, port_type: Any) -> None:
    """`server --alt-port PORT [--alt-host ADDR]`: also serve the NAT discovery tests."""
    srv.add_argument("--alt-port", type=port_type, default=0, metavar="PORT",
                     help="also answer NAT discovery probes from this second port (enables nat-check)")
    srv.add_argument("--alt-host", type=ip_literal, metavar="ADDR",
                     help="and from this second address of this machine (needs --alt-port; full filtering test)")


def add_parser(sub: Any, parents: list[argparse.ArgumentParser], server_type: Any, seconds_type: Any) -> None:
    """Register `nat-check SERVER [--alt ADDR] [--timeout S] [--json]`."""
    cmd = sub.add_parser("nat-check", parents=parents, help="classify your NAT against a server run with --alt-port")
    cmd.add_argument("server", type=server_type, metavar="SERVER", help="server as HOST:PORT")
    cmd.add_argument("--alt", type=ip_literal, metavar="ADDR", help="use this alternate server address instead "
                     "of the one the server announces")
    cmd.add_argument("--timeout", type=seconds_type, default=10.0, help="give up after this many seconds (default 10)")
    cmd.add_argument("--json", action="store_true", help="print one JSON document")


def cmd_nat_check(args: argparse.Namespace) -> int:
    """Print the verdict; exit 0 when the server answered, 1 otherwise."""
    from ..aio.discovery import nat_check

    try:
        verdict = asyncio.run(nat_check(args.server, args.alt, timeout=args.timeout))
    except (OSError, TimeoutError) as exc:
        print(f"holepunch nat-check: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(verdict.to_dict(), indent=2) if args.json else verdict.to_text())
    if verdict.observed is None:
        print(f"holepunch nat-check: error: {args.server} did not answer (is it run with --alt-port?)",
              file=sys.stderr)
        return 1
    return 0


async def serve_with_discovery(host: str, port: int, transports: tuple[str, ...], alt_port: int,
                               alt_host: str | None, config: Any = None) -> Any:
    """The rendezvous server (UDP through the discovery responder's primary socket) plus TCP."""
    from ..aio.discovery import serve_discovery

    if "udp" not in transports:
        raise OSError("--alt-port needs UDP: drop --tcp-only")
    if not alt_port:
        raise OSError("--alt-host needs --alt-port too (RFC 5780 §4.1)")
    return await serve_discovery(host, port, alt_port, alt_host, rendezvous=True, transports=transports, config=config)
