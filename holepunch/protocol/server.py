"""The rendezvous server as a sans-IO state machine.

Rule: byte-compatible with the reference for plain registrations (wire-protocol.md §3): one reply
per registration listing the other members, least recently registered first, as a real 0-byte
datagram when there are none. Unlike the reference, expiry slides with every registration (no B8
flicker), only clients that registered with the extension are ever pushed to (B1, push.py),
keep-alives are spread over their interval, and every source is held by the guards of guard.py:
a request rate, and an amplification budget (RFC 9000 §8) that an extended client lifts with a
cookie (checked, with the session secrets, by admission.py).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from .admission import Admission
from .config import ServerConfig
from .cookie import DEFAULT_COOKIE_KEY
from .endpoint import Endpoint
from .events import DatagramDropped, Event, PeerJoined, PeerLeft
from .guard import AMPLIFICATION, Account, Guard, KeepaliveQueue, SourceState
from .members import Member, ServerStats  # re-exported: imported from here elsewhere
from .messages import (
    MAGIC,
    ErrorCode,
    ExtError,
    ExtLeave,
    ExtPeers,
    ExtRegister,
    ExtRelay,
    MessageError,
    MessageKind,
    Transmit,
    decode_ext,
    encode_ext,
)
from .push import PushBatch
from .relay import Relay, RelayStats

_PEER_LIST, _KEEPALIVE = MessageKind.PEER_LIST, MessageKind.KEEPALIVE
_new_tuple = tuple.__new__
_TRANSMIT_DEFAULTS = tuple(Transmit._field_defaults[name] for name in Transmit._fields[3:])
"""`_new_tuple(Transmit, (data, destination, kind) + _TRANSMIT_DEFAULTS)` is `Transmit(data,
destination, kind)` without the Python-level `__new__` of a NamedTuple: the same object, made in
half the time on the per-datagram path. The poll path spells the defaults out: (0,)."""
if _TRANSMIT_DEFAULTS != (0,):  # pragma: no cover - a new Transmit field must reach the poll path
    raise ImportError(f"server.py's poll path builds Transmit with via=0 only; fields are now {Transmit._fields}")


class RendezvousServer:
    """Sessions keyed by ID bytes; feed datagrams in, drain datagrams and events out.

    `cookie_key` signs the address cookies (cookie.py): pass a secret, random one on a real
    server; without one the public `DEFAULT_COOKIE_KEY` keeps simulations reproducible."""

    def __init__(self, config: ServerConfig | None = None, *, now: float = 0.0,
                 cookie_key: bytes | None = None) -> None:
        self.config = config = config or ServerConfig()
        self.stats = ServerStats()
        self._sessions: dict[bytes, dict[Endpoint, Member]] = {}
        # Registration order is expiry order, because every refresh adds the same timeout. Members
        # hash by identity, so a refresh is one C-level move_to_end with no key to build.
        self._expiry: OrderedDict[Member, None] = OrderedDict()
        self._keepalives: KeepaliveQueue[Member] = KeepaliveQueue(config.keepalive_interval, self._expiry.__contains__)
        self._timeout = config.session_timeout
        self._max_id_length, self._max_sessions, self._max_peers = (
            config.max_id_length, config.max_sessions, config.max_peers_per_session)
        self._keepalive_on, self._push_on = config.keepalive_interval > 0, config.push
        self._out: list[Transmit] = []
        self._pushes = PushBatch(self._send, self.stats)
        """Newcomers told to the extended members once the batch is fed (push.py)."""
        self._newcomers = self._pushes.pending  # the same dict: a batch is pending while non-empty
        self._events: deque[Event] = deque()
        self.relay = Relay(self.config, self._prolong, now)
        """The relay fallback (relay.py): forwards ExtRelay between verified members."""
        self._guard = guard = Guard(config, self.stats.refused, self._events)
        self._admission = Admission(config, guard, self.stats, self._send,
                                    DEFAULT_COOKIE_KEY if cookie_key is None else cookie_key)
        """Address proof and secrets of extended registrations (admission.py)."""
        # The guard's figures, copied for the inlined poll path of receive_datagram.
        self._rate_interval, self._rate_tolerance = guard.interval, -math.inf if guard.per_host else guard.tolerance
        self._factor, self._overhead = guard.factor, guard.overhead
        self._poll_bonus = guard.overhead * (guard.factor - 1)  # a poll's overhead earned, less its reply's

    # --- inspection ---------------------------------------------------------------------------

    @property
    def relay_stats(self) -> RelayStats:
        """Relay counters: datagrams and bytes forwarded, refusals by reason."""
        return self.relay.stats

    @property
    def session_count(self) -> int:
        """Sessions held now."""
        return len(self._sessions)

    @property
    def member_count(self) -> int:
        """Registrations held now, over all sessions."""
        return len(self._expiry)

    def tracked(self) -> dict[str, int]:
        """Entries in each of the guards' tables: each stays at most `max_tracked_sources`."""
        return self._guard.tracked()

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
        size = len(data)
        stats.bytes_in += size
        if data[:4] == MAGIC:
            self._receive_extension(data, source, now)
            return
        if size > self._max_id_length:
            self._drop(source, size, "oversize")  # silently, as the reference does
            return
        # Inlined plain registration: a known member polling (every 100 ms for the reference
        # client) is nearly all of a busy server's work, so it costs no call and no list copy.
        sid = data if data.__class__ is bytes else bytes(data)
        session = self._sessions.get(sid)
        if session is None or (member := session.pop(source, None)) is None:
            self._join_plain(sid, session, source, size, now)
            return
        # Guard.admit, inlined. `_rate_tolerance` is -inf when buckets are per host, so that case
        # (and every refusal) takes the slow path; a refused poll changes nothing but the member's
        # place in the reply order (it is put back last: restoring its place would cost every poll).
        tat = member.tat
        if tat - now > self._rate_tolerance:
            if not self._guard.admit(member, source, now):
                session[member.endpoint] = member
                return
        else:
            member.tat = (tat if tat > now else now) + self._rate_interval  # not max(): no call
        stats.registrations += 1
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
        # Guard.earn and Guard.spend, inlined: (size + overhead) * factor in, len(reply) + overhead
        # out. The registration stands even if its answer is withheld.
        credit = member.credit + size * self._factor + self._poll_bonus - len(reply)
        if credit < 0.0:
            member.credit = credit + len(reply) + self._overhead
            self._guard.refuse(source, AMPLIFICATION, now)
            return
        member.credit = credit
        self._out.append(_new_tuple(Transmit, (reply, source, _PEER_LIST, 0)))
        stats.replies += 1

    def handle_timer(self, now: float) -> None:
        """Expire stale registrations and send the keep-alives that are due."""
        self._expire(now)
        if len(self._keepalives):
            self._send_keepalives(now)

    # --- output -------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The absolute time `handle_timer` wants to run next, or None."""
        keepalive = self._keepalives.next_due()
        if not self._expiry:
            return keepalive
        first = next(iter(self._expiry)).expires
        return first if keepalive is None or first < keepalive else keepalive

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        """Datagrams produced since the last call."""
        if self._newcomers:
            self._pushes.flush(self._sessions, self._out)
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        """The oldest undrained event, or None."""
        if self._newcomers:  # the batch is fed: its pushes may refuse, and say so in events
            self._pushes.flush(self._sessions, self._out)
        return self._events.popleft() if self._events else None

    # --- registrations ------------------------------------------------------------------------

    def _join_plain(
        self, sid: bytes, session: dict[Endpoint, Member] | None, source: Endpoint, size: int, now: float
    ) -> None:
        """A plain registration from a newcomer: charged to its source's account, then joined."""
        tat = self._admission.admit_plain(sid, source, now)
        if tat is None:
            return
        self.stats.registrations += 1
        joined = self._join(sid, session, source, None, now, tat, None)
        if joined is not None:
            member, others = joined
            member.credit = self._guard.initial_credit + (size + self._overhead) * self._factor  # what it earned
            if self._send(member, b",".join([m.text for m in others]), source, _PEER_LIST, now):
                self.stats.replies += 1

    def _receive_extension(self, data: bytes, source: Endpoint, now: float) -> None:
        try:
            msg = decode_ext(data)
        except MessageError:
            self._drop(source, len(data), "malformed")
            return
        if isinstance(msg, ExtRegister):
            self._register_extended(msg, source, len(data), now)
        elif isinstance(msg, ExtLeave):
            self._leave(msg, source)
        elif isinstance(msg, ExtRelay):
            session = self._sessions.get(msg.session)
            for transmit in self.relay.receive(data, msg, source, session, now):
                self._send_to_member(transmit, session, now)
        else:
            self._drop(source, len(data), "unexpected")

    def _register_extended(self, msg: ExtRegister, source: Endpoint, size: int, now: float) -> None:
        """Admitted first (admission.py: rate, ID length, address proof, secret), then registered."""
        sid = msg.session
        session = self._sessions.get(sid)
        member = None if session is None else session.get(source)
        admitted = self._admission.admit(msg, member, source, size, now)
        if admitted is None:
            return
        account, proved = admitted
        self.stats.registrations += 1
        if member is None:
            joined = self._join(sid, session, source, msg.peer_id, now, account.tat, account)
            if joined is None:
                return
            member = joined[0]
            member.credit = account.credit  # what is left of what this registration earned
        else:
            self._refresh(member, msg.peer_id, now)
        others = tuple(m.info() for m in self._sessions[sid].values() if m is not member)
        if self._newcomers:  # its push (if any) must follow this reply, which it would otherwise undo
            self._pushes.answered.add(member)
        self._admission.answer(member, encode_ext(ExtPeers(sid, source, others)), proved, size, now)

    def _refresh(self, member: Member, peer_id: bytes | None, now: float) -> None:
        """A known member registered again: last in the reply order, expiry pushed back."""
        session = self._sessions[member.session]
        del session[member.endpoint]
        session[member.endpoint] = member
        member.peer_id = peer_id
        self._prolong(member, now)

    def _prolong(self, member: Member, now: float) -> None:
        """Push a member's expiry back by the session timeout (a registration or a relay did it)."""
        member.expires = now + self._timeout
        self._expiry.move_to_end(member)

    def _join(
        self, sid: bytes, session: dict[Endpoint, Member] | None, source: Endpoint, peer_id: bytes | None,
        now: float, tat: float, account: Account | None,
    ) -> tuple[Member, list[Member]] | None:
        """Add the new member `source` to `sid` (`session`, None if new): it and the others, or
        None if a limit refused it."""
        tell = peer_id is not None
        if session is None:
            if len(self._sessions) >= self._max_sessions:
                self._refuse(sid, source, "too-many-sessions", ErrorCode.TOO_MANY_SESSIONS, account, now, tell=tell)
                return None
            session = self._sessions[sid] = {}
        elif len(session) >= self._max_peers:
            self._refuse(sid, source, "session-full", ErrorCode.SESSION_FULL, account, now, tell=tell)
            return None
        others = list(session.values())
        member = session[source] = Member(source, sid, peer_id, now + self._timeout)
        member.tat = tat  # a newcomer's requests start where its source's stand
        self._expiry[member] = None
        if self._keepalive_on:
            self._keepalives.add(member, now)
        self.stats.joined += 1
        self._events.append(PeerJoined(sid, source, tell, len(session)))
        if others and self._push_on:
            self._pushes.add(member, now, len(self._out))
        return member, others

    def _leave(self, msg: ExtLeave, source: Endpoint) -> None:
        session = self._sessions.get(msg.session, {})
        member = session.get(source)
        if member is None or member.peer_id != msg.peer_id:
            self._drop(source, 0, "unknown-leave")
            return
        # The source keeps its rate and credit: leaving and joining again buys no fresh bucket.
        self._guard.give_back(source, member.tat)
        self._remove(msg.session, source, "left")

    def _remove(self, sid: bytes, endpoint: Endpoint, reason: str) -> None:
        session = self._sessions[sid]
        member = session.pop(endpoint)
        del self._expiry[member]
        if self._keepalive_on:
            self._keepalives.removed()
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

    # --- output helpers -----------------------------------------------------------------------

    def _send_keepalives(self, now: float) -> None:
        """One empty datagram to each member whose keep-alive is due, at most a batch per call.

        Safe for reference clients, which skip them. Spread out rather than sent to everyone at
        once (the reference's way): 200,000 sends in a row would stall reads for over a second."""
        overhead, tail = self._overhead, (_KEEPALIVE,) + _TRANSMIT_DEFAULTS
        # A member that registered in the last half interval needs none: its own datagram just
        # refreshed its NAT's mapping (outbound refresh, RFC 4787 REQ-6), so a polling member gets
        # none at all and a silent one waits at most 1.5 intervals; a busy server saves a sendto.
        recent = now + self._timeout - self._keepalives.interval / 2  # `expires` of such a member
        for member in self._keepalives.take_due(now, self.config.keepalive_batch):
            if member.expires > recent:
                continue
            if member.credit < overhead:
                self._guard.refuse(member.endpoint, AMPLIFICATION, now)
                continue
            member.credit -= overhead
            self._out.append(_new_tuple(Transmit, (b"", member.endpoint) + tail))
            self.stats.keepalives += 1

    def _send(self, account: Account, data: bytes, destination: Endpoint, kind: MessageKind, now: float) -> bool:
        """Queue a datagram if the amplification budget allows it; False if withheld (counted)."""
        cost = len(data) + self._overhead  # Guard.spend, inlined: every join and reply comes here
        credit = account.credit
        if credit < cost:
            self._guard.refuse(destination, AMPLIFICATION, now)
            return False
        account.credit = credit - cost
        self._out.append(_new_tuple(Transmit, (data, destination, kind, 0)))
        return True

    def _send_to_member(self, transmit: Transmit, session: dict[Endpoint, Member] | None, now: float) -> None:
        """Queue what another part (the relay) sends, within the destination's budget: a member
        that has not proved its address may have been registered by a spoofer."""
        member = None if session is None else session.get(transmit.destination)
        account = SourceState(0.0, self._guard.initial_credit) if member is None else member
        if self._guard.spend(account, len(transmit.data), transmit.destination, now):
            self._out.append(transmit)

    def _refuse(
        self, sid: bytes, source: Endpoint, reason: str, code: ErrorCode, account: Account | None, now: float,
        *, tell: bool,
    ) -> None:
        """Count and report a refusal; only extended clients are told (plain ones cannot parse it)."""
        self._guard.refuse(source, reason, now, sid)
        if tell and account is not None:
            self._send(account, encode_ext(ExtError(code, reason)), source, MessageKind.EXT_ERROR, now)

    def _drop(self, source: Endpoint, size: int, reason: str) -> None:
        self.stats.dropped[reason] += 1
        self._events.append(DatagramDropped(source, size, reason))

