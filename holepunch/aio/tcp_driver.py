"""The asyncio drive loops for the TCP machines, and the one for TcpPeerClient's intents.

Rule: the shape of driver.py (aioquic's `asyncio/protocol.py`): feed one result, drain events,
carry out what the machine asked for, re-arm exactly one timer at `get_timer()`. Sockets are plain
non-blocking `socket.socket` objects watched with `add_reader`/`add_writer`, so a connected one can
be handed to the application as it is. `TcpIO` is shared with the server (tcp_server.py); `TcpDriver`
turns the client's Connect, Listen, Write, Close and StopListening intents into socket calls.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import socket
from collections.abc import Iterator
from typing import Any, Callable

from ..protocol.endpoint import Endpoint
from ..protocol.events import Event
from ..protocol.tcp_client import TcpPeerClient
from ..protocol.tcp_messages import Close, Connect, ConnId, Listen, StopListening, Write
from ..trace import Action, Trace, TraceRecord
from .driver import describe_event
from .tcp_io import (
    BACKLOG, MAX_QUEUED, READS_PER_WAKEUP, RECV_SIZE, Conn, TcpDriverStats, describe_write, errno_name, tcp_socket,
)

log = logging.getLogger("holepunch.tcp")
_IN_PROGRESS = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY}


class TcpIO:
    """Connections, the timer and the pump shared by the client and the server drivers."""

    machine: Any  # TcpPeerClient or TcpRendezvousServer: both take data_received and connection_lost

    def __init__(self, on_event: Callable[[Event], None], *, trace: Trace | None, actor: str) -> None:
        self.conns: dict[ConnId, Conn] = {}
        self.local: Endpoint | None = None
        """Our address as traces show it: the listener's, or port P once a connect is up."""
        self.listener: socket.socket | None = None
        self._ids: Iterator[int] = itertools.count(1)
        """Names of accepted connections."""
        self.stats = TcpDriverStats()
        self.trace = trace
        self.actor = actor
        self._on_event = on_event
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._running = False
        self._pumping = False
        self._reading = True
        self._drained: asyncio.Future[None] | None = None

    def now(self) -> float:
        """The driver's clock, which is the machine's clock."""
        return self._loop.time()

    def start(self) -> None:
        """Carry out whatever the machine has queued and keep doing so."""
        self._running = True
        self.pump(self.now())

    def stop(self) -> None:
        """Cancel the timer and close every socket at once (queued bytes are dropped)."""
        self._running = False
        self._arm(None)
        for conn in list(self.conns.values()):
            self._shut(conn)

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for connections closing after their queued writes."""
        if any(c.closing for c in self.conns.values()):
            self._drained = self._loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._drained), timeout)
            except asyncio.TimeoutError:
                pass

    def set_reading(self, on: bool) -> None:
        """Pause or resume reading every open connection (backpressure from the application)."""
        if on != self._reading:
            self._reading = on
            for conn in self.conns.values():
                if not (conn.connecting or conn.closing):
                    self._watch(conn)

    # --- the drive loop -----------------------------------------------------------------------

    def pump(self, now: float) -> None:
        """Drain events, carry out the machine's output, re-arm the timer; re-entrant calls fold in."""
        if self._pumping or not self._running:
            return
        self._pumping = True
        try:
            while (event := self.machine.next_event()) is not None:
                if self.trace is not None:
                    self._record(now, Action.EVENT, None, None, type(event).__name__, describe_event(event))
                self._on_event(event)
            self._carry_out(now)
            self._arm(self.machine.get_timer())
        finally:
            self._pumping = False

    def _carry_out(self, now: float) -> None:
        raise NotImplementedError

    def _on_timer(self) -> None:
        now = max(self._timer_at or 0.0, self._loop.time())  # asyncio may fire a little early
        self._timer = self._timer_at = None
        self.machine.handle_timer(now)
        self.pump(now)

    def _arm(self, when: float | None) -> None:
        """Keep exactly one timer, at `when` (aioquic's `_transmit` tail)."""
        if when == self._timer_at and (when is None or self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = None if when is None else self._loop.call_at(when, self._on_timer)

    # --- connections --------------------------------------------------------------------------

    def _accepted(self, conn: Conn, now: float) -> None:
        raise NotImplementedError

    def _on_accept(self) -> None:
        """Accept what the listener has queued; each connection is watched and told to the machine."""
        now = self._loop.time()
        for _ in range(READS_PER_WAKEUP):
            if self.listener is None:
                break
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # ECONNABORTED, EMFILE...: the kernel keeps the rest queued
                log.debug("%s: accept failed: %s", self.actor, exc)
                break
            sock.setblocking(False)
            conn = Conn(next(self._ids), sock, Endpoint.from_sockaddr(addr), connecting=False)
            self.conns[conn.conn_id] = conn
            self.stats.accepted += 1
            if self.trace is not None:
                self._record(now, Action.RECEIVE, conn.remote, self.local, "tcp-accept", f"accepted {conn.conn_id}")
            self._watch(conn)
            self._accepted(conn, now)
        self.pump(now)

    def _watch(self, conn: Conn) -> None:
        if self._reading:
            self._loop.add_reader(conn.sock.fileno(), self._on_readable, conn)
        else:
            self._loop.remove_reader(conn.sock.fileno())

    def _on_readable(self, conn: Conn) -> None:
        now = self._loop.time()
        for _ in range(READS_PER_WAKEUP):
            try:
                data = conn.sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                return self._lost(conn, errno_name(exc.errno), now)
            if not data:
                return self._lost(conn, "closed by the far side", now)
            self.stats.bytes_in += len(data)
            if self.trace is not None:
                self._record(now, Action.RECEIVE, conn.remote, self.local, "tcp-bytes", f"{len(data)} bytes")
            self.machine.data_received(conn.conn_id, data, now)
        self.pump(now)
        return None

    def _lost(self, conn: Conn, why: str, now: float) -> None:
        """The far side closed or reset the connection: tell the machine, which forgets it."""
        if self.conns.get(conn.conn_id) is not conn:
            return
        self._shut(conn)
        self.stats.lost += 1
        if self.trace is not None:
            self._record(now, Action.RECEIVE, conn.remote, self.local, "tcp-closed", why)
        self.machine.connection_lost(conn.conn_id, now)
        self.pump(now)

    def _write(self, conn_id: ConnId, data: bytes, kind: str, now: float) -> None:
        conn = self.conns.get(conn_id)
        if conn is None or conn.closing:
            log.debug("%s: write to a closed connection %r dropped", self.actor, conn_id)
            return
        if self.trace is not None:
            self._record(now, Action.SEND, self.local, conn.remote, kind, describe_write(kind, data))
        conn.out += data
        if not conn.connecting:
            self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        try:
            while conn.out:
                sent = conn.sock.send(conn.out)
                del conn.out[:sent]
                self.stats.bytes_out += sent
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:  # EPIPE, ECONNRESET: report it from the loop, not from inside a pump
            self._loop.call_soon(self._lost_soon, conn, errno_name(exc.errno))
            return
        fd = conn.sock.fileno()
        if len(conn.out) > MAX_QUEUED:
            self._loop.call_soon(self._lost_soon, conn, f"stuck: over {MAX_QUEUED} bytes unsent")
        elif conn.out:
            self._loop.add_writer(fd, self._flush, conn)
        else:
            self._loop.remove_writer(fd)
            if conn.closing:
                self._shut(conn)

    def _lost_soon(self, conn: Conn, why: str) -> None:
        self._lost(conn, why, self._loop.time())

    def _close(self, conn_id: ConnId, now: float) -> None:
        """Close after the queued writes (a FIN), or abandon a connect in flight."""
        conn = self.conns.get(conn_id)
        if conn is None or conn.closing:
            return
        if self.trace is not None:
            self._record(now, Action.SEND, self.local, conn.remote, "tcp-close", "")
        if conn.connecting or not conn.out:
            self._shut(conn)
        else:
            conn.closing = True
            self._loop.remove_reader(conn.sock.fileno())

    def _forget(self, conn: Conn) -> None:
        """Stop watching `conn` and drop it from the table; its socket stays open."""
        self.conns.pop(conn.conn_id, None)
        fd = conn.sock.fileno()
        if fd >= 0:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        if self._drained is not None and not any(c.closing for c in self.conns.values()):
            if not self._drained.done():
                self._drained.set_result(None)

    def _shut(self, conn: Conn) -> None:
        self._forget(conn)
        conn.sock.close()

    def _record(self, now: float, action: Action, source: Endpoint | None, destination: Endpoint | None,
                kind: str, summary: str, detail: str = "") -> None:
        assert self.trace is not None
        self.trace.append(TraceRecord(now, self.actor, action, source, destination, kind, summary, detail))


class TcpDriver(TcpIO):
    """Runs a `TcpPeerClient`: its Connect, Listen, Write, Close and StopListening intents, on `host`."""

    def __init__(self, machine: TcpPeerClient, host: str, on_event: Callable[[Event], None], *,
                 trace: Trace | None = None, actor: str = "") -> None:
        super().__init__(on_event, trace=trace, actor=actor)
        self.machine = machine
        self.host = host
        self._v6 = ":" in host
        self._ids = itertools.count(-1, -1)  # the core numbers its own connects 1, 2, 3...

    def stop(self) -> None:
        """Close the listener and every connection at once."""
        super().stop()
        self._stop_listening()

    def detach(self, conn_id: ConnId) -> socket.socket:
        """Stop watching an open connection, write what is queued, and return its socket (blocking)."""
        conn = self.conns.get(conn_id)
        if conn is None or conn.connecting or conn.closing:
            raise ValueError(f"connection {conn_id!r} is not open")
        self._forget(conn)
        conn.sock.setblocking(True)
        if conn.out:
            conn.sock.sendall(conn.out)
        return conn.sock

    def _carry_out(self, now: float) -> None:
        for intent in self.machine.intents_to_run():
            if isinstance(intent, Write):
                self._write(intent.conn_id, intent.data, intent.kind.value, now)
            elif isinstance(intent, Connect):
                self._connect(intent, now)
            elif isinstance(intent, Close):
                self._close(intent.conn_id, now)
            elif isinstance(intent, Listen):
                self._listen(intent.port, now)
            elif isinstance(intent, StopListening):
                self._stop_listening()

    # --- connect ------------------------------------------------------------------------------

    def _connect(self, intent: Connect, now: float) -> None:
        self.stats.connects += 1
        if self.trace is not None:
            summary = f"SYN from port {intent.local_port or 'any'}"
            self._record(now, Action.SEND, Endpoint(self.host, intent.local_port), intent.remote, "tcp-connect", summary)
        try:
            sock = tcp_socket(self.host, intent.local_port, reuse_port=True)
        except OSError as exc:  # EADDRINUSE: P is held without SO_REUSEPORT; ENOPROTOOPT: no SO_REUSEPORT
            self._loop.call_soon(self._connect_failed, intent.conn_id, errno_name(exc.errno))
            return
        conn = self.conns[intent.conn_id] = Conn(intent.conn_id, sock, intent.remote, connecting=True)
        host, port = intent.remote
        try:
            code = sock.connect_ex((("::ffff:" + host) if self._v6 and ":" not in host else host, port))
        except OSError as exc:  # an address this socket's family cannot reach
            code = exc.errno or errno.EINVAL
        if code in _IN_PROGRESS:
            self._loop.add_writer(sock.fileno(), self._on_connect_ready, conn)
        else:
            self._shut(conn)
            self._loop.call_soon(self._connect_failed, intent.conn_id, errno_name(code))

    def _on_connect_ready(self, conn: Conn) -> None:
        """The socket became writable: the handshake finished, one way or the other (SO_ERROR says)."""
        now = self._loop.time()
        if self.conns.get(conn.conn_id) is not conn:
            return
        self._loop.remove_writer(conn.sock.fileno())
        code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._shut(conn)
            return self._connect_failed(conn.conn_id, errno_name(code))
        conn.connecting = False
        local = Endpoint.from_sockaddr(conn.sock.getsockname())
        self.local = self.local or local  # the first connect is the server connection: port P
        self.stats.connected += 1
        if self.trace is not None:
            self._record(now, Action.RECEIVE, conn.remote, local, "tcp-connected", "SYN-ACK: connected")
        self._watch(conn)
        self.machine.connected(conn.conn_id, local, conn.remote, now)
        if conn.out:
            self._flush(conn)
        self.pump(now)
        return None

    def _connect_failed(self, conn_id: ConnId, name: str) -> None:
        now = self._loop.time()
        self.stats.connect_errors[name] += 1
        if self.trace is not None:
            self._record(now, Action.DROP, None, None, "tcp-connect", f"connect {conn_id} failed", name)
        self.machine.connect_failed(conn_id, name, now)
        self.pump(now)

    # --- listen and accept --------------------------------------------------------------------

    def _listen(self, port: int, now: float) -> None:
        self._stop_listening()
        try:
            sock = tcp_socket(self.host, port, reuse_port=True)
        except OSError as exc:
            self._loop.call_soon(self._listen_failed, port, errno_name(exc.errno))
            return
        try:
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            self._loop.call_soon(self._listen_failed, port, errno_name(exc.errno))
            return
        self.listener = sock
        self._loop.add_reader(sock.fileno(), self._on_accept)

    def _listen_failed(self, port: int, name: str) -> None:
        now = self._loop.time()
        if self.trace is not None:
            self._record(now, Action.DROP, Endpoint(self.host, port), None, "tcp-listen", "listen failed", name)
        self.machine.listen_failed(port, name, now)
        self.pump(now)

    def _accepted(self, conn: Conn, now: float) -> None:
        self.machine.accepted(conn.conn_id, conn.remote, now)

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self._loop.remove_reader(self.listener.fileno())
            self.listener.close()
            self.listener = None
