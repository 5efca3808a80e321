"""The relay fallback (issue 7, technique 5), sans-IO: the server's relay.py and the client's
relay_path.py, driven over the in-memory link with a hand-advanced clock.

The direct path is blocked by the link's `lose` predicate (every datagram between the peers is
lost), so the punch fails and only the server can carry data.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holepunch.protocol import (
    ClientConfig,
    ClientState,
    ConnectCompleted,
    DataReceived,
    Endpoint,
    MessageKind,
    PeerClient,
    PeerConnected,
    PeerFailed,
    PeerRelayed,
    PeerState,
    PeerUpgraded,
    RelayRefused,
    RendezvousServer,
    ServerConfig,
    Transmit,
)
from holepunch.protocol.messages import (
    ErrorCode,
    ExtError,
    ExtPunch,
    ExtPunchAck,
    ExtRegister,
    ExtRelay,
    decode_ext,
    encode_ext,
    is_extension,
)
from holepunch.protocol.auth import SessionKey
from holepunch.protocol.relay import TokenBucket
from holepunch.protocol.tcp_messages import session_token

from .helpers import SERVER, Network, Packet, peer_endpoint

A, B, C = (peer_endpoint(n) for n in (1, 2, 3))
ID_A, ID_B, ID_C = (bytes([n]) * 8 for n in (1, 2, 3))
SID = b"room"
RELAY = ClientConfig(techniques={"relay"}, relay_after=1.0, relay_upgrade_window=3.0, timeout=8.0,
                     keepalive_interval=2.0)


# --- the server's relay ------------------------------------------------------------------------


def server_with(*members: tuple[Endpoint, bytes | None], config: ServerConfig | None = None) -> RendezvousServer:
    """A server with these members of SID registered at t=0 (peer id None: a plain member)."""
    server = RendezvousServer(config)
    for endpoint, peer_id in members:
        data = SID if peer_id is None else encode_ext(ExtRegister(SID, peer_id, 1))
        server.receive_datagram(data, endpoint, 0.0)
        for reply in server.datagrams_to_send(0.0):  # a server that asks for a cookie gets it echoed
            if peer_id is not None and reply.kind is MessageKind.EXT_COOKIE:
                cookie = decode_ext(reply.data).cookie  # type: ignore[union-attr]
                server.receive_datagram(encode_ext(ExtRegister(SID, peer_id, 1, cookie)), endpoint, 0.0)
        server.datagrams_to_send(0.0)
    assert server.members(SID) == [m for m, _ in members]
    return server


def relay(sender: bytes, target: bytes, data: bytes = b"hello", session: bytes = SID) -> bytes:
    return encode_ext(ExtRelay(session, sender, target, data))


def test_the_server_forwards_a_relay_unchanged_between_extended_members() -> None:
    server = server_with((A, ID_A), (B, ID_B))
    datagram = relay(ID_A, ID_B, b"over the relay")
    server.receive_datagram(datagram, A, 1.0)
    assert server.datagrams_to_send(1.0) == [Transmit(datagram, B, MessageKind.RELAY)]
    back = relay(ID_B, ID_A, b"and back")
    server.receive_datagram(back, B, 1.1)
    assert server.datagrams_to_send(1.1) == [Transmit(back, A, MessageKind.RELAY)]
    stats = server.relay_stats
    assert (stats.forwarded, stats.bytes_forwarded) == (2, len(datagram) + len(back))
    # bytes out = bytes in: the relay is no amplifier


@pytest.mark.parametrize("source, claimed", [
    (C, ID_A),  # a stranger speaking for A
    (B, ID_A),  # member B speaking for A
    (A, ID_C),  # A claiming an id that is not its own
])
def test_nobody_speaks_for_another_member_and_impostors_get_no_answer(source: Endpoint, claimed: bytes) -> None:
    server = server_with((A, ID_A), (B, ID_B))
    server.receive_datagram(relay(claimed, ID_B if claimed != ID_B else ID_A), source, 1.0)
    assert server.datagrams_to_send(1.0) == []  # not even an error: the source may be spoofed
    assert server.relay_stats.refused == {"not-a-member": 1} and server.relay_stats.forwarded == 0


def test_a_plain_member_neither_relays_nor_is_relayed_to() -> None:
    server = server_with((A, ID_A), (B, None))
    server.receive_datagram(relay(bytes(8), ID_A), B, 1.0)  # plain members have no peer id
    assert server.datagrams_to_send(1.0) == []
    server.receive_datagram(relay(ID_A, bytes(8)), A, 1.0)
    assert errors(server, 1.0) == [(A, "no-such-target")]
    assert server.relay_stats.refused == {"not-a-member": 1, "no-such-target": 1}


def test_a_relay_to_another_session_or_to_oneself_is_refused() -> None:
    server = server_with((A, ID_A), (B, ID_B))
    server.receive_datagram(encode_ext(ExtRegister(b"other", ID_C, 1)), C, 0.0)
    server.datagrams_to_send(0.0)
    server.receive_datagram(relay(ID_A, ID_C), A, 1.0)
    assert errors(server, 1.0) == [(A, "no-such-target")]
    server.receive_datagram(relay(ID_B, ID_B), B, 1.0)
    assert errors(server, 1.0) == [(B, "no-such-target")]


def errors(server: RendezvousServer, now: float) -> list[tuple[Endpoint, str]]:
    """The RELAY_REFUSED errors the server sent, as (destination, reason)."""
    out = []
    for t in server.datagrams_to_send(now):
        msg = decode_ext(t.data)
        assert isinstance(msg, ExtError) and msg.code == ErrorCode.RELAY_REFUSED and t.kind is MessageKind.EXT_ERROR
        out.append((t.destination, msg.text))
    return out


def test_relaying_can_be_switched_off() -> None:
    server = server_with((A, ID_A), (B, ID_B), config=ServerConfig(relay=False))
    server.receive_datagram(relay(ID_A, ID_B), A, 1.0)
    assert errors(server, 1.0) == [(A, "relay-off")]


def test_payloads_above_the_limit_are_refused() -> None:
    server = server_with((A, ID_A), (B, ID_B), config=ServerConfig(relay_max_payload=100, relay_member_burst=1000))
    server.receive_datagram(relay(ID_A, ID_B, bytes(100)), A, 1.0)
    assert [t.kind for t in server.datagrams_to_send(1.0)] == [MessageKind.RELAY]
    server.receive_datagram(relay(ID_A, ID_B, bytes(101)), A, 2.0)
    assert errors(server, 2.0) == [(A, "too-large")]


def test_each_member_has_a_token_bucket_in_bytes_per_second() -> None:
    size = len(relay(ID_A, ID_B, bytes(500)))
    cfg = ServerConfig(relay_member_rate=size, relay_member_burst=3 * size, relay_error_interval=10.0)
    server = server_with((A, ID_A), (B, ID_B), config=cfg)
    kinds = []
    for _ in range(5):  # a burst of 5 at t=1: the bucket holds 3
        server.receive_datagram(relay(ID_A, ID_B, bytes(500)), A, 1.0)
        kinds += [t.kind for t in server.datagrams_to_send(1.0)]
    assert kinds == [MessageKind.RELAY] * 3 + [MessageKind.EXT_ERROR]  # one error for two refusals
    assert server.relay_stats.refused == {"rate-limited": 2}
    server.receive_datagram(relay(ID_B, ID_A, bytes(500)), B, 1.0)  # B has a bucket of its own
    assert [t.destination for t in server.datagrams_to_send(1.0)] == [A]
    server.receive_datagram(relay(ID_A, ID_B, bytes(500)), A, 2.0)  # one second refills one datagram
    assert [t.kind for t in server.datagrams_to_send(2.0)] == [MessageKind.RELAY]
    server.receive_datagram(relay(ID_A, ID_B, bytes(500)), A, 2.0)
    assert server.datagrams_to_send(2.0) == []  # refused, and the error interval has not passed


def test_the_whole_server_has_a_relay_bandwidth_cap() -> None:
    size = len(relay(ID_A, ID_B, bytes(1000)))
    server = server_with((A, ID_A), (B, ID_B), (C, ID_C), config=ServerConfig(relay_total_rate=2 * size))
    sent = []
    for source, sender in ((A, ID_A), (B, ID_B), (C, ID_C)):
        server.receive_datagram(relay(sender, ID_A if sender != ID_A else ID_B, bytes(1000)), source, 1.0)
        sent += [t.kind for t in server.datagrams_to_send(1.0)]
    assert sent == [MessageKind.RELAY, MessageKind.RELAY, MessageKind.EXT_ERROR]
    assert server.relay_stats.refused == {"relay-busy": 1}


def test_refusals_are_answered_at_most_once_per_interval_per_member() -> None:
    server = server_with((A, ID_A), (B, ID_B), config=ServerConfig(relay=False, relay_error_interval=1.0))
    answered = []
    for step in range(30):  # every 0.1 s for 3 s
        now = 1.0 + step / 10
        server.receive_datagram(relay(ID_A, ID_B), A, now)
        answered += [now for _ in server.datagrams_to_send(now)]
    assert answered == pytest.approx([1.0, 2.0, 3.0])
    assert server.relay_stats.refused["relay-off"] == 30 and server.relay_stats.errors_sent == 3


def test_relaying_keeps_the_sender_registered() -> None:
    cfg = ServerConfig(session_timeout=10.0, keepalive_interval=0)
    server = server_with((A, ID_A), (B, ID_B), config=cfg)
    for now in (8.0, 16.0):  # A relays every 8 s, B never registers again
        server.receive_datagram(relay(ID_A, ID_B), A, now)
        server.datagrams_to_send(now)
        server.handle_timer(now)
    assert server.members(SID) == [A]  # B expired at 10 s; A lives on
    assert server.get_timer() == pytest.approx(26.0)


def test_relay_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="relay_max_payload must be positive"):
        ServerConfig(relay_max_payload=0)
    with pytest.raises(ValueError, match="relay_member_burst .* at least relay_max_payload"):
        ServerConfig(relay_max_payload=2000, relay_member_burst=1000)
    with pytest.raises(ValueError, match="relay_total_rate must be positive"):
        ServerConfig(relay_total_rate=0)
    with pytest.raises(ValueError, match="relay_error_interval must not be negative"):
        ServerConfig(relay_error_interval=-1)
    with pytest.raises(ValueError, match="relay_after must be positive"):
        ClientConfig(relay_after=0)
    with pytest.raises(ValueError, match="relay_upgrade_window must not be negative"):
        ClientConfig(relay_upgrade_window=-1)


def test_a_token_bucket_refills_at_its_rate_up_to_its_size() -> None:
    bucket = TokenBucket(100.0, 300.0, 0.0)
    assert bucket.has(300, 0.0) and not bucket.has(301, 0.0)
    bucket.take(300)
    assert not bucket.has(1, 0.0) and bucket.has(100, 1.0) and not bucket.has(101, 1.0)
    assert bucket.full(3.0) and not bucket.full(2.9)
    assert bucket.has(300, 100.0) and not bucket.has(301, 100.0)  # capped at its size


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.binary(max_size=12), st.binary(max_size=12))
def test_any_relay_message_leaves_the_server_standing(data: bytes, sender: bytes, target: bytes) -> None:
    server = server_with((A, ID_A), (B, ID_B))
    sender, target = sender.ljust(8, b"\0")[:8], target.ljust(8, b"\0")[:8]
    for datagram in (relay(sender, target, data), encode_ext(ExtRelay(SID, ID_A, ID_B, data))[: 6 + len(data) % 40]):
        server.receive_datagram(datagram, A, 1.0)
    for t in server.datagrams_to_send(1.0):  # forwarded to B only if A spoke as A, else at most an error to A
        assert (t.kind, t.destination) in ((MessageKind.RELAY, B), (MessageKind.EXT_ERROR, A))
        assert t.kind is MessageKind.EXT_ERROR or decode_ext(t.data).peer_id == ID_A  # type: ignore[union-attr]


# --- the client's relay fallback, over the in-memory link -------------------------------------


def direct(packet: Packet) -> bool:
    """True for a datagram between the two peers (not via the server): what the test blocks."""
    return packet.source != SERVER and packet.destination != SERVER


def pair(config_a: ClientConfig = RELAY, config_b: ClientConfig = RELAY, *, blocked_until: float = float("inf"),
         server: RendezvousServer | None = None) -> tuple[Network, PeerClient, PeerClient]:
    """A and B (started at 0 and 0.1) in session SID; their direct datagrams are lost until `blocked_until`."""
    network = Network(lose=lambda p: direct(p) and p.sent < blocked_until)
    network.add(SERVER, server or RendezvousServer())
    a = PeerClient(SERVER, SID, 1, config_a, rng=random.Random(1), peer_id=ID_A)
    b = PeerClient(SERVER, SID, 1, config_b, rng=random.Random(2), peer_id=ID_B)
    network.add(A, a)
    network.add(B, b)
    network.at(0.0, a.start)
    network.at(0.1, b.start)
    return network, a, b


def events(network: Network, endpoint: Endpoint, kind: type) -> list:  # type: ignore[type-arg]
    return [e for _, e in network.events_of(endpoint, kind)]


def test_a_blocked_pair_falls_back_to_the_relay_and_data_flows_both_ways() -> None:
    network, a, b = pair()
    network.run(until=3.0)
    for me, other in ((A, B), (B, A)):
        [relayed] = events(network, me, PeerRelayed)
        assert relayed.peer == other and relayed.elapsed >= RELAY.relay_after  # both punch from B's join on
        assert relayed.reason == "nothing received"  # the direct punch never got through
        [done] = events(network, me, ConnectCompleted)
        assert done.complete and done.connected == (other,) and done.relayed == (other,)
        assert not events(network, me, PeerConnected)
    assert a.state is b.state is ClientState.ESTABLISHED
    a.send(B, b"via the server")
    b.send(A, b"and back")
    network.flush()
    network.run(until=3.5)
    assert events(network, B, DataReceived) == [DataReceived(A, b"via the server")]
    assert events(network, A, DataReceived) == [DataReceived(B, b"and back")]
    relays = [p for p in network.packets if p.kind is MessageKind.RELAY]
    assert {(p.source, p.destination) for p in relays} == {(A, SERVER), (B, SERVER), (SERVER, A), (SERVER, B)}


def test_the_result_says_relayed_with_the_time_and_why_the_punch_failed() -> None:
    network, a, _ = pair()
    network.run(until=3.0)
    result = a.connect_result()
    assert result.complete
    [peer] = result.peers
    assert peer.connected and peer.relayed and peer.path == "relayed" and peer.technique == "relay"
    assert peer.state is PeerState.PUNCHING  # the direct punch goes on in the background
    assert peer.time_to_connect is not None and peer.time_to_connect == peer.time_to_relay
    assert RELAY.relay_after <= peer.time_to_connect < 1.5
    assert peer.reason == "no direct path; last seen: nothing received"
    assert peer.to_text().startswith(f"{B} relayed in 1.")


def test_the_background_punch_upgrades_a_relayed_peer_to_direct() -> None:
    network, a, _b = pair(blocked_until=2.0)  # relayed at ~1 s, the path opens at 2 s
    network.run(until=3.0)
    for me, other in ((A, B), (B, A)):
        [_relayed] = events(network, me, PeerRelayed)
        [upgraded] = events(network, me, PeerUpgraded)
        assert upgraded.peer == other and upgraded.elapsed >= 1.9 and upgraded.relayed_for > 0.5
        assert not events(network, me, PeerConnected)  # usable once: relayed, then upgraded
    peer = a.connect_result().peers[0]
    assert peer.path == "direct" and peer.technique == "basic" and peer.time_to_relay is not None
    assert "relayed from 1." in peer.to_text()
    count = len(network.packets)
    a.send(B, b"direct now")
    network.flush()
    network.run(until=3.1)
    [sent] = network.packets[count:count + 1]
    assert (sent.kind, sent.destination) == (MessageKind.DATA, B)
    assert events(network, B, DataReceived) == [DataReceived(A, b"direct now")]


def test_the_punch_stops_after_the_upgrade_window_and_the_peer_stays_relayed() -> None:
    network, a, _b = pair()
    network.run(until=12.0)
    relayed_at = network.events_of(A, PeerRelayed)[0][0]
    end = relayed_at + RELAY.relay_upgrade_window
    punches = [p.sent for p in network.sent(A, B)]
    assert punches and max(punches) < end + 1e-9 and min(punches) < 0.2
    assert a.connect_result().peers[0].relayed and not events(network, A, PeerFailed)
    keepalives = [p.sent for p in network.sent(A, SERVER) if p.kind is MessageKind.RELAY and p.sent > end]
    assert keepalives and all(b - a == pytest.approx(RELAY.keepalive_interval) for a, b in itertools.pairwise(keepalives))
    a.send(B, b"still here")
    network.flush()
    network.run(until=12.5)
    assert DataReceived(A, b"still here") in events(network, B, DataReceived)


def test_relay_keepalives_keep_both_members_at_the_server() -> None:
    server = RendezvousServer(ServerConfig(session_timeout=5.0))
    network, a, _b = pair(server=server)
    network.run(until=20.0)
    assert set(server.members(SID)) == {A, B}  # 4 session timeouts later
    a.send(B, b"late")
    network.flush()
    network.run(until=20.5)
    assert DataReceived(A, b"late") in events(network, B, DataReceived)


def test_a_refused_relay_leaves_the_peer_to_fail_as_before() -> None:
    network, _a, _b = pair(server=RendezvousServer(ServerConfig(relay=False)))
    network.run(until=10.0)
    assert events(network, A, RelayRefused) and all(e.reason == "relay-off" for e in events(network, A, RelayRefused))
    [failed] = events(network, A, PeerFailed)
    [done] = events(network, A, ConnectCompleted)
    assert failed.peer == B and not done.complete and done.reason == "timed out" and done.relayed == ()
    assert not events(network, A, PeerRelayed)


def test_the_relay_is_never_used_without_the_technique() -> None:
    plain_relay = ClientConfig(relay_after=1.0, timeout=4.0)  # relay not among the techniques
    network, _a, _ = pair(plain_relay, plain_relay)
    network.run(until=5.0)
    assert not [p for p in network.packets if p.kind is MessageKind.RELAY]
    assert events(network, A, PeerFailed) and not events(network, A, PeerRelayed)


def test_both_sides_must_allow_the_relay() -> None:
    network, _a, _b = pair(RELAY, ClientConfig(timeout=8.0))
    network.run(until=9.0)
    assert [p for p in network.sent(A, SERVER) if p.kind is MessageKind.RELAY]  # A offers...
    assert not [p for p in network.sent(B, SERVER) if p.kind is MessageKind.RELAY]  # ...B never answers
    assert events(network, A, PeerFailed) and events(network, B, PeerFailed)


def test_a_plain_peer_is_never_relayed_and_fails_as_before() -> None:
    network = Network(lose=direct)
    network.add(SERVER, RendezvousServer())
    a = PeerClient(SERVER, SID, 1, RELAY, rng=random.Random(1), peer_id=ID_A)
    plain = PeerClient(SERVER, SID, 1, ClientConfig(extension=False, timeout=8.0), rng=random.Random(2))
    network.add(A, a)
    network.add(B, plain)
    network.at(0.0, a.start)
    network.at(0.1, plain.start)
    network.run(until=9.0)
    assert not [p for p in network.packets if p.kind is MessageKind.RELAY]
    assert not [p for p in network.sent(destination=B) if is_extension(p.data)]  # B1: nothing it cannot parse
    assert [e.peer for e in events(network, A, PeerFailed)] == [B] and not events(network, A, PeerRelayed)


def test_a_relayed_offer_is_answered_and_the_offer_is_a_punch_inside_a_relay() -> None:
    network, _a, _b = pair()
    network.run(until=1.15)
    offers = [decode_ext(p.data) for p in network.sent(A, SERVER) if p.kind is MessageKind.RELAY]
    assert offers
    first = offers[0]
    assert isinstance(first, ExtRelay) and (first.session, first.peer_id, first.target) == (SID, ID_A, ID_B)
    assert decode_ext(first.data) == ExtPunch(session_token(SID), ID_A, ID_B)
    answers = [decode_ext(p.data) for p in network.sent(B, SERVER) if p.kind is MessageKind.RELAY]
    assert any(isinstance(m, ExtRelay) and decode_ext(m.data) == ExtPunchAck(session_token(SID), ID_B, ID_A)
               for m in answers)


def test_relays_for_another_session_or_peer_are_dropped() -> None:
    network, a, _b = pair()
    network.run(until=3.0)
    for bogus in (ExtRelay(b"other", ID_B, ID_A, b"x"), ExtRelay(SID, ID_C, ID_A, b"x"), ExtRelay(SID, ID_B, ID_C, b"x")):
        a.receive_datagram(encode_ext(bogus), SERVER, 3.0)
    assert a.dropped["relay for another session or peer"] == 3
    assert not events(network, A, DataReceived)


def test_with_a_secret_relays_are_signed_carry_the_secret_token_and_unsigned_ones_are_dropped() -> None:
    """An authenticated session relays too (auth.py): every ExtRelay is signed, the inner punch
    uses the secret's token, and a relay without the right MAC is dropped before it is read."""
    secret = "relay secret"
    config = dataclasses.replace(RELAY, secret=secret)
    network, a, b = pair(config, config, server=RendezvousServer(ServerConfig(secrets=(secret,))))
    network.run(until=3.0)
    for me, other in ((A, B), (B, A)):
        [done] = events(network, me, ConnectCompleted)
        assert done.complete and done.relayed == (other,)
    key = SessionKey(secret)
    sent = [decode_ext(p.data) for p in network.packets if p.kind is MessageKind.RELAY and p.source == A]
    assert sent and all(isinstance(m, ExtRelay) and key.verify(m) for m in sent)
    assert decode_ext(sent[0].data) == ExtPunch(key.token(SID), ID_A, ID_B)  # type: ignore[union-attr]
    a.send(B, b"signed")
    network.flush()
    network.run(until=3.5)
    assert events(network, B, DataReceived) == [DataReceived(A, b"signed")]
    forged = (ExtRelay(SID, ID_B, ID_A, b"unsigned"), SessionKey("wrong").sign(ExtRelay(SID, ID_B, ID_A, b"forged")))
    for msg in forged:
        a.receive_datagram(encode_ext(msg), SERVER, 3.5)
    assert a.dropped["relay without a MAC"] == 1 and a.dropped["relay with a bad MAC"] == 1
    assert not events(network, A, DataReceived)


