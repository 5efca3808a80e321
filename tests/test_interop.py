"""Every mix of our and the reference's clients and servers works (issue 2), over real loopback UDP.

The reference's side is played by the Go stand-ins in tests/reference (threaded, real sockets, with
the Go bugs B1-B6 reproduced), so every assertion here is about what a real Go binary would see.
What interop requires is wire-protocol.md §7; each test names the rule it checks. Our clients use
the default `ClientConfig` on purpose: faster retries than 100 ms would starve a Go peer (B4).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Self

import pytest
from reference.go_client import GoClient
from reference.go_net import parse_endpoint
from reference.go_server import GoServer

import holepunch
from holepunch import Action, Endpoint, Trace
from holepunch.aio import BlockingMesh, Mesh, Server
from holepunch.protocol.messages import ACK, MAGIC, SYN, ExtPeers, PeerInfo, encode_ext

pytestmark = pytest.mark.timeout(30)

LOCAL = ("127.0.0.1", 0)
SESSION = b"interop"
CLIENT_TIMEOUT = 10.0
"""Our clients give up on unconfirmed peers after this; every session here needs well under 2 s."""
GO_TIMEOUT = 10.0
"""The Go clients' Connect deadline (the reference uses 40 s)."""
GoFactory = Callable[..., GoClient]


# --- fixtures: everything is closed even when a test fails ------------------------------------------


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads for the blocking `GoClient.connect()` calls (one goroutine-like caller each)."""
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="interop") as executor:
        yield executor


@pytest.fixture
def go(pool: ThreadPoolExecutor) -> Iterator[GoFactory]:
    """Make GoClients; all are closed (which also ends a B1/B2 hang) before the pool is joined."""
    made: list[GoClient] = []

    def make(server: tuple[str, int], expected: int, mediator_retry: float = 0.1) -> GoClient:
        client = GoClient(server, SESSION, expected, timeout=GO_TIMEOUT, mediator_retry=mediator_retry)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def go_server() -> Iterator[GoServer]:
    """The reference rendezvous server stand-in on a free loopback port."""
    with GoServer("127.0.0.1", 0) as server:
        yield server


class Ours:
    """Our `connect()` calls as tasks; on exit unfinished ones are cancelled and every mesh closed."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Mesh]] = []

    def start(self, server: tuple[str, int], peers: int, *, actor: str = "ours") -> asyncio.Task[Mesh]:
        """Start one of our peers (traced, bound to loopback) and return its task."""
        opening = holepunch.connect(
            server, SESSION, peers, timeout=CLIENT_TIMEOUT, bind=LOCAL, trace=Trace(), actor=actor
        )

        async def run() -> Mesh:
            return await opening

        task = asyncio.ensure_future(run())
        self.tasks.append(task)
        return task

    async def close(self) -> None:
        """Close every mesh; `Mesh.close` waits for pending final ACKs, which Go peers need (B3)."""
        for task in self.tasks:
            task.cancel()  # no effect on finished tasks
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(r.close() for r in results if isinstance(r, Mesh)))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# --- helpers --------------------------------------------------------------------------------------


def go_connect(pool: ThreadPoolExecutor, client: GoClient) -> asyncio.Future[list[str]]:
    """Run the blocking `client.connect()` in a thread, awaitable from the test's event loop."""
    return asyncio.wrap_future(pool.submit(client.connect))


async def finish_go(clients: list[GoClient], runs: list[asyncio.Future[list[str]]]) -> list[list[str]]:
    """Wait for every Go Connect; a hung one (B1/B2) fails the test at once instead of blocking it."""
    end = time.monotonic() + GO_TIMEOUT + 5
    pending: set[asyncio.Future[list[str]]] = set(runs)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.05)
        hung = [c.local_address for c in clients if c.hung]
        if hung:
            pytest.fail(f"Go client {hung} hung in Connect (B1/B2)")
        if time.monotonic() > end:
            pytest.fail("Go Connect never returned")
    return [run.result() for run in runs]


