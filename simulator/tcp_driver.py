"""The TCP machine drivers: run the sans-IO TCP client and server on a simulated host's `TcpStack`.

Rule: the sibling of `driver.py` for TCP, with the same loop: feed one input (a connect result,
an accepted connection, bytes, a closed connection, a timer, a request), drain the events, carry
out what the machine asks (the client's intents; the server's writes and closes), re-arm exactly
one timer at `get_timer()`. What a socket call answers at once (EADDRNOTAVAIL, EADDRINUSE) is
fed back within the same loop. Drivers know nothing of frames or HELLO; they name connections:
the client numbers its own connects, accepted ones get negative numbers here.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.messages import MessageError
from holepunch.protocol.tcp_client import TcpPeerClient
from holepunch.protocol.tcp_messages import (
    Close,
    Connect,
    ConnId,
    Intent,
    Listen,
    StopListening,
    Write,
    decode_frames,
    frame_kind,
)
from holepunch.protocol.tcp_server import TcpRendezvousServer
from holepunch.trace import Action

from .driver import MAX_FIRES_AT_ONE_TIME, EventListener, describe_event
from .network import Host
from .scheduler import Handle
from .tcp import Conn
from .tcp_nat import TcpNetwork

Result = Callable[[float], None]


class _TcpDriver:
    """The loop shared by both drivers; subclasses say how to start, what to carry out, and
    how socket results reach their machine."""

    def __init__(self, host: Host, machine: Any) -> None:
        network = host.network
        if not isinstance(network, TcpNetwork):
            raise TypeError(f"{host.name} is on a plain Network; TCP needs a TcpNetwork")
        self.host = host
        self.network: TcpNetwork = network
        self.scheduler = network.scheduler
        self.stack = network.stack(host)
        self.machine = machine
        self.events: list[tuple[float, Any]] = []
        """Every event the machine reported, with the time it was drained."""
        self.listeners: list[EventListener] = []
        self.completed_at: float | None = None
        """Time of the machine's `ConnectCompleted` event, if any."""
        self._conns: dict[ConnId, Conn] = {}
        self._names: dict[Conn, ConnId] = {}
        self._results: deque[Result] = deque()
        self._timer: Handle | None = None
        self._fires = (0.0, 0)

    @property
    def name(self) -> str:
        """The host's name, which is the actor name in traces."""
        return self.host.name

    def start(self, at: float | None = None) -> Handle:
        """Start the machine (if it has `start(now)`) at time `at` (default: now)."""
        return self.scheduler.call_at(self.scheduler.now if at is None else at, self._start)

    def _start(self) -> None:
        start = getattr(self.machine, "start", None)
        if start is not None:
            start(self.scheduler.now)
        self._pump()

    def apply(self, request: Callable[[Any, float], Any]) -> Any:
        """Run `request(machine, now)` (e.g. a `send` or `close`), then pump; returns its result."""
        result = request(self.machine, self.scheduler.now)
        self._pump()
        return result

    def conn(self, conn_id: ConnId) -> Conn | None:
        """The stack's socket behind one of the machine's connection ids."""
        return self._conns.get(conn_id)

    # --- the loop -----------------------------------------------------------------------------

    def _feed(self, call: Callable[..., None], *args: Any) -> None:
        """One socket result into the machine, then the loop."""
        call(*args, self.scheduler.now)
        self._pump()

    def _pump(self) -> None:
        """Drain events, carry out outputs (feeding immediate results back), re-arm the timer."""
        now = self.scheduler.now
        while True:
            event = self.machine.next_event()
            while event is not None:
                self._on_event(now, event)
                event = self.machine.next_event()
            self._outputs()
            if not self._results:
                break
            while self._results:
                self._results.popleft()(now)
        self._arm(self.machine.get_timer(), now)

    def _outputs(self) -> None:
        raise NotImplementedError

    def _fire(self) -> None:
        now = self.scheduler.now
        self._timer = None
        at, count = self._fires
        self._fires = (now, count + 1 if at == now else 1)
        if self._fires[1] > MAX_FIRES_AT_ONE_TIME:
            raise RuntimeError(f"{self.name}: the machine's timer does not advance past {now}")
        if self.network.trace_timers:
            self.network.trace.emit((now, self.name, Action.TIMER, None, None, "", "", "", None))
        self.machine.handle_timer(now)
        self._pump()

    def _on_event(self, now: float, event: Any) -> None:
        name = type(event).__name__
        self.events.append((now, event))
        self.network.trace.emit((now, self.name, Action.EVENT, None, None, name, describe_event(event), "", None))
        if name == "ConnectCompleted" and self.completed_at is None:
            self.completed_at = now
        for listener in self.listeners:
            listener(now, event)

    def _arm(self, at: float | None, now: float) -> None:
        timer = self._timer
        if at is not None and at < now:
            at = now
        if timer is not None:
            if at is not None and timer.when == at:
                return
            timer.cancel()
            self._timer = None
        if at is not None:
            self._timer = self.scheduler.call_at(at, self._fire)

    # --- connection names ---------------------------------------------------------------------

    def _name(self, conn_id: ConnId, conn: Conn) -> None:
        self._conns[conn_id] = conn
        self._names[conn] = conn_id

    def _unname(self, conn: Conn) -> ConnId | None:
        conn_id = self._names.pop(conn, None)
        if conn_id is not None:
            del self._conns[conn_id]
        return conn_id

    def tcp_data(self, conn: Conn, data: bytes) -> None:
        """Bytes arrived on a connection."""
        conn_id = self._names.get(conn)
        if conn_id is not None:
            self._feed(self.machine.data_received, conn_id, data)

    def tcp_lost(self, conn: Conn) -> None:
        """The far side closed or reset an open connection, or retransmissions ran out."""
        conn_id = self._unname(conn)
        if conn_id is not None:
            self._feed(self.machine.connection_lost, conn_id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {type(self.machine).__name__}>"


class TcpClientDriver(_TcpDriver):
    """Runs a `TcpPeerClient`: its intents become calls on the host's TCP stack."""

    def __init__(self, host: Host, machine: TcpPeerClient) -> None:
        super().__init__(host, machine)
        self._accepted = itertools.count(1)

    def _outputs(self) -> None:
        for intent in self.machine.intents_to_run():
            self._carry_out(intent)

    def _carry_out(self, intent: Intent) -> None:
        if isinstance(intent, Connect):
            result = self.stack.connect(intent.local_port, intent.remote, self)
            if isinstance(result, str):
                self._results.append(partial(self.machine.connect_failed, intent.conn_id, result))
            else:
                self._name(intent.conn_id, result)
        elif isinstance(intent, Write):
            conn = self._conns.get(intent.conn_id)
            if conn is not None:
                self.stack.write(conn, intent.data, str(getattr(intent.kind, "value", intent.kind)))
        elif isinstance(intent, Close):
            conn = self._conns.get(intent.conn_id)
            if conn is not None:
                self._unname(conn)
                self.stack.close(conn)
        elif isinstance(intent, Listen):
            errno = self.stack.listen(intent.port, self)
            if errno is not None:
                self._results.append(partial(self.machine.listen_failed, intent.port, errno))
        elif isinstance(intent, StopListening):
            self.stack.stop_listening(intent.port)

    def tcp_connected(self, conn: Conn) -> None:
        """A connect succeeded: SYN-ACK came back, or the SYNs crossed."""
        conn_id = self._names.get(conn)
        if conn_id is not None:
            self._feed(self.machine.connected, conn_id, conn.local, conn.remote)

    def tcp_failed(self, conn: Conn, errno_name: str) -> None:
        """A connect failed: RST (ECONNREFUSED) or no answer (ETIMEDOUT)."""
        conn_id = self._unname(conn)
        if conn_id is not None:
            self._feed(self.machine.connect_failed, conn_id, errno_name)

    def tcp_accepted(self, conn: Conn) -> None:
        """The listener accepted a connection: name it and hand it over."""
        conn_id = -next(self._accepted)
        self._name(conn_id, conn)
        self._feed(self.machine.accepted, conn_id, conn.remote)


class TcpServerDriver(_TcpDriver):
    """Runs a `TcpRendezvousServer` behind a listener on `host:port`."""

    def __init__(self, host: Host, port: int, machine: TcpRendezvousServer) -> None:
        super().__init__(host, machine)
        if self.stack.listen(port, self) is not None:
            raise ValueError(f"{host.name}: TCP port {port} already has a listener")
        self.port = port
        self.endpoint: Endpoint = host.endpoint(port)
        self._accepted = itertools.count(1)

    def _outputs(self) -> None:
        for conn_id, data in self.machine.data_to_send():
            conn = self._conns.get(conn_id)
            if conn is not None:
                self.stack.write(conn, data, frame_label(data))
        for conn_id in self.machine.connections_to_close():
            conn = self._conns.get(conn_id)
            if conn is not None:
                self._unname(conn)
                self.stack.close(conn)

    def tcp_accepted(self, conn: Conn) -> None:
        """A client connected: the remote endpoint is what its NAT shows."""
        conn_id = next(self._accepted)
        self._name(conn_id, conn)
        self._feed(self.machine.connection_made, conn_id, conn.remote)

    def tcp_connected(self, conn: Conn) -> None:  # pragma: no cover - the server never connects
        """Not used: the server only accepts."""

    def tcp_failed(self, conn: Conn, errno_name: str) -> None:  # pragma: no cover
        """Not used: the server only accepts."""


def frame_label(data: bytes) -> str:
    """Trace label of bytes written: the kinds of the frames in it ("ext-peers"), else "data"."""
    try:
        frames = decode_frames(data)
    except MessageError:
        return "data"
    return "+".join(str(frame_kind(frame).value) for frame in frames) or "data"