# --- the wire format, pinned by golden hex (docs/wire-protocol.md, "Relay fallback") --------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-protocol.md"
ME_ID, P_ID = bytes.fromhex("0102030405060708"), bytes.fromhex("a1a2a3a4a5a6a7a8")
GOLDEN = [
    (ExtRelay(b"room1", ME_ID, P_ID, b"hello"),
     "fa687078010c010005726f6f6d3102000801020304050607080c0008a1a2a3a4a5a6a7a815000568656c6c6f"),
    (ExtRelay(b"room1", ME_ID, P_ID, encode_ext(ExtPunch(session_token(b"room1"), ME_ID, P_ID))),
     ("fa687078010c010005726f6f6d3102000801020304050607080c0008a1a2a3a4a5a6a7a815002ffa68707801070b0010384c158e86"
     "fcf589bc1f41ac0cae254c02000801020304050607080c0008a1a2a3a4a5a6a7a8")),
    (ExtRelay(b"room1", ME_ID, P_ID, b""),
     "fa687078010c010005726f6f6d3102000801020304050607080c0008a1a2a3a4a5a6a7a8150000"),
    (ExtError(ErrorCode.RELAY_REFUSED, "rate-limited"), "fa68707801040700010608000c726174652d6c696d69746564"),
]


@pytest.mark.parametrize("msg, golden", GOLDEN)
def test_relay_messages_match_the_golden_hex_and_the_docs_quote_it(msg: object, golden: str) -> None:
    assert encode_ext(msg).hex() == golden  # type: ignore[arg-type]
    assert decode_ext(bytes.fromhex(golden)) == msg
    assert f"`{golden}`" in DOC.read_text()


def test_what_the_client_sends_is_the_golden_offer() -> None:
    network, _a, _ = pair()
    network.run(until=1.15)
    offer = next(p for p in network.sent(A, SERVER) if p.kind is MessageKind.RELAY)
    assert offer.data == encode_ext(ExtRelay(SID, ID_A, ID_B, encode_ext(ExtPunch(session_token(SID), ID_A, ID_B))))
