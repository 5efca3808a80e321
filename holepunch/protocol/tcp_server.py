"""The TCP rendezvous server as a sans-IO state machine: connections and bytes in, frames out.

Rule: the UDP server's session rules over streams (docs/wire-protocol.md §8). A REGISTER makes
its connection a member; the reply lists the other members and the observed endpoint, and every
other member is pushed the newcomer at once over its open connection. A member lives while its
connection is open and frames keep coming within `session_timeout` (sliding, as over UDP).
Garbage closes the connection; no input ever raises.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from .config import _not_negative, _positive
from .endpoint import Endpoint
from .events import DatagramDropped, Event, PeerJoined, PeerLeft, RegistrationRefused
from .messages import (
    MAX_ID_LENGTH,
    ErrorCode,
    ExtError,
    ExtLeave,
    ExtPeers,
    ExtRegister,
    MessageError,
    PeerInfo,
)
from .tcp_messages import ConnId, FrameDecoder, TcpFrame, encode_frame

TOO_MANY_CONNECTIONS = 4
"""ERROR code sent only over TCP: the server holds `max_connections` already."""


@dataclass(frozen=True)
class TcpServerConfig:
    """TCP rendezvous server settings; the session rules are the UDP server's."""

    session_timeout: float = 40.0
    """Seconds a member lives after its latest frame; clients refresh every 10 s. The connection
    closing ends membership at once."""
    register_timeout: float = 10.0
    """Seconds a new connection may stay silent before its REGISTER; then it is closed."""
    max_id_length: int = MAX_ID_LENGTH
    """Longest session ID accepted, as over UDP; longer ones are refused with an ERROR frame."""
    max_sessions: int = 1_000_000
    """Sessions held at once."""
    max_peers_per_session: int = 1024
    """Members of one session."""
    max_connections: int = 10_000
    """Open connections at once, registered or not; each costs a socket, so bound them."""
    max_frame_size: int = 4096
    """Largest frame accepted from a client; a REGISTER with a 1,024-byte ID is 1,049 bytes."""
    push: bool = True
    """Push each newcomer to the other members of its session."""

    def __post_init__(self) -> None:
        _positive(self, "session_timeout", "register_timeout", "max_sessions")
        _positive(self, "max_peers_per_session", "max_connections", "max_frame_size")
        _not_negative(self, "max_id_length")


@dataclass
class TcpServerStats:
    """Counters for logs and demos; `refused` and `dropped` are keyed by reason."""

    connections: int = 0
    frames: int = 0
    bytes_in: int = 0
    registrations: int = 0
    replies: int = 0
    pushes: int = 0
    joined: int = 0
    expired: int = 0
    left: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)


class _Conn:
    """One open connection; `session` is set once its REGISTER was accepted."""

    __slots__ = ("conn_id", "decoder", "expires", "peer_id", "remote", "session")

    def __init__(self, conn_id: ConnId, remote: Endpoint, decoder: FrameDecoder, expires: float) -> None:
        self.conn_id = conn_id
        self.remote = remote
        self.decoder = decoder
        self.session: bytes | None = None
        self.peer_id = b""
        self.expires = expires

    def info(self) -> PeerInfo:
        """This member as a peer-list entry (always extended: TCP has no plain protocol)."""
        return PeerInfo(self.remote, self.peer_id, True)


