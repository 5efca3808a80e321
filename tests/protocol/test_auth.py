"""Session authentication, sans-IO: MAC layout (golden hex), the server's checks (wrong or missing
MAC, plain clients, replays, rotation), the client's refusal to downgrade, and the signed punch
(injected and replayed punches, peer-reflexive adoption only on a PUNCH_ACK that echoes our nonce).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from holepunch.protocol import (
    ClientConfig,
    ClientState,
    ConnectCompleted,
    Endpoint,
    MessageKind,
    PeerClient,
    PeerConnected,
    PeerInfo,
    PeerState,
    RendezvousServer,
    ServerConfig,
    Transmit,
)
from holepunch.protocol.auth import MAC_LENGTH, AuthError, KeyRing, SessionKey
from holepunch.protocol.messages import (
    ACK,
    MAGIC,
    SYN,
    ErrorCode,
    ExtCookie,
    ExtError,
    ExtPeers,
    ExtPunch,
    ExtPunchAck,
    ExtRegister,
    decode_ext,
    encode_ext,
)
from holepunch.protocol.tcp_messages import session_token

from .helpers import SERVER, Hand, Network, ReferenceLikeServer, drain, peer_endpoint

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-protocol.md"
SECRET = "correct horse battery staple"
KEY = SessionKey(SECRET)
SID = b"room1"
ME_ID = bytes.fromhex("0102030405060708")
P_ID = bytes.fromhex("a1a2a3a4a5a6a7a8")
ME, P, ELSEWHERE = peer_endpoint(1), peer_endpoint(2), Endpoint("198.51.100.2", 31337)
TOKEN = KEY.token(SID)
NONCE_P = bytes.fromhex("1112131415161718")


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace("|", " "))


# --- the MAC and its golden hex ------------------------------------------------------------------

GOLDEN = [
    ("token", TOKEN, "8d2648cc960696d21eb782929f38eabd"),
    ("register", encode_ext(KEY.sign(ExtRegister(SID, ME_ID, 2, bytes(range(16))))),
     ("fa687078 01 01 | 01 0005 726f6f6d31 | 02 0008 0102030405060708 | 03 0002 0002"
      " | 12 0010 000102030405060708090a0b0c0d0e0f | 13 0010 fb292a9be410e558b997ea1852d6e3d6")),
    ("punch", encode_ext(KEY.sign(ExtPunch(TOKEN, ME_ID, P_ID, 0, NONCE_P))),
     ("fa687078 01 07 | 0b 0010 8d2648cc960696d21eb782929f38eabd | 02 0008 0102030405060708"
      " | 0c 0008 a1a2a3a4a5a6a7a8 | 14 0008 1112131415161718 | 13 0010 b1f2ec4ada3630732987608c2cc85ef3")),
    ("punch-ack", encode_ext(KEY.sign(ExtPunchAck(TOKEN, P_ID, ME_ID, 0, h("2122232425262728"), NONCE_P))),
     ("fa687078 01 08 | 0b 0010 8d2648cc960696d21eb782929f38eabd | 02 0008 a1a2a3a4a5a6a7a8"
      " | 0c 0008 0102030405060708 | 14 0008 2122232425262728 | 16 0008 1112131415161718"
      " | 13 0010 1f381a31746589beb6a593342834f64f")),
]


@pytest.mark.parametrize(("name", "data", "golden"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_token_and_signed_messages(name: str, data: bytes, golden: str) -> None:
    assert data.hex() == h(golden).hex()
    assert h(golden).hex() in DOC.read_text(encoding="utf-8")  # the wire page quotes it


def test_the_mac_is_a_truncated_hmac_over_the_message_without_its_mac_field() -> None:
    import hashlib
    import hmac

    unsigned = ExtRegister(SID, ME_ID, 2, bytes(range(16)))
    mac = hmac.new(KEY.mac_key, encode_ext(unsigned), hashlib.sha256).digest()[:MAC_LENGTH]
    assert KEY.sign(unsigned).mac == mac and encode_ext(KEY.sign(unsigned)).startswith(encode_ext(unsigned))
    assert decode_ext(encode_ext(KEY.sign(unsigned))) == KEY.sign(unsigned)


def test_verify_refuses_any_change_a_missing_mac_and_another_secret() -> None:
    signed = KEY.sign(ExtPunch(TOKEN, ME_ID, P_ID, 0, NONCE_P))
    assert KEY.verify(signed) and SessionKey(SECRET.encode()).verify(signed)  # str and bytes alike
    for changed in (
        ExtPunch(TOKEN, ME_ID, P_ID, 1, NONCE_P, mac=signed.mac),
        ExtPunch(TOKEN, ME_ID, P_ID, 0, h("1112131415161719"), mac=signed.mac),
        ExtPunch(TOKEN, P_ID, ME_ID, 0, NONCE_P, mac=signed.mac),
        ExtPunchAck(TOKEN, ME_ID, P_ID, 0, NONCE_P, mac=signed.mac),  # the type byte is covered
        ExtPunch(TOKEN, ME_ID, P_ID, 0, NONCE_P),  # no MAC at all
        ExtPunch(TOKEN, ME_ID, P_ID, 0, NONCE_P, mac=signed.mac[:8]),
    ):
        assert not KEY.verify(changed)
    assert not SessionKey("another secret").verify(signed)


def test_the_token_depends_on_the_secret_and_the_session() -> None:
    assert TOKEN != session_token(SID)  # a client without the secret does not recognise our punches
    assert TOKEN != SessionKey("another secret").token(SID) and TOKEN != KEY.token(b"room2")


def test_a_key_ring_names_the_secret_that_signed() -> None:
    ring = KeyRing(["new", "old"])
    assert ring.verify(SessionKey("new").sign(ExtRegister(SID, ME_ID))) == 0
    assert ring.verify(SessionKey("old").sign(ExtRegister(SID, ME_ID))) == 1
    assert ring.verify(SessionKey("older").sign(ExtRegister(SID, ME_ID))) is None
    assert ring.verify(ExtRegister(SID, ME_ID)) is None
    with pytest.raises(AuthError):
        KeyRing([])


def test_secrets_are_checked_and_never_shown() -> None:
    for bad in ("", b""):
        with pytest.raises(AuthError, match="the secret is empty"):
            ClientConfig(secret=bad)
        with pytest.raises(ValueError, match="the secret is empty"):
            ServerConfig(secrets=("ok", bad))
    with pytest.raises(AuthError, match="must be str or bytes, not int"):
        ClientConfig(secret=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a secret needs the extension"):
        ClientConfig(secret="s", extension=False)
    assert ServerConfig(secrets="one").secrets == ("one",)  # one bare secret is a tuple of one
    assert ServerConfig(secrets=["a", b"b"]).secrets == ("a", b"b")
    assert "hunter2" not in repr(ClientConfig(secret="hunter2")) + repr(ServerConfig(secrets=("hunter2",)))
    assert "hunter2" not in repr(SessionKey("hunter2")) + repr(KeyRing(["hunter2"]))


# --- without a secret nothing changes ------------------------------------------------------------


def test_without_a_secret_the_bytes_on_the_wire_are_unchanged() -> None:
    client = Hand(PeerClient(SERVER, SID, 2, ClientConfig(techniques={"peer-reflexive"}), peer_id=ME_ID))
    (register,) = client.start(0.0)
    # (The last field, 17 0001 00, is the padding that pays for a list of two: no secret involved.)
    assert register.data.hex() == "fa6870780101010005726f6f6d310200080102030405060708030002000217000100"
    client.feed(encode_ext(ExtPeers(SID, ME, (PeerInfo(P, P_ID, True), PeerInfo(ELSEWHERE)))), SERVER, 0.05)
    sent = {t.destination: t.data.hex() for _, t in client.sent[1:]}
    assert sent[P] == "fa68707801070b0010384c158e86fcf589bc1f41ac0cae254c02000801020304050607080c0008a1a2a3a4a5a6a7a8"
    assert sent[ELSEWHERE] == SYN.hex()
    server = RendezvousServer(ServerConfig(amplification_factor=None))
    server.receive_datagram(SID, ME, 0.0)
    server.receive_datagram(SID, P, 0.1)
    assert [(t.data, t.destination) for t in server.datagrams_to_send(0.1)] == [(b"", ME), (ME.text.encode(), P)]


# --- the server ----------------------------------------------------------------------------------


def secret_server(*secrets: str, **options: object) -> RendezvousServer:
    return RendezvousServer(ServerConfig(secrets=secrets or (SECRET,), **options))  # type: ignore[arg-type]


def register(server: RendezvousServer, msg: ExtRegister, source: Endpoint, now: float) -> list[object]:
    """Feed one ExtRegister; the extension messages the server answered with."""
    server.receive_datagram(encode_ext(msg), source, now)
    return [decode_ext(t.data) for t in server.datagrams_to_send(now)]


def signed_in(server: RendezvousServer, key: SessionKey, source: Endpoint, now: float) -> ExtRegister:
    """The cookie round trip with `key`: returns the signed registration that got the server's answer."""
    (challenge,) = register(server, key.sign(ExtRegister(SID, ME_ID, 1)), source, now)
    assert isinstance(challenge, ExtCookie)
    return key.sign(ExtRegister(SID, ME_ID, 1, challenge.cookie))


