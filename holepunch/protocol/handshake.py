"""The SYN/ACK handshake with one peer, written so that reference peers finish too.

Rule (wire-protocol.md §7): send SYN every punch interval; answer a SYN with ACK at once (the
reference's own timer starves, B4); on ACK send ACK at once and once more a little later, which a
reference peer needs to return from Connect (B3); never retry faster than the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ClientConfig
from .endpoint import Endpoint
from .messages import ACK, SYN, MessageKind, PeerInfo, Transmit
from .states import PEER_TRANSITIONS, PeerInput, PeerState

Outcome = tuple[list[Transmit], bool]  # datagrams to send, and whether the peer just connected
Hint = tuple[PeerInput, str]
"""What an extended punch means to the handshake (SYN or ACK), and the label for `last_seen`."""


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
    last_seen: str = "nothing received"
    data_seen: bool = False
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
        times = [t for t in (self.next_send, self.final_ack_at, self.next_keepalive) if t is not None]
        return min(times) if times else None


class Handshake:
    """Drives `Peer` records through `PEER_TRANSITIONS`; owns no socket and no clock."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config

    def start(self, peer: Peer, now: float) -> list[Transmit]:
        """Open the handshake: the first SYN goes out at once."""
        peer.next_send = now + self.config.punch_interval
        return [self._send(peer, SYN, MessageKind.SYN)]

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
                out.append(self._send(peer, SYN, MessageKind.SYN))
            elif peer.state is PeerState.ACKING:
                # Alternate SYN and ACK: a reference peer finishes only on ACK, but a peer of ours
                # that is already connected (both its ACKs to us lost) ignores ACKs and answers SYN.
                peer.acking_retries += 1
                if peer.acking_retries % 2:
                    out.append(self._send(peer, SYN, MessageKind.SYN))
                else:
                    out.append(self._send(peer, ACK, MessageKind.ACK))
            peer.next_send = now + self.config.punch_interval
        if peer.final_ack_at is not None and now >= peer.final_ack_at:
            peer.final_ack_at = None
            out.append(self._send(peer, ACK, MessageKind.ACK))
        if peer.next_keepalive is not None and now >= peer.next_keepalive:
            peer.next_keepalive = now + self.config.keepalive_interval
            out.append(self._send(peer, b"", MessageKind.KEEPALIVE))
        return out

    def give_up(self, peer: Peer) -> None:
        """The deadline passed before the peer connected."""
        peer.state = PEER_TRANSITIONS[(peer.state, PeerInput.DEADLINE)]
        peer.next_send = None

    def _input_of(self, peer: Peer, data: bytes, now: float, hint: Hint | None = None) -> PeerInput:
        if hint is None and (data == SYN or data == ACK):
            hint = (PeerInput.SYN if data == SYN else PeerInput.ACK, data.decode())
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
                return [self._send(peer, ACK, MessageKind.ACK)]
        elif kind is PeerInput.ACK and before is not PeerState.CONNECTED:
            peer.final_ack_at = now + self.config.final_ack_delay
            return [self._send(peer, ACK, MessageKind.ACK)]
        return []

    def _on_connected(self, peer: Peer, now: float) -> None:
        peer.connected_at = now
        peer.next_send = None
        if self.config.keepalive_interval > 0:
            peer.next_keepalive = now + self.config.keepalive_interval

    @staticmethod
    def _send(peer: Peer, data: bytes, kind: MessageKind) -> Transmit:
        peer.sent += 1
        if peer.messages is not None and kind is not MessageKind.KEEPALIVE:
            # Between extended peers SYN and ACK travel as PUNCH and PUNCH_ACK (never to others).
            if data == SYN:
                data, kind = peer.messages[0], MessageKind.PUNCH
            else:
                data, kind = peer.messages[1], MessageKind.PUNCH_ACK
        return Transmit(data, peer.address, kind, peer.via)
