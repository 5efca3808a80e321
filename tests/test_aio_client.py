"""The asyncio peer over real loopback sockets: whole sessions, partial ones, strangers, errors.

Every test runs a real `serve()` and real `connect()` calls on 127.0.0.1 with short timeouts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import socket
from typing import Any

import pytest

import holepunch
from holepunch import Endpoint
from holepunch.aio import BlockingMesh, ConnectError, Mesh, MeshClosed
from holepunch.protocol.client import PeerClient
from holepunch.protocol.config import ClientConfig, ServerConfig
from holepunch.protocol.messages import ACK, MAGIC
from holepunch.protocol.states import ClientState, PeerState
from holepunch.trace import Action, Trace

pytestmark = pytest.mark.timeout(60)
LOCAL = ("127.0.0.1", 0)
FAST = ClientConfig(register_interval=0.05, extended_refresh_interval=0.2, punch_interval=0.05, final_ack_delay=0.02,
                    close_linger=0.2)
"""Quicker retries for loopback; the protocol is the same."""


def peer_connect(server: Endpoint | str, session: str, peers: int, **kwargs: Any) -> Any:
    """`connect` with the loopback defaults of these tests."""
    options: dict[str, Any] = {"timeout": 10.0, "config": FAST, "bind": LOCAL}
    options.update(kwargs)
    return holepunch.connect(server, session, peers, **options)


async def exchange_all_pairs(meshes: list[Mesh]) -> None:
    """Every mesh sends to every connected peer; every message must arrive exactly once."""
    by_address = {mesh.local: mesh for mesh in meshes}
    for mesh in meshes:
        for peer in mesh.connected:
            mesh.send(peer, f"{mesh.local} -> {peer}".encode())
    for mesh in meshes:
        got = [await asyncio.wait_for(mesh.recv(), 5) for _ in mesh.connected]
        assert sorted(got) == sorted((peer, f"{peer} -> {mesh.local}".encode()) for peer in by_address if peer != mesh.local)


# --- whole sessions -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3, 8])
def test_every_peer_connects_and_every_pair_carries_data(count: int) -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            meshes = await asyncio.gather(*(peer_connect(server.address, "room", count - 1) for _ in range(count)))
            try:
                for mesh in meshes:
                    assert mesh.complete and mesh.extended
                    assert mesh.public_endpoint == mesh.local
                    assert sorted(mesh.connected) == sorted(m.local for m in meshes if m is not mesh)
                    assert all(p.state is PeerState.CONNECTED and p.elapsed is not None for p in mesh.peers)
                await exchange_all_pairs(meshes)
            finally:
                await asyncio.gather(*(mesh.close() for mesh in meshes))
            assert server.stats.joined == count

    asyncio.run(scenario())


def test_async_with_connect_closes_the_socket() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            other = asyncio.ensure_future(peer_connect(server.address, "with", 1))
            async with peer_connect(server.address, "with", 1) as mesh:
                assert mesh.complete
                sock = mesh.socket
            assert mesh.closed and sock.fileno() == -1
            with pytest.raises(MeshClosed):
                await mesh.recv()
            with pytest.raises(MeshClosed):
                mesh.send(mesh.connected[0], b"late")
            await (await other).close()

    asyncio.run(scenario())


def test_ipv6_server_and_peers() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("::", 0) as server:
            address = f"[::1]:{server.address.port}"
            meshes = await asyncio.gather(*(peer_connect(address, "v6", 1, bind=("::1", 0)) for _ in range(2)))
            assert all(mesh.complete for mesh in meshes)
            assert meshes[0].connected == [meshes[1].local] and meshes[1].local.host == "::1"
            await exchange_all_pairs(meshes)
            for mesh in meshes:
                await mesh.close()

    asyncio.run(scenario())


def test_dual_stack_peer_reaches_ipv4_server_and_peer() -> None:
    """A peer on an AF_INET6 "::" socket talks IPv4 through v4-mapped addresses (RFC 4291 §2.5.5.2)."""

    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            dual, plain = await asyncio.gather(
                peer_connect(server.address, "mixed", 1, bind=("::", 0)), peer_connect(server.address, "mixed", 1)
            )
            assert dual.socket.family == socket.AF_INET6 and dual.complete and plain.complete
            assert dual.connected == [plain.local] and dual.public_endpoint == plain.connected[0]
            dual.send(plain.local, b"over v4-mapped")
            assert await asyncio.wait_for(plain.recv(), 5) == (dual.public_endpoint, b"over v4-mapped")
            plain.send(plain.connected[0], b"back")
            assert await asyncio.wait_for(dual.recv(), 5) == (plain.local, b"back")
            await dual.close()
            await plain.close()

    asyncio.run(scenario())


def test_partial_session_proceeds_with_the_peer_found_after_wait_timeout() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            hopeful = asyncio.ensure_future(peer_connect(server.address, "partial", 2, wait_timeout=0.4))
            await asyncio.sleep(0.05)
            content = await peer_connect(server.address, "partial", 1)
            partial = await hopeful
            assert not partial.complete and partial.result.expected == 2
            assert partial.connected == [content.local] and partial.machine.state is ClientState.ESTABLISHED
            assert content.complete and content.connected == [partial.local]
            await exchange_all_pairs([partial, content])
            await partial.close()
            await content.close()

    asyncio.run(scenario())


def test_partial_session_without_peers_times_out_into_an_empty_mesh() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            async with peer_connect(server.address, "alone", 1, timeout=0.3) as mesh:
                assert not mesh.complete and mesh.connected == [] and mesh.peers == []
                assert "timed out" in mesh.result.reason

    asyncio.run(scenario())


# --- hostile input --------------------------------------------------------------------------------


def test_stranger_mid_handshake_is_dropped_and_the_client_still_connects() -> None:
    """A raw socket plays peer B slowly; a stranger sprays garbage and fake SYN/ACK at A."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with await holepunch.serve("127.0.0.1", 0) as server:
            a_task = asyncio.ensure_future(peer_connect(server.address, "s", 1))
            while not server.machine.members(b"s"):
                await asyncio.sleep(0.01)
            a_address = server.machine.members(b"s")[0]
            with raw_socket() as stranger, raw_socket() as b:
                spray = [b"\x00\xffgarbage", b"SYN", b"ACK", b"", MAGIC + b"\x01\x02junk", bytes(3000)]
                for data in spray:  # while A is still registering
                    stranger.sendto(data, a_address)
                b.sendto(b"s", server.address)  # B registers with the plain protocol
                assert (await recv_raw(loop, b, server.address)) == a_address.text.encode()
                assert await recv_raw(loop, b, a_address) == b"SYN"  # A is punching B now
                for data in spray:  # ... and A is mid-handshake
                    stranger.sendto(data, a_address)
                await asyncio.sleep(0.15)
                assert not a_task.done(), "a stranger's ACK must not complete the handshake"
                b.sendto(b"ACK", a_address)
                mesh = await asyncio.wait_for(a_task, 5)
                b_address = Endpoint.from_sockaddr(b.getsockname())
                assert mesh.complete and mesh.connected == [b_address]
                assert mesh.machine.dropped["stranger"] == 2 * len(spray)
                assert [p.endpoint for p in mesh.peers] == [b_address]
                mesh.send(b_address, b"to B")
                assert await recv_raw(loop, b, a_address, skip=(b"SYN", b"ACK")) == b"to B"
                b.sendto(b"to A", a_address)
                assert await asyncio.wait_for(mesh.recv(), 5) == (b_address, b"to A")
                await mesh.close()

    asyncio.run(scenario())


