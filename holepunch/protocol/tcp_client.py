"""The TCP peer client as a sans-IO state machine: it asks for sockets and reads what became of them.

Rule: the core cannot run a TCP handshake, so it emits intents (connect from port P to X, listen
on P, write, close) and consumes their results. Every peer stream proves who is on it with HELLO;
the peer with the lower peer id is controlling (as in ICE, RFC 8445 §8.1.1) and keeps the first
stream it verifies by sending SELECT on it, so both sides keep the same stream and close the rest.
A SYN answered with RST is retried every `retry_interval` until the deadline (RFC 5382 §7.1);
other failures back off. Registration has the UDP client's expected-count and timeout rules.
States and tables are in tcp_states.py, HELLO and SELECT handling in tcp_streams.py.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, deque
from dataclasses import dataclass

from .config import _not_negative, _positive
from .endpoint import Endpoint
from .events import ConnectCompleted, Event, PeerFailed, PeerListReceived, PunchingStarted, Registered
from .messages import PEER_ID_LENGTH, ExtError, ExtLeave, ExtPeers, ExtRegister, MessageError, PeerInfo
from .states import ClientState, ClientTrigger
from .tcp_messages import (
    DEFAULT_MAX_FRAME, Close, Connect, ConnId, Intent, Listen, Retry, StopListening, TcpFrame, Write,
    explain_errno, session_token,
)
from .tcp_states import (  # re-exported: the tables and states are part of this module's API
    SI, SS, STREAM_TRANSITIONS, TCP_CLIENT_TRANSITIONS, TCP_PEER_TRANSITIONS, TI, TP, StreamInput,
    StreamState, TcpPeerInput, TcpPeerState, TcpTrigger,
)
from .tcp_states import step as _step
from .tcp_streams import PeerDisconnected, PeerStreams, Stream, TcpPeer

__all__ = [
    "STREAM_TRANSITIONS", "TCP_CLIENT_TRANSITIONS", "TCP_PEER_TRANSITIONS", "PeerDisconnected", "Stream",
    "StreamInput", "StreamState", "TcpClientConfig", "TcpPeer", "TcpPeerClient", "TcpPeerInput",
    "TcpPeerState", "TcpTrigger",
]

# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TcpClientConfig:
    """TCP peer client settings."""

    local_port: int = 0
    """Local port P of the server connection, the listener and every connect; 0: the OS picks."""
    refresh_interval: float = 10.0
    """Seconds between REGISTER refreshes while waiting for peers (server expiry is 40 s)."""
    retry_interval: float = 0.5
    """Seconds before retrying a connect answered with RST, and the first backoff step."""
    max_retry_interval: float = 4.0
    """Ceiling of the exponential backoff after timeouts and ICMP errors."""
    attempt_timeout: float = 2.0
    """Seconds a connect may stay unanswered before it is closed and tried again: SYNs stay
    about 1 s apart instead of following the kernel's doubling RTO (RFC 6298 §5.5)."""
    hello_timeout: float = 5.0
    """Seconds an open stream may wait for HELLO before it is closed."""
    timeout: float | None = 40.0
    """Seconds from start until unconnected peers are given up; None waits forever."""
    wait_timeout: float | None = None
    """Seconds to wait for the expected peers before punching the ones found so far."""
    max_unverified: int = 32
    """Accepted streams without a verified HELLO held at once; more are closed at once."""
    max_frame_size: int = DEFAULT_MAX_FRAME
    """Largest frame accepted from the server or a peer."""

    def __post_init__(self) -> None:
        _positive(self, "refresh_interval", "retry_interval", "max_retry_interval")
        _positive(self, "attempt_timeout", "hello_timeout", "max_unverified")
        _not_negative(self, "local_port")
        for name in ("timeout", "wait_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")


# --- the client ------------------------------------------------------------------------------


