"""Peer side over TCP: `connect_tcp()` punches from one local port, the returned `TcpMesh` carries data.

Rule: all protocol decisions are in `holepunch.protocol.tcp_client.TcpPeerClient`; this module
resolves the server, runs the TCP driver (tcp_driver.py) and hands each peer's stream to the
caller: through `send`/`recv`, as a raw connected socket (`socket(peer)`), or as asyncio streams
(`open_stream(peer)`). As over UDP, a partial result is not an exception (`mesh.complete` says);
`ConnectError` is raised only when there is nothing to work with.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from dataclasses import dataclass

from ..protocol.endpoint import Endpoint
from ..protocol.events import DataReceived, Event, PeerConnected, PeerFailed
from ..protocol.tcp_client import PeerDisconnected, TcpClientConfig, TcpPeer, TcpPeerClient
from ..protocol.tcp_states import TcpPeerState
from ..trace import Trace
from .client import as_endpoint, session_id
from .driver import AddressLike, bind_host_for, parse_address
from .mesh_base import Connecting, MeshBase, MeshClosed, resolve_server
from .tcp_driver import TcpDriver
from .tcp_io import TcpDriverStats

log = logging.getLogger("holepunch.client")

INBOX_LIMIT = 1 << 20
"""Bytes waiting for `recv()` before the mesh stops reading its sockets (TCP backpressure)."""
CLOSE_GRACE = 1.0
"""Seconds `close()` waits for queued bytes (the LEAVE, the last data) to be written."""

Socket = socket.socket  # an alias: inside TcpMesh, `socket` names a method
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True)
class TcpPeerStatus:
    """A snapshot of one peer over TCP: where it is, how long it took, why it failed if it did."""

    endpoint: Endpoint
    state: TcpPeerState
    elapsed: float | None
    """Seconds from the start of punching to the selected stream; None unless connected."""
    reason: str
    """Why the peer failed or disconnected (with what to try); empty otherwise."""
    attempts: int
    """Outgoing connects made to this peer."""
    errors: dict[str, int]
    """Failed connects by errno name, e.g. {"ECONNREFUSED": 3}."""

    @property
    def connected(self) -> bool:
        """True while the selected stream is open."""
        return self.state is TcpPeerState.CONNECTED

    @classmethod
    def of(cls, peer: TcpPeer, elapsed: float | None, reason: str) -> TcpPeerStatus:
        """Snapshot a protocol `TcpPeer` record with what its events said."""
        return cls(peer.endpoint, peer.state, elapsed, reason, peer.attempts, dict(peer.errors))


class TcpMesh(MeshBase[TcpPeerClient, TcpDriver]):
    """The peers of one session, one TCP stream each; close it with `await close()` or `async with`."""

    def __init__(self, machine: TcpPeerClient, host: str, *, trace: Trace | None, actor: str) -> None:
        self._host = host
        super().__init__(machine, TcpDriver(machine, host, self._on_event, trace=trace, actor=actor))
        self._inbox_bytes = 0
        self._elapsed: dict[Endpoint, float] = {}
        self._reasons: dict[Endpoint, str] = {}
        self._taken: set[Endpoint] = set()
        self.streams: dict[Endpoint, Streams] = {}
        """The asyncio streams opened so far with `open_stream` or `open_streams`."""

    # --- inspection ---------------------------------------------------------------------------

    @property
    def peers(self) -> list[TcpPeerStatus]:
        """Every punched peer, connected or not, in the server's listing order."""
        return [TcpPeerStatus.of(p, self._elapsed.get(p.endpoint), self._reasons.get(p.endpoint, ""))
                for p in self.machine.peers.values()]

    @property
    def connected(self) -> list[Endpoint]:
        """The peers with an open selected stream."""
        return [p.endpoint for p in self.machine.peers.values() if p.state is TcpPeerState.CONNECTED]

    @property
    def registered(self) -> bool:
        """True once the server answered our REGISTER."""
        return self.machine.public_endpoint is not None

    @property
    def public_endpoint(self) -> Endpoint | None:
        """Our port P as the server saw it: what the other peers dial."""
        return self.machine.public_endpoint

    @property
    def extended(self) -> bool | None:
        """Always True once registered (every TCP server speaks the extension); None before."""
        return True if self.registered else None

    @property
    def local(self) -> Endpoint:
        """Local port P, which the server connection, the listener and every connect share."""
        return self._driver.local or Endpoint(self._host, self.machine.local_port or 0)

    @property
    def io_stats(self) -> TcpDriverStats:
        """Socket counters: connects and their errors, accepts, bytes in and out."""
        return self._driver.stats

    # --- data ---------------------------------------------------------------------------------

    def send(self, peer: AddressLike, data: bytes) -> None:
        """Write `data` on the stream of a connected peer; `ValueError` if there is none."""
        if self._closed:
            raise MeshClosed("the mesh is closed")
        endpoint = as_endpoint(peer)
        if endpoint in self._taken:
            raise ValueError(f"the stream of {endpoint} was taken with socket() or open_stream(): write to it")
        self.machine.send(endpoint, data)
        self._driver.pump(self._driver.now())

    async def recv(self) -> tuple[Endpoint, bytes]:
        """The next chunk of application data as (peer, bytes); chunks follow TCP's, not send()'s."""
        item = await self._next()
        self._inbox_bytes -= len(item[1])
        if self._inbox_bytes < INBOX_LIMIT // 2:
            self._driver.set_reading(True)
        return item

    # --- taking streams -----------------------------------------------------------------------

    def socket(self, peer: AddressLike) -> Socket:
        """Take the connected socket of `peer`, in blocking mode, to use as any stream socket.

        The mesh stops reading it; bytes it had read already stay available from `recv()`.
        Closing the socket is then up to you.
        """
        if self._closed:
            raise MeshClosed("the mesh is closed")
        endpoint = as_endpoint(peer)
        conn_id = None if endpoint in self._taken else self.machine.stream_of(endpoint)
        if conn_id is None:
            raise ValueError(f"{endpoint} is not a connected peer (or its stream was taken already)")
        sock = self._driver.detach(conn_id)
        self._taken.add(endpoint)
        return sock

    async def open_stream(self, peer: AddressLike, *, limit: int = 1 << 16) -> Streams:
        """Take the stream of `peer` as an asyncio (StreamReader, StreamWriter) pair.

        Bytes the mesh had read already come first from the reader.
        """
        endpoint = as_endpoint(peer)
        sock = self.socket(endpoint)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        pending = self._take_pending(endpoint)
        if pending:
            reader.feed_data(pending)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
        self.streams[endpoint] = (reader, asyncio.StreamWriter(transport, protocol, reader, loop))
        return self.streams[endpoint]

    async def open_streams(self) -> dict[Endpoint, Streams]:
        """`open_stream` for every connected peer not taken yet; returns `streams`."""
        for endpoint in self.connected:
            if endpoint not in self._taken:
                await self.open_stream(endpoint)
        return self.streams

    def _take_pending(self, endpoint: Endpoint) -> bytes:
        """Remove `endpoint`'s chunks from the inbox, keeping everyone else's in order."""
        items = [self._inbox.get_nowait() for _ in range(self._inbox.qsize())]
        taken = [item[1] for item in items if item is not None and item[0] == endpoint]
        for item in items:
            if item is None or item[0] != endpoint:
                self._inbox.put_nowait(item)
        self._inbox_bytes -= sum(map(len, taken))
        return b"".join(taken)

    # --- life cycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave the server if still registered, close every stream not taken, stop the listener."""
        if self._closed:
            return
        self._closed = True  # at once: a second close() must not wait for the drain too
        self._leave()
        await self._driver.drain(CLOSE_GRACE)
        self._driver.stop()
        self._finish()

    def _on_event(self, event: Event) -> None:
        match event:
            case DataReceived(peer, data):
                self._inbox.put_nowait((peer, data))
                self._inbox_bytes += len(data)
                if self._inbox_bytes > INBOX_LIMIT:
                    self._driver.set_reading(False)
            case PeerConnected(peer, elapsed):
                self._elapsed[peer] = elapsed
                log.info("connected to %s over TCP in %.1f ms", peer, elapsed * 1000)
            case PeerFailed(peer, reason):
                self._reasons[peer] = reason
                log.info("gave up on %s: %s", peer, reason)
            case PeerDisconnected(peer, reason):
                self._reasons[peer] = reason
                log.info("%s disconnected: %s", peer, reason)
            case _:
                super()._on_event(event)

    def _unanswered(self, server: Endpoint, reason: str) -> str:
        """Why connect never registered, and what to try."""
        if reason.startswith("timed out"):
            return (f"no answer from the rendezvous server {server} over TCP ({reason}); try: check the address, "
                    f"and that a holepunch server runs there with TCP on (the default; not --udp-only)")
        return reason  # the core's text already says what happened and what to try (EADDRINUSE...)


