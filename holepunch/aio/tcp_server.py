"""The TCP rendezvous server over real sockets: `await serve_tcp(...)` returns a running `TcpServer`.

Rule: all protocol decisions are in `holepunch.protocol.tcp_server.TcpRendezvousServer`; this
module binds the listener, accepts connections, runs the TCP drive loop (tcp_driver.py) and logs
events on the "holepunch.server" logger, as the UDP server does.
"""

from __future__ import annotations

import logging
import socket

from ..protocol.endpoint import Endpoint
from ..protocol.messages import MessageError
from ..protocol.tcp_messages import decode_body, frame_kind
from ..protocol.tcp_server import TcpRendezvousServer, TcpServerConfig, TcpServerStats
from ..trace import Trace
from .server import Serving, _log_event
from .tcp_driver import TcpIO
from .tcp_io import BACKLOG, Conn, TcpDriverStats, tcp_socket

log = logging.getLogger("holepunch.server")


class TcpServerDriver(TcpIO):
    """Runs a `TcpRendezvousServer` on a listening socket: accepts, bytes in, writes and closes out."""

    def __init__(self, machine: TcpRendezvousServer, listener: socket.socket, *, trace: Trace | None = None,
                 actor: str = "server") -> None:
        super().__init__(_log_event, trace=trace, actor=actor)
        self.machine = machine
        self.listener: socket.socket = listener  # bound, listening and non-blocking
        self.address = self.local = Endpoint.from_sockaddr(listener.getsockname())

    def start(self) -> None:
        """Accept connections and serve them."""
        super().start()
        self._loop.add_reader(self.listener.fileno(), self._on_accept)

    def stop(self) -> None:
        """Close the listener and every connection."""
        if self._running:
            self._loop.remove_reader(self.listener.fileno())
        super().stop()
        self.listener.close()

    def _accepted(self, conn: Conn, now: float) -> None:
        self.machine.connection_made(conn.conn_id, conn.remote, now)

    def _carry_out(self, now: float) -> None:
        for conn_id, data in self.machine.data_to_send():
            self._write(conn_id, data, _kind(data) if self.trace is not None else "", now)
        for conn_id in self.machine.connections_to_close():
            self._close(conn_id, now)


def _kind(frame: bytes) -> str:
    """The trace kind of one frame the server writes."""
    try:
        return str(frame_kind(decode_body(frame[4:])).value)
    except MessageError:
        return "malformed"


class TcpServer(Serving):
    """A running TCP rendezvous server; stop it with `await close()` or `async with server:`."""

    label = "TCP server"
    machine: TcpRendezvousServer
    _driver: TcpServerDriver

    @property
    def stats(self) -> TcpServerStats:
        """Protocol counters: connections, registrations, replies, pushes, refusals, drops."""
        return self.machine.stats

    @property
    def io_stats(self) -> TcpDriverStats:
        """Socket counters: accepted connections, bytes in and out, connections lost."""
        return self._driver.stats

    def _population(self) -> str:
        return f"{self.machine.connection_count} connections"


async def serve_tcp(
    host: str = "0.0.0.0",
    port: int = 5000,
    config: TcpServerConfig | None = None,
    trace: Trace | None = None,
) -> TcpServer:
    """Listen on `host:port` over TCP (port 0 picks a free one) and serve; returns the running server."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    listener = tcp_socket(host, port, reuse_port=False)  # SO_REUSEADDR only: one server per port
    try:
        listener.listen(BACKLOG)
    except BaseException:
        listener.close()
        raise
    machine = TcpRendezvousServer(config)
    driver = TcpServerDriver(machine, listener, trace=trace)
    server = TcpServer(machine, driver)
    driver.start()
    log.info("TCP server listening on %s", server.address)
    return server
