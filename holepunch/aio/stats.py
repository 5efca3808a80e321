"""Live statistics of a running rendezvous server, for demos: a line every few seconds, or JSON.

Rule: read-only views of the servers' own counters, no protocol logic. The HTTP endpoint is
asyncio and the standard library only, and listens on 127.0.0.1 alone (a dashboard beside a live
demo, not a public API): `GET /stats` answers the JSON document, anything else 404 or 405.
Registrations per second are measured between two samples, taken every `interval` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TextIO

from ..protocol.server import RendezvousServer
from ..protocol.tcp_server import TcpRendezvousServer

log = logging.getLogger("holepunch.server")

STATS_HOST = "127.0.0.1"
"""Where the JSON endpoint listens: loopback only, so the counters are never public."""
STATS_PATH = "/stats"
MAX_REQUEST_HEAD = 8192
"""Bytes of request line and headers read at most; a longer request gets 431."""
REQUEST_TIMEOUT = 5.0
"""Seconds a client has to send its request head."""


class StatsView:
    """Snapshots of one server's counters (UDP and/or TCP machine), with a registration rate."""

    def __init__(self, udp: RendezvousServer | None, tcp: TcpRendezvousServer | None, now: float) -> None:
        if udp is None and tcp is None:
            raise ValueError("no server to report on")
        self.udp, self.tcp = udp, tcp
        self.started = now
        self._sample = (now, self._registrations())
        self.rate = 0.0
        """Registrations per second between the last two samples."""

    @classmethod
    def of(cls, server: Any, now: float) -> StatsView:
        """The view of what `serve`, `serve_all`, `serve_tcp` or `serve_discovery` returned."""
        udp = tcp = None
        if hasattr(server, "responder"):  # discovery, with the rendezvous server on its socket
            udp, tcp = server.responder.rendezvous, getattr(server.tcp, "machine", None)
        elif hasattr(server, "udp"):  # Servers: UDP and TCP on one port number
            udp, tcp = getattr(server.udp, "machine", None), getattr(server.tcp, "machine", None)
        elif isinstance(getattr(server, "machine", None), RendezvousServer):
            udp = server.machine
        else:
            tcp = getattr(server, "machine", None)
        return cls(udp, tcp, now)

    def _registrations(self) -> int:
        return sum(m.stats.registrations for m in (self.udp, self.tcp) if m is not None)

    def sample(self, now: float) -> None:
        """Measure the registration rate since the previous sample."""
        then, count = self._sample
        current = self._registrations()
        if now > then:
            self.rate = (current - count) / (now - then)
        self._sample = (now, current)

    def snapshot(self, now: float) -> dict[str, Any]:
        """Everything a live demo shows, as a JSON-ready dict."""
        doc: dict[str, Any] = {"uptime": round(now - self.started, 3), "registrations_per_second": round(self.rate, 1)}
        if self.udp is not None:
            stats = self.udp.stats
            doc.update(
                sessions=self.udp.session_count, peers=self.udp.member_count, registrations=stats.registrations,
                refusals=dict(stats.refused), dropped=dict(stats.dropped), datagrams=stats.datagrams,
                replies=stats.replies, pushes=stats.pushes, keepalives=stats.keepalives, cookies=stats.cookies,
                verified=stats.verified, tracked=self.udp.tracked(),
            )
        if self.tcp is not None:
            tcp = self.tcp.stats
            doc["tcp"] = {
                "connections": self.tcp.connection_count, "sessions": self.tcp.session_count,
                "registrations": tcp.registrations, "refusals": dict(tcp.refused), "dropped": dict(tcp.dropped),
            }
        return doc


def format_line(doc: dict[str, Any]) -> str:
    """One line of a snapshot: sessions, peers, registrations per second, refusals by reason."""
    parts = []
    if "sessions" in doc:
        parts.append(f"sessions {doc['sessions']}, peers {doc['peers']}")
    if "tcp" in doc:
        parts.append(f"tcp sessions {doc['tcp']['sessions']}, connections {doc['tcp']['connections']}")
    parts.append(f"registrations/s {doc['registrations_per_second']:g}")
    refusals = dict(doc.get("refusals", {}))
    for reason, count in doc.get("tcp", {}).get("refusals", {}).items():
        refusals[f"tcp {reason}"] = count
    listed = ", ".join(f"{reason} {count}" for reason, count in sorted(refusals.items()))
    parts.append(f"refused: {listed or 'none'}")
    return "stats: " + "; ".join(parts)


async def report_every(view: StatsView, interval: float, out: TextIO | None) -> None:
    """Sample every `interval` seconds and, with `out`, print a stats line each time; until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        view.sample(now)
        if out is not None:
            print(format_line(view.snapshot(now)), file=out, flush=True)


async def serve_stats(view: StatsView, port: int = 0, host: str = STATS_HOST) -> asyncio.Server:
    """Serve `GET /stats` as JSON on `host:port` (port 0 picks one); returns the listening server."""
    loop = asyncio.get_running_loop()
    return await asyncio.start_server(_handler(lambda: view.snapshot(loop.time())), host, port, limit=MAX_REQUEST_HEAD)


def _handler(snapshot: Callable[[], dict[str, Any]]) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            status, body = _answer(head, snapshot)
        except asyncio.LimitOverrunError:
            status, body = "431 Request Header Fields Too Large", {"error": "request head too large"}
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            writer.close()
            return
        data = json.dumps(body, indent=1).encode() + b"\n"
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode() + data)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return handle


def _answer(head: bytes, snapshot: Callable[[], dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The status line and JSON body for one request head."""
    words = head.split(b"\r\n", 1)[0].split()
    if len(words) != 3 or not words[2].startswith(b"HTTP/"):
        return "400 Bad Request", {"error": "not an HTTP request"}
    method, target = words[0], words[1].split(b"?", 1)[0]
    if target != STATS_PATH.encode():
        return "404 Not Found", {"error": f"try GET {STATS_PATH}"}
    if method != b"GET":
        return "405 Method Not Allowed", {"error": f"only GET {STATS_PATH}"}
    return "200 OK", snapshot()
