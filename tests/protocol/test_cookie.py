"""Address cookies: the jar (cookie.py), the server's round trip, and the client's echo.

A cookie proves that a source receives what is sent to its address (RFC 9000 §8.1). Forged,
expired and other addresses' cookies must fail; the server serves a proved address in full and
an unproved one within its budget; our client echoes the cookie at once and keeps sending it.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holepunch.protocol import (
    ClientConfig,
    Endpoint,
    MessageKind,
    PeerClient,
    RendezvousServer,
    RequestRefused,
    ServerConfig,
)
from holepunch.protocol.cookie import COOKIE_LENGTH, DEFAULT_COOKIE_KEY, CookieJar
from holepunch.protocol.messages import (
    MAX_ID_LENGTH,
    ExtCookie,
    ExtPeers,
    ExtRegister,
    PeerInfo,
    decode_ext,
    encode_ext,
)

from .helpers import peer_endpoint

KEY = bytes(range(32))
A, B = peer_endpoint(1), peer_endpoint(2)
SID = b"room1"
PID_A, PID_B = b"\x01" * 8, b"\x02" * 8
SERVER = Endpoint("192.0.2.1", 5000)

# Golden values (docs/wire-protocol.md, "Address cookies"): KEY above, cookie_interval 30 s.
GOLDEN_COOKIE = "00cb5c48e7db721f90f7106c1b155dfa"
GOLDEN_COOKIE_MESSAGE = "fa687078010b120010" + GOLDEN_COOKIE
GOLDEN_REGISTER = "fa6870780101010005726f6f6d3102000801010101010101010300020001120010" + GOLDEN_COOKIE


def jar(interval: float = 30.0) -> CookieJar:
    return CookieJar(KEY, interval)


# --- the jar -------------------------------------------------------------------------------------


def test_a_cookie_is_valid_in_its_bucket_and_the_next_only() -> None:
    cookie = jar().make(A, 10.0)  # bucket 0: [0, 30)
    assert len(cookie) == COOKIE_LENGTH
    assert jar().check(cookie, A, 10.0) and jar().check(cookie, A, 29.9)
    assert jar().check(cookie, A, 59.9)  # the next bucket
    assert not jar().check(cookie, A, 60.0)  # expired
    assert not jar().check(cookie, A, 600.0)


def test_a_cookie_is_bound_to_its_address_port_and_key() -> None:
    cookie = jar().make(A, 0.0)
    assert not jar().check(cookie, B, 0.0)
    assert not jar().check(cookie, Endpoint(A.host, A.port + 1), 0.0)
    assert not CookieJar(b"another key of sixteen+ bytes", 30.0).check(cookie, A, 0.0)


def test_a_cookie_from_256_buckets_ago_fails_although_its_bucket_byte_matches() -> None:
    old = jar(1.0).make(A, 0.5)
    assert old[0] == 0 and not jar(1.0).check(old, A, 256.5)  # the byte matches, the HMAC does not


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_forged_cookies_fail(forged: bytes) -> None:
    assert forged == jar().make(A, 5.0) or not jar().check(forged, A, 5.0)


def test_a_bit_flip_anywhere_fails() -> None:
    cookie = jar().make(A, 5.0)
    for i in range(len(cookie)):
        for bit in (1, 128):
            flipped = bytearray(cookie)
            flipped[i] ^= bit
            assert not jar().check(bytes(flipped), A, 5.0)


def test_short_keys_and_bad_intervals_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        CookieJar(b"short", 30.0)
    with pytest.raises(ValueError, match="positive"):
        CookieJar(KEY, 0.0)


def test_golden_cookie_and_messages() -> None:
    cookie = jar().make(A, 0.0)
    assert cookie.hex() == GOLDEN_COOKIE
    # The construction, spelled out: bucket byte, then HMAC-SHA256(key, "bucket|host|port")[:15].
    mac = hmac.new(KEY, b"0|198.51.100.1|40001", hashlib.sha256).digest()
    assert cookie == b"\x00" + mac[:15]
    assert encode_ext(ExtCookie(cookie)).hex() == GOLDEN_COOKIE_MESSAGE
    assert encode_ext(ExtRegister(SID, PID_A, 1, cookie)).hex() == GOLDEN_REGISTER
    assert decode_ext(bytes.fromhex(GOLDEN_REGISTER)) == ExtRegister(SID, PID_A, 1, cookie)


# --- the server's round trip ----------------------------------------------------------------------


def refusals(server: RendezvousServer) -> set[tuple[str, Endpoint]]:
    """(reason, source) of the refusals reported so far."""
    found = set()
    while (event := server.next_event()) is not None:
        if isinstance(event, RequestRefused):
            found.add((event.reason, event.source))
    return found


def register(server: RendezvousServer, source: Endpoint, pid: bytes, now: float, cookie: bytes = b"",
             expected: int = 1) -> list[tuple[MessageKind, object]]:
    server.receive_datagram(encode_ext(ExtRegister(SID, pid, expected, cookie)), source, now)
    return [(t.kind, decode_ext(t.data)) for t in server.datagrams_to_send(now)]


def test_first_registration_gets_the_list_and_a_cookie_and_the_echo_proves_the_address() -> None:
    server = RendezvousServer(cookie_key=KEY)
    out = register(server, A, PID_A, 0.0)
    assert [kind for kind, _ in out] == [MessageKind.EXT_PEERS, MessageKind.EXT_COOKIE]
    cookie = out[1][1].cookie  # type: ignore[attr-defined]
    assert cookie == jar().make(A, 0.0) and server.stats.cookies == 1
    assert register(server, A, PID_A, 0.01, cookie) == [(MessageKind.EXT_PEERS, ExtPeers(SID, A))]
    assert server.stats.verified == 1 and not server.stats.refused
    # Proved: later registrations need no cookie, and pushes go out in full.
    assert [kind for kind, _ in register(server, A, PID_A, 1.0)] == [MessageKind.EXT_PEERS]


@pytest.mark.parametrize(
    ("cookie", "source", "now"),
    [
        pytest.param(b"\x00" * COOKIE_LENGTH, A, 0.0, id="forged"),
        pytest.param(jar().make(A, 0.0), A, 61.0, id="expired"),
        pytest.param(jar().make(B, 0.0), A, 0.0, id="other-address"),
        pytest.param(CookieJar(DEFAULT_COOKIE_KEY, 30.0).make(A, 0.0), A, 0.0, id="other-key"),
    ],
)
def test_bad_cookies_are_refused_counted_and_answered_with_a_fresh_one(cookie: bytes, source: Endpoint,
                                                                        now: float) -> None:
    server = RendezvousServer(cookie_key=KEY)
    out = register(server, source, PID_A, now, cookie, expected=5)
    assert (MessageKind.EXT_COOKIE, ExtCookie(jar().make(source, now))) in out
    assert server.stats.refused == {"bad-cookie": 1} and server.stats.verified == 0
    for n in range(10, 20):  # newcomers: the pushes to the unproved member soon exceed its budget
        server.receive_datagram(SID, peer_endpoint(n), now + 0.01)
        server.datagrams_to_send(now + 0.01)  # each its own batch: one push per newcomer
    assert server.stats.pushes < 10 and ("amplification", A) in refusals(server)


def test_a_proved_member_gets_every_push() -> None:
    server = RendezvousServer(cookie_key=KEY)
    register(server, A, PID_A, 0.0, jar().make(A, 0.0), expected=5)
    for n in range(10, 20):
        server.receive_datagram(SID, peer_endpoint(n), 0.01)
        server.datagrams_to_send(0.01)
    assert server.stats.pushes == 10 and ("amplification", A) not in refusals(server)


def test_without_a_budget_there_is_no_cookie() -> None:
    server = RendezvousServer(ServerConfig(amplification_factor=None), cookie_key=KEY)
    assert [kind for kind, _ in register(server, A, PID_A, 0.0)] == [MessageKind.EXT_PEERS]
    assert server.stats.cookies == 0


def test_a_large_session_defers_the_list_until_the_echo() -> None:
    server = RendezvousServer(cookie_key=KEY)
    for n in range(10, 40):
        server.receive_datagram(SID, peer_endpoint(n), 0.0)
    server.datagrams_to_send(0.0)
    refused = dict(server.stats.refused)  # the plain members' own withheld replies
    out = register(server, A, PID_A, 0.1, expected=30)
    assert [kind for kind, _ in out] == [MessageKind.EXT_COOKIE]  # 30 entries do not fit 3 x 58 bytes
    assert server.stats.refused == refused  # deferred, not refused
    (reply,) = register(server, A, PID_A, 0.2, out[0][1].cookie, expected=30)  # type: ignore[attr-defined]
    assert reply[0] is MessageKind.EXT_PEERS and len(reply[1].peers) == 30  # type: ignore[attr-defined]


def test_a_padded_first_registration_pays_for_its_list_so_no_round_trip_comes_first() -> None:
    """15 members: an unpadded registration draws only the cookie, our client's padded one
    draws the list and the cookie at once (RFC 9000 §8.1 and §14.1 pad a first Initial so)."""
    for pad, kinds in ((False, [MessageKind.EXT_COOKIE]), (True, [MessageKind.EXT_PEERS, MessageKind.EXT_COOKIE])):
        server = RendezvousServer(cookie_key=KEY)
        for n in range(10, 25):
            server.receive_datagram(SID, peer_endpoint(n), 0.0)
        server.datagrams_to_send(0.0)
        refused = dict(server.stats.refused)  # the plain members' own withheld replies
        client = PeerClient(SERVER, SID, 15, ClientConfig(pad_registrations=pad), peer_id=PID_A)
        client.start(0.0)
        (first,) = client.datagrams_to_send(0.0)
        server.receive_datagram(first.data, A, 0.01)
        assert [t.kind for t in server.datagrams_to_send(0.01)] == kinds
        assert server.stats.refused == refused  # nothing of ours withheld: deferred or paid for


@pytest.mark.parametrize(("expected", "padded"), [(0, False), (1, False), (15, True), (1024, True)])
def test_padding_keeps_a_registration_within_what_the_reference_server_answers(expected: int, padded: bool) -> None:
    """Small lists fit unpadded; a long one pads up to 1,024 bytes and no further: the reference
    drops longer IDs unanswered, and our fallback to the plain protocol needs its answer."""
    client = PeerClient(SERVER, SID, expected, ClientConfig(), peer_id=PID_A)
    client.start(0.0)
    (first,) = client.datagrams_to_send(0.0)
    assert (decode_ext(first.data).padding > 0) is padded  # type: ignore[union-attr]
    assert len(first.data) <= MAX_ID_LENGTH
    assert (len(first.data) == MAX_ID_LENGTH) is (expected == 1024)


# --- the client's echo ----------------------------------------------------------------------------


def test_the_client_echoes_the_cookie_at_once_and_keeps_including_it() -> None:
    client = PeerClient(SERVER, SID, 2, ClientConfig(), peer_id=PID_A)
    client.start(0.0)
    (first,) = client.datagrams_to_send(0.0)
    assert decode_ext(first.data) == ExtRegister(SID, PID_A, 2, padding=1)  # pays for a list of two
    client.receive_datagram(encode_ext(ExtPeers(SID, A)), SERVER, 0.05)
    client.receive_datagram(encode_ext(ExtCookie(b"c" * 16)), SERVER, 0.05)
    (echo,) = client.datagrams_to_send(0.05)
    assert decode_ext(echo.data) == ExtRegister(SID, PID_A, 2, b"c" * 16)
    client.handle_timer(client.get_timer() or 0.0)  # the next refresh, a second later
    (refresh,) = client.datagrams_to_send(1.05)
    assert decode_ext(refresh.data).cookie == b"c" * 16  # type: ignore[union-attr]
    client.receive_datagram(encode_ext(ExtCookie(b"c" * 16)), SERVER, 1.1)  # the same again: no ping-pong
    assert client.datagrams_to_send(1.1) == []


def test_a_cookie_counts_as_an_answer_so_the_client_does_not_fall_back() -> None:
    client = PeerClient(SERVER, SID, 1, ClientConfig(extension_attempts=2), peer_id=PID_A)
    client.start(0.0)
    for n, now in enumerate((0.05, 0.15, 0.25)):  # each echo lost, but each cookie answered
        client.receive_datagram(encode_ext(ExtCookie(bytes([n]) * 16)), SERVER, now)
    client.handle_timer(0.5)
    kinds = {t.kind for t in client.datagrams_to_send(0.5)}
    assert kinds == {MessageKind.EXT_REGISTER} and client.extended is None


@pytest.mark.parametrize("techniques", [frozenset({"relay"}), frozenset()], ids=["relay", "basic"])
def test_a_cookie_after_the_complete_list_is_echoed_only_by_a_client_that_may_relay(techniques: frozenset[str]) -> None:
    """The server relays only to proved addresses; nothing else needs the proof once punching."""
    client = PeerClient(SERVER, SID, 1, ClientConfig(techniques=techniques), peer_id=PID_A)
    client.start(0.0)
    client.datagrams_to_send(0.0)
    client.receive_datagram(encode_ext(ExtPeers(SID, A, (PeerInfo(B, PID_B, True),))), SERVER, 0.05)
    client.receive_datagram(encode_ext(ExtCookie(b"k" * 16)), SERVER, 0.05)
    to_server = [decode_ext(t.data) for t in client.datagrams_to_send(0.05) if t.destination == SERVER]
    assert to_server == ([ExtRegister(SID, PID_A, 1, b"k" * 16)] if techniques else [])


def test_the_wire_protocol_page_quotes_the_golden_hex() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "wire-protocol.md").read_text(encoding="utf-8")
    assert GOLDEN_COOKIE_MESSAGE in text and GOLDEN_REGISTER in text, "regenerate docs/wire-protocol.md"