def test_the_right_secret_registers_after_the_cookie_round_trip() -> None:
    server = secret_server()
    msg = signed_in(server, KEY, ME, 0.0)
    (reply,) = register(server, msg, ME, 0.01)
    assert isinstance(reply, ExtPeers) and server.members(SID) == [ME]


@pytest.mark.parametrize("key", [SessionKey("wrong secret"), None], ids=["wrong secret", "no MAC"])
def test_a_wrong_or_missing_mac_is_refused_with_bad_auth(key: SessionKey | None) -> None:
    server = secret_server()
    sign = key.sign if key is not None else (lambda m: m)
    assert register(server, sign(ExtRegister(SID, ME_ID, 1)), ME, 0.0) == [ExtError(ErrorCode.BAD_AUTH, "bad-auth")]
    (challenge,) = register(server, KEY.sign(ExtRegister(SID, ME_ID, 1)), ME, 0.005)  # a cookie for ME
    assert isinstance(challenge, ExtCookie)
    answer = register(server, sign(ExtRegister(SID, ME_ID, 1, challenge.cookie)), ME, 0.01)  # still refused
    assert answer == [ExtError(ErrorCode.BAD_AUTH, "bad-auth")]
    assert server.members(SID) == [] and server.stats.refused["bad-auth"] == 2


