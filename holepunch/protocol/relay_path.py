"""The client's relay fallback (issue 7, technique 5): peers reached through the server's relay.

Rule: only with `Technique.RELAY` on, and only towards a peer the server listed as extended while
we are extended too, so a reference peer or server never sees a relay (wire-protocol.md §7). A
peer not connected `relay_after` seconds after punching began is offered the relay: a PUNCH
inside an `ExtRelay` to the server, every punch interval. The peer answers with a PUNCH_ACK
inside an `ExtRelay`; that answer (or any later relay from the peer, which it sends only once
relayed itself) proves both directions through the server, and the peer becomes relayed
(`PeerRelayed`). The direct punch goes on meanwhile: its handshake upgrades the peer to direct
(`PeerUpgraded`); after `relay_upgrade_window` seconds without one it stops, and the peer stays
relayed, kept alive by empty relays every `keepalive_interval` (which also keep our membership
at the server fresh: the server counts a relay as a refresh). With a session secret (auth.py)
the inner punches carry the secret's token and every `ExtRelay` we send is signed; one that
arrives unsigned or with a bad MAC is dropped, so only holders of the secret can use the lane.
Lane timers live in a `Deadlines` heap, so a pump costs O(log N) per lane whose timer changed,
never a visit of every lane.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .endpoint import Endpoint
from .events import DataReceived, Event, PeerRelayed, PeerUpgraded, RelayRefused
from .handshake import Deadlines, Peer
from .messages import (
    ErrorCode,
    ExtError,
    ExtMessage,
    ExtPunch,
    ExtPunchAck,
    ExtRelay,
    MessageKind,
    Transmit,
    encode_ext,
    punch_in,
)
from .states import ClientState, PeerState
from .tcp_messages import session_token
from .techniques import Technique

if TYPE_CHECKING:  # pragma: no cover - client.py imports this module
    from .client import PeerClient

RELAYED = "relayed"
"""`Peer.path` while the relay carries the peer; "direct" otherwise."""


class RelayState(enum.Enum):
    """Where the relay fallback is with one peer."""

    WAITING = "waiting"
    """Punching directly; the relay is offered at `relay_after` unless the punch succeeds first."""
    OFFERING = "offering"
    """Relayed PUNCHes go out; no answer through the relay yet."""
    RELAYED = "relayed"
    """The relay carries the peer's data; the direct punch goes on in the background."""
    DIRECT = "direct"
    """Connected directly, before the relay was needed or after an upgrade."""


@dataclass
class Lane:
    """The relay fallback towards one extended peer."""

    peer: Peer
    punch: bytes
    """The relayed offer: our PUNCH for this peer, the DATA of an `ExtRelay`."""
    answer: bytes
    """Our PUNCH_ACK for this peer, sent through the relay in answer to its PUNCH."""
    state: RelayState = RelayState.WAITING
    offer_at: float | None = None
    relayed_at: float | None = None
    window_ends: float | None = None
    next_keepalive: float | None = None
    last_answer: float = float("-inf")
    key: int | None = None
    """The lane's key in `RelayPath`'s timers: its place among the lanes by peer id, or None for
    a lane that shares its peer's id with an earlier one (no relay names it, it never fires)."""

    def next_timer(self) -> float | None:
        """The earliest of the next offer, keep-alive and end of the upgrade window."""
        times = [t for t in (self.offer_at, self.next_keepalive, self.window_ends) if t is not None]
        return min(times) if times else None