class TcpPeerClient(PeerStreams):
    """One peer of a session over TCP: feed it socket results and timers, drain intents and events."""

    def __init__(
        self,
        server: Endpoint,
        session: bytes,
        expected: int,
        config: TcpClientConfig | None = None,
        *,
        rng: random.Random | None = None,
        peer_id: bytes | None = None,
    ) -> None:
        if expected < 0:
            raise ValueError(f"expected must be 0 or more other peers, got {expected}")
        if peer_id is not None and len(peer_id) != PEER_ID_LENGTH:
            raise ValueError(f"peer_id must be {PEER_ID_LENGTH} bytes, got {len(peer_id)}")
        self.server, self.session, self.expected = server, bytes(session), expected
        self.config = config or TcpClientConfig()
        rng = rng or random.Random()
        self.peer_id = peer_id or rng.getrandbits(8 * PEER_ID_LENGTH).to_bytes(PEER_ID_LENGTH, "big")
        self.token = session_token(self.session)
        self.state = ClientState.IDLE
        self.public_endpoint: Endpoint | None = None
        self.local_port: int | None = None
        self.listed: dict[bytes, PeerInfo] = {}
        self.peers: dict[bytes, TcpPeer] = {}
        self.streams: dict[ConnId, Stream] = {}
        self.dropped: Counter[str] = Counter()
        self.refresh_answers = 0
        """Our session's lists from the server after punching began (pushes): counted, not dropped."""
        self.duplicates = 0
        self.started_at: float | None = None
        self._ids = itertools.count(1)
        self._server_stream: Stream | None = None
        self._server_attempts = 0
        self._server_error = ""
        self._server_retry: float | None = None
        self._next_refresh: float | None = None
        self._wait_deadline: float | None = None
        self._deadline: float | None = None
        self._intents: deque[Intent] = deque()
        self._events: deque[Event] = deque()

    # --- requests -----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Connect to the server from local port P; registration follows once connected."""
        self._move(ClientTrigger.START)
        self.started_at = now
        cfg = self.config
        self._deadline = None if cfg.timeout is None else now + cfg.timeout
        self._wait_deadline = None if cfg.wait_timeout is None else now + cfg.wait_timeout
        self._connect_server(now)

    def send(self, peer: Endpoint, data: bytes) -> None:
        """Write application data on the stream kept for `peer`; `ValueError` if there is none."""
        record = self._connected(peer)
        if record is None or record.selected is None:
            raise ValueError(f"{peer} is not a connected peer")
        self._intents.append(Write(record.selected.conn_id, bytes(data)))

    def stream_of(self, peer: Endpoint) -> ConnId | None:
        """The connection kept for `peer`, so a driver can hand its socket to the application."""
        record = self._connected(peer)
        return None if record is None or record.selected is None else record.selected.conn_id

    def close(self, now: float) -> None:
        """Close every stream and the listener; tell the server we left if still connected to it."""
        if self.state is ClientState.CLOSED:
            return
        self._leave_server()
        for stream in list(self.streams.values()):
            self._close(stream, SI.CLOSE)
        if self.local_port is not None:
            self._intents.append(StopListening(self.local_port))
        self._move(ClientTrigger.CLOSE)
        self._next_refresh = self._wait_deadline = self._deadline = self._server_retry = None
        for peer in self.peers.values():
            peer.next_attempt = None

    # --- results from the driver --------------------------------------------------------------

    def connected(self, conn_id: ConnId, local: Endpoint, remote: Endpoint, now: float) -> None:
        """A `Connect` succeeded (a SYN-ACK came back, or the SYNs crossed: simultaneous open)."""
        stream = self.streams.get(conn_id)
        if stream is None:
            self._intents.append(Close(conn_id))  # we gave it up already: make sure it closes
            return
        self._advance(stream, SI.CONNECTED)
        stream.deadline = None
        if stream.role == "server":
            self._server_up(stream, local, now)
        else:
            self._send_hello(stream)
            stream.deadline = now + self.config.hello_timeout

    def connect_failed(self, conn_id: ConnId, errno_name: str, now: float) -> None:
        """A `Connect` failed: ECONNREFUSED (RST), ETIMEDOUT, EHOSTUNREACH (ICMP), EADDRINUSE..."""
        stream = self.streams.get(conn_id)
        if stream is None or stream.state is not SS.CONNECTING:
            return
        self._close(stream, SI.FAILED, intent=False)
        self._connect_error(stream, errno_name, now)

    def accepted(self, conn_id: ConnId, remote: Endpoint, now: float) -> None:
        """Our listener accepted `conn_id` from `remote`: a peer, or a stranger, until HELLO tells."""
        if conn_id in self.streams:
            raise ValueError(f"connection id {conn_id!r} is already in use")
        if self.state in (ClientState.IDLE, ClientState.CLOSED):
            return self._reject_new(conn_id, remote, "not running")
        unverified = sum(1 for s in self.streams.values() if s.role == "in" and s.state is SS.OPEN)
        if unverified >= self.config.max_unverified:
            return self._reject_new(conn_id, remote, "too many unverified streams")
        stream = self._new_stream(conn_id, "in", remote, SS.OPEN)
        stream.deadline = now + self.config.hello_timeout
        return None

    def data_received(self, conn_id: ConnId, data: bytes, now: float) -> None:
        """Bytes on a connection, in any chunking; never raises on any payload."""
        stream = self.streams.get(conn_id)
        if stream is None:
            return
        stream.received += len(data)
        if stream.state is SS.SELECTED:
            self._deliver(stream, bytes(data))
            return
        stream.decoder.feed(data)
        if stream.role == "server":
            self._read_server(stream, now)
        else:
            self._read_peer(stream, now)

    def connection_lost(self, conn_id: ConnId, now: float) -> None:
        """The far side closed or reset `conn_id`, or the network broke it."""
        stream = self.streams.get(conn_id)
        if stream is None:
            return
        was = stream.state
        self._close(stream, SI.LOST, intent=False)
        if stream.role == "server":
            if self.state is ClientState.REGISTERING:
                self._server_error = "the server closed the connection"
                self._server_retry = now + self.config.retry_interval
        elif was is SS.CONNECTING:
            self._connect_error(stream, "ECONNRESET", now)
        else:
            self._stream_gone(stream, "the stream closed before it was selected", now)

    def listen_failed(self, port: int, errno_name: str, now: float) -> None:
        """The `Listen` failed: EADDRINUSE (no SO_REUSEPORT on the holder), ENOPROTOOPT..."""
        help_ = explain_errno(errno_name)
        self._fatal(now, f"cannot listen on port {port}: {errno_name}: {help_.meaning}; try: {help_.advice}")

    # --- timers and outputs -------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Fire what is due: refresh, server reconnect, wait timeout, deadline, stream timeouts, retries."""
        if self.state is ClientState.REGISTERING:
            self._registration_timer(now)
        if self._deadline is not None and now >= self._deadline:
            self._on_deadline(now)
        for stream in list(self.streams.values()):
            if stream.deadline is not None and now >= stream.deadline:
                self._stream_timeout(stream, now)
        for peer in self.peers.values():
            if peer.next_attempt is not None and now >= peer.next_attempt:
                self._attempt(peer, now)

    def get_timer(self) -> float | None:
        """The absolute time `handle_timer` wants to run next, or None."""
        times = [self._next_refresh, self._server_retry, self._wait_deadline, self._deadline]
        times += [s.deadline for s in self.streams.values()]
        times += [p.next_attempt for p in self.peers.values()]
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def next_intent(self) -> Intent | None:
        """The oldest intent not yet handed to the driver, or None."""
        return self._intents.popleft() if self._intents else None

    def intents_to_run(self) -> list[Intent]:
        """Every pending intent, in order."""
        out = list(self._intents)
        self._intents.clear()
        return out

    def next_event(self) -> Event | None:
        """The oldest undrained event, or None."""
        return self._events.popleft() if self._events else None

    # --- the server connection ----------------------------------------------------------------

    def _connect_server(self, now: float) -> None:
        self._server_attempts += 1
        self._server_retry = None
        port = self.local_port if self.local_port is not None else self.config.local_port
        stream = self._server_stream = self._new_stream(next(self._ids), "server", self.server, SS.CONNECTING)
        stream.deadline = now + self.config.attempt_timeout
        self._intents.append(Connect(stream.conn_id, port, self.server))

    def _server_up(self, stream: Stream, local: Endpoint, now: float) -> None:
        if self.local_port is None:  # the first connection fixes P: listen there at once
            self.local_port = local.port
            self._intents.append(Listen(local.port))
        self._send(stream, ExtRegister(self.session, self.peer_id, self.expected))
        self._next_refresh = now + self.config.refresh_interval

    def _registration_timer(self, now: float) -> None:
        if self._next_refresh is not None and now >= self._next_refresh:
            if self._server_stream is not None and self._server_stream.state is SS.OPEN:
                self._send(self._server_stream, ExtRegister(self.session, self.peer_id, self.expected))
            self._next_refresh = now + self.config.refresh_interval
        if self._server_retry is not None and now >= self._server_retry:
            self._connect_server(now)
        if self._wait_deadline is not None and now >= self._wait_deadline:
            self._start_punching(now, ClientTrigger.WAIT_EXPIRED)

    def _read_server(self, stream: Stream, now: float) -> None:
        while stream.state is SS.OPEN:
            try:
                frame = stream.decoder.next_frame()
            except MessageError as exc:
                self._close(stream, SI.CLOSE)
                self._fatal(now, f"the server at {self.server} does not speak holepunch TCP ({exc}); check its address")
                return
            if frame is None:
                return
            self._from_server(frame, now)

    def _from_server(self, frame: TcpFrame, now: float) -> None:
        if self.state is not ClientState.REGISTERING:
            self._after_registration(frame)
        elif isinstance(frame, ExtError):
            self._finish(now, ClientTrigger.REFUSED, f"server refused: {frame.text}", refused=True)
        elif not isinstance(frame, ExtPeers) or frame.session != self.session:
            self._drop(self.server, 0, "unexpected server frame")
        else:
            if self.public_endpoint is None:
                self.public_endpoint = frame.observed
                self._events.append(Registered(True, frame.observed))
            if not frame.push:
                self.listed = {}
            self.listed.update((p.peer_id, p) for p in frame.peers if p.peer_id != self.peer_id)
            self._events.append(PeerListReceived(frame.peers, frame.push))
            if len(self.listed) >= self.expected and (frame.peers or not frame.push):
                self._start_punching(now, ClientTrigger.PEERS_FOUND)

    def _after_registration(self, frame: TcpFrame) -> None:
        """A server frame once we punch: our session's list (a push of a newcomer beyond our peer
        set) is expected and only counted, as the UDP client counts its refreshes' answers."""
        if isinstance(frame, ExtPeers) and frame.session == self.session:
            self.refresh_answers += 1
        elif isinstance(frame, ExtError):
            self._drop(self.server, 0, f"server error after registration: {frame.text}")
        else:
            self._drop(self.server, 0, "unexpected server frame")

    def _leave_server(self) -> None:
        stream = self._server_stream
        if stream is not None and stream.state is SS.OPEN:
            self._send(stream, ExtLeave(self.session, self.peer_id))
            self._close(stream, SI.CLOSE)

    # --- punching -----------------------------------------------------------------------------

    def _start_punching(self, now: float, trigger: ClientTrigger) -> None:
        self._move(trigger)
        self._next_refresh = self._wait_deadline = self._server_retry = None
        listed = tuple(self.listed.values())
        self._events.append(PunchingStarted(listed, self.expected))
        for info in listed:
            self.peers[info.peer_id] = TcpPeer(info, now)
        for stream in list(self.streams.values()):  # HELLOs that came before the peer list
            if stream.hello is not None and stream.state is SS.OPEN:
                hello, stream.hello = stream.hello, None
                self._on_hello(stream, hello, now)
        for peer in self.peers.values():  # after the held HELLOs: a selected peer needs no connect
            self._attempt(peer, now)
        if self.state is ClientState.PUNCHING:  # held HELLOs may have connected everyone already
            self._check_all_connected(now)

    def _attempt(self, peer: TcpPeer, now: float) -> None:
        """One connect from P to the peer's public endpoint; the listener on P does the rest."""
        peer.next_attempt = None
        if peer.state is not TP.PUNCHING or peer.outbound is not None or self._has_verified(peer):
            return
        if self.local_port is None:
            return
        peer.attempts += 1
        stream = peer.outbound = self._new_stream(next(self._ids), "out", peer.endpoint, SS.CONNECTING)
        stream.peer = peer
        stream.deadline = now + self.config.attempt_timeout
        self._intents.append(Connect(stream.conn_id, self.local_port, peer.endpoint))

    def _connect_error(self, stream: Stream, errno_name: str, now: float) -> None:
        help_ = explain_errno(errno_name)
        if stream.role == "server":
            self._server_error = f"{errno_name}: {help_.meaning}"
            if help_.retry is Retry.FATAL:
                return self._fatal(now, f"cannot connect to the server from port {self._port_text()}: "
                                        f"{errno_name}: {help_.meaning}; try: {help_.advice}")
            if self.state is ClientState.REGISTERING:
                self._server_retry = now + self._delay(help_.retry, self._server_attempts)
            return None
        peer = stream.peer
        assert peer is not None
        if peer.outbound is stream:
            peer.outbound = None
        peer.errors[errno_name] += 1
        peer.last_error = f"{errno_name}: {help_.meaning}"
        if help_.retry is Retry.FATAL:
            return self._fatal(now, f"cannot connect from port {self._port_text()}: {errno_name}: "
                                    f"{help_.meaning}; try: {help_.advice}")
        if help_.retry is Retry.BACKOFF:
            peer.backoffs += 1
        if peer.state is TP.PUNCHING and not self._has_verified(peer):
            peer.next_attempt = now + self._delay(help_.retry, peer.backoffs)
        return None

    def _delay(self, retry: Retry, backoffs: int) -> float:
        cfg = self.config
        if retry is Retry.SOON:  # an RST means the far NAT is not open yet: knock again soon
            return cfg.retry_interval
        return min(cfg.retry_interval * 2.0 ** max(backoffs - 1, 0), cfg.max_retry_interval)

    # --- endings ------------------------------------------------------------------------------

    def _check_all_connected(self, now: float) -> None:
        # A peer that connected and has closed its stream since (it finished first and left) was
        # reached all the same: waiting for it would hold connect until the deadline.
        if all(p.state in (TP.CONNECTED, TP.DISCONNECTED) for p in self.peers.values()):
            self._finish(now, ClientTrigger.ALL_CONNECTED, "")

    def _on_deadline(self, now: float) -> None:
        registering = self.state is ClientState.REGISTERING
        self._give_up_peers(now, TI.DEADLINE, None)
        reason = "timed out"
        if registering:
            reason = "timed out waiting for peers"
            if self.public_endpoint is None and self._server_error:
                reason += f": could not register with the server at {self.server}: {self._server_error}"
        self._finish(now, ClientTrigger.DEADLINE, reason)

    def _fatal(self, now: float, reason: str) -> None:
        if self.state in (ClientState.REGISTERING, ClientState.PUNCHING):
            self._give_up_peers(now, TI.ERROR, reason)
            self._finish(now, TcpTrigger.ERROR, reason)

    def _give_up_peers(self, now: float, trigger: TcpPeerInput, reason: str | None) -> None:
        for peer in self.peers.values():
            if peer.state is TP.PUNCHING:
                peer.state = _step(TCP_PEER_TRANSITIONS, peer.state, trigger)  # type: ignore[assignment]
                peer.next_attempt = None
                for stream in [s for s in self.streams.values() if s.peer is peer]:
                    self._close(stream, SI.CLOSE)
                self._events.append(PeerFailed(peer.endpoint, reason or self._failure(peer, now)))

    def _failure(self, peer: TcpPeer, now: float) -> str:
        """Why a peer failed, and what to try, for people reading logs."""
        help_ = explain_errno(max(peer.errors, key=peer.errors.__getitem__) if peer.errors else "NO_ANSWER")
        return (f"no TCP connection to {peer.endpoint} after {peer.attempts} connect attempts in "
                f"{now - peer.started:.1f} s (results: {dict(peer.errors) or 'none'}); last: "
                f"{peer.last_error}; try: {help_.advice}")

    def _finish(self, now: float, trigger: ClientTrigger | TcpTrigger, reason: str, *, refused: bool = False) -> None:
        self._move(trigger)
        self._next_refresh = self._wait_deadline = self._deadline = self._server_retry = None
        self._leave_server()  # the punched streams hold the NAT mapping from now on
        peers = self.peers.values()
        connected = tuple(p.endpoint for p in peers if p.state in (TP.CONNECTED, TP.DISCONNECTED))  # reached
        failed = tuple(p.endpoint for p in peers if p.state is TP.FAILED)
        self._events.append(ConnectCompleted(connected, failed, self.expected, reason, refused))

    # --- helpers ------------------------------------------------------------------------------

    def _connected(self, endpoint: Endpoint) -> TcpPeer | None:
        return next((p for p in self.peers.values() if p.endpoint == endpoint and p.state is TP.CONNECTED), None)

    def _port_text(self) -> str:
        return str(self.local_port if self.local_port is not None else self.config.local_port)

    def _move(self, trigger: ClientTrigger | TcpTrigger) -> None:
        self.state = _step(TCP_CLIENT_TRANSITIONS, self.state, trigger)  # type: ignore[assignment]