def test_without_the_cookie_check_a_signed_registration_still_needs_a_cookie() -> None:
    server = secret_server(amplification_factor=None)  # no budget, so the guard asks no cookie
    (challenge,) = register(server, KEY.sign(ExtRegister(SID, ME_ID, 1)), ME, 0.0)
    assert isinstance(challenge, ExtCookie) and server.stats.cookies == 1 and not server.stats.refused
    (reply,) = register(server, KEY.sign(ExtRegister(SID, ME_ID, 1, challenge.cookie)), ME, 0.01)
    assert isinstance(reply, ExtPeers) and server.members(SID) == [ME]


def test_a_plain_registration_is_refused_silently_and_counted() -> None:
    server = secret_server()
    for now in (0.0, 0.1, 0.2):
        server.receive_datagram(SID, ME, now)
    assert server.datagrams_to_send(0.2) == [] and server.members(SID) == []
    assert server.stats.refused["unauthenticated"] == 3


def test_a_replay_from_another_address_or_later_is_refused() -> None:
    server = secret_server()
    captured = signed_in(server, KEY, ME, 0.0)
    register(server, captured, ME, 0.01)
    # From elsewhere: the cookie is bound to ME, so only a fresh cookie comes back, which the
    # replayer cannot sign. Proving its own address first (a cookie echoed without a MAC) changes nothing.
    (challenge,) = register(server, captured, ELSEWHERE, 0.02)
    assert isinstance(challenge, ExtCookie)
    assert register(server, ExtRegister(SID, ME_ID, 1, challenge.cookie), ELSEWHERE, 0.03) == [
        ExtError(ErrorCode.BAD_AUTH, "bad-auth")]
    assert [type(m) for m in register(server, captured, ELSEWHERE, 0.04)] == [ExtCookie]
    assert server.members(SID) == [ME] and server.stats.refused["stale-auth"] == 2
    # From the same address, within the cookie's life: it refreshes the same member, harmlessly.
    assert [type(m) for m in register(server, captured, ME, 30.0)] == [ExtPeers]
    # Later than the cookie's life (its time bucket and the next, 2 x 30 s): refused.
    assert [type(m) for m in register(server, captured, ME, 61.0)] == [ExtCookie]
    assert server.stats.refused["stale-auth"] == 3 and server.stats.joined == 1


