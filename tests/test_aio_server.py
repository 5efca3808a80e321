"""The asyncio rendezvous server over real loopback sockets: replies, timers, hostile datagrams.

Raw sockets play reference (plain) clients so that the bytes on the wire are checked exactly.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

import holepunch
from holepunch import Endpoint
from holepunch.protocol.config import ClientConfig, ServerConfig
from holepunch.protocol.messages import MAGIC

pytestmark = pytest.mark.timeout(60)
FAST = ClientConfig(register_interval=0.05, extended_refresh_interval=0.2, punch_interval=0.05, final_ack_delay=0.02)


class RawClient:
    """A plain UDP socket on a given family, with a blocking receive that has a timeout."""

    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.from_sockaddr(self.sock.getsockname())

    async def recv(self, timeout: float = 5.0) -> tuple[bytes, Endpoint]:
        loop = asyncio.get_running_loop()
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(self.sock, 65535), timeout)
        return data, Endpoint.from_sockaddr(addr)

    async def ask(self, data: bytes, server: Endpoint) -> bytes:
        """Send one registration and return the reply, which must come from the server."""
        self.sock.sendto(data, server)
        reply, source = await self.recv()
        assert source == server
        return reply

    def close(self) -> None:
        self.sock.close()


def test_reply_with_no_other_members_is_a_real_zero_byte_datagram() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            first, second = RawClient(), RawClient()
            assert server.address.port != 0
            assert await first.ask(b"unknown-id", server.address) == b""
            assert await second.ask(b"unknown-id", server.address) == first.endpoint.text.encode()
            assert await first.ask(b"unknown-id", server.address) == second.endpoint.text.encode()
            first.close()
            second.close()
            assert server.io_stats.sent == 3 and server.io_stats.send_errors == 0

    asyncio.run(scenario())


def test_server_survives_hostile_datagrams_while_serving_another_session() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            attacker = RawClient()
            hostile = [
                bytes(2000),  # oversize plain ID
                b"x" * 65000,  # near the UDP maximum
                MAGIC,  # magic alone
                MAGIC + b"\x09\x01",  # unknown version
                MAGIC + b"\x01\x01\x01\xff\xff",  # truncated field
                MAGIC + b"\x01\x7f",  # unknown message type
            ]
            peers = [
                asyncio.ensure_future(holepunch.connect(server.address, "good", 1, timeout=10, config=FAST, bind=("127.0.0.1", 0)))
                for _ in range(2)
            ]
            for data in hostile * 3:
                attacker.sock.sendto(data, server.address)
            assert await attacker.ask(b"\xff\xfe\x00ab\xc3(", server.address) == b""  # not UTF-8: still an ID
            meshes = await asyncio.gather(*peers)
            assert all(mesh.complete for mesh in meshes)
            stats = server.stats
            assert stats.dropped["oversize"] == 6 and stats.dropped["malformed"] == 12
            assert b"\xff\xfe\x00ab\xc3(" in server.machine.sessions()
            for mesh in meshes:
                await mesh.close()
            attacker.close()

    asyncio.run(scenario())


def test_timer_drives_keepalives_and_expiry() -> None:
    async def scenario() -> None:
        # No amplification budget: one 2-byte registration earns fewer bytes than 3 keep-alives.
        config = ServerConfig(keepalive_interval=0.05, session_timeout=0.5, amplification_factor=None)
        async with await holepunch.serve("127.0.0.1", 0, config=config) as server:
            client = RawClient()
            assert await client.ask(b"ka", server.address) == b""
            for _ in range(3):  # M3 keep-alives: 0 bytes, from the server's own socket
                assert await client.recv() == (b"", server.address)
            while server.machine.member_count:
                await asyncio.sleep(0.05)
            assert server.stats.expired == 1
            client.close()

    asyncio.run(scenario())


def test_dual_stack_server_answers_ipv4_and_ipv6() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("::", 0) as server:
            v4 = RawClient(socket.AF_INET, "127.0.0.1")
            v6 = RawClient(socket.AF_INET6, "::1")
            target4 = Endpoint("127.0.0.1", server.address.port)
            target6 = Endpoint("::1", server.address.port)
            assert await v4.ask(b"mixed", target4) == b""
            assert await v6.ask(b"mixed", target6) == v4.endpoint.text.encode()  # unmapped: 127.0.0.1:port
            assert await v4.ask(b"mixed", target4) == f"[::1]:{v6.endpoint.port}".encode()
            v4.close()
            v6.close()

    asyncio.run(scenario())


def test_close_stops_serve_forever_and_the_socket() -> None:
    async def scenario() -> None:
        server = await holepunch.serve("127.0.0.1", 0)
        waiter = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        sock = server._driver.sock
        await server.close()
        await asyncio.wait_for(waiter, 1)
        await server.close()  # twice is fine
        assert server.closed and sock.fileno() == -1

    asyncio.run(scenario())


def test_bad_port_is_refused() -> None:
    with pytest.raises(ValueError, match="0-65535"):
        asyncio.run(holepunch.serve("127.0.0.1", 70000))


def test_joins_and_leaves_are_logged_at_info_and_drops_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        config = ServerConfig(keepalive_interval=0, session_timeout=0.2)
        async with await holepunch.serve("127.0.0.1", 0, config=config) as server:
            client = RawClient()
            assert await client.ask(b"logged", server.address) == b""
            client.sock.sendto(bytes(1500), server.address)
            while server.machine.member_count or not server.stats.dropped:
                await asyncio.sleep(0.05)
            client.close()

    caplog.set_level(logging.DEBUG, logger="holepunch.server")
    asyncio.run(scenario())
    levels = {(r.levelno, r.getMessage().split(" ", 2)[1]) for r in caplog.records if r.name == "holepunch.server"}
    assert (logging.INFO, "joined") in levels and (logging.INFO, "left") in levels
    assert any(r.levelno == logging.DEBUG and "oversize" in r.getMessage() for r in caplog.records)


def test_a_burst_from_many_clients_is_fully_answered() -> None:
    """32 clients register at once, 50 times over: every registration gets its reply."""

    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            clients = [RawClient() for _ in range(32)]
            for _ in range(50):
                for n, client in enumerate(clients):
                    client.sock.sendto(f"burst-{n // 2}".encode(), server.address)
                replies = [await client.recv() for client in clients]
                assert all(source == server.address for _, source in replies)
            assert server.stats.registrations == server.stats.replies == 50 * len(clients)
            assert server.machine.session_count == len(clients) // 2
            for client in clients:
                client.close()

    asyncio.run(scenario())