class raw_socket:
    """A plain non-blocking UDP socket on 127.0.0.1, closed on exit."""

    def __enter__(self) -> socket.socket:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(LOCAL)
        self.sock.setblocking(False)
        return self.sock

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


async def recv_raw(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, source: Endpoint, skip: tuple[bytes, ...] = ()
) -> bytes:
    """The next datagram from `source` that is not in `skip` (keep-alives are always skipped)."""
    while True:
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), 5)
        if Endpoint.from_sockaddr(addr) == source and data and data not in skip:
            return data


# --- errors ---------------------------------------------------------------------------------------


def test_refusal_raises_connect_error() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0, config=ServerConfig(max_sessions=1)) as server:
            first = asyncio.ensure_future(peer_connect(server.address, "taken", 1, timeout=2))
            await asyncio.sleep(0.1)
            with pytest.raises(ConnectError, match="too-many-sessions") as info:
                await peer_connect(server.address, "another", 1)
            assert isinstance(info.value, OSError)
            first.cancel()

    asyncio.run(scenario())


def test_silent_server_raises_connect_error() -> None:
    async def scenario() -> None:
        with raw_socket() as silent:  # bound, never answers
            address = Endpoint.from_sockaddr(silent.getsockname())
            with pytest.raises(ConnectError, match="no answer"):
                await peer_connect(address, "x", 1, timeout=0.4)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("server", "session", "peers", "error", "message"),
    [
        ("nohost", "s", 1, ValueError, "missing port"),
        ("1.2.3.4:99999", "s", 1, ValueError, "invalid port"),
        ("1.2.3.4:0", "s", 1, ValueError, "1-65535"),
        ("1.2.3.4:5000", "s", -1, ValueError, "0 or more"),
        ("1.2.3.4:5000", "x" * 1025, 1, ValueError, "at most 1024"),
        ("1.2.3.4:5000", 42, 1, TypeError, "str or bytes"),
    ],
)
def test_bad_arguments_are_refused_before_any_io(
    server: str, session: object, peers: int, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        holepunch.connect(server, session, peers)


def test_negative_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        holepunch.connect("1.2.3.4:5000", "s", 1, timeout=-1)


# --- tracing, detach, blocking --------------------------------------------------------------------


def test_tracing_records_sends_receives_and_events() -> None:
    async def scenario() -> Trace:
        trace = Trace()
        async with await holepunch.serve("127.0.0.1", 0, trace=trace) as server:
            meshes = await asyncio.gather(
                *(peer_connect(server.address, "t", 1, trace=trace, actor=name) for name in ("peer A", "peer B"))
            )
            meshes[0].send(meshes[0].connected[0], b"hi")
            assert await asyncio.wait_for(meshes[1].recv(), 5) == (meshes[0].local, b"hi")
            for mesh in meshes:
                await mesh.close()
        return trace

    trace = asyncio.run(scenario())
    assert {r.actor for r in trace} == {"server", "peer A", "peer B"}
    sends = {r.kind for r in trace.filter(actor="peer A", action=Action.SEND)}
    assert {"ext-register", "syn", "ack", "data"} <= sends
    assert {"ext-register"} <= {r.kind for r in trace.filter(actor="server", action=Action.RECEIVE)}
    assert {"ext-peers"} <= {r.kind for r in trace.filter(actor="server", action=Action.SEND)}
    received = {r.kind for r in trace.filter(actor="peer B", action=Action.RECEIVE)}
    assert {"ext-peers", "data"} <= received and received & {"syn", "ack"}
    events = {r.kind for r in trace.filter(action=Action.EVENT)}
    assert {"PeerJoined", "Registered", "PunchingStarted", "PeerConnected", "ConnectCompleted", "DataReceived"} <= events
    data_in = trace.filter(actor="peer B", kind="DataReceived")[0]
    assert "b'hi'" in data_in.summary
    times = [r.time for r in trace]
    assert times == sorted(times)


@pytest.mark.parametrize("linger", [True, False])
def test_a_peer_that_closes_at_once_lingers_for_a_peer_that_lost_its_last_ack(
    linger: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first ACK that would confirm a peer (one that answered our SYN, so is ACKING) is lost.
    The other peer completes and closes at once (as `holepunch connect` exits); its close lingers,
    so the peer's retried SYN is answered (TCP's TIME-WAIT). The control, without it, strands it."""
    lost: list[Endpoint] = []
    receive = PeerClient.receive_datagram

    def lossy(self: PeerClient, data: bytes, source: Endpoint, now: float, via: int = 0) -> None:
        peer = self.peers.get(source)
        if data == ACK and peer is not None and peer.state is PeerState.ACKING and not lost:
            lost.append(source)
            return
        receive(self, data, source, now, via)

    monkeypatch.setattr(PeerClient, "receive_datagram", lossy)
    config = dataclasses.replace(FAST, close_linger=FAST.close_linger if linger else 0.0)

    async def connect_and_leave(server: Endpoint) -> bool:
        mesh = await peer_connect(server, "linger", 1, timeout=2.0, config=config)
        await mesh.close()
        return mesh.complete

    async def scenario() -> list[bool]:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            return list(await asyncio.gather(*(connect_and_leave(server.address) for _ in range(2))))

    completed = asyncio.run(scenario())
    assert len(lost) == 1, completed
    assert sorted(completed) == ([True, True] if linger else [False, True]), completed


def test_a_close_cancelled_while_it_lingers_still_releases_the_socket() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            one, two = await asyncio.gather(*(peer_connect(server.address, "c", 1) for _ in range(2)))
            closing = asyncio.create_task(one.close())  # lingers: it sent an ACK a moment ago
            await asyncio.sleep(0.01)
            assert not closing.done() and not one.closed
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
            assert one.closed and one.socket.fileno() == -1
            await two.close()

    asyncio.run(scenario())


def test_detach_hands_the_socket_over() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with await holepunch.serve("127.0.0.1", 0) as server:
            one, two = await asyncio.gather(*(peer_connect(server.address, "d", 1) for _ in range(2)))
            sock = one.detach()
            assert one.closed and sock.fileno() != -1
            with pytest.raises(MeshClosed):
                await one.recv()
            two.send(one.local, b"raw")
            assert await recv_raw(loop, sock, two.local, skip=(b"SYN", b"ACK")) == b"raw"
            sock.sendto(b"back", two.local)
            assert await asyncio.wait_for(two.recv(), 5) == (one.local, b"back")
            sock.close()
            await two.close()

    asyncio.run(scenario())


def test_connect_blocking_from_threads(background: Any) -> None:
    server = background.run(holepunch.serve("127.0.0.1", 0))
    opts = {"timeout": 10.0, "config": FAST, "bind": LOCAL}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(holepunch.connect_blocking, server.address, "b", 1, **opts) for _ in range(2)]
        one, two = (f.result(15) for f in futures)
    assert isinstance(one, BlockingMesh) and one.complete and two.complete
    one.send(two.local, b"ping")
    assert two.recv(timeout=5) == (one.local, b"ping")
    two.send(one.local, b"pong")
    assert one.recv(timeout=5) == (two.local, b"pong")
    with pytest.raises(TimeoutError):
        one.recv(timeout=0.05)
    one.close()
    one.close()
    assert one.closed and one.peers[0].connected  # the record stays readable after close
    two.close()
    background.run(server.close())


def test_connect_blocking_inside_a_running_loop(background: Any) -> None:
    """What Jupyter does: blocking calls from code that runs inside an event loop."""
    server = background.run(holepunch.serve("127.0.0.1", 0))
    other = background.submit(_open(peer_connect(server.address, "j", 1)))

    async def notebook_cell() -> None:
        with holepunch.connect_blocking(server.address, "j", 1, timeout=10, config=FAST, bind=LOCAL) as mesh:
            assert mesh.complete
            peer = other.result(5)
            background.loop.call_soon_threadsafe(peer.send, mesh.local, b"from the other side")
            assert mesh.recv(timeout=5) == (peer.local, b"from the other side")
        background.run(peer.close())

    asyncio.run(notebook_cell())
    background.run(server.close())


async def _open(opening: Any) -> Mesh:
    return await opening


def test_keepalives_continue_while_the_mesh_is_open() -> None:
    async def scenario() -> None:
        config = dataclasses.replace(FAST, keepalive_interval=0.05)
        async with await holepunch.serve("127.0.0.1", 0) as server:
            meshes = await asyncio.gather(*(peer_connect(server.address, "k", 1, config=config) for _ in range(2)))
            before = [p.received for m in meshes for p in m.peers]
            await asyncio.sleep(0.4)
            after = [p.received for m in meshes for p in m.peers]
            assert all(b + 3 <= a for b, a in zip(before, after))
            for mesh in meshes:
                await mesh.close()

    asyncio.run(scenario())