class RelayPath:
    """The relay fallback of one `PeerClient`; the client calls it at a few hooks."""

    def __init__(self, client: PeerClient, emit: Callable[[Event], None], send: Callable[[Transmit], None]) -> None:
        self.client = client
        self._emit, self._send = emit, send  # the client's event queue and datagram queue
        self.config = client.config
        self.enabled = Technique.RELAY in client.config.techniques
        self.refused: Counter[str] = Counter()
        """RELAY_REFUSED errors from the server, by reason."""
        self._auth = client.auth  # None without a secret: relays unsigned, as before
        self._token = session_token(client.session) if self._auth is None else self._auth.token(client.session)
        self._lanes: dict[bytes, Lane] = {}  # by the peer's id, which a relay names
        self._by_endpoint: dict[Endpoint, Lane] = {}
        self._order: list[Lane] = []  # the lanes by key: the order of `_lanes`
        self._timers = Deadlines()
        """Every keyed lane's `next_timer()`, updated by `_schedule` whenever one of its times changes."""

    # --- hooks of the client ------------------------------------------------------------------

    def prepare(self, peer: Peer, now: float) -> None:
        """Punching `peer` starts now: plan its fallback if the relay may ever carry it."""
        if not (self.enabled and self.client.extended and peer.info.extended):
            return  # a plain (reference) peer, or a plain server: never a relay
        me, them = self.client.peer_id, peer.info.peer_id
        lane = Lane(peer, encode_ext(ExtPunch(self._token, me, them)), encode_ext(ExtPunchAck(self._token, me, them)),
                    offer_at=now + self.config.relay_after)
        if self._lanes.setdefault(them, lane) is lane:
            lane.key = len(self._order)
            self._order.append(lane)
            self._schedule(lane)
        self._by_endpoint[peer.endpoint] = lane

    def carries(self, peer: Peer) -> bool:
        """True while the relay carries `peer` (it is reachable, though not directly)."""
        lane = self._by_endpoint.get(peer.endpoint) if self._by_endpoint else None
        return lane is not None and lane.state is RelayState.RELAYED

    def relayed_at(self, peer: Peer) -> float | None:
        """When the relay started to carry `peer`, or None if it never did."""
        lane = self._by_endpoint.get(peer.endpoint)
        return None if lane is None else lane.relayed_at

    def wrap(self, peer: Peer, data: bytes) -> Transmit:
        """Application data for a relayed `peer`, as an `ExtRelay` to the server."""
        return self._relay(peer, data)

    def connected(self, peer: Peer, now: float) -> bool:
        """The direct handshake with `peer` just completed; True if that upgrades a relayed peer
        (then `PeerUpgraded` is reported instead of `PeerConnected`)."""
        lane = self._by_endpoint.get(peer.endpoint) if self._by_endpoint else None
        if lane is None:
            return False
        was = lane.state
        lane.state = RelayState.DIRECT
        lane.offer_at = lane.next_keepalive = lane.window_ends = None
        self._schedule(lane)
        if was is not RelayState.RELAYED or lane.relayed_at is None:
            return False
        peer.path = "direct"
        event = PeerUpgraded(peer.endpoint, now - peer.started, now - lane.relayed_at, peer.technique, peer.remote)
        self._emit(event)
        return True

    def next_timer(self) -> float | None:
        """The earliest lane timer, or None."""
        if not self._lanes or self.client.state is ClientState.CLOSED:
            return None
        return self._timers.earliest()

    def on_timer(self, now: float) -> list[Transmit]:
        """Offers, keep-alives and ends of upgrade windows that are due, lane by lane in key order
        (the order of `_lanes`); a lane that is not due has nothing to do, so it is not visited."""
        out: list[Transmit] = []
        if not self._lanes or self.client.state is ClientState.CLOSED:
            return out
        for key in self._timers.pop_due(now):
            lane = self._order[key]
            if lane.offer_at is not None and now >= lane.offer_at:
                out += self._offer(lane, now)
            if lane.next_keepalive is not None and now >= lane.next_keepalive:
                lane.next_keepalive = now + self.config.keepalive_interval
                out.append(self._relay(lane.peer, b""))
            if lane.window_ends is not None and now >= lane.window_ends:
                lane.window_ends = None  # no direct path in time: stop punching, stay relayed
                lane.peer.next_send = None
            self._schedule(lane)
        return out

    def from_server(self, msg: ExtMessage | None, now: float) -> str | None:
        """A server datagram after registration, decoded (None: not a well-formed extension
        message): None if it is no relay business of ours, "" if handled, or the reason to drop it."""
        if not self._lanes or msg is None:
            return None
        if isinstance(msg, ExtError) and msg.code == ErrorCode.RELAY_REFUSED:
            self.refused[msg.text] += 1
            self._emit(RelayRefused(msg.text))
            return ""
        if not isinstance(msg, ExtRelay):
            return None
        lane = self._lanes.get(msg.peer_id)
        if msg.session != self.client.session or msg.target != self.client.peer_id or lane is None:
            return "relay for another session or peer"
        if self._auth is not None and not self._auth.verify(msg):  # the server forwards bytes unchanged
            return "relay with a bad MAC" if msg.mac else "relay without a MAC"
        return self._receive(lane, msg.data, now)

    # --- internals ----------------------------------------------------------------------------

    def _receive(self, lane: Lane, data: bytes, now: float) -> str:
        control = self._control(data, lane.peer.info.peer_id)
        if isinstance(control, ExtPunchAck):
            self._confirm(lane, now)
        elif control is not None:  # its offer: answer, and offer ours at once if still waiting
            if now - lane.last_answer >= self.config.punch_interval / 2:  # never a reflector
                lane.last_answer = now
                self._send(self._relay(lane.peer, lane.answer))
            if lane.state is RelayState.WAITING and lane.offer_at is not None:
                lane.offer_at = now
                self._schedule(lane)
        else:  # data or a keep-alive: the peer relays only once relayed, so it got our answer
            self._confirm(lane, now)
            if data:
                lane.peer.received += 1
                self._emit(DataReceived(lane.peer.endpoint, data))
        return ""

    def _control(self, data: bytes, peer_id: bytes) -> ExtPunch | None:
        """The relayed PUNCH or PUNCH_ACK in `data`, if it is a valid one from `peer_id` to us."""
        msg = punch_in(data)
        if msg is None or msg.token != self._token:
            return None
        return msg if msg.peer_id == peer_id and msg.target == self.client.peer_id else None

    def _offer(self, lane: Lane, now: float) -> list[Transmit]:
        peer = lane.peer
        if peer.connected or peer.state is PeerState.FAILED or lane.state not in (RelayState.WAITING,
                                                                                   RelayState.OFFERING):
            lane.offer_at = None
            return []
        lane.state = RelayState.OFFERING
        lane.offer_at = now + self.config.punch_interval
        return [self._relay(peer, lane.punch)]

    def _confirm(self, lane: Lane, now: float) -> None:
        """Both directions through the relay work: the peer is relayed (unless it connected or failed)."""
        peer = lane.peer
        if lane.state not in (RelayState.WAITING, RelayState.OFFERING) or peer.connected:
            return
        if peer.state is PeerState.FAILED:
            return
        lane.state, lane.relayed_at, lane.offer_at = RelayState.RELAYED, now, None
        lane.window_ends = now + self.config.relay_upgrade_window
        if self.config.keepalive_interval > 0:
            lane.next_keepalive = now + self.config.keepalive_interval
        peer.path = RELAYED
        self._schedule(lane)
        self._emit(PeerRelayed(peer.endpoint, now - peer.started, peer.last_seen))

    def _schedule(self, lane: Lane) -> None:
        """Record `lane`'s next timer: whatever changes one of its times must call this."""
        if lane.key is not None:
            self._timers.set(lane.key, lane.next_timer())

    def _relay(self, peer: Peer, data: bytes) -> Transmit:
        msg = ExtRelay(self.client.session, self.client.peer_id, peer.info.peer_id, data)
        if self._auth is not None:
            msg = self._auth.sign(msg)
        return Transmit(encode_ext(msg), self.client.server, MessageKind.RELAY)
