"""The techniques over real loopback sockets: PUNCH between two real clients, and the asyncio
driver's extra sockets (birthday probing) opened, used, shrunk and closed.

The second test plays the server and the other peer with raw UDP sockets, so that it can answer
on whichever of the client's extra sockets it chooses.
"""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

import holepunch
from holepunch import Endpoint
from holepunch.aio.driver import Driver
from holepunch.protocol import ClientConfig, PeerClient, PeerInfo
from holepunch.protocol.events import ConnectCompleted, Event, PeerConnected
from holepunch.protocol.messages import ExtPeers, ExtPunch, ExtPunchAck, ExtRegister, decode_ext, encode_ext
from holepunch.protocol.tcp_messages import session_token
from holepunch.trace import Action, Trace

pytestmark = pytest.mark.timeout(60)
FAST = ClientConfig(register_interval=0.05, extended_refresh_interval=0.2, punch_interval=0.05,
                    final_ack_delay=0.02, techniques={"peer-reflexive", "prediction"})
OTHER_ID = bytes.fromhex("a1a2a3a4a5a6a7a8")


def test_two_clients_with_techniques_punch_with_punch_messages_on_loopback() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            trace = Trace()
            meshes = await asyncio.gather(*(holepunch.connect(server.address, "tech", 1, timeout=10.0, config=FAST,
                                                              bind=("127.0.0.1", 0), trace=trace, actor=f"p{i}")
                                            for i in range(2)))
            try:
                a, b = meshes
                assert a.complete and b.complete
                kinds = {r.kind for r in trace if r.action is Action.SEND}
                assert {"punch", "punch-ack"} <= kinds and not {"syn", "ack"} & kinds
                assert a.machine.connect_result().peers[0].technique == "basic"  # no NAT: the listed path
                a.send(b.local, b"over a punched path")
                assert await asyncio.wait_for(b.recv(), 5) == (a.local, b"over a punched path")
            finally:
                await asyncio.gather(*(m.close() for m in meshes))

    asyncio.run(scenario())


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    return sock


def test_the_driver_opens_extra_sockets_sends_via_them_and_keeps_only_the_one_in_use() -> None:
    server, other = _udp(), _udp()
    server_ep, other_ep = Endpoint(*server.getsockname()), Endpoint(*other.getsockname())
    token = session_token(b"room")
    cfg = ClientConfig(techniques={"birthday"}, birthday_role="hard", birthday_sockets=5, escalation_delay=0.05,
                       punch_interval=0.2, timeout=10.0)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        client = PeerClient(server_ep, b"room", 1, cfg, rng=random.Random(3))
        sock = holepunch.aio.driver.open_udp_socket("127.0.0.1", 0)
        events: list[Event] = []
        driver = Driver(client, sock, events.append)
        client.start(driver.now())
        driver.start()
        register = decode_ext((await loop.run_in_executor(None, server.recvfrom, 2048))[0])
        assert isinstance(register, ExtRegister)
        me = Endpoint(*sock.getsockname())
        reply = ExtPeers(b"room", me, (PeerInfo(other_ep, OTHER_ID, True),))
        server.sendto(encode_ext(reply), me)
        sources: dict[int, Endpoint] = {}
        while len(sources) < 5:  # the registered socket's PUNCH, then one probe from each extra socket
            data, addr = await loop.run_in_executor(None, other.recvfrom, 2048)
            msg = decode_ext(data)
            assert isinstance(msg, ExtPunch) and msg.token == token and msg.target == OTHER_ID
            sources[addr[1]] = Endpoint(*addr)
        assert len(driver.extra_sockets) == 4 and me.port in sources
        third = Endpoint(*driver.extra_sockets[2].getsockname())
        other.sendto(encode_ext(ExtPunch(token, OTHER_ID, client.peer_id, 2)), third)
        while True:  # the answer comes from the third extra socket
            data, addr = await loop.run_in_executor(None, other.recvfrom, 2048)
            if isinstance(decode_ext(data), ExtPunchAck):
                break
        assert addr[1] == third.port
        other.sendto(encode_ext(ExtPunchAck(token, OTHER_ID, client.peer_id)), third)
        for _ in range(100):
            if any(isinstance(e, ConnectCompleted) for e in events):
                break
            await asyncio.sleep(0.02)
        connected = [e for e in events if isinstance(e, PeerConnected)]
        assert [(e.peer, e.technique) for e in connected] == [(other_ep, "birthday")]
        assert len(driver.extra_sockets) == 3  # socket 4 was released; 3 carries the peer
        client.send(other_ep, b"payload")
        driver.pump(driver.now())
        while True:
            data, addr = await loop.run_in_executor(None, other.recvfrom, 2048)
            if data == b"payload":
                break
        assert addr[1] == third.port
        extra = list(driver.extra_sockets)
        driver.stop()
        sock.close()
        assert driver.extra_sockets == () and all(s.fileno() == -1 for s in extra)

    try:
        asyncio.run(scenario())
    finally:
        server.close()
        other.close()