def test_rotation_accepts_the_previous_secret_and_counts_it() -> None:
    server = secret_server("new secret", SECRET)
    register(server, signed_in(server, KEY, ME, 0.0), ME, 0.01)
    register(server, signed_in(server, SessionKey("new secret"), P, 0.02), P, 0.03)
    assert server.members(SID) == [ME, P] and server.stats.old_secret == 1
    stale = SessionKey("oldest secret")
    assert register(server, stale.sign(ExtRegister(SID, ME_ID, 1)), ELSEWHERE, 0.04) == [
        ExtError(ErrorCode.BAD_AUTH, "bad-auth")]


# --- the client never downgrades -----------------------------------------------------------------


def test_a_client_with_a_secret_refuses_a_server_that_answers_in_plain() -> None:
    net = Network()
    net.add(SERVER, ReferenceLikeServer())
    client = net.add(ME, PeerClient(SERVER, SID, 1, ClientConfig(secret=SECRET), rng=random.Random(1)))
    net.at(0.0, client.start)  # type: ignore[attr-defined]
    net.run(until=1.0)
    (done,) = [e for _, e in net.events_of(ME, ConnectCompleted)]
    assert done.refused and "does not support authentication" in done.reason
    assert all(p.data.startswith(MAGIC) for p in net.sent(ME, SERVER))  # never the plain ID


def test_a_client_with_a_secret_keeps_trying_the_extension_when_nothing_answers() -> None:
    client = Hand(PeerClient(SERVER, SID, 1, ClientConfig(secret=SECRET, timeout=2.0), rng=random.Random(1)))
    client.start(0.0)
    client.timers(2.5)
    to_server = [t for _, t in client.sent if t.destination == SERVER]
    assert len(to_server) > 10 and all(t.kind is MessageKind.EXT_REGISTER for t in to_server)
    assert all(KEY.verify(decode_ext(t.data)) for t in to_server)  # type: ignore[arg-type]


def test_a_refusal_for_bad_auth_says_what_to_check() -> None:
    client = Hand(PeerClient(SERVER, SID, 1, ClientConfig(secret="wrong"), rng=random.Random(1)))
    client.start(0.0)
    client.feed(encode_ext(ExtError(ErrorCode.BAD_AUTH, "bad-auth")), SERVER, 0.01)
    (_, done), = client.of(ConnectCompleted)
    assert done.refused and done.reason == "server refused: bad-auth (wrong or missing secret)"


# --- the signed punch ----------------------------------------------------------------------------


def punching(*techniques: str) -> Hand:
    """A client of SID with the secret whose server listed the extended peer P at t=0.05."""
    cfg = ClientConfig(secret=SECRET, techniques=frozenset(techniques))
    hand = Hand(PeerClient(SERVER, SID, 1, cfg, rng=random.Random(7), peer_id=ME_ID))
    hand.start(0.0)
    hand.feed(encode_ext(ExtPeers(SID, ME, (PeerInfo(P, P_ID, True),))), SERVER, 0.05)
    return hand


def from_p(ack: bool = False, *, nonce: bytes = NONCE_P, echo: bytes = b"", key: SessionKey | None = KEY,
           token: bytes = TOKEN) -> bytes:
    """A punch of peer P to us, signed with `key` (None: no MAC)."""
    msg = (ExtPunchAck if ack else ExtPunch)(token, P_ID, ME_ID, 0, nonce, echo)
    return encode_ext(key.sign(msg) if key is not None else msg)


def nonces_to(hand: Hand, destination: Endpoint) -> list[bytes]:
    """The nonces of the punches the client sent to `destination`, in order."""
    return [decode_ext(t.data).nonce for _, t in hand.sent  # type: ignore[union-attr]
            if t.destination == destination and t.kind in (MessageKind.PUNCH, MessageKind.PUNCH_ACK)]


def peer(hand: Hand) -> object:
    return hand.machine.peers[P]  # type: ignore[attr-defined]