# --- connect ---------------------------------------------------------------------------------------


class TcpConnecting(Connecting[TcpMesh]):
    """What `connect_tcp()` returns: await it for a `TcpMesh`, or use it as `async with`."""


def connect_tcp(
    server: AddressLike,
    session: str | bytes,
    peers: int = 1,
    *,
    timeout: float | None = 40.0,
    wait_timeout: float | None = None,
    config: TcpClientConfig | None = None,
    bind: tuple[str, int] = ("0.0.0.0", 0),
    trace: Trace | None = None,
    actor: str = "peer",
) -> TcpConnecting:
    """Meet `peers` other peers of `session` through `server` over TCP and open a stream to each.

    `bind` is the local address; a non-zero port there is P (else `config.local_port`, else the
    OS picks). `timeout` and `wait_timeout` override those fields of `config`. Raises
    `ConnectError` if the server refused, could not be reached, or the local port is unusable.
    """
    if config is not None and not isinstance(config, TcpClientConfig):
        raise TypeError(f"config for TCP must be a TcpClientConfig, not {type(config).__name__}")
    target = parse_address(server)
    session_bytes = session_id(session)
    if peers < 0:
        raise ValueError(f"peers is the number of OTHER peers, 0 or more; got {peers}")
    cfg = config or TcpClientConfig()
    cfg = dataclasses.replace(cfg, timeout=timeout, wait_timeout=wait_timeout, local_port=bind[1] or cfg.local_port)

    async def opener() -> TcpMesh:
        address = await resolve_server(target)
        machine = TcpPeerClient(address, session_bytes, peers, cfg)
        mesh = TcpMesh(machine, bind_host_for(bind[0], address), trace=trace, actor=actor)
        return await mesh._connect(address)

    return TcpConnecting(opener)




__all__ = ["TcpConnecting", "TcpMesh", "TcpPeerStatus", "connect_tcp"]
