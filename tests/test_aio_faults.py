"""Faults over real loopback sockets (issue 8): the server restarts mid-session, a peer vanishes
mid-handshake. Real `serve()`, real `connect()`, real `PeerClient`s; short timeouts."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

import holepunch
from holepunch.aio import Mesh
from holepunch.aio.driver import open_udp_socket
from holepunch.protocol import ClientConfig
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.messages import SYN, decode_peer_list
from holepunch.protocol.states import PeerState

pytestmark = pytest.mark.timeout(60)
LOCAL = ("127.0.0.1", 0)
FAST = ClientConfig(register_interval=0.05, extended_refresh_interval=0.2, punch_interval=0.05, final_ack_delay=0.02)
"""Quicker retries for loopback; the protocol is the same."""


def peer_connect(server: Endpoint, session: str, peers: int, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"timeout": 10.0, "config": FAST, "bind": LOCAL}
    options.update(kwargs)
    return holepunch.connect(server, session, peers, **options)


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Wait for `condition` (a state, not a speed: the limit only stops a broken run)."""
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


async def exchange(meshes: list[Mesh]) -> None:
    """Every mesh sends to every connected peer; every message arrives."""
    for mesh in meshes:
        for peer in mesh.connected:
            mesh.send(peer, b"from " + str(mesh.local).encode())
    for mesh in meshes:
        got = sorted([await asyncio.wait_for(mesh.recv(), 5) for _ in mesh.connected])
        assert got == sorted((p, b"from " + str(p).encode()) for p in mesh.connected)


@pytest.mark.parametrize("extension", [True, False], ids=["extended", "plain"])
def test_clients_register_again_after_a_server_restart_and_finish(extension: bool) -> None:
    """Two peers wait for a third; the server dies and a new one starts on the same port with no
    state; the third registers only with the new one, and all three connect."""
    config = dataclasses.replace(FAST, extension=extension)

    async def scenario() -> None:
        first = await holepunch.serve("127.0.0.1", 0)
        address = first.address
        waiting = [asyncio.ensure_future(peer_connect(address, "restart", 2, config=config)) for _ in range(2)]
        await until(lambda: first.machine.member_count == 2)
        await first.close()
        async with await holepunch.serve("127.0.0.1", address.port) as second:
            assert second.address == address and second.machine.member_count == 0
            late = await peer_connect(address, "restart", 2, config=config)
            meshes = [*(await asyncio.gather(*waiting)), late]
            try:
                for mesh in meshes:
                    assert mesh.complete, mesh.result
                    assert sorted(mesh.connected) == sorted(m.local for m in meshes if m is not mesh)
                await exchange(meshes)
                assert second.stats.joined == 3  # the two old members registered again
            finally:
                await asyncio.gather(*(mesh.close() for mesh in meshes))

    asyncio.run(scenario())


async def vanishing_peer(server: Endpoint, session: str) -> tuple[Endpoint, list[Endpoint]]:
    """A peer that speaks the plain protocol (as the reference client does): it registers, takes
    its peer list, sends each listed peer one SYN and vanishes (its socket closes, no goodbye).
    Returns its address and the peers it sent a SYN to."""
    loop = asyncio.get_running_loop()
    with open_udp_socket("127.0.0.1", 0) as sock:
        sock.sendto(session.encode(), server)
        while True:  # the server's 0-byte keep-alives are not the list
            data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), 5)
            if data:
                break
        listed = decode_peer_list(data)
        for peer in listed:
            sock.sendto(SYN, peer)
        return Endpoint.from_sockaddr(sock.getsockname()), listed


def test_a_peer_that_vanishes_mid_handshake_is_named_in_the_others_results() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            others = [asyncio.ensure_future(peer_connect(server.address, "vanish", 2, timeout=1.5))
                      for _ in range(2)]
            await until(lambda: server.machine.member_count == 2)
            missing, punched = await vanishing_peer(server.address, "vanish")
            meshes = await asyncio.gather(*others)
            try:
                a, b = meshes
                assert sorted(punched) == sorted([a.local, b.local])
                for mesh, other in ((a, b), (b, a)):
                    result = mesh.result
                    assert not mesh.complete and result.connected == (other.local,)
                    assert result.failed == (missing,) and result.reason == "timed out"
                    status = next(p for p in mesh.peers if p.endpoint == missing)
                    assert status.state is PeerState.FAILED and status.reason.startswith("timed out")
                await exchange(meshes)  # the two that are left still talk
            finally:
                await asyncio.gather(*(mesh.close() for mesh in meshes))

    asyncio.run(scenario())
