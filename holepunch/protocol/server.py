"""The rendezvous server as a sans-IO state machine.

Rule: byte-compatible with the reference for plain registrations (wire-protocol.md §3): one reply
per registration listing the other members, least recently registered first, as a real 0-byte
datagram when there are none. Unlike the reference, expiry slides with every registration (no B8
flicker) and only clients that registered with the extension are ever pushed to (B1).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from .config import ServerConfig
from .endpoint import Endpoint, format_endpoint
from .events import DatagramDropped, Event, PeerJoined, PeerLeft, RegistrationRefused
from .messages import (
    MAGIC,
    ErrorCode,
    ExtError,
    ExtLeave,
    ExtPeers,
    ExtRegister,
    MessageError,
    MessageKind,
    PeerInfo,
    Transmit,
    decode_ext,
    encode_ext,
)

_NO_PEER_ID = b"\x00" * 8
_PEER_LIST, _KEEPALIVE = MessageKind.PEER_LIST, MessageKind.KEEPALIVE
_new_tuple = tuple.__new__
_TRANSMIT_DEFAULTS = tuple(Transmit._field_defaults[name] for name in Transmit._fields[3:])
"""`_new_tuple(Transmit, (data, destination, kind) + _TRANSMIT_DEFAULTS)` is `Transmit(data,
destination, kind)` without the Python-level `__new__` of a NamedTuple: the same object, made in
half the time on the per-datagram path."""


class Member:
    """One registration: an endpoint in one session, with its expiry."""

    __slots__ = ("endpoint", "session", "text", "peer_id", "expires")

    def __init__(self, endpoint: Endpoint, session: bytes, peer_id: bytes | None, expires: float) -> None:
        self.endpoint = endpoint
        self.session = session
        host, port = endpoint
        # IPv4 text built here, not by the lru_cache of format_endpoint: 100k members would fill
        # that cache with entries nobody looks up twice (its result is stored right here).
        self.text = (format_endpoint(endpoint) if ":" in host else f"{host}:{port}").encode()
        self.peer_id = peer_id  # None for a plain (reference) client
        self.expires = expires

    def info(self) -> PeerInfo:
        """This member as an extended peer-list entry."""
        if self.peer_id is None:
            return PeerInfo(self.endpoint, _NO_PEER_ID, False)
        return PeerInfo(self.endpoint, self.peer_id, True)


@dataclass
class ServerStats:
    """Counters for logs and live demos; `refused` and `dropped` are keyed by reason."""

    datagrams: int = 0
    bytes_in: int = 0
    registrations: int = 0
    replies: int = 0
    pushes: int = 0
    keepalives: int = 0
    joined: int = 0
    expired: int = 0
    left: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)


class RendezvousServer:
    """Sessions keyed by ID bytes; feed datagrams in, drain datagrams and events out."""

    def __init__(self, config: ServerConfig | None = None, *, now: float = 0.0) -> None:
        self.config = config or ServerConfig()
        self.stats = ServerStats()
        self._sessions: dict[bytes, dict[Endpoint, Member]] = {}
        # Registration order is expiry order, because every refresh adds the same timeout. Members
        # hash by identity, so a refresh is one C-level move_to_end with no key to build.
        self._expiry: OrderedDict[Member, None] = OrderedDict()
        self._timeout = self.config.session_timeout
        self._max_id_length = self.config.max_id_length
        self._out: list[Transmit] = []
        self._events: deque[Event] = deque()
        interval = self.config.keepalive_interval
        self._next_keepalive = now + interval if interval > 0 else None

    # --- inspection ---------------------------------------------------------------------------

    @property
    def session_count(self) -> int:
        """Sessions held now."""
        return len(self._sessions)

    @property
    def member_count(self) -> int:
        """Registrations held now, over all sessions."""
        return len(self._expiry)

    def members(self, session: bytes) -> list[Endpoint]:
        """Members of `session`, least recently registered first (the reply order)."""
        return list(self._sessions.get(session, {}))

    def sessions(self) -> dict[bytes, list[Endpoint]]:
        """Every session with its members, for tables and tests."""
        return {sid: list(members) for sid, members in self._sessions.items()}

    # --- input --------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None:
        """Handle one datagram from `source`; never raises on any payload."""
        stats = self.stats
        stats.datagrams += 1
        stats.bytes_in += len(data)
        if data[:4] == MAGIC:
            self._receive_extension(data, source, now)
        elif len(data) > self._max_id_length:
            self._drop(source, len(data), "oversize")  # silently, as the reference does
        else:
            # Inlined plain registration: a known member polling (every 100 ms for the reference
            # client) is nearly all of a busy server's work, so it costs no call and no list copy.
            stats.registrations += 1
            sid = data if data.__class__ is bytes else bytes(data)
            session = self._sessions.get(sid)
            member = None if session is None else session.pop(source, None)
            if member is None:
                others = self._join(sid, session, source, None, now)
                if others is None:
                    return
                reply = b",".join([m.text for m in others])
            else:
                count = len(session)  # the others; one is the common case and needs no join
                if count == 1:
                    reply = next(iter(session.values())).text
                else:
                    reply = b",".join([m.text for m in session.values()]) if count else b""
                # Re-inserted last (least recently registered first), keyed by the Endpoint it joined
                # with: keying by `source` would keep a second, equal Endpoint alive per member.
                session[member.endpoint] = member
                member.peer_id = None
                member.expires = now + self._timeout
                self._expiry.move_to_end(member)
            self._out.append(_new_tuple(Transmit, (reply, source, _PEER_LIST) + _TRANSMIT_DEFAULTS))
            stats.replies += 1

    def handle_timer(self, now: float) -> None:
        """Expire stale registrations and send keep-alives that are due."""
        self._expire(now)
        due = self._next_keepalive
        if due is not None and now >= due:
            self._send_keepalives()
            interval = self.config.keepalive_interval
            while due <= now:
                due += interval
            self._next_keepalive = due

    # --- output -------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The absolute time `handle_timer` wants to run next, or None."""
        keepalive = self._next_keepalive
        if not self._expiry:
            return keepalive
        first = next(iter(self._expiry)).expires
        return first if keepalive is None or first < keepalive else keepalive

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        """Datagrams produced since the last call."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        """The oldest undrained event, or None."""
        return self._events.popleft() if self._events else None

    # --- internals ----------------------------------------------------------------------------

    def _receive_extension(self, data: bytes, source: Endpoint, now: float) -> None:
        try:
            msg = decode_ext(data)
        except MessageError:
            self._drop(source, len(data), "malformed")
            return
        if isinstance(msg, ExtRegister):
            self._register_extended(msg, source, now)
        elif isinstance(msg, ExtLeave):
            self._leave(msg, source)
        else:
            self._drop(source, len(data), "unexpected")

    def _register_extended(self, msg: ExtRegister, source: Endpoint, now: float) -> None:
        if len(msg.session) > self.config.max_id_length:
            self._refuse(msg.session, source, "id-too-long", ErrorCode.ID_TOO_LONG, tell=True)
            return
        others = self._register(msg.session, source, msg.peer_id, now)
        if others is not None:
            peers = tuple(m.info() for m in others)
            reply = encode_ext(ExtPeers(msg.session, source, peers))
            self._out.append(Transmit(reply, source, MessageKind.EXT_PEERS))
            self.stats.replies += 1

    def _register(
        self, sid: bytes, source: Endpoint, peer_id: bytes | None, now: float
    ) -> list[Member] | None:
        """Add or refresh `source` in `sid`; return the other members, or None if refused."""
        self.stats.registrations += 1
        session = self._sessions.get(sid)
        member = None if session is None else session.pop(source, None)
        if member is None:
            return self._join(sid, session, source, peer_id, now)
        others = list(session.values())
        session[member.endpoint] = member  # as in receive_datagram
        member.peer_id = peer_id
        member.expires = now + self._timeout
        self._expiry.move_to_end(member)
        return others

    def _join(
        self, sid: bytes, session: dict[Endpoint, Member] | None, source: Endpoint, peer_id: bytes | None,
        now: float,
    ) -> list[Member] | None:
        """Add the new member `source` to `sid` (`session`, None if new); None if refused."""
        tell = peer_id is not None
        if session is None:
            if len(self._sessions) >= self.config.max_sessions:
                self._refuse(sid, source, "too-many-sessions", ErrorCode.TOO_MANY_SESSIONS, tell=tell)
                return None
            session = self._sessions[sid] = {}
        elif len(session) >= self.config.max_peers_per_session:
            self._refuse(sid, source, "session-full", ErrorCode.SESSION_FULL, tell=tell)
            return None
        others = list(session.values())
        member = session[source] = Member(source, sid, peer_id, now + self._timeout)
        self._expiry[member] = None
        self.stats.joined += 1
        self._events.append(PeerJoined(sid, source, tell, len(session)))
        if others and self.config.push:
            self._push(sid, member, others)
        return others

    def _push(self, sid: bytes, newcomer: Member, others: list[Member]) -> None:
        """Tell extended members about a newcomer; plain members are never pushed to (B1)."""
        info: tuple[PeerInfo, ...] = ()  # built at the first extended member: often there is none
        for member in others:
            if member.peer_id is not None:
                info = info or (newcomer.info(),)
                data = encode_ext(ExtPeers(sid, member.endpoint, info, push=True))
                self._out.append(Transmit(data, member.endpoint, MessageKind.EXT_PUSH))
                self.stats.pushes += 1

    def _leave(self, msg: ExtLeave, source: Endpoint) -> None:
        session = self._sessions.get(msg.session, {})
        member = session.get(source)
        if member is None or member.peer_id != msg.peer_id:
            self._drop(source, 0, "unknown-leave")
            return
        self._remove(msg.session, source, "left")

    def _remove(self, sid: bytes, endpoint: Endpoint, reason: str) -> None:
        session = self._sessions[sid]
        del self._expiry[session.pop(endpoint)]
        if not session:
            del self._sessions[sid]
        if reason == "expired":
            self.stats.expired += 1
        else:
            self.stats.left += 1
        self._events.append(PeerLeft(sid, endpoint, reason))

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry:
            member = next(iter(expiry))
            if member.expires > now:
                break
            self._remove(member.session, member.endpoint, "expired")

    def _send_keepalives(self) -> None:
        """One empty datagram per membership: safe for reference clients, which skip them."""
        tail = (_KEEPALIVE,) + _TRANSMIT_DEFAULTS
        self._out.extend([_new_tuple(Transmit, (b"", m.endpoint) + tail) for m in self._expiry])
        self.stats.keepalives += len(self._expiry)

    def _refuse(
        self, sid: bytes, source: Endpoint, reason: str, code: ErrorCode, *, tell: bool
    ) -> None:
        """Count and report a refusal; only extended clients are told (plain ones cannot parse it)."""
        self.stats.refused[reason] += 1
        self._events.append(RegistrationRefused(sid, source, reason))
        if tell:
            data = encode_ext(ExtError(code, reason))
            self._out.append(Transmit(data, source, MessageKind.EXT_ERROR))

    def _drop(self, source: Endpoint, size: int, reason: str) -> None:
        self.stats.dropped[reason] += 1
        self._events.append(DatagramDropped(source, size, reason))
