"""The peer client as a sans-IO state machine: register, wait for peers, punch, keep alive.

Rule: the seed's steps 0 to 6 with none of the reference's bugs (wire-protocol.md §6): at least
`expected` peers suffice, strangers and late server replies are dropped and counted (answers to
our own extended refreshes are expected: only counted), connect completes the moment the last
peer is confirmed, and every wait has a deadline. The extension is tried first and abandoned as
soon as the server answers in the plain protocol. The server conversation (registration, cookies,
fallback, peer lists, late replies) lives in `registration.py`, techniques beyond the basic punch
(`ClientConfig.techniques`) in `techniques/`, the relay in `relay_path.py`; this module calls them.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable

from .auth import SessionKey
from .config import ClientConfig
from .endpoint import Endpoint
from .events import (
    ConnectCompleted,
    DatagramDropped,
    DataReceived,
    Event,
    PeerConnected,
    PeerFailed,
    PunchingStarted,
)
from .handshake import Deadlines, Handshake, Peer
from .messages import (
    PEER_ID_LENGTH,
    ExtLeave,
    ExtMessage,
    MessageError,
    MessageKind,
    PeerInfo,
    Transmit,
    decode_ext,
    encode_ext,
    is_extension,
)
from .registration import Registration
from .relay_path import RelayPath
from .states import ClientState, ClientTrigger, PeerState, next_client_state
from .techniques.engine import Techniques
from .techniques.result import ConnectResult, PeerResult


class PeerClient:
    """One peer of a session: feed it datagrams and timer calls, drain datagrams and events."""

    def __init__(
        self,
        server: Endpoint,
        session: bytes,
        expected: int,
        config: ClientConfig | None = None,
        *,
        rng: random.Random | None = None,
        peer_id: bytes | None = None,
    ) -> None:
        if expected < 0:
            raise ValueError(f"expected must be 0 or more other peers, got {expected}")
        if peer_id is not None and len(peer_id) != PEER_ID_LENGTH:
            # Our server drops an ExtRegister with any other length as malformed.
            raise ValueError(f"peer_id must be {PEER_ID_LENGTH} bytes, got {len(peer_id)}")
        self.server = server
        self.session = bytes(session)
        self.expected = expected
        self.config = config or ClientConfig()
        rng = rng or random.Random()
        self.peer_id = peer_id or rng.getrandbits(8 * PEER_ID_LENGTH).to_bytes(PEER_ID_LENGTH, "big")
        self.nat_hard: bool | None = None
        """Whether our NAT maps per destination (symmetric); None until NAT discovery tells.
        Birthday probing's AUTO role plays the hard half if True, the easy half if False."""
        self.state = ClientState.IDLE
        self.extended: bool | None = None  # None until the server's first answer tells
        self.public_endpoint: Endpoint | None = None
        self.peers: dict[Endpoint, Peer] = {}
        self.listed: dict[Endpoint, PeerInfo] = {}
        self.started_at: float | None = None
        self.dropped: Counter[str] = Counter()
        self.refresh_answers = 0
        """Server answers after registration to our own re-registrations (our session's list, a
        cookie): expected traffic, so counted here, never as a drop or a `DatagramDropped` event."""
        self._handshake = Handshake(self.config)
        self._wait_deadline: float | None = None
        self._deadline: float | None = None
        self._out: list[Transmit] = []
        self._events: deque[Event] = deque()
        self._reason = ""
        self._order: list[Peer] = []
        """`peers` in listing order; a peer's index here is its key in `_peer_timers`."""
        self._index: dict[Endpoint, int] = {}
        self._peer_timers = Deadlines()
        """Every peer's `next_timer()` as last recorded by `_touch`, so that no pump visits every peer."""
        self._all_connected_upto = 0
        """`_order[:this]` are all connected (or relayed): both are final, so the check after each
        handshake resumes here instead of visiting every peer again (O(N) per client, not O(N²))."""
        self.auth = None if self.config.secret is None else SessionKey(self.config.secret)
        """The session secret's keys (auth.py): set, registrations and punches are signed."""
        # A lambda, not self._out.append: datagrams_to_send swaps in a fresh list each time.
        queue: Callable[[Transmit], None] = lambda transmit: self._out.append(transmit)
        self._tech = Techniques(self, rng, queue)
        self._relay = RelayPath(self, self._events.append, queue)  # relay_path.py
        self._registration = Registration(self, self._events.append, queue, self._drop)  # registration.py

    @property
    def registered(self) -> bool:
        """True once the server has answered us at all (in either protocol)."""
        return bool(self.extended) or self._registration.plain_registered

    # --- requests -----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin registering with the server (step 1 of the seed)."""
        self._move(ClientTrigger.START)
        self.started_at = now
        cfg = self.config
        self._deadline = None if cfg.timeout is None else now + cfg.timeout
        self._wait_deadline = None if cfg.wait_timeout is None else now + cfg.wait_timeout
        self._registration.start(now)

    def send(self, peer: Endpoint, data: bytes) -> None:
        """Queue application data for a connected peer; raises `ValueError` otherwise."""
        record = self.peers.get(peer)
        if record is None or not (record.connected or self._relay.carries(record)):
            raise ValueError(f"{peer} is not a connected peer")
        record.sent += 1
        if not record.connected:  # relayed: through the server, until the punch upgrades it
            self._out.append(self._relay.wrap(record, bytes(data)))
            return
        self._out.append(Transmit(bytes(data), record.address, MessageKind.DATA, record.via))

    def close(self, now: float) -> None:
        """Stop everything; tell an extension-speaking server that we left."""
        if self.state is ClientState.CLOSED:
            return
        if self.extended:  # free our slot at once rather than leave others punching a ghost
            leave = encode_ext(ExtLeave(self.session, self.peer_id))
            self._out.append(Transmit(leave, self.server, MessageKind.EXT_LEAVE))
        self._move(ClientTrigger.CLOSE)
        self._tech.stop()
        self._registration.next_at = self._wait_deadline = self._deadline = None
        for peer in self.peers.values():
            peer.next_send = peer.final_ack_at = peer.next_keepalive = None
        self._peer_timers.clear()

    # --- inputs -------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, source: Endpoint, now: float, via: int = 0) -> None:
        """Handle one datagram that arrived on local socket `via`; never raises on any payload or source."""
        if self.state in (ClientState.IDLE, ClientState.CLOSED):
            self._drop(source, data, "not running")
        elif source == self.server:
            self._from_server(bytes(data), now)
        elif source in self.peers:
            self._from_peer(self.peers[source], bytes(data), now, source, via)
        else:
            key = self._tech.route(source) or self._tech.adopt(bytes(data), source, via)
            if key is None:
                self._drop(source, data, "stranger")
            else:
                self._from_peer(self.peers[key], bytes(data), now, source, via)

    def handle_timer(self, now: float) -> None:
        """Fire whatever is due: registration, wait timeout, deadline, peer retransmissions."""
        if self.state is ClientState.REGISTERING:
            self._registration.on_timer(now)
            if self._wait_deadline is not None and now >= self._wait_deadline:
                self._start_punching(now, ClientTrigger.WAIT_EXPIRED)
        elif self.state is ClientState.PUNCHING:
            self._registration.refresh(now)
        if self._deadline is not None and now >= self._deadline:
            self._on_deadline(now)
        # Only the peers whose timer is due, in listing order: the others' on_timer does nothing.
        for index in self._peer_timers.pop_due(now):
            peer = self._order[index]
            self._out.extend(self._handshake.on_timer(peer, now))
            self._peer_timers.set(index, peer.next_timer())
        self._out.extend(self._tech.on_timer(now))
        self._out.extend(self._relay.on_timer(now))

    # --- outputs ------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The absolute time `handle_timer` wants to run next, or None."""
        times = [self._registration.next_at, self._wait_deadline, self._deadline, self._next_peer_timer()]
        times.append(self._tech.next_timer())
        times.append(self._relay.next_timer())
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        """Datagrams produced since the last call."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        """The oldest undrained event, or None."""
        return self._events.popleft() if self._events else None

    def sockets_wanted(self) -> int:
        """Extra local sockets the driver should hold (1.. as `Transmit.via` and `via` of
        `receive_datagram`): birthday probing's hard half; 0 for the basic punch."""
        return self._tech.sockets_wanted()

    def connect_result(self) -> ConnectResult:
        """Per peer: connected or not, path, technique, time to connect, or why it failed."""
        peers = tuple(PeerResult.of(peer, self._relay.relayed_at(peer)) for peer in self.peers.values())
        return ConnectResult(peers, self.expected, self._reason)

    # --- the server ---------------------------------------------------------------------------

    def _from_server(self, data: bytes, now: float) -> None:
        if self.state is not ClientState.REGISTERING:
            self._after_registration(data, now)
            return
        verdict = self._registration.answer(data, now)  # registration.py
        if verdict is None:
            return
        trigger, reason = verdict
        if trigger is ClientTrigger.PEERS_FOUND:
            self._start_punching(now, trigger)
        else:
            self._finish(now, trigger, reason, refused=True)

    def _after_registration(self, data: bytes, now: float) -> None:
        """A server datagram once we punch or are done: a keep-alive, a cookie, a relay, an
        answer to one of our refreshes, or something to drop."""
        if not data:
            return  # the server's keep-alive: expected, so not even counted
        msg: ExtMessage | None = None
        error = ""  # decoded once here for the cookie, the relay and the reply checks below
        try:
            msg = decode_ext(data) if is_extension(data) else None
        except MessageError as exc:
            error = f"malformed: {exc}"
        if self._registration.late_cookie(msg):
            self.refresh_answers += 1
            return
        relayed = self._relay.from_server(msg, now)
        if relayed is None:  # no relay business: a reply to a registration
            self._registration.late_reply(data, msg, error)
        elif relayed:
            self._drop(self.server, data, relayed)
        elif self.state is ClientState.PUNCHING:
            self._check_all_connected(now)  # a relay answer may have made a peer reachable

    # --- punching -----------------------------------------------------------------------------

    def _start_punching(self, now: float, trigger: ClientTrigger) -> None:
        self._move(trigger)
        self._wait_deadline = None
        self._registration.next_at = self._registration.refresh_at(now)
        listed = tuple(self.listed.values())
        self._events.append(PunchingStarted(listed, self.expected))
        for info in listed:
            peer = self.peers[info.endpoint] = Peer(info, now)
            self._tech.prepare(peer, now)
            self._relay.prepare(peer, now)
            self._out.extend(self._handshake.start(peer, now))
            self._index[info.endpoint] = len(self._order)
            self._order.append(peer)
            self._touch(peer)
        self._check_all_connected(now)

    def _from_peer(self, peer: Peer, data: bytes, now: float, source: Endpoint, via: int = 0) -> None:
        hint = self._tech.check(peer, data, source, via)
        if isinstance(hint, str):
            self._drop(source, data, hint)
            return
        out, just_connected, is_data = self._handshake.on_datagram(peer, data, now, hint)
        self._touch(peer)
        self._out.extend(out)
        if just_connected and not self._relay.connected(peer, now):  # else: PeerUpgraded
            event = PeerConnected(peer.endpoint, now - peer.started, peer.technique, peer.path, peer.remote)
            self._events.append(event)
        if is_data and peer.connected:
            self._events.append(DataReceived(peer.endpoint, data))
        if just_connected and self.state is ClientState.PUNCHING:
            self._check_all_connected(now)

    def _check_all_connected(self, now: float) -> None:
        order, upto = self._order, self._all_connected_upto
        while upto < len(order) and (order[upto].connected or self._relay.carries(order[upto])):
            upto += 1
        self._all_connected_upto = upto
        if upto == len(order):
            self._finish(now, ClientTrigger.ALL_CONNECTED, "")

    def _on_deadline(self, now: float) -> None:
        self._deadline = None
        for peer in self.peers.values():
            if not (peer.connected or self._relay.carries(peer)):
                self._handshake.give_up(peer)
                self._touch(peer)
                self._events.append(PeerFailed(peer.endpoint, peer.last_seen))
        reason = "timed out waiting for peers" if self.state is ClientState.REGISTERING else "timed out"
        self._finish(now, ClientTrigger.DEADLINE, reason)

    def _finish(self, now: float, trigger: ClientTrigger, reason: str, *, refused: bool = False) -> None:
        self._move(trigger)
        self._tech.stop()
        self._reason = reason
        self._registration.next_at = self._wait_deadline = self._deadline = None
        relayed = tuple(p.endpoint for p in self.peers.values() if self._relay.carries(p))
        connected = tuple(p.endpoint for p in self.peers.values() if p.connected or p.endpoint in relayed)
        failed = tuple(p.endpoint for p in self.peers.values() if p.state is PeerState.FAILED)
        self._events.append(ConnectCompleted(connected, failed, self.expected, reason, refused, relayed))

    # --- helpers ------------------------------------------------------------------------------

    def _move(self, trigger: ClientTrigger) -> None:
        self.state = next_client_state(self.state, trigger)

    def _touch(self, peer: Peer) -> None:
        """Record `peer`'s next timer: whatever may bring a peer's timer earlier must call this."""
        self._peer_timers.set(self._index[peer.info.endpoint], peer.next_timer())

    def _next_peer_timer(self) -> float | None:
        """The earliest peer timer, checked against the peer: one cancelled or postponed without
        `_touch` (the relay stops a punch) is recorded afresh instead of waking us early."""
        timers = self._peer_timers
        while (first := timers.first()) is not None:
            when, index = first
            actual = self._order[index].next_timer()
            if actual == when:
                return when
            timers.set(index, actual)
        return None

    def _drop(self, source: Endpoint, data: bytes, reason: str) -> None:
        self.dropped[reason] += 1
        self._events.append(DatagramDropped(source, len(data), reason))