class TcpRendezvousServer:
    """Sessions of connections: feed connection results and bytes in, drain writes and closes."""

    def __init__(self, config: TcpServerConfig | None = None) -> None:
        self.config = config or TcpServerConfig()
        self.stats = TcpServerStats()
        self._conns: dict[ConnId, _Conn] = {}
        self._sessions: dict[bytes, dict[ConnId, _Conn]] = {}
        # Deadlines grow with time in each dict, so the first entry is always the next to expire.
        self._unregistered: OrderedDict[ConnId, _Conn] = OrderedDict()
        self._members: OrderedDict[ConnId, _Conn] = OrderedDict()
        self._out: list[tuple[ConnId, bytes]] = []
        self._close: list[ConnId] = []
        self._events: deque[Event] = deque()

    # --- inspection ---------------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        """Connections open now."""
        return len(self._conns)

    @property
    def session_count(self) -> int:
        """Sessions held now."""
        return len(self._sessions)

    def members(self, session: bytes) -> list[Endpoint]:
        """Observed endpoints of `session`'s members, in joining order (the reply order)."""
        return [c.remote for c in self._sessions.get(session, {}).values()]

    def sessions(self) -> dict[bytes, list[Endpoint]]:
        """Every session with its members."""
        return {sid: self.members(sid) for sid in self._sessions}

    # --- inputs -------------------------------------------------------------------------------

    def connection_made(self, conn_id: ConnId, remote: Endpoint, now: float) -> None:
        """A client connected; `remote` is the endpoint its NAT shows (what peers must dial)."""
        if conn_id in self._conns:
            raise ValueError(f"connection id {conn_id!r} is already open")
        self.stats.connections += 1
        conn = _Conn(conn_id, remote, FrameDecoder(self.config.max_frame_size), now + self.config.register_timeout)
        if len(self._conns) >= self.config.max_connections:
            self._refuse(conn, b"", "too-many-connections", TOO_MANY_CONNECTIONS)
            return
        self._conns[conn_id] = conn
        self._unregistered[conn_id] = conn

    def data_received(self, conn_id: ConnId, data: bytes, now: float) -> None:
        """Bytes from a connection, in any chunking; garbage closes it."""
        conn = self._conns.get(conn_id)
        if conn is None:
            return  # closed by us; the driver may still deliver what was in flight
        self.stats.bytes_in += len(data)
        conn.decoder.feed(data)
        while self._conns.get(conn_id) is conn:
            try:
                frame = conn.decoder.next_frame()
            except MessageError as exc:
                self._drop(conn, len(data), f"malformed: {exc}")
                self._shut(conn, "closed")
                return
            if frame is None:
                return
            self.stats.frames += 1
            self._handle(conn, frame, now)

    def connection_lost(self, conn_id: ConnId, now: float) -> None:
        """The connection closed or broke; a member leaves its session."""
        conn = self._conns.get(conn_id)
        if conn is not None:
            self._forget(conn, "closed")

    def handle_timer(self, now: float) -> None:
        """Close connections that never registered and members gone silent."""
        for table, reason in ((self._unregistered, "no registration"), (self._members, "expired")):
            while table:
                conn = next(iter(table.values()))
                if conn.expires > now:
                    break
                if reason == "no registration":
                    self._drop(conn, 0, reason)
                self._shut(conn, reason)

    # --- outputs ------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The absolute time `handle_timer` wants to run next, or None."""
        heads = [next(iter(t.values())).expires for t in (self._unregistered, self._members) if t]
        return min(heads) if heads else None

    def data_to_send(self) -> list[tuple[ConnId, bytes]]:
        """(connection, bytes) to write, in order, since the last call."""
        out, self._out = self._out, []
        return out

    def connections_to_close(self) -> list[ConnId]:
        """Connections to close once the data queued for them is written."""
        out, self._close = self._close, []
        return out

    def next_event(self) -> Event | None:
        """The oldest undrained event, or None."""
        return self._events.popleft() if self._events else None

    # --- frames -------------------------------------------------------------------------------

    def _handle(self, conn: _Conn, frame: TcpFrame, now: float) -> None:
        if isinstance(frame, ExtRegister):
            if conn.session is None:
                self._join(conn, frame, now)
            elif (frame.session, frame.peer_id) == (conn.session, conn.peer_id):
                self._refresh(conn, now)
            else:
                self._drop(conn, 0, "re-register")  # one connection is one membership
        elif isinstance(frame, ExtLeave):
            if (frame.session, frame.peer_id) == (conn.session, conn.peer_id):
                self._shut(conn, "left")
            else:
                self._drop(conn, 0, "unknown-leave")
        else:
            self._drop(conn, 0, "unexpected")

    def _refresh(self, conn: _Conn, now: float) -> None:
        """Slide the expiry; no reply, because pushes over TCP are never lost."""
        self.stats.registrations += 1
        conn.expires = now + self.config.session_timeout
        self._members.move_to_end(conn.conn_id)

    def _join(self, conn: _Conn, msg: ExtRegister, now: float) -> None:
        self.stats.registrations += 1
        cfg = self.config
        if len(msg.session) > cfg.max_id_length:
            return self._refuse(conn, msg.session, "id-too-long", ErrorCode.ID_TOO_LONG)
        session = self._sessions.get(msg.session)
        if session is None and len(self._sessions) >= cfg.max_sessions:
            return self._refuse(conn, msg.session, "too-many-sessions", ErrorCode.TOO_MANY_SESSIONS)
        for old in list((session or {}).values()):
            if old.peer_id == msg.peer_id:  # the same client reconnected: its old stream is stale
                self._shut(old, "replaced")
        session = self._sessions.setdefault(msg.session, {})
        if len(session) >= cfg.max_peers_per_session:
            return self._refuse(conn, msg.session, "session-full", ErrorCode.SESSION_FULL)
        others = list(session.values())
        conn.session, conn.peer_id = msg.session, msg.peer_id
        conn.expires = now + cfg.session_timeout
        session[conn.conn_id] = conn
        del self._unregistered[conn.conn_id]
        self._members[conn.conn_id] = conn
        self.stats.joined += 1
        self._events.append(PeerJoined(msg.session, conn.remote, True, len(session)))
        reply = ExtPeers(msg.session, conn.remote, tuple(o.info() for o in others))
        self._send(conn, reply)
        self.stats.replies += 1
        if cfg.push:
            for other in others:
                self._send(other, ExtPeers(msg.session, other.remote, (conn.info(),), push=True))
                self.stats.pushes += 1
        return None

    # --- helpers ------------------------------------------------------------------------------

    def _send(self, conn: _Conn, frame: TcpFrame) -> None:
        self._out.append((conn.conn_id, encode_frame(frame)))

    def _refuse(self, conn: _Conn, sid: bytes, reason: str, code: int) -> None:
        """Tell the client why (unlike UDP, every TCP client speaks the extension), then close."""
        self.stats.refused[reason] += 1
        self._events.append(RegistrationRefused(sid, conn.remote, reason))
        self._out.append((conn.conn_id, encode_frame(ExtError(code, reason))))
        self._shut(conn, "refused")

    def _shut(self, conn: _Conn, reason: str) -> None:
        """We close the connection: forget it now and tell the driver."""
        self._forget(conn, reason)
        self._close.append(conn.conn_id)

    def _forget(self, conn: _Conn, reason: str) -> None:
        self._conns.pop(conn.conn_id, None)
        self._unregistered.pop(conn.conn_id, None)
        if conn.session is None or self._members.pop(conn.conn_id, None) is None:
            return
        session = self._sessions[conn.session]
        del session[conn.conn_id]
        if not session:
            del self._sessions[conn.session]
        if reason == "expired":
            self.stats.expired += 1
        else:
            self.stats.left += 1
        self._events.append(PeerLeft(conn.session, conn.remote, reason))

    def _drop(self, conn: _Conn, size: int, reason: str) -> None:
        self.stats.dropped[reason] += 1
        self._events.append(DatagramDropped(conn.remote, size, reason))