def test_every_punch_carries_a_fresh_nonce_and_a_valid_mac() -> None:
    hand = punching()
    hand.timers(0.6)
    sent = [decode_ext(t.data) for _, t in hand.sent if t.destination == P]
    assert len(sent) >= 3 and all(isinstance(m, ExtPunch) and KEY.verify(m) for m in sent)
    assert len({m.nonce for m in sent}) == len(sent)  # type: ignore[union-attr]
    assert all(m.token == TOKEN for m in sent)  # type: ignore[union-attr]


@pytest.mark.parametrize(("data", "reason"), [
    (from_p(token=session_token(SID), key=None), "punch for another session"),  # made without the secret
    (from_p(key=None), "punch without a MAC"),
    (from_p(key=SessionKey("wrong secret")), "punch with a bad MAC"),
    (from_p(nonce=b""), "punch without a nonce"),
    (SYN, "unauthenticated datagram"),
    (ACK, "unauthenticated datagram"),
    (b"", "unauthenticated datagram"),
], ids=["no secret", "no MAC", "wrong secret", "no nonce", "SYN", "ACK", "keep-alive"])
def test_an_injected_punch_or_plain_handshake_is_dropped_and_counted(data: bytes, reason: str) -> None:
    hand = punching()
    assert hand.feed(data, P, 0.1) == []  # no answer at all
    assert hand.feed(data, P, 0.12) == []
    assert hand.machine.dropped[reason] == 2  # type: ignore[attr-defined]
    assert peer(hand).state is PeerState.PUNCHING  # type: ignore[attr-defined]


def test_an_answer_confirms_only_when_it_echoes_a_nonce_we_sent_there() -> None:
    hand = punching()
    ours = nonces_to(hand, P)[0]
    (answer,) = hand.feed(from_p(), P, 0.1)  # their PUNCH: answered at once, echoing its nonce
    reply = decode_ext(answer.data)
    assert isinstance(reply, ExtPunchAck) and reply.echo == NONCE_P and KEY.verify(reply)
    assert hand.feed(from_p(True, nonce=h("31"*8), echo=h("99"*8)), P, 0.11) == []  # echoes nothing of ours
    dropped = hand.machine.dropped  # type: ignore[attr-defined]
    assert dropped["PUNCH_ACK that echoes no nonce sent to its address"] == 1
    # P confirms us by our answer above, which echoes a nonce P sent us: no second answer is due.
    assert hand.feed(from_p(True, nonce=h("32"*8), echo=ours), P, 0.12) == []
    assert [e.peer for _, e in hand.of(PeerConnected)] == [P]


def test_a_replayed_punch_is_dropped_from_anywhere() -> None:
    hand = punching("peer-reflexive")
    hand.feed(from_p(), P, 0.1)
    assert hand.feed(from_p(), P, 0.11) == [] and hand.feed(from_p(), ELSEWHERE, 0.12) == []
    assert hand.machine.dropped["replayed punch"] == 2  # type: ignore[attr-defined]


def test_a_punch_replayed_from_another_address_is_answered_there_but_never_adopted() -> None:
    hand = punching("peer-reflexive")
    ours = nonces_to(hand, P)[0]
    # A punch of P captured on its way and replayed from elsewhere before the original arrives:
    (answer,) = hand.feed(from_p(), ELSEWHERE, 0.1)
    assert answer.destination == ELSEWHERE and decode_ext(answer.data).echo == NONCE_P  # type: ignore[union-attr]
    assert peer(hand).address == P and peer(hand).state is PeerState.PUNCHING  # type: ignore[attr-defined]
    hand.timers(0.3)
    assert {t.destination for when, t in hand.sent if when > 0.1} == {P}  # our punches still go to P only
    # The replayer cannot sign an answer that echoes the nonce we sent ELSEWHERE; a captured
    # answer of P echoes a nonce we sent to P, which does not count from ELSEWHERE either.
    hand.feed(from_p(True, nonce=h("41"*8), echo=ours), ELSEWHERE, 0.31)
    assert peer(hand).state is PeerState.PUNCHING and hand.of(PeerConnected) == []  # type: ignore[attr-defined]
    # P's own answer still connects, on P's address.
    hand.feed(from_p(True, nonce=h("42"*8), echo=ours), P, 0.32)
    (_, connected), = hand.of(PeerConnected)
    assert connected.peer == P and connected.address is None and peer(hand).address == P  # type: ignore[attr-defined]


