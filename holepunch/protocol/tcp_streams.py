"""Peer streams of the TCP client: their records, and HELLO and SELECT handling on them.

Rule: every peer stream proves who is on it with HELLO before anything else; the peer with the
lower peer id is controlling (as in ICE, RFC 8445 §8.1.1) and keeps the first stream it verifies
by sending SELECT on it, so both sides keep the same stream and close the rest. After SELECT a
stream carries application data only. `PeerStreams` is a mixin of `TcpPeerClient` (tcp_client.py).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .endpoint import Endpoint
from .events import DatagramDropped, DataReceived, Event, PeerConnected
from .messages import PEER_ID_LENGTH, MessageError, PeerInfo
from .states import ClientState
from .tcp_messages import (
    Close,
    ConnId,
    FrameDecoder,
    Hello,
    Intent,
    Select,
    TcpFrame,
    Write,
    encode_frame,
    frame_kind,
)
from .tcp_states import (
    SI,
    SS,
    STREAM_TRANSITIONS,
    TCP_PEER_TRANSITIONS,
    TI,
    TP,
    StreamInput,
    StreamState,
    TcpPeerState,
)
from .tcp_states import step as _step

if TYPE_CHECKING:
    from .tcp_client import TcpClientConfig


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerDisconnected(Event):
    """The stream kept for `peer` closed after it connected (TCP can tell; UDP cannot)."""

    peer: Endpoint
    reason: str


@dataclass(eq=False)
class Stream:
    """One connection: to the server, to a peer we dialled, or accepted from someone."""

    conn_id: ConnId
    role: str  # "server", "out" or "in"
    remote: Endpoint
    state: StreamState
    decoder: FrameDecoder
    peer: TcpPeer | None = None
    deadline: float | None = None
    hello: Hello | None = None  # held while we still register and do not punch yet
    sent_hello: bool = False
    received: int = 0


@dataclass(eq=False)
class TcpPeer:
    """One listed peer and our attempts to reach it."""

    info: PeerInfo
    started: float
    state: TcpPeerState = TcpPeerState.PUNCHING
    attempts: int = 0
    backoffs: int = 0
    next_attempt: float | None = None
    outbound: Stream | None = None
    selected: Stream | None = None
    last_error: str = "no attempt finished"
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def endpoint(self) -> Endpoint:
        """The public endpoint the server listed, which we dial."""
        return self.info.endpoint


# --- stream handling -------------------------------------------------------------------------


class PeerStreams:
    """HELLO, SELECT and the life of each stream; `TcpPeerClient` supplies the state below."""

    config: TcpClientConfig
    state: ClientState
    peer_id: bytes
    token: bytes
    peers: dict[bytes, TcpPeer]
    streams: dict[ConnId, Stream]
    dropped: Counter[str]
    duplicates: int
    _intents: deque[Intent]
    _events: deque[Event]

    def _check_all_connected(self, now: float) -> None:
        raise NotImplementedError  # TcpPeerClient finishes connect when every peer is connected

    def _connect_error(self, stream: Stream, errno_name: str, now: float) -> None:
        raise NotImplementedError  # TcpPeerClient decides on retries

    def _stream_timeout(self, stream: Stream, now: float) -> None:
        if stream.state is SS.CONNECTING:
            self._close(stream, SI.CLOSE)
            self._connect_error(stream, "NO_ANSWER", now)
        elif stream.hello is not None:  # held, but the server never listed that peer to us
            self._reject(stream, "unlisted peer: its HELLO was held until hello_timeout", now)
        elif stream.role == "in" and stream.peer is None:
            self._reject(stream, "stranger: no valid HELLO in time", now)
        else:
            self._close(stream, SI.CLOSE)
            self._stream_gone(stream, "no HELLO came back in time", now)

    # --- HELLO and SELECT on peer streams -----------------------------------------------------

    def _read_peer(self, stream: Stream, now: float) -> None:
        while stream.state in (SS.OPEN, SS.VERIFIED):
            try:
                frame = stream.decoder.next_frame()
            except MessageError as exc:
                return self._reject(stream, f"stranger: malformed stream: {exc}", now)
            if frame is None:
                return None
            if isinstance(frame, Hello) and stream.state is SS.OPEN and stream.hello is None:
                self._on_hello(stream, frame, now)
            elif isinstance(frame, Select) and stream.state is SS.VERIFIED and not self._controlling(stream):
                self._select(stream, now)
            else:
                return self._reject(stream, f"stranger: unexpected {type(frame).__name__} frame", now)
        if stream.state is SS.SELECTED:  # what follows SELECT is application data
            self._deliver(stream, stream.decoder.take_rest())
        return None

    def _on_hello(self, stream: Stream, hello: Hello, now: float) -> None:
        if hello.token != self.token:
            return self._reject(stream, "stranger: HELLO for another session", now)
        if hello.target != self.peer_id or hello.peer_id == self.peer_id:
            return self._reject(stream, "stranger: HELLO for another peer", now)
        if stream.role == "out" and stream.peer is not None and hello.peer_id != stream.peer.info.peer_id:
            return self._reject(stream, "stranger: another peer answered at this endpoint", now)
        peer = self.peers.get(hello.peer_id)
        if peer is None and self.state is ClientState.REGISTERING:
            stream.hello = hello  # the server has not listed it to us yet, or we do not punch yet
            return None
        if peer is None:
            return self._reject(stream, "stranger: HELLO from a peer we do not punch", now)
        stream.peer = peer
        if peer.state is not TP.PUNCHING:
            self.duplicates += 1
            return self._close(stream, SI.CLOSE)
        self._advance(stream, SI.HELLO)
        stream.deadline = None
        if not stream.sent_hello:
            self._send_hello(stream)  # we accepted it: answer only once it proved itself
        if self._controlling(stream):
            self._send(stream, Select())
            self._select(stream, now)
        else:
            peer.next_attempt = None  # the controlling peer will select a stream: wait for it
        return None

    def _controlling(self, stream: Stream) -> bool:
        """The lower peer id picks the stream (ICE's controlling agent nominates, RFC 8445 §8.1.1)."""
        return stream.peer is not None and self.peer_id < stream.peer.info.peer_id

    def _select(self, stream: Stream, now: float) -> None:
        peer = stream.peer
        assert peer is not None
        self._advance(stream, SI.SELECT)
        peer.state = _step(TCP_PEER_TRANSITIONS, peer.state, TI.SELECTED)  # type: ignore[assignment]
        peer.selected, peer.next_attempt = stream, None
        for other in list(self.streams.values()):
            if other.peer is peer and other is not stream:
                if other.state is not SS.CONNECTING:
                    self.duplicates += 1
                self._close(other, SI.CLOSE)
        peer.outbound = None
        self._events.append(PeerConnected(peer.endpoint, now - peer.started))
        if self.state is ClientState.PUNCHING:
            self._check_all_connected(now)

    def _send_hello(self, stream: Stream) -> None:
        peer = stream.peer
        target = peer.info.peer_id if peer is not None else bytes(PEER_ID_LENGTH)
        self._send(stream, Hello(self.token, self.peer_id, target))
        stream.sent_hello = True

    def _deliver(self, stream: Stream, data: bytes) -> None:
        if data and stream.peer is not None:
            self._events.append(DataReceived(stream.peer.endpoint, data))

    def _stream_gone(self, stream: Stream, reason: str, now: float) -> None:
        """A peer stream ended: a kept one disconnects the peer, another one may need a retry."""
        peer = stream.peer
        if peer is None:
            return
        if peer.selected is stream:
            peer.state = _step(TCP_PEER_TRANSITIONS, peer.state, TI.LOST)  # type: ignore[assignment]
            self._events.append(PeerDisconnected(peer.endpoint, "connection closed by the peer or the network"))
            return
        if peer.outbound is stream:
            peer.outbound = None
        peer.last_error = reason
        idle = peer.outbound is None and peer.next_attempt is None
        if peer.state is TP.PUNCHING and idle and not self._has_verified(peer):
            peer.next_attempt = now + self.config.retry_interval

    # --- helpers ------------------------------------------------------------------------------

    def _new_stream(self, conn_id: ConnId, role: str, remote: Endpoint, state: StreamState) -> Stream:
        stream = Stream(conn_id, role, remote, state, FrameDecoder(self.config.max_frame_size))
        self.streams[conn_id] = stream
        return stream

    def _close(self, stream: Stream, how: StreamInput, *, intent: bool = True) -> None:
        self._advance(stream, how)
        stream.deadline = None
        self.streams.pop(stream.conn_id, None)
        if intent:
            self._intents.append(Close(stream.conn_id))

    def _reject(self, stream: Stream, reason: str, now: float) -> None:
        """Close a stream that did not prove itself, and count it."""
        self._drop(stream.remote, stream.received, reason)
        self._close(stream, SI.CLOSE)
        self._stream_gone(stream, reason, now)

    def _reject_new(self, conn_id: ConnId, remote: Endpoint, reason: str) -> None:
        self._drop(remote, 0, reason)
        self._intents.append(Close(conn_id))

    def _send(self, stream: Stream, frame: TcpFrame) -> None:
        self._intents.append(Write(stream.conn_id, encode_frame(frame), frame_kind(frame)))

    def _advance(self, stream: Stream, how: StreamInput) -> None:
        stream.state = _step(STREAM_TRANSITIONS, stream.state, how)  # type: ignore[assignment]

    def _has_verified(self, peer: TcpPeer) -> bool:
        return any(s.peer is peer and s.state is SS.VERIFIED for s in self.streams.values())
    def _drop(self, source: Endpoint, size: int, reason: str) -> None:
        self.dropped[reason] += 1
        self._events.append(DatagramDropped(source, size, reason))