async def until(condition: Callable[[], bool], what: str, limit: float = 5.0) -> None:
    """Poll `condition` without blocking the event loop (our server and peers run on it)."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def our_members(server: Server) -> Callable[[], int]:
    """How many endpoints our server holds in the test session (read on the loop's thread)."""
    return lambda: len(server.machine.members(SESSION))


def go_members(server: GoServer) -> Callable[[], int]:
    """How many endpoints the Go server stand-in holds under the plain session ID."""
    return lambda: len(server.snapshot().get(SESSION, []))


def assert_go_saw_only_plain_lists(client: GoClient) -> None:
    """§7: the server sends a Go client one plain M2 per poll, or 0 bytes; never an extension
    message and never an unsolicited push (in phase 2 a push would hang it, B1)."""
    from_server = [data for _, source, data in client.received if source == client.server]
    polls = [1 for _, dest, _ in client.sent if dest == client.server]
    lists = [data for data in from_server if data]
    for data in lists:
        assert not data.startswith(MAGIC), f"extension message sent to a Go client: {data!r}"
        for entry in data.decode("ascii").split(","):
            parse_endpoint(entry)  # what the Go client does; a bad entry would abort its Connect
    assert len(lists) <= len(polls), f"{len(lists)} non-empty datagrams for {len(polls)} polls: a push"


def assert_go_heard_only_listed_peers(client: GoClient) -> None:
    """§7 / B1: in a Go client's session nothing but the server and its listed peers sent to it."""
    allowed = {client.server, *client.peers}
    strangers = {source for _, source, _ in client.received if source not in allowed}
    assert not strangers, f"{client.local_address} heard from unlisted {strangers}"
    assert not client.hung


def assert_go_connected(clients: list[GoClient], results: list[list[str]], others: list[str]) -> None:
    """Every Go Connect returned all the other peers' texts, without a hang or a stranger."""
    everyone = set(others) | {c.local_address for c in clients}
    for client, result in zip(clients, results):
        assert set(result) == everyone - {client.local_address}
        assert len(result) == len(everyone) - 1
        assert_go_heard_only_listed_peers(client)


def our_handshake_with(mesh: Mesh, go_peer: str, *, syn_answered: bool) -> None:
    """§7 handshake rules for one Go peer, read from our trace: every SYN from the listed peer got
    an ACK in the same drive-loop step (or one went out less than half a punch interval before:
    the anti-reflection rate limit), and connecting on its ACK sent an ACK at once plus one more
    `final_ack_delay` later (B3). SYNs that came before we listed the peer are dropped as strangers."""
    assert mesh.trace is not None
    peer = Endpoint.parse(go_peer)
    config = mesh.machine.config
    syns = [r.time for r in mesh.trace if r.action is Action.RECEIVE and r.source == peer and r.kind == "syn"]
    acks = [r.time for r in mesh.trace if r.action is Action.SEND and r.destination == peer and r.kind == "ack"]
    window = config.punch_interval / 2
    unanswered = [t for t in syns if not any(t - window <= a <= t for a in acks)]
    dropped = f"dropped 3 bytes from {peer}: stranger"
    early = [r for r in mesh.trace if r.kind == "DatagramDropped" and r.summary == dropped]
    assert len(unanswered) <= len(early), f"SYNs at {unanswered} not answered at once"
    if syn_answered:
        assert len(syns) > len(unanswered), "no SYN from the Go peer was ever answered"
    connected_at = mesh.machine.peers[peer].connected_at
    assert connected_at is not None and connected_at in acks, "no ACK at once when the Go peer's ACK came"
    later = [a for a in acks if a > connected_at]
    assert later, "no delayed final ACK: a Go peer would time out in Connect (B3)"
    assert later[0] >= connected_at + config.final_ack_delay - 1e-9


def saw_push(mesh: Mesh) -> bool:
    """True if the server pushed a newcomer to this mesh (extension only, never to Go peers)."""
    assert mesh.trace is not None
    return any(r.action is Action.RECEIVE and r.kind == "ext-push" for r in mesh.trace)


async def mixed_session(
    server: tuple[str, int], members: Callable[[], int], pool: ThreadPoolExecutor, go: GoFactory,
    ours: Ours, n_ours: int, n_go: int,
) -> tuple[list[Mesh], list[GoClient], list[list[str]]]:
    """One session of `n_ours` of our peers and `n_go` Go peers, each expecting all the others.
    Ours register first, so on our server they learn of the Go peers by extension pushes."""
    expected = n_ours + n_go - 1
    tasks = [ours.start(server, expected, actor=f"ours{i}") for i in range(n_ours)]
    await until(lambda: members() >= n_ours, "our peers to register")
    clients = [go(server, expected) for _ in range(n_go)]
    runs = [go_connect(pool, client) for client in clients]
    meshes = list(await asyncio.gather(*tasks))
    results = await finish_go(clients, runs)
    return meshes, clients, results


# --- 1. Go clients against our server -------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3])
def test_go_clients_connect_through_our_server(count: int, pool: ThreadPoolExecutor, go: GoFactory) -> None:
    async def scenario() -> None:
        async with await holepunch.serve(*LOCAL) as server:
            clients = [go(server.address, count - 1) for _ in range(count)]
            results = await finish_go(clients, [go_connect(pool, c) for c in clients])
            assert_go_connected(clients, results, [])
            for client in clients:
                assert_go_saw_only_plain_lists(client)
            assert server.stats.pushes == 0  # nobody spoke the extension, so nobody is pushed to

    asyncio.run(scenario())


# --- 2. our clients against the Go server ---------------------------------------------------------


def assert_fell_back(mesh: Mesh | BlockingMesh, server: GoServer) -> None:
    """Plain protocol, registered under the plain ID, at the reference server's first answer."""
    assert mesh.extended is False and mesh.complete
    assert mesh.local.text in server.snapshot()[SESSION]


@pytest.mark.parametrize("count", [2, 3])
def test_our_clients_fall_back_to_plain_with_the_go_server(count: int, go_server: GoServer) -> None:
    async def scenario() -> None:
        async with Ours() as ours:
            tasks = [ours.start(go_server.address, count - 1, actor=f"ours{i}") for i in range(count)]
            meshes = await asyncio.gather(*tasks)  # completes well within CLIENT_TIMEOUT, or fails
            server = Endpoint(*go_server.address)
            for mesh in meshes:
                assert_fell_back(mesh, go_server)
                assert sorted(mesh.connected) == sorted(m.local for m in meshes if m is not mesh)
                assert mesh.trace is not None
                # The first reply (a plain M2 to our extension attempt) switches us in the same step.
                answer = next(r.time for r in mesh.trace if r.action is Action.RECEIVE and r.source == server)
                plain = next(r.time for r in mesh.trace if r.action is Action.SEND and r.kind == "register")
                assert plain == answer
        store = go_server.snapshot()
        assert sorted(store[SESSION]) == sorted(m.local.text for m in meshes)
        # The reference stored each extension attempt as an opaque ID of its own: a harmless,
        # private one-member session (the random peer ID inside keeps them apart) that expires.
        assert all(sid.startswith(MAGIC) for sid in store if sid != SESSION)

    asyncio.run(scenario())


def test_connect_blocking_falls_back_with_the_go_server(go_server: GoServer, pool: ThreadPoolExecutor) -> None:
    futures = [
        pool.submit(holepunch.connect_blocking, go_server.address, SESSION, 1, timeout=CLIENT_TIMEOUT, bind=LOCAL)
        for _ in range(2)
    ]
    try:
        meshes = [f.result(CLIENT_TIMEOUT + 5) for f in futures]
        for mesh, other in zip(meshes, reversed(meshes)):
            assert_fell_back(mesh, go_server)
            assert mesh.connected == [other.local]
    finally:
        for future in futures:
            future.add_done_callback(_close_blocking)  # now if done, else when connect ends


def _close_blocking(future: concurrent.futures.Future[BlockingMesh]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


# --- 3. mixed sessions ----------------------------------------------------------------------------


@pytest.mark.parametrize("n_ours, n_go", [(1, 1), (2, 2)])
def test_mixed_session_on_our_server(n_ours: int, n_go: int, pool: ThreadPoolExecutor, go: GoFactory) -> None:
    async def scenario() -> None:
        async with await holepunch.serve(*LOCAL) as server, Ours() as ours:
            meshes, clients, results = await mixed_session(
                server.address, our_members(server), pool, go, ours, n_ours, n_go
            )
            everyone = [m.local for m in meshes] + [Endpoint.parse(c.local_address) for c in clients]
            for mesh in meshes:
                assert mesh.complete and mesh.extended
                assert sorted(mesh.connected) == sorted(e for e in everyone if e != mesh.local)
                assert saw_push(mesh)
            assert_go_connected(clients, results, [m.local.text for m in meshes])
            for client in clients:
                assert_go_saw_only_plain_lists(client)
            await ours.close()  # flushes the final ACKs into the traces
            for mesh in meshes:
                for client in clients:
                    our_handshake_with(mesh, client.local_address, syn_answered=True)

    asyncio.run(scenario())


def test_mixed_session_on_the_go_server(go_server: GoServer, pool: ThreadPoolExecutor, go: GoFactory) -> None:
    async def scenario() -> None:
        async with Ours() as ours:
            meshes, clients, results = await mixed_session(
                go_server.address, go_members(go_server), pool, go, ours, 1, 2
            )
            (mesh,) = meshes
            assert mesh.complete and mesh.extended is False
            assert sorted(mesh.connected) == sorted(Endpoint.parse(c.local_address) for c in clients)
            assert_go_connected(clients, results, [mesh.local.text])
            registered = [mesh.local.text, *(c.local_address for c in clients)]
            assert sorted(go_server.snapshot()[SESSION]) == sorted(registered)
            await ours.close()
            for client in clients:
                # We poll, so a Go peer's first SYN may come before we list it (dropped, unanswered).
                our_handshake_with(mesh, client.local_address, syn_answered=False)

    asyncio.run(scenario())


def go_recv_data(client: GoClient) -> tuple[bytes, str]:
    """The next application datagram on a Go peer's socket, as the chat example reads it:
    0-byte keep-alives and 3-byte handshake leftovers are skipped."""
    while True:
        data, source = client.recvfrom()
        if data and data not in (SYN, ACK):
            return data, source


def test_data_flows_both_ways_with_a_go_peer(pool: ThreadPoolExecutor, go: GoFactory) -> None:
    async def scenario() -> None:
        async with await holepunch.serve(*LOCAL) as server, Ours() as ours:
            (mesh,), (client,), _ = await mixed_session(server.address, our_members(server), pool, go, ours, 1, 1)
            go_peer = Endpoint.parse(client.local_address)
            client.sendto(b"hello from go", mesh.local.text)
            assert await asyncio.wait_for(mesh.recv(), 5) == (go_peer, b"hello from go")
            mesh.send(go_peer, b"hello from python")
            got = await asyncio.wait_for(asyncio.wrap_future(pool.submit(go_recv_data, client)), 5)
            assert got == (b"hello from python", mesh.local.text)
            assert not client.hung

    asyncio.run(scenario())


# --- 4. B2: a Go peer that finished with us but still waits for another ------------------------------


LATE = 2.5
"""Seconds the Go peer waits for its late third peer after finishing with ours: longer than 16 of
our punch intervals, so a client that kept retransmitting after connecting would reach 16 (B2)."""


def test_go_peer_waiting_for_a_late_peer_gets_fewer_than_16_datagrams(
    pool: ThreadPoolExecutor, go: GoFactory
) -> None:
    """first (Go, expects 2) lists ours and `late` (Go, expects 2). `late` is registered (its socket
    sent one M1) but calls Connect only LATE s later, so `first` finishes with ours and then sits
    in phase 2 waiting for `late`, with nothing draining its channel for ours (B2)."""

    async def scenario() -> None:
        async with await holepunch.serve(*LOCAL) as server, Ours() as ours:
            members = our_members(server)
            late, first = go(server.address, 2), go(server.address, 2)
            late.sock.sendto(SESSION, server.address)  # its reply is 0 bytes: skipped later (§4)
            await until(lambda: members() == 1, "the late peer's registration")
            first_run = go_connect(pool, first)
            await until(lambda: members() == 2, "the first Go peer's registration")
            task = ours.start(server.address, 2)  # lists both Go peers at once
            await until(lambda: members() == 3, "our registration")
            ours_text = next(e.text for e in server.machine.members(SESSION)
                             if e.text not in (late.local_address, first.local_address))
            await until(lambda: any(w.peer == ours_text and w.finished.is_set() for w in first._workers),
                        "the first Go peer to finish its handshake with ours")
            await asyncio.sleep(LATE)
            assert not first_run.done()  # still waiting for `late`
            late_run = go_connect(pool, late)
            results = await finish_go([first, late], [first_run, late_run])
            mesh = await task
            assert set(results[0]) == {ours_text, late.local_address}
            assert set(results[1]) == {ours_text, first.local_address}
            assert mesh.complete and len(mesh.connected) == 2
            for client in (first, late):
                assert_go_heard_only_listed_peers(client)
            # Everything `first` read from us while its Connect was pending (phase 1 included).
            from_ours = [data for _, source, data in first.received if source == ours_text]
            assert len(from_ours) < 16, from_ours

    asyncio.run(scenario())


# --- 5. a stranger spraying our client during a mixed handshake ------------------------------------


def test_stranger_spraying_our_client_mid_handshake_hangs_nothing(pool: ThreadPoolExecutor, go: GoFactory) -> None:
    """Our client drops a stranger's datagrams (even a forged push) and completes with the Go peer.
    The same spray aimed at a Go client in phase 2 WOULD hang its Connect for good (B1: send on a
    nil channel); tests/reference/test_reference_standins.py::
    test_stranger_in_phase_two_hangs_the_client demonstrates that, so the stranger here never
    sends to the Go peer."""

    async def scenario() -> None:
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(LOCAL)
        stranger.setblocking(False)
        spraying: asyncio.Task[None] | None = None
        try:
            async with await holepunch.serve(*LOCAL) as server, Ours() as ours:
                # The Go peer registers first and polls slowly, so we punch it for ~0.5 s before
                # it lists us and answers: a long handshake for the stranger to disturb.
                client = go(server.address, 1, mediator_retry=0.5)
                run = go_connect(pool, client)
                await until(lambda: len(server.machine.members(SESSION)) == 1, "the Go peer to register")
                task = ours.start(server.address, 1)
                await until(lambda: len(server.machine.members(SESSION)) == 2, "our registration")
                target = next(e for e in server.machine.members(SESSION) if e.text != client.local_address)
                fake = PeerInfo(Endpoint("127.0.0.1", 9), extended=True)
                forged = encode_ext(ExtPeers(SESSION, target, (fake,), push=True))
                spraying = asyncio.ensure_future(spray(stranger, target, forged))
                mesh = await task
                (result,) = await finish_go([client], [run])
                spraying.cancel()
                assert mesh.complete and mesh.connected == [Endpoint.parse(client.local_address)]
                assert result == [mesh.local.text]
                assert_go_heard_only_listed_peers(client)
                assert mesh.machine.dropped["stranger"] > 0
                assert mesh.trace is not None
                punching = next(r.time for r in mesh.trace if r.kind == "PunchingStarted")
                done = next(r.time for r in mesh.trace if r.kind == "ConnectCompleted")
                assert any(punching < r.time < done and r.summary.endswith(": stranger")
                           for r in mesh.trace if r.kind == "DatagramDropped"), "no spray during the handshake"
                with pytest.raises(BlockingIOError):
                    stranger.recvfrom(65535)  # we never answered the stranger
        finally:
            if spraying is not None:
                spraying.cancel()
            stranger.close()

    asyncio.run(scenario())


async def spray(sock: socket.socket, target: Endpoint, forged: bytes) -> None:
    """Handshake words, data, junk, a forged peer list and a forged push, every 5 ms."""
    payloads = [SYN, ACK, b"hello", b"", b"127.0.0.1:9", forged, b"\xff" * 100]
    while True:
        for payload in payloads:
            try:
                sock.sendto(payload, target)
            except OSError:
                pass
        await asyncio.sleep(0.005)
