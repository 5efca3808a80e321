"""Peer side over a real UDP socket: `connect()` punches, the returned `Mesh` carries data.

Rule: all protocol decisions are in `holepunch.protocol.client.PeerClient`; this module resolves
the server, binds one socket (used for registration, handshake and data alike, as the reference
does), runs the driver and hands application data to the caller. A partial result is not an
exception: `mesh.complete` says whether every expected peer connected, and the caller decides.
`ConnectError` (an `OSError`) is raised only when there is nothing to work with: the server
refused us, could not be resolved, or never answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

from ..protocol.client import PeerClient
from ..protocol.config import ClientConfig
from ..protocol.endpoint import Endpoint
from ..protocol.events import (
    DataReceived, Event, PeerConnected, PeerFailed, PeerRelayed, PeerUpgraded, RelayRefused,
)
from ..protocol.handshake import Peer, linger_until
from ..protocol.messages import MAX_ID_LENGTH
from ..protocol.states import PeerState
from ..protocol.techniques.result import ConnectResult, PeerResult
from ..trace import Trace
from .driver import AddressLike, Driver, DriverStats, bind_host_for, open_udp_socket, parse_address
from .mesh_base import ConnectError as ConnectError  # re-exported: raised by connect()
from .mesh_base import Connecting, MeshBase, MeshClosed, resolve_server

if TYPE_CHECKING:  # tcp_client imports this module
    from ..protocol.tcp_client import TcpClientConfig
    from .tcp_client import TcpConnecting

log = logging.getLogger("holepunch.client")

INBOX_LIMIT = 4096
"""Datagrams queued for `recv()` at most; beyond that new ones are dropped, as a full socket would."""

Socket = socket.socket  # an alias: inside Mesh, `socket` names the property


@dataclass(frozen=True)
class PeerStatus:
    """A snapshot of one peer: where it is, how the handshake went, and why it failed if it did."""

    endpoint: Endpoint
    state: PeerState
    elapsed: float | None
    """Seconds from our first SYN to the confirmed handshake; None unless connected."""
    reason: str
    """Why the peer failed; empty unless it did."""
    extended: bool
    """The server listed this peer as speaking our extension."""
    sent: int
    received: int
    path: str = "direct"
    """"direct" (a punched hole) or "relayed" (through the server's relay, `--relay`)."""
    technique: str = "basic"
    """What found the path: "basic", "peer-reflexive", "prediction", "birthday" or "relay"."""

    @property
    def connected(self) -> bool:
        """True once datagrams are proven to flow both ways, directly or through the relay."""
        return self.state is PeerState.CONNECTED or self.relayed

    @property
    def relayed(self) -> bool:
        """True while the server's relay carries the peer (no direct path yet)."""
        return self.path == "relayed" and self.state is not PeerState.CONNECTED

    @classmethod
    def of(cls, peer: Peer, result: PeerResult | None = None) -> "PeerStatus":
        """Snapshot a protocol `Peer` record (with its `PeerResult`, for the relay's figures)."""
        elapsed = None if peer.connected_at is None else peer.connected_at - peer.started
        reason, technique = "", peer.technique
        if result is not None and result.relayed:
            elapsed, technique = result.time_to_connect, result.technique
        if peer.state is PeerState.FAILED:
            seen = peer.last_seen
            reason = "timed out, " + (seen if seen == "nothing received" else f"last received {seen}")
        return cls(peer.endpoint, peer.state, elapsed, reason, peer.info.extended, peer.sent, peer.received,
                   peer.path, technique)


class Mesh(MeshBase[PeerClient, Driver]):
    """The peers of one session and the socket that reaches them; keep-alives run while open."""

    def __init__(self, machine: PeerClient, sock: Socket, *, trace: Trace | None, actor: str) -> None:
        super().__init__(machine, Driver(machine, sock, self._on_event, trace=trace, actor=actor))
        self.inbox_dropped = 0
        """Datagrams dropped because nobody called `recv()` and the inbox was full."""

    # --- inspection ---------------------------------------------------------------------------

    @property
    def registered(self) -> bool:
        """True once the server answered a registration."""
        return self.machine.registered

    @property
    def peers(self) -> list[PeerStatus]:
        """Every punched peer, connected or not, in the server's listing order."""
        results = {r.peer: r for r in self.machine.connect_result().peers}
        return [PeerStatus.of(peer, results.get(ep)) for ep, peer in self.machine.peers.items()]

    @property
    def connected(self) -> list[Endpoint]:
        """The peers datagrams flow to and from, directly or through the relay."""
        return [p.endpoint for p in self.peers if p.connected]

    @property
    def relayed(self) -> list[Endpoint]:
        """The connected peers that the server's relay carries (with "relay" in `config.techniques`)."""
        return [p.endpoint for p in self.peers if p.relayed]

    @property
    def results(self) -> ConnectResult:
        """Per peer: direct or relayed, the technique that found the path, time to connect, or why not."""
        return self.machine.connect_result()

    @property
    def public_endpoint(self) -> Endpoint | None:
        """Our address as the server saw it (known only when it speaks the extension)."""
        return self.machine.public_endpoint

    @property
    def extended(self) -> bool | None:
        """Whether the server speaks our extension; None if it never answered."""
        return self.machine.extended

    @property
    def socket(self) -> Socket:
        """The UDP socket (non-blocking). Read it yourself only after `detach()`."""
        return self._driver.sock

    @property
    def local(self) -> Endpoint:
        """The address our socket is bound to."""
        return self._driver.local

    @property
    def io_stats(self) -> DriverStats:
        """Socket counters: datagrams received and sent, sends the kernel refused."""
        return self._driver.stats

    # --- data ---------------------------------------------------------------------------------

    def send(self, peer: AddressLike, data: bytes) -> None:
        """Send one datagram to a connected peer now; `ValueError` if it is not connected."""
        if self._closed:
            raise MeshClosed("the mesh is closed")
        self.machine.send(as_endpoint(peer), data)
        self._driver.pump(self._driver.now())

    async def recv(self) -> tuple[Endpoint, bytes]:
        """The next application datagram as (peer, data); keep-alives and handshakes never show."""
        return await self._next()

    # --- life cycle ---------------------------------------------------------------------------

    def detach(self) -> Socket:
        """Stop reading and keep-alives and hand the socket over: do as you please with it."""
        if self._closed:
            raise MeshClosed("the mesh is closed")
        self._driver.stop()
        self._finish()
        return self._driver.sock

    async def close(self) -> None:
        """Leave and close the socket, after lingering while a peer may have missed our last
        ACK (`ClientConfig.close_linger`, at most that long after it) or a reference peer awaits
        its delayed final ACK (B3): the socket keeps answering meanwhile."""
        if self._closed:
            return
        try:
            await self._linger()
        finally:  # cancelled while lingering (Ctrl-C), the socket is released all the same
            if not self._closed:  # closed or detached while we waited
                self._leave()
                self._driver.stop()
                self._driver.sock.close()
                self._finish()

    # --- internals ----------------------------------------------------------------------------

    async def _linger(self) -> None:
        # Each answer to a peer's retry moves the end on, so look again after every wait; a
        # peer that never stops sending SYNs cannot hold us past `limit`.
        config, now = self.machine.config, self._driver.now()
        limit = now + max(3 * config.close_linger, config.final_ack_delay)
        while not self._closed:
            until = linger_until(self.machine.peers.values(), config)
            if until is None or until <= now:
                return
            await asyncio.sleep(min(until, limit) - now + 0.002)
            now = self._driver.now()
            if now >= limit:
                return

    def _on_event(self, event: Event) -> None:
        match event:
            case DataReceived(peer, data):
                if self._inbox.qsize() < INBOX_LIMIT:
                    self._inbox.put_nowait((peer, data))
                else:
                    self.inbox_dropped += 1
            case PeerConnected(peer, elapsed):
                log.info("connected to %s in %.1f ms", peer, elapsed * 1000)
            case PeerFailed(peer, reason):
                log.info("gave up on %s (last received: %s)", peer, reason)
            case PeerRelayed(peer, elapsed, reason):
                log.info("relaying to %s after %.1f ms without a direct path (%s)", peer, elapsed * 1000, reason)
            case PeerUpgraded(peer, elapsed, relayed_for):
                log.info("direct path to %s after %.1f ms relayed", peer, relayed_for * 1000)
            case RelayRefused(reason):
                log.info("the server refused to relay: %s", reason)
            case _:
                super()._on_event(event)


# --- connect ---------------------------------------------------------------------------------------


class _Connecting(Connecting[Mesh]):
    """What `connect()` returns: await it for a `Mesh`, or use it as `async with`."""


@overload
def connect(server: AddressLike, session: str | bytes, peers: int = 1, *, timeout: float | None = 40.0,
            wait_timeout: float | None = None, config: ClientConfig | None = None, bind: tuple[str, int] = ...,
            trace: Trace | None = None, actor: str = "peer", transport: Literal["udp"] = "udp",
            secret: str | bytes | None = None) -> _Connecting: ...
@overload
def connect(server: AddressLike, session: str | bytes, peers: int = 1, *, timeout: float | None = 40.0,
            wait_timeout: float | None = None, config: TcpClientConfig | None = None, bind: tuple[str, int] = ...,
            trace: Trace | None = None, actor: str = "peer", transport: Literal["tcp"],
            secret: None = None) -> TcpConnecting: ...
@overload
def connect(server: AddressLike, session: str | bytes, peers: int = 1, *, timeout: float | None = 40.0,
            wait_timeout: float | None = None, config: ClientConfig | TcpClientConfig | None = None,
            bind: tuple[str, int] = ..., trace: Trace | None = None, actor: str = "peer",
            transport: str = "udp", secret: str | bytes | None = None) -> _Connecting | TcpConnecting: ...
def connect(
    server: AddressLike,
    session: str | bytes,
    peers: int = 1,
    *,
    timeout: float | None = 40.0,
    wait_timeout: float | None = None,
    config: ClientConfig | TcpClientConfig | None = None,
    bind: tuple[str, int] = ("0.0.0.0", 0),
    trace: Trace | None = None,
    actor: str = "peer",
    transport: str = "udp",
    secret: str | bytes | None = None,
) -> _Connecting | TcpConnecting:
    """Meet `peers` other peers of `session` through `server` and punch a hole to each.

    Use `mesh = await connect(...)` or `async with connect(...) as mesh:`. It resolves when
    every listed peer connected or `timeout` passed; `wait_timeout` stops waiting for the full
    `peers` count and punches the ones listed so far. `timeout` and `wait_timeout` override
    those fields of `config`. Raises `ConnectError` if the server refused or never answered.
    `transport="tcp"` punches TCP instead and gives a `TcpMesh` (see `connect_tcp`; `config`
    is then a `TcpClientConfig`). `secret` (or `config.secret`) authenticates the session: only
    peers with the same secret can register or punch (UDP only; docs/wire-protocol.md, "Authentication").
    """
    if transport == "tcp" and secret is not None:
        raise ValueError("secret= authenticates UDP sessions only; TCP punching has no secret yet")
    if transport == "tcp":
        from .tcp_client import connect_tcp

        return connect_tcp(server, session, peers, timeout=timeout, wait_timeout=wait_timeout,
                           config=config, bind=bind, trace=trace, actor=actor)  # type: ignore[arg-type]
    config = _udp_config(transport, config)
    target = parse_address(server)
    session_bytes = session_id(session)
    if peers < 0:
        raise ValueError(f"peers is the number of OTHER peers, 0 or more; got {peers}")
    cfg = dataclasses.replace(config or ClientConfig(), timeout=timeout, wait_timeout=wait_timeout)
    if secret is not None:
        cfg = dataclasses.replace(cfg, secret=secret)  # validated there: AuthError for an empty one

    async def opener() -> Mesh:
        address = await resolve_server(target)
        sock = open_udp_socket(bind_host_for(bind[0], address), bind[1])
        try:
            mesh = Mesh(PeerClient(address, session_bytes, peers, cfg), sock, trace=trace, actor=actor)
        except BaseException:
            sock.close()
            raise
        return await mesh._connect(address)

    return _Connecting(opener)


def _udp_config(transport: str, config: object) -> ClientConfig | None:
    """`config`, once the transport is known to be UDP and the config a UDP one."""
    if transport != "udp":
        raise ValueError(f"transport must be 'udp' or 'tcp', got {transport!r}")
    if config is not None and not isinstance(config, ClientConfig):
        raise TypeError(f"config for UDP must be a ClientConfig, not {type(config).__name__}")
    return config


def session_id(session: str | bytes) -> bytes:
    """A session ID as wire bytes: text is UTF-8 encoded, bytes are used as they are."""
    if isinstance(session, str):
        data = session.encode("utf-8")
    elif isinstance(session, (bytes, bytearray, memoryview)):
        data = bytes(session)
    else:
        raise TypeError(f"session must be str or bytes, not {type(session).__name__}")
    if len(data) > MAX_ID_LENGTH:
        raise ValueError(f"session ID is {len(data)} bytes; servers accept at most {MAX_ID_LENGTH}")
    return data


def as_endpoint(peer: AddressLike) -> Endpoint:
    """A peer given as Endpoint, (host, port) or "host:port" text."""
    if isinstance(peer, Endpoint):
        return peer
    if isinstance(peer, str):
        return Endpoint.parse(peer)
    return Endpoint(str(peer[0]), int(peer[1]))