def test_a_peer_reflexive_address_is_adopted_once_its_answer_echoes_our_nonce() -> None:
    hand = punching("peer-reflexive")
    (answer,) = hand.feed(from_p(), ELSEWHERE, 0.1)  # P behind a symmetric NAT: a new mapping
    our_nonce = decode_ext(answer.data).nonce  # type: ignore[union-attr]
    hand.feed(from_p(True, nonce=h("51"*8), echo=our_nonce), ELSEWHERE, 0.12)
    (_, connected), = hand.of(PeerConnected)
    assert connected.address == ELSEWHERE and connected.technique == "peer-reflexive"
    assert peer(hand).address == ELSEWHERE  # type: ignore[attr-defined]


def test_a_plain_peer_in_an_authenticated_session_is_never_confirmed() -> None:
    cfg = ClientConfig(secret=SECRET, timeout=1.0)
    hand = Hand(PeerClient(SERVER, SID, 1, cfg, rng=random.Random(7), peer_id=ME_ID))
    hand.start(0.0)
    hand.feed(encode_ext(ExtPeers(SID, ME, (PeerInfo(P),))), SERVER, 0.05)  # listed as plain
    for now in (0.1, 0.2):
        hand.feed(SYN, P, now)
        hand.feed(ACK, P, now + 0.01)
    hand.timers(1.5)
    assert hand.machine.dropped["plain peer in an authenticated session"] == 4  # type: ignore[attr-defined]
    assert not any(t.data.startswith(MAGIC) for _, t in hand.sent if t.destination == P)  # rule of §5
    assert hand.machine.state is ClientState.INCOMPLETE  # type: ignore[attr-defined]


def test_two_clients_with_the_secret_connect_and_an_intruder_is_kept_out() -> None:
    net = Network()
    net.add(SERVER, secret_server())
    a, b, intruder = (
        net.add(peer_endpoint(n), PeerClient(SERVER, SID, 1, ClientConfig(secret=s), rng=random.Random(n)))
        for n, s in ((1, SECRET), (2, SECRET), (3, "guessed"))
    )
    for n, client in enumerate((intruder, a, b)):
        net.at(0.01 * n, client.start)  # type: ignore[attr-defined]
    net.run(until=2.0)
    assert a.state is ClientState.ESTABLISHED and b.state is ClientState.ESTABLISHED  # type: ignore[attr-defined]
    assert list(a.peers) == [peer_endpoint(2)]  # type: ignore[attr-defined]
    assert intruder.state is ClientState.INCOMPLETE  # type: ignore[attr-defined]
    between = [p for p in net.packets if {p.source, p.destination} == {peer_endpoint(1), peer_endpoint(2)}]
    assert between and {p.kind for p in between} == {MessageKind.PUNCH, MessageKind.PUNCH_ACK}
    assert sum(a.dropped.values()) + sum(b.dropped.values()) == 0  # type: ignore[attr-defined]


def test_in_the_simulator_a_secret_keeps_peer_reflexive_working_through_a_symmetric_nat() -> None:
    from simulator.presets import FULL_CONE, SYMMETRIC
    from simulator.techniques import peer_results, run_techniques

    cfg = ClientConfig(secret=SECRET)
    outcome = run_techniques(FULL_CONE, SYMMETRIC, ["peer-reflexive"], config=cfg,
                             server_config=ServerConfig(secrets=(SECRET,)))
    assert outcome.connected
    assert {p.technique for r in peer_results(outcome).values() for p in r.peers} >= {"peer-reflexive"}


def test_transmits_of_the_answer_go_out_on_the_socket_the_punch_came_in() -> None:
    hand = punching("birthday")
    hand.machine.receive_datagram(from_p(), P, 0.1, 3)  # type: ignore[call-arg]
    out, _ = drain(hand.machine, 0.1)
    assert [(t.destination, t.via, t.kind) for t in out] == [(P, 3, MessageKind.PUNCH_ACK)]
    assert isinstance(out[0], Transmit) and peer(hand).via == 0  # type: ignore[attr-defined]
