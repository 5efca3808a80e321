"""The SYN/ACK handshake with one peer, written so that reference peers finish too.

Rule (wire-protocol.md §7): send SYN every punch interval; answer a SYN with ACK at once (the
reference's own timer starves, B4); on ACK send ACK at once and once more a little later, which a
reference peer needs to return from Connect (B3); a peer of ours (extended) gets one ACK only,
and none if it has our ACK to its SYN already; never retry faster than the reference, and ever
slower to a peer that has sent nothing for a while. Our last ACK may be lost, so closing
lingers while a peer may still retry (`linger_until`, TCP's TIME-WAIT).
`Deadlines` keeps many peers' timers for the client without visiting every peer on every pump.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from heapq import heapify, heappop, heappush

from .config import ClientConfig
from .endpoint import Endpoint
from .messages import ACK, SYN, MessageKind, PeerInfo, Transmit
from .states import PEER_TRANSITIONS, PeerInput, PeerState

Outcome = tuple[list[Transmit], bool]  # datagrams to send, and whether the peer just connected
Hint = tuple[PeerInput, str]
"""What an extended punch means to the handshake (SYN or ACK), and the label for `last_seen`."""
_SYN_HINT: Hint = (PeerInput.SYN, SYN.decode())
_ACK_HINT: Hint = (PeerInput.ACK, ACK.decode())
_new_tuple = tuple.__new__
_FIELDS: tuple[str, ...] = Transmit._fields
_TRANSMIT_REST = tuple(Transmit._field_defaults[name] for name in _FIELDS[4:])
"""`_new_tuple(Transmit, (data, destination, kind, via) + _TRANSMIT_REST)` is `Transmit(data,
destination, kind, via)` without NamedTuple's Python-level `__new__` (one per datagram sent)."""


@dataclass
class Peer:
    """One listed peer and the handshake with it."""

    info: PeerInfo
    started: float
    state: PeerState = PeerState.PUNCHING
    next_send: float | None = None
    final_ack_at: float | None = None
    next_keepalive: float | None = None
    connected_at: float | None = None
    last_ack_reply: float = float("-inf")
    acked_at: float | None = None
    """When we last sent this peer an ACK: if it was lost, the peer retries and needs an answer."""
    last_seen: str = "nothing received"
    data_seen: bool = False
    backoff: float = 0.0
    """The current gap between SYNs once the peer is silent past `punch_backoff_after` (0: not yet)."""
    acking_retries: int = 0
    """Retransmissions sent while ACKING; odd ones are SYN, even ones ACK (see `on_timer`)."""
    sent: int = 0
    received: int = 0
    remote: Endpoint | None = None
    """Where datagrams go when that is not the listed endpoint (a technique found another)."""
    via: int = 0
    """The local socket that reaches the peer: 0 is the registered one (see `Transmit.via`)."""
    technique: str = "basic"
    """What found the path in use: "basic", "peer-reflexive", "prediction", "birthday", ..."""
    path: str = "direct"
    """"direct", or "relayed" once a relay carries the traffic."""
    messages: tuple[bytes, bytes] | None = None
    """Extended PUNCH and PUNCH_ACK to send instead of SYN and ACK (extended peers only)."""

    @property
    def endpoint(self) -> Endpoint:
        """The peer as the server listed it: its name in events and in `PeerClient.peers`."""
        return self.info.endpoint

    @property
    def address(self) -> Endpoint:
        """Where we send to this peer: the listed endpoint unless a technique found another."""
        return self.remote if self.remote is not None else self.info.endpoint

    @property
    def connected(self) -> bool:
        """True once both directions are proven."""
        return self.state is PeerState.CONNECTED

    def next_timer(self) -> float | None:
        """The earliest time this peer wants `on_timer`."""
        # Unrolled min() over the three: called for every peer touched on every pump.
        best, t = self.next_send, self.final_ack_at
        if t is not None and (best is None or t < best):
            best = t
        t = self.next_keepalive
        if t is not None and (best is None or t < best):
            best = t
        return best


