"""Small UDP programs run INSIDE lab namespaces: a probe responder, the probe, a listener, a sender.

Rule: standalone (stdlib only, no package imports: it is run by file path with `ip netns exec`),
one JSON object per stdout line, and a malformed datagram is ignored, never fatal. The probe
follows RFC 5780 §4.3 (mapping: same local port to two addresses and two ports) and §4.4
(filtering: ask for a reply from an address and a port never contacted).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import select
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

Address = tuple[str, int]


def text(addr: Address) -> str:
    """"ip:port", the form every line and request uses."""
    return f"{addr[0]}:{addr[1]}"


def parse(value: str) -> Address:
    """"ip:port" -> (ip, port); ValueError if it is not that."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected IP:PORT, got {value!r}")
    return host, int(port)


def emit(**fields: Any) -> None:
    """One JSON line on stdout, flushed (the lab reads it while we keep running)."""
    print(json.dumps(fields, sort_keys=True), flush=True)


def udp(bind: Address) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(bind)
    return sock


# --- responder (runs on the server) -------------------------------------------------------------

def respond(addresses: Sequence[str], ports: Sequence[int]) -> int:
    """Echo each request's observed source ("mapped"), from the socket it names or the one it hit."""
    socks = {(a, p): udp((a, p)) for a in addresses for p in ports}
    emit(ready=True, sockets=[text(k) for k in socks])
    pending: list[tuple[float, int, Address, Address, bytes]] = []  # due, seq, from, to, data
    seq = 0
    while True:
        wait = max(0.0, pending[0][0] - time.monotonic()) if pending else None
        readable, _, _ = select.select(list(socks.values()), [], [], wait)
        for sock in readable:
            data, source = sock.recvfrom(2048)
            reply = _answer(data, source, sock.getsockname(), socks)
            if reply is not None:
                seq += 1
                heapq.heappush(pending, (time.monotonic() + reply[2], seq, reply[0], source, reply[1]))
        while pending and pending[0][0] <= time.monotonic():
            _, _, via, dest, payload = heapq.heappop(pending)
            try:
                socks[via].sendto(payload, dest)
            except OSError:
                pass


