"""The asyncio driver's trace text: every message kind is described, none raises.

Rule: exact texts per message (the demo's and the interop tests' texts are pinned elsewhere);
the hardening messages (COOKIE, RELAY, the MAC and nonce fields) are described too, and a traced
driver that receives one over a real socket records it instead of failing in its read callback.
"""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from holepunch.aio.driver import Driver, open_udp_socket
from holepunch.aio.trace_text import describe_event, describe_packet
from holepunch.protocol import ClientConfig, PeerClient
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol import events as ev
from holepunch.protocol.events import Event
from holepunch.protocol.messages import (
    ExtCookie,
    ExtPunch,
    ExtPunchAck,
    ExtRegister,
    ExtRelay,
    MessageKind,
    encode_ext,
)
from holepunch.trace import Action, Trace

pytestmark = pytest.mark.timeout(30)
ME, YOU, TOKEN, MAC = bytes([1]) * 8, bytes([2]) * 8, bytes(16), bytes(range(16))

CASES = [
    (MessageKind.EXT_REGISTER, encode_ext(ExtRegister(b"room", ME, 2)), "session 'room', expects 2 others"),
    (MessageKind.EXT_REGISTER, encode_ext(ExtRegister(b"room", ME, 2, b"\xcc" * 8, MAC)),
     "session 'room', expects 2 others, cookie cccccccc, mac"),
    (MessageKind.PUNCH, encode_ext(ExtPunch(TOKEN, ME, YOU)), "punch from 0101010101010101 to 0202020202020202"),
    (MessageKind.PUNCH_ACK, encode_ext(ExtPunchAck(TOKEN, ME, YOU, 0, b"\x34" * 8, b"\x12" * 8, MAC)),
     "punchack from 0101010101010101 to 0202020202020202, nonce 34343434, echo 12121212, mac"),
    (MessageKind.EXT_COOKIE, encode_ext(ExtCookie(bytes.fromhex("a1b2c3d4e5"))), "cookie a1b2c3d4: echo it to register"),
    (MessageKind.RELAY, encode_ext(ExtRelay(b"room", ME, YOU, b"hi", MAC)),
     "relay from 0101010101010101 to 0202020202020202: 2 bytes b'hi', mac"),
    (MessageKind.EXT_ERROR, b"\xfahpx\x01\x7f", "malformed: unknown extension type 127"),
]


@pytest.mark.parametrize(("kind", "data", "text"), CASES, ids=[f"{c[0].value}-{i}" for i, c in enumerate(CASES)])
def test_every_extension_message_is_described(kind: MessageKind, data: bytes, text: str) -> None:
    assert describe_packet(kind, data) == text


def test_a_traced_client_records_a_cookie_from_its_server() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5.0)
    server_ep = Endpoint(*server.getsockname())

    async def scenario() -> Trace:
        loop = asyncio.get_running_loop()
        trace = Trace()
        client = PeerClient(server_ep, b"room", 1, ClientConfig(timeout=5.0), rng=random.Random(1))
        events: list[Event] = []
        driver = Driver(client, open_udp_socket("127.0.0.1", 0), events.append, trace=trace, actor="peer")
        client.start(driver.now())
        driver.start()
        _, address = await loop.run_in_executor(None, server.recvfrom, 2048)
        server.sendto(encode_ext(ExtCookie(b"\xa1\xb2\xc3\xd4")), address)
        for _ in range(100):
            if trace.filter(action=Action.RECEIVE):
                break
            await asyncio.sleep(0.01)
        driver.stop()
        driver.sock.close()
        return trace

    try:
        trace = asyncio.run(scenario())
    finally:
        server.close()
    received = trace.filter(action=Action.RECEIVE)
    assert [(r.kind, r.summary) for r in received] == [("ext-cookie", "cookie a1b2c3d4: echo it to register")]


@pytest.mark.parametrize("event, text", [
    (ev.RequestRefused(Endpoint("192.0.2.7", 9), "rate-limited", 3),
     "refused a request from 192.0.2.7:9: rate-limited, 3 more not logged"),
    (ev.PeerRelayed(Endpoint("192.0.2.8", 4000), 1.25, "nothing received"),
     "relaying to 192.0.2.8:4000 through the server after 1250.0 ms (punch: nothing received)"),
    (ev.PeerUpgraded(Endpoint("192.0.2.8", 4000), 2.5, 0.5),
     "upgraded 192.0.2.8:4000 from relayed to direct after 500.0 ms relayed"),
    (ev.RelayRefused("rate-limited"), "the server refused to relay: rate-limited"),
])
def test_the_guard_and_relay_events_are_described(event: Event, text: str) -> None:
    assert describe_event(event) == text