def linger_until(peers: Iterable[Peer], config: ClientConfig) -> float | None:
    """Until when a closing client should keep answering its peers, or None: a peer that missed
    our last ACK retries within a punch interval and finds nobody once we are gone, which is
    why TCP has TIME-WAIT (RFC 9293 §3.6). Also until the reference's delayed ACKs (B3) are out.
    A peer that sent us data is connected: it needs nothing more."""
    ends: list[float] = []
    for peer in peers:
        if peer.final_ack_at is not None:
            ends.append(peer.final_ack_at)
        if peer.acked_at is not None and not peer.data_seen:
            ends.append(peer.acked_at + config.close_linger)
    return max(ends, default=None)


class Deadlines:
    """The earliest of many deadlines keyed by small ints, without visiting them all.

    A binary heap with lazy deletion: `set` pushes a new entry and leaves the old one behind;
    an entry that no longer matches its key's deadline is dropped when it surfaces. So a client
    with N peers pays O(log N) per changed timer instead of O(N) per pump (`PeerClient.get_timer`).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._at: dict[int, float] = {}

    def set(self, key: int, when: float | None) -> None:
        """Key `key` now wants `when` (None: nothing)."""
        at = self._at
        if when is None:
            at.pop(key, None)
        elif at.get(key) != when:
            at[key] = when
            heappush(self._heap, (when, key))
            if len(self._heap) > 4 * len(at) + 64:  # bound the outdated entries
                self._heap = [(t, k) for k, t in at.items()]
                heapify(self._heap)

    def first(self) -> tuple[float, int] | None:
        """The earliest deadline of any key and that key, or None."""
        heap, at = self._heap, self._at
        while heap and at.get(heap[0][1]) != heap[0][0]:
            heappop(heap)
        return heap[0] if heap else None

    def earliest(self) -> float | None:
        """The earliest deadline of any key, or None."""
        first = self.first()
        return None if first is None else first[0]

    def pop_due(self, now: float) -> list[int]:
        """The keys due at `now`, in key order, forgotten until `set` again."""
        heap, at, keys = self._heap, self._at, []
        while heap and heap[0][0] <= now:
            when, key = heappop(heap)
            if at.get(key) == when:
                del at[key]
                keys.append(key)
        keys.sort()
        return keys

    def clear(self) -> None:
        """Forget every deadline."""
        self._heap.clear()
        self._at.clear()


class Handshake:
    """Drives `Peer` records through `PEER_TRANSITIONS`; owns no socket and no clock."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config

    def start(self, peer: Peer, now: float) -> list[Transmit]:
        """Open the handshake: the first SYN goes out at once."""
        peer.next_send = now + self.config.punch_interval
        return [self._send(peer, SYN, MessageKind.SYN, now)]

    def on_datagram(
        self, peer: Peer, data: bytes, now: float, hint: Hint | None = None
    ) -> tuple[list[Transmit], bool, bool]:
        """Feed a datagram from `peer`: returns (to send, just connected, is application data).

        `hint` says the datagram is an extended punch standing for SYN or ACK."""
        peer.received += 1
        if peer.state is PeerState.FAILED or (not data and peer.state is not PeerState.ACKING):
            return [], False, False  # a keep-alive proves nothing new; a given-up peer stays so
        # While ACKING, an empty datagram is the peer's keep-alive, sent only once it connected,
        # so it got our ACK: both directions work (the DATA input), though it carries no data.
        kind = self._input_of(peer, data, now, hint)
        if kind is PeerInput.DATA and peer.state is PeerState.PUNCHING:
            peer.last_seen = "data before any handshake"
            return [], False, False
        before = peer.state
        peer.state = PEER_TRANSITIONS[(before, kind)]
        just = before is not PeerState.CONNECTED and peer.state is PeerState.CONNECTED
        out = self._react(peer, kind, before, now)
        if just:
            self._on_connected(peer, now)
        return out, just, kind is PeerInput.DATA and bool(data)

    def on_timer(self, peer: Peer, now: float) -> list[Transmit]:
        """Retransmit, send the delayed ACK, or send a keep-alive, whichever is due."""
        out: list[Transmit] = []
        if peer.next_send is not None and now >= peer.next_send:
            if peer.state is PeerState.PUNCHING:
                out.append(self._send(peer, SYN, MessageKind.SYN, now))
            elif peer.state is PeerState.ACKING:
                # Alternate SYN and ACK: a reference peer finishes only on ACK, but a peer of ours
                # that is already connected (both its ACKs to us lost) ignores ACKs and answers SYN.
                # So a peer of ours gets SYN only: on a path losing every other datagram, SYN and
                # ACK in turn would lose every SYN, for good.
                peer.acking_retries += 1
                if peer.acking_retries % 2 or peer.info.extended:
                    out.append(self._send(peer, SYN, MessageKind.SYN, now))
                else:
                    out.append(self._send(peer, ACK, MessageKind.ACK, now))
            peer.next_send = now + self._retry_gap(peer, now)
        if peer.final_ack_at is not None and now >= peer.final_ack_at:
            peer.final_ack_at = None
            out.append(self._send(peer, ACK, MessageKind.ACK, now))
        if peer.next_keepalive is not None and now >= peer.next_keepalive:
            peer.next_keepalive = now + self.config.keepalive_interval
            out.append(self._send(peer, b"", MessageKind.KEEPALIVE, now))
        return out

    def _retry_gap(self, peer: Peer, now: float) -> float:
        """The punch interval, or, for a peer silent since `punch_backoff_after`, a gap that
        doubles with each SYN up to `punch_interval_max` (a forged member must not be a reflector)."""
        cfg = self.config
        if peer.received or now - peer.started < cfg.punch_backoff_after:
            return cfg.punch_interval
        peer.backoff = min(cfg.punch_interval_max, 2 * max(peer.backoff, cfg.punch_interval))
        return peer.backoff

    def give_up(self, peer: Peer) -> None:
        """The deadline passed before the peer connected."""
        peer.state = PEER_TRANSITIONS[(peer.state, PeerInput.DEADLINE)]
        peer.next_send = None

    def _input_of(self, peer: Peer, data: bytes, now: float, hint: Hint | None = None) -> PeerInput:
        if hint is None:
            hint = _SYN_HINT if data == SYN else _ACK_HINT if data == ACK else None
        if hint is not None:
            # Until the peer sends real data it may still be punching (its ACKs to us lost), so its
            # SYN/ACK stay handshake; after that only the linger window keeps them so.
            lingering = peer.connected_at is None or now - peer.connected_at <= self.config.handshake_linger
            if lingering or not peer.data_seen:
                peer.last_seen = hint[1]
                return hint[0]
        peer.data_seen = True
        return PeerInput.DATA

    def _react(self, peer: Peer, kind: PeerInput, before: PeerState, now: float) -> list[Transmit]:
        if kind is PeerInput.SYN:
            # Rate-limited so a SYN flood from a peer cannot turn us into a reflector.
            if now - peer.last_ack_reply >= self.config.punch_interval / 2:
                peer.last_ack_reply = now
                if before is not PeerState.CONNECTED:
                    peer.next_send = now + self.config.punch_interval
                return [self._send(peer, ACK, MessageKind.ACK, now)]
        elif kind is PeerInput.ACK and before is not PeerState.CONNECTED:
            if peer.info.extended:
                # A peer of ours needs one ACK from us, not the reference's pair (B3): none if our
                # answer to its SYN is on its way already (a third of a mesh's datagrams). One
                # lost is made good by the peer's next SYN, which our connected state answers.
                return [] if before is PeerState.ACKING else [self._send(peer, ACK, MessageKind.ACK, now)]
            peer.final_ack_at = now + self.config.final_ack_delay
            return [self._send(peer, ACK, MessageKind.ACK, now)]
        return []

    def _on_connected(self, peer: Peer, now: float) -> None:
        peer.connected_at = now
        peer.next_send = None
        if self.config.keepalive_interval > 0:
            peer.next_keepalive = now + self.config.keepalive_interval

    @staticmethod
    def _send(peer: Peer, data: bytes, kind: MessageKind, now: float) -> Transmit:
        peer.sent += 1
        if kind is MessageKind.ACK:
            peer.acked_at = now
        if peer.messages is not None and kind is not MessageKind.KEEPALIVE:
            # Between extended peers SYN and ACK travel as PUNCH and PUNCH_ACK (never to others).
            if data == SYN:
                data, kind = peer.messages[0], MessageKind.PUNCH
            else:
                data, kind = peer.messages[1], MessageKind.PUNCH_ACK
        destination = peer.info.endpoint if peer.remote is None else peer.remote  # peer.address, inlined
        return _new_tuple(Transmit, (data, destination, kind, peer.via) + _TRANSMIT_REST)