def _answer(data: bytes, source: Address, local: Address,
            socks: dict[Address, socket.socket]) -> tuple[Address, bytes, float] | None:
    """(socket to reply from, reply bytes, delay) for a well-formed request, else None."""
    try:
        request = json.loads(data)
        via = parse(request["reply_from"]) if request.get("reply_from") else local
        delay = float(request.get("delay", 0.0))
        ident = str(request["id"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if via not in socks or not 0.0 <= delay <= 60.0:
        return None
    reply = {"id": ident, "mapped": text(source), "via": text(local), "from": text(via)}
    return via, json.dumps(reply).encode(), delay


# --- the client side: ask, listen, send -----------------------------------------------------------

def ask(sock: socket.socket, server: Address, *, reply_from: Address | None = None,
        wait: float = 0.5, tries: int = 3) -> dict[str, Any] | None:
    """Send a request (resent `tries` times within `wait`) and return the matching reply."""
    ident = os.urandom(6).hex()
    request = json.dumps({"id": ident, "reply_from": text(reply_from) if reply_from else None})
    deadline = time.monotonic() + wait
    for attempt in range(tries):
        sock.sendto(request.encode(), server)
        until = min(deadline, time.monotonic() + wait / tries) if attempt < tries - 1 else deadline
        while (left := until - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            data, _ = sock.recvfrom(2048)
            try:
                reply = json.loads(data)
            except ValueError:
                continue
            if isinstance(reply, dict) and reply.get("id") == ident:
                return reply
    return None


def probe(bind: str, server: str, alt: str | None, ports: Sequence[int], wait: float,
          tries: int) -> int:
    """RFC 5780 mapping and filtering tests from one host; prints the raw observations."""
    p1, p2 = ports
    sock = udp((bind, 0))
    targets = [(server, p1), (server, p2)] if alt is None else [
        (server, p1), (alt, p1), (alt, p2), (server, p2)]  # §4.3 tests I, II, III (+ back)
    mapped = []
    for target in targets:
        reply = ask(sock, target, wait=wait, tries=tries)
        mapped.append(reply["mapped"] if reply else None)
    fresh = udp((bind, 0))  # §4.4: a port that has contacted only (server, p1)
    first = ask(fresh, (server, p1), wait=wait, tries=tries)
    other = None if alt is None else ask(fresh, (server, p1), reply_from=(alt, p2), wait=wait,
                                         tries=tries)
    port_only = ask(fresh, (server, p1), reply_from=(server, p2), wait=wait, tries=tries)
    emit(local=text(sock.getsockname()), targets=[text(t) for t in targets], mapped=mapped,
         filter_local=text(fresh.getsockname()), filter_mapped=first["mapped"] if first else None,
         from_other_address=other is not None, from_other_port=port_only is not None)
    return 0


def listen(bind: str, port: int, server: str | None, send_to: Sequence[str], wait: float,
           count: int, delayed: float | None = None) -> int:
    """Bind a port, optionally get its mapping from the responder (and ask it for one more
    reply `delayed` seconds later) and send to peers, then print what arrives (one line per
    datagram) until `count` datagrams or `wait` seconds."""
    sock = udp((bind, port))
    if server:
        reply = ask(sock, parse(server), wait=1.0)
        emit(mapped=reply["mapped"] if reply else None, local=text(sock.getsockname()))
        if delayed is not None:  # the mapping-timeout check: is the mapping still there then?
            request = {"id": "delayed", "reply_from": None, "delay": delayed}
            sock.sendto(json.dumps(request).encode(), parse(server))
    for peer in send_to:
        sock.sendto(b"hello from " + text(sock.getsockname()).encode(), parse(peer))
    emit(listening=text(sock.getsockname()))
    deadline, got = time.monotonic() + wait, 0
    while got < count and (left := deadline - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            data, source = sock.recvfrom(2048)
            got += 1
            emit(received=data.decode("utf-8", "replace"), source=text(source), at=time.time())
    emit(done=True, count=got)
    return 0


def send(bind: str, port: int, to: str, data: str, count: int, gap: float,
         stamp: bool = False) -> int:
    """Send `count` datagrams to `to` from one local port; with `stamp` each carries its
    sequence number and send time ("7 1700000000.123456") instead of `data`."""
    sock = udp((bind, port))
    for i in range(count):
        payload = f"{i} {time.time():.6f}" if stamp else data
        sock.sendto(payload.encode(), parse(to))
        if i + 1 < count:
            time.sleep(gap)
    emit(sent=count, local=text(sock.getsockname()), to=to)
    return 0


def _parser() -> argparse.ArgumentParser:
    """respond | probe | listen | send, with the options of each function."""
    parser = argparse.ArgumentParser(prog="agent")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("respond")
    r.add_argument("--addresses", required=True)
    r.add_argument("--ports", default="3478,3479")
    p = sub.add_parser("probe")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--server", required=True)
    p.add_argument("--alt")
    p.add_argument("--ports", default="3478,3479")
    p.add_argument("--wait", type=float, default=0.4)
    p.add_argument("--tries", type=int, default=3)
    ln = sub.add_parser("listen")
    ln.add_argument("--bind", default="0.0.0.0")
    ln.add_argument("--port", type=int, default=0)
    ln.add_argument("--server")
    ln.add_argument("--send-to", action="append", default=[])
    ln.add_argument("--wait", type=float, default=2.0)
    ln.add_argument("--count", type=int, default=1)
    ln.add_argument("--delayed-reply", type=float)
    s = sub.add_parser("send")
    s.add_argument("--bind", default="0.0.0.0")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--to", required=True)
    s.add_argument("--data", default="hello")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--gap", type=float, default=0.05)
    s.add_argument("--stamp", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: respond | probe | listen | send (see each function)."""
    args = _parser().parse_args(argv)
    if args.command == "respond":
        return respond(args.addresses.split(","), [int(x) for x in args.ports.split(",")])
    if args.command == "probe":
        return probe(args.bind, args.server, args.alt, [int(x) for x in args.ports.split(",")],
                     args.wait, args.tries)
    if args.command == "listen":
        return listen(args.bind, args.port, args.server, args.send_to, args.wait, args.count,
                      args.delayed_reply)
    return send(args.bind, args.port, args.to, args.data, args.count, args.gap, args.stamp)


if __name__ == "__main__":
    sys.exit(main())
