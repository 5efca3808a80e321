"""Session secrets over real loopback sockets: two peers with the secret connect, intruders do not.

Every test runs a real `serve(secret=...)` and real `connect(secret=...)` calls on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import holepunch
from holepunch import Endpoint
from holepunch.aio import ConnectError
from holepunch.protocol.auth import AuthError
from holepunch.protocol.config import ClientConfig, ServerConfig
from holepunch.protocol.messages import SYN, ExtPunch, encode_ext
from holepunch.protocol.tcp_messages import session_token

pytestmark = pytest.mark.timeout(60)
LOCAL = ("127.0.0.1", 0)
FAST = ClientConfig(register_interval=0.05, extended_refresh_interval=0.2, punch_interval=0.05, final_ack_delay=0.02)
SECRET = "a secret for the loopback tests"


def peer_connect(server: Endpoint, peers: int, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"timeout": 10.0, "config": FAST, "bind": LOCAL}
    options.update(kwargs)
    return holepunch.connect(server, "room", peers, **options)


async def spam(target: Endpoint, datagrams: list[bytes], stop: asyncio.Event) -> int:
    """An intruder who knows the session ID but not the secret: punches and SYNs at `target`."""
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(LOCAL)
        while not stop.is_set():
            for data in datagrams:
                sock.sendto(data, (target.host, target.port))
                sent += 1
            await asyncio.sleep(0.01)
    return sent


def test_two_peers_with_the_secret_connect_and_intruders_without_it_are_kept_out() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0, secret=SECRET) as server:
            with pytest.raises(ConnectError, match=r"refused: bad-auth \(wrong or missing secret\)"):
                await peer_connect(server.address, 1, secret="a guess")
            with pytest.raises(ConnectError, match="refused: bad-auth"):
                await peer_connect(server.address, 1)  # no secret at all
            first = asyncio.ensure_future(peer_connect(server.address, 1, secret=SECRET))
            while not server.machine.members(b"room"):
                await asyncio.sleep(0.01)
            # While the first peer waits and punches, someone who knows the session ID sends it
            # punches made without the secret and plain SYNs.
            stop = asyncio.Event()
            forged = encode_ext(ExtPunch(session_token(b"room"), bytes(8), bytes(8)))
            intruder = asyncio.ensure_future(spam(server.machine.members(b"room")[0], [forged, SYN], stop))
            second = await peer_connect(server.address, 1, secret=SECRET)
            a = await first
            stop.set()
            assert await intruder > 0
            async with a, second:
                assert a.complete and second.complete
                assert a.connected == [second.local] and second.connected == [a.local]
                a.send(second.local, b"only for you")
                assert await asyncio.wait_for(second.recv(), 5) == (a.local, b"only for you")
                assert a.machine.dropped["stranger"] > 0  # the intruder's datagrams, all dropped
            assert server.stats.refused["bad-auth"] == 2 and server.stats.joined == 2

    asyncio.run(scenario())


def test_a_plain_client_gets_no_answer_from_a_server_with_a_secret() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0, secret=(SECRET, "the old one")) as server:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
                plain.bind(LOCAL)
                plain.setblocking(False)
                for _ in range(3):
                    plain.sendto(b"room", (server.address.host, server.address.port))
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(loop.sock_recv(plain, 100), 0.3)
            assert server.stats.refused["unauthenticated"] == 3 and server.machine.members(b"room") == []
            old = await peer_connect(server.address, 0, secret="the old one")  # rotation: still accepted
            await old.close()
            assert server.stats.old_secret >= 1

    asyncio.run(scenario())


def test_a_client_with_a_secret_refuses_a_server_that_answers_in_plain() -> None:
    async def scenario() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reference:
            reference.bind(LOCAL)
            reference.setblocking(False)
            loop = asyncio.get_running_loop()

            async def answer_like_the_reference() -> None:
                while True:  # every datagram is an opaque ID: the reply is the empty peer list
                    _, source = await loop.sock_recvfrom(reference, 2048)
                    reference.sendto(b"", source)

            responder = asyncio.ensure_future(answer_like_the_reference())
            try:
                address = Endpoint(*reference.getsockname())
                with pytest.raises(ConnectError, match="does not support authentication"):
                    await peer_connect(address, 1, secret=SECRET)
            finally:
                responder.cancel()

    asyncio.run(scenario())


def test_bad_secret_arguments_fail_at_once() -> None:
    async def scenario() -> None:
        with pytest.raises(AuthError, match="the secret is empty"):
            await peer_connect(Endpoint("127.0.0.1", 9), 1, secret="")
        with pytest.raises(ValueError, match="UDP sessions only"):
            await peer_connect(Endpoint("127.0.0.1", 9), 1, secret=SECRET, transport="tcp", config=None)
        with pytest.raises(ValueError, match="either as secret= or in config.secrets"):
            await holepunch.serve("127.0.0.1", 0, secret="a", config=ServerConfig(secrets=("b",)))
        with pytest.raises(ValueError, match="UDP sessions only"):
            await holepunch.serve_all("127.0.0.1", 0, config=ServerConfig(secrets=("b",)))

    asyncio.run(scenario())
    with pytest.raises(AuthError, match="the secret is empty"):  # checked in the caller's thread
        holepunch.connect_blocking(Endpoint("127.0.0.1", 9), "room", 1, secret=b"")
