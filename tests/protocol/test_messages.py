"""Wire formats pinned by golden hex: plain messages M1-M6, extension v1, endpoint text.

Every hex string here was produced by running the encoder once and checked field by field; the
docs (docs/wire-protocol.md) quote the same strings and a test below keeps the two in step.
"""

from __future__ import annotations

import dataclasses

import ipaddress
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holepunch.protocol import ClientConfig, Endpoint, MessageKind, PeerClient, RendezvousServer, Transmit
from holepunch.protocol.messages import (
    ACK,
    HEADER,
    MAGIC,
    SYN,
    ExtError,
    ExtLeave,
    ExtPeers,
    ExtRegister,
    ExtType,
    MessageError,
    PeerInfo,
    classify,
    decode_ext,
    decode_peer_list,
    encode_ext,
    encode_peer_list,
    is_extension,
)

from .helpers import SERVER, drain, peer_endpoint

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-protocol.md"

PID = bytes.fromhex("0102030405060708")
PID2 = bytes.fromhex("a1a2a3a4a5a6a7a8")
OBSERVED = Endpoint("203.0.113.7", 40001)


def h(text: str) -> bytes:
    """Hex with spaces and `|` field separators allowed, for readable tables."""
    return bytes.fromhex(text.replace("|", " "))


# --- M1: plain registration is the raw ID ----------------------------------------------------

REGISTRATION_IDS = [
    pytest.param("", id="empty"),
    pytest.param("726f6f6d31", id="room1"),
    pytest.param("fffe006162c328", id="not-utf8"),
    pytest.param("612c623a63", id="a,b:c"),
    pytest.param("6e6c0a", id="newline-kept"),
    pytest.param("78" * 1024, id="1024-bytes"),
]


@pytest.mark.parametrize("golden", REGISTRATION_IDS)
def test_plain_registration_is_the_raw_id(golden: str) -> None:
    session = h(golden)
    client = PeerClient(SERVER, session, 1, ClientConfig(extension=False))
    client.start(0.0)
    out, _ = drain(client, 0.0)
    assert out == [Transmit(h(golden), SERVER, MessageKind.REGISTER)]
    assert classify(out[0].data, to_server=True) is MessageKind.REGISTER


@pytest.mark.parametrize("golden", REGISTRATION_IDS)
def test_server_stores_the_raw_id_byte_exact(golden: str) -> None:
    server = RendezvousServer()
    server.receive_datagram(h(golden), peer_endpoint(1), 0.0)
    assert server.sessions() == {h(golden): [peer_endpoint(1)]}
    out, _ = drain(server, 0.0)
    assert out == [Transmit(b"", peer_endpoint(1), MessageKind.PEER_LIST)]


# --- M2: the peer list ------------------------------------------------------------------------

PEER_LISTS = [
    pytest.param([Endpoint("127.0.0.1", 15403)], "3132372e302e302e313a3135343033", id="ipv4"),
    pytest.param([Endpoint("::1", 15401)], "5b3a3a315d3a3135343031", id="ipv6"),
    pytest.param(
        [Endpoint("fe80::1%eth0", 15402)], "5b666538303a3a3125657468305d3a3135343032", id="zone"
    ),
    pytest.param(
        [Endpoint("127.0.0.1", 15403), Endpoint("::1", 15404)],
        "3132372e302e302e313a31353430332c5b3a3a315d3a3135343034",
        id="mixed",
    ),
    pytest.param([], "", id="empty"),
]


@pytest.mark.parametrize(("endpoints", "golden"), PEER_LISTS)
def test_peer_list_golden(endpoints: list[Endpoint], golden: str) -> None:
    assert encode_peer_list(endpoints) == h(golden)
    assert decode_peer_list(h(golden)) == endpoints


def test_peer_list_text_has_no_spaces_and_no_trailing_comma() -> None:
    data = encode_peer_list([Endpoint("127.0.0.1", 15403), Endpoint("::1", 15404)])
    assert data == b"127.0.0.1:15403,[::1]:15404"


def test_empty_peer_list_is_zero_bytes() -> None:
    assert encode_peer_list([]) == b""


def test_v4_mapped_member_is_listed_as_ipv4() -> None:
    assert encode_peer_list([Endpoint("::ffff:127.0.0.1", 15403)]) == b"127.0.0.1:15403"


# --- M3/M6 keep-alive, M4 SYN, M5 ACK --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "golden", "kind"),
    [
        pytest.param(b"", "", MessageKind.KEEPALIVE, id="keepalive"),
        pytest.param(SYN, "53594e", MessageKind.SYN, id="SYN"),
        pytest.param(ACK, "41434b", MessageKind.ACK, id="ACK"),
    ],
)
def test_peer_messages_golden(data: bytes, golden: str, kind: MessageKind) -> None:
    assert data == h(golden)
    assert classify(data) is kind


@pytest.mark.parametrize(
    ("data", "kwargs", "kind"),
    [
        (b"", {"from_server": True}, MessageKind.KEEPALIVE),  # empty M2 and M3 look the same
        (b"1.2.3.4:5", {"from_server": True}, MessageKind.PEER_LIST),
        (b"", {"to_server": True}, MessageKind.REGISTER),  # the empty ID is an ID
        (b"SYN", {"to_server": True}, MessageKind.REGISTER),
        (b"SYNC", {}, MessageKind.DATA),
        (b"hello", {}, MessageKind.DATA),
        (MAGIC + b"\x01", {}, MessageKind.DATA),  # too short to be an extension message
        (HEADER + b"\x09", {}, MessageKind.DATA),  # unknown type: not ours, so data
    ],
)
def test_classify(data: bytes, kwargs: dict[str, bool], kind: MessageKind) -> None:
    assert classify(data, **kwargs) is kind


# --- extension v1 ----------------------------------------------------------------------------

EXT_GOLDEN = [
    pytest.param(
        ExtRegister(b"room1", PID, 2),
        "fa687078 01 01 | 01 0005 726f6f6d31 | 02 0008 0102030405060708 | 03 0002 0002",
        MessageKind.EXT_REGISTER,
        id="ext-register",
    ),
    pytest.param(
        ExtRegister(b"", PID, 0),
        "fa687078 01 01 | 01 0000 | 02 0008 0102030405060708 | 03 0002 0000",
        MessageKind.EXT_REGISTER,
        id="ext-register-empty-id",
    ),
    pytest.param(
        ExtPeers(
            b"room1",
            OBSERVED,
            (PeerInfo(Endpoint("198.51.100.2", 5000), PID2, True), PeerInfo(Endpoint("::1", 15404))),
        ),
        "fa687078 01 02 | 01 0005 726f6f6d31 | 04 0011 3230332e302e3131332e373a3430303031"
        " | 05 001a a1a2a3a4a5a6a7a8 01 3139382e35312e3130302e323a35303030"
        " | 05 0014 0000000000000000 00 5b3a3a315d3a3135343034",
        MessageKind.EXT_PEERS,
        id="ext-peers-reply",
    ),
    pytest.param(
        ExtPeers(b"room1", Endpoint("::1", 15401)),
        "fa687078 01 02 | 01 0005 726f6f6d31 | 04 000b 5b3a3a315d3a3135343031",
        MessageKind.EXT_PEERS,
        id="ext-peers-empty-reply",
    ),
    pytest.param(
        ExtPeers(b"room1", OBSERVED, (PeerInfo(Endpoint("198.51.100.9", 6000), PID2, True),), push=True),
        "fa687078 01 02 | 01 0005 726f6f6d31 | 04 0011 3230332e302e3131332e373a3430303031"
        " | 06 0001 01 | 05 001a a1a2a3a4a5a6a7a8 01 3139382e35312e3130302e393a36303030",
        MessageKind.EXT_PUSH,
        id="ext-peers-push",
    ),
    pytest.param(
        ExtLeave(b"room1", PID),
        "fa687078 01 03 | 01 0005 726f6f6d31 | 02 0008 0102030405060708",
        MessageKind.EXT_LEAVE,
        id="ext-leave",
    ),
    pytest.param(
        ExtError(3, "session-full"),
        "fa687078 01 04 | 07 0001 03 | 08 000c 73657373696f6e2d66756c6c",
        MessageKind.EXT_ERROR,
        id="ext-error",
    ),
]


@pytest.mark.parametrize(("msg", "golden", "kind"), EXT_GOLDEN)
def test_extension_golden(msg: object, golden: str, kind: MessageKind) -> None:
    assert encode_ext(msg).hex() == h(golden).hex()  # type: ignore[arg-type]
    assert decode_ext(h(golden)) == msg
    assert classify(h(golden)) is kind
    assert is_extension(h(golden))


@pytest.mark.parametrize(("msg", "golden", "kind"), EXT_GOLDEN)
def test_docs_quote_the_golden_hex(msg: object, golden: str, kind: MessageKind) -> None:
    assert h(golden).hex() in DOC.read_text(encoding="utf-8"), "regenerate docs/wire-protocol.md"


def test_extension_header() -> None:
    assert MAGIC == b"\xfahpx" and HEADER == h("fa687078 01")
    with pytest.raises(UnicodeDecodeError):
        MAGIC.decode("utf-8")  # 0xFA never starts UTF-8 text, so no text ID looks like ours


def test_unknown_tags_are_skipped() -> None:
    golden = h("fa687078 01 01 | 7f 0003 616263 | 01 0005 726f6f6d31 | 02 0008 0102030405060708")
    assert decode_ext(golden) == ExtRegister(b"room1", PID, 0)


def test_first_of_duplicate_tags_wins() -> None:
    golden = h("fa687078 01 03 | 01 0001 61 | 01 0001 62 | 02 0008 0102030405060708")
    assert decode_ext(golden) == ExtLeave(b"a", PID)


def test_expected_count_saturates_at_two_bytes() -> None:
    assert decode_ext(encode_ext(ExtRegister(b"r", PID, 70000))) == ExtRegister(b"r", PID, 0xFFFF)


MALFORMED = [
    pytest.param("fa687078", "not an extension message", id="header-only"),
    pytest.param("fa687078 01", "not an extension message", id="no-type"),
    pytest.param("fa687079 01 01", "not an extension message", id="wrong-magic"),
    pytest.param("fa687078 02 01 | 01 0001 61 | 02 0008 0102030405060708", "version 2", id="bad-version"),
    pytest.param("fa687078 00 01", "version 0", id="version-zero"),
    pytest.param("fa687078 01 09", "unknown extension type 9", id="unknown-type"),
    pytest.param("fa687078 01 00", "unknown extension type 0", id="type-zero"),
    pytest.param("fa687078 01 01 | 01 00", "truncated field header", id="truncated-tlv-header"),
    pytest.param("fa687078 01 01 | 01 0005 726f6f6d", "field 1 truncated: 4 of 5", id="truncated-tlv-value"),
    pytest.param("fa687078 01 01 | 02 0008 0102030405060708", "missing field SESSION", id="register-no-session"),
    pytest.param("fa687078 01 01 | 01 0001 61", "missing field PEER_ID", id="register-no-peer-id"),
    pytest.param("fa687078 01 01 | 01 0001 61 | 02 0007 01020304050607", "peer id must be 8", id="short-peer-id"),
    pytest.param(
        "fa687078 01 01 | 01 0001 61 | 02 0009 010203040506070809", "peer id must be 8", id="long-peer-id"
    ),
    pytest.param(
        "fa687078 01 01 | 01 0001 61 | 02 0008 0102030405060708 | 03 0001 02", "2 bytes", id="expected-1-byte"
    ),
    pytest.param("fa687078 01 02 | 01 0001 61", "missing field OBSERVED", id="peers-no-observed"),
    pytest.param("fa687078 01 02 | 04 0009 312e322e332e343a35", "missing field SESSION", id="peers-no-session"),
    pytest.param(
        "fa687078 01 02 | 01 0001 61 | 04 0005 68656c6c6f", "missing port in address", id="observed-no-port"
    ),
    pytest.param("fa687078 01 02 | 01 0001 61 | 04 0003 ff3a35", "bad endpoint", id="observed-not-ascii"),
    pytest.param(
        "fa687078 01 02 | 01 0001 61 | 04 0006 686f73743a35", "host is not an IP address", id="observed-name"
    ),
    pytest.param(
        "fa687078 01 02 | 01 0001 61 | 04 0009 312e322e332e343a35 | 05 0008 0000000000000000",
        "peer entry too short",
        id="peer-entry-short",
    ),
    pytest.param(
        "fa687078 01 02 | 01 0001 61 | 04 0009 312e322e332e343a35 | 05 000e 0000000000000000 00 312e322e33",
        "missing port in address",
        id="peer-entry-bad-endpoint",
    ),
    pytest.param(
        "fa687078 01 02 | 01 0001 61 | 04 000d 312e322e332e343a3730303030", "invalid port", id="port-too-big"
    ),
    pytest.param("fa687078 01 03 | 01 0001 61 | 02 0001 00", "peer id must be 8", id="leave-bad-peer-id"),
    pytest.param("fa687078 01 04 | 08 0002 6869", "missing field ERROR_CODE", id="error-no-code"),
]


@pytest.mark.parametrize(("golden", "reason"), MALFORMED)
def test_malformed_extension_raises_message_error(golden: str, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode_ext(h(golden))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello", "missing port in address"),
        (b"1.2.3.4:5,", "missing port in address"),  # a trailing comma leaves an empty entry
        (b"1.2.3.4:5, 6.7.8.9:10", "host is not an IP address"),  # no spaces on the wire
        (b"localhost:5000", "host is not an IP address"),  # the core never resolves names
        (b":5000", "host is not an IP address"),
        (b"[1.2.3.4%eth0]:5", "host is not an IP address"),
        (b"::1:5", "too many colons in address"),
        (b"[::1:5", "missing ']' in address"),
        (b"1.2.3.4:http", "invalid port in address"),
        (b"\xff\xfe", "not ASCII"),
        (MAGIC + b"\x01\x02", "not ASCII"),  # an extension message is no plain list
    ],
)
def test_malformed_peer_list_raises_message_error(data: bytes, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode_peer_list(data)


# --- endpoint text (Go's UDPAddr.String()) ---------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "text"),
    [
        (Endpoint("127.0.0.1", 15403), "127.0.0.1:15403"),
        (Endpoint("::ffff:127.0.0.1", 15403), "127.0.0.1:15403"),  # v4-mapped shown as IPv4
        (Endpoint("::1", 15401), "[::1]:15401"),
        (Endpoint("2001:0db8:0000:0000:0000:0000:0000:0001", 1), "[2001:db8::1]:1"),
        (Endpoint("2001:DB8::A", 1), "[2001:db8::a]:1"),  # RFC 5952 §4.3: lower case
        (Endpoint("2001:db8:0:0:1:0:0:1", 1), "[2001:db8::1:0:0:1]:1"),  # §4.2.3: first longest run
        (Endpoint("2001:db8:0:1:1:1:1:1", 1), "[2001:db8:0:1:1:1:1:1]:1"),  # §4.2.2: one 0 stays
        (Endpoint("fe80::1%eth0", 15402), "[fe80::1%eth0]:15402"),
        (Endpoint("fe80:0:0:0:0:0:0:1%eth0", 7), "[fe80::1%eth0]:7"),
        (Endpoint("0.0.0.0", 0), "0.0.0.0:0"),
    ],
)
def test_endpoint_text(endpoint: Endpoint, text: str) -> None:
    assert endpoint.text == text
    assert str(endpoint) == text


@pytest.mark.parametrize(
    ("sockaddr", "endpoint"),
    [
        (("127.0.0.1", 5), Endpoint("127.0.0.1", 5)),
        (("::ffff:127.0.0.1", 5, 0, 0), Endpoint("127.0.0.1", 5)),
        (("::1", 5, 0, 0), Endpoint("::1", 5)),
        (("fe80::1%eth0", 5, 0, 2), Endpoint("fe80::1%eth0", 5)),
    ],
)
def test_endpoint_from_sockaddr(sockaddr: tuple, endpoint: Endpoint) -> None:  # type: ignore[type-arg]
    assert Endpoint.from_sockaddr(sockaddr) == endpoint


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("127.0.0.1:15403", Endpoint("127.0.0.1", 15403)),
        ("[::1]:15401", Endpoint("::1", 15401)),
        ("[fe80::1%eth0]:15402", Endpoint("fe80::1%eth0", 15402)),
        ("0.0.0.0:65535", Endpoint("0.0.0.0", 65535)),
    ],
)
def test_endpoint_parse(text: str, endpoint: Endpoint) -> None:
    assert Endpoint.parse(text) == endpoint


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello", "missing port in address"),
        ("", "missing port in address"),
        ("[::1]", "missing port in address"),
        ("[::1]5", "missing port in address"),
        ("[::1", "missing ']' in address"),
        ("::1:5", "too many colons in address"),
        ("1.2.3.4:", "invalid port in address"),
        ("1.2.3.4:65536", "invalid port in address"),
        ("1.2.3.4:-1", "invalid port in address"),
        ("1.2.3.4:+5", "invalid port in address"),
        ("1.2.3.4:http", "invalid port in address"),
        ("1.2.3.4:\u00b2", "invalid port in address"),  # superscript two: isdigit() but no digit
        ("1.2.3.4:\u0661\u0662", "invalid port in address"),  # Arabic-Indic digits are no port
    ],
)
def test_endpoint_parse_errors(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Endpoint.parse(text)


# --- properties ------------------------------------------------------------------------------

ipv4_hosts = st.ip_addresses(v=4).map(str)
ipv6_hosts = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)
zoned_hosts = st.tuples(ipv6_hosts, st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)).map("%".join)
endpoints = st.builds(Endpoint, st.one_of(ipv4_hosts, ipv6_hosts, zoned_hosts), st.integers(0, 65535))
peer_ids = st.binary(min_size=8, max_size=8)
peer_infos = st.builds(PeerInfo, endpoints, peer_ids, st.booleans())
ext_messages = st.one_of(
    st.builds(ExtRegister, st.binary(max_size=64), peer_ids, st.integers(0, 0xFFFF)),
    st.builds(ExtPeers, st.binary(max_size=64), endpoints, st.lists(peer_infos, max_size=5).map(tuple), st.booleans()),
    st.builds(ExtLeave, st.binary(max_size=64), peer_ids),
    st.builds(ExtError, st.integers(0, 255), st.text(max_size=40)),
)


@FAST
@given(ext_messages)
def test_extension_round_trip(msg: object) -> None:
    data = encode_ext(msg)  # type: ignore[arg-type]
    assert decode_ext(data) == msg
    assert data[:6] == HEADER + bytes([ExtType[type(msg).__name__[3:].upper()]])


@FAST
@given(st.lists(endpoints, max_size=8))
def test_peer_list_round_trip(listed: list[Endpoint]) -> None:
    assert decode_peer_list(encode_peer_list(listed)) == listed


@FAST
@given(endpoints)
def test_endpoint_text_round_trip(endpoint: Endpoint) -> None:
    assert Endpoint.parse(endpoint.text) == endpoint
    assert ipaddress.ip_address(endpoint.host.partition("%")[0])  # the strategy makes real IPs


def _decode_or_message_error(data: bytes) -> None:
    try:
        decode_ext(data)
    except MessageError:
        pass


@FAST
@given(st.binary(max_size=200))
def test_decode_ext_on_arbitrary_bytes_raises_only_message_error(data: bytes) -> None:
    _decode_or_message_error(data)
    _decode_or_message_error(MAGIC + data)
    _decode_or_message_error(HEADER + data)


tlv = st.tuples(st.integers(0, 255), st.binary(max_size=30)).map(
    lambda t: struct.pack("!BH", t[0], len(t[1])) + t[1]
)


@FAST
@given(st.integers(0, 6), st.lists(tlv, max_size=6), st.binary(max_size=4))
def test_decode_ext_on_well_framed_noise_raises_only_message_error(
    kind: int, fields: list[bytes], tail: bytes
) -> None:
    _decode_or_message_error(HEADER + bytes([kind]) + b"".join(fields) + tail)


@FAST
@given(ext_messages, st.data())
def test_decode_ext_on_damaged_messages_raises_only_message_error(msg: object, data: st.DataObject) -> None:
    encoded = bytearray(encode_ext(msg))  # type: ignore[arg-type]
    cut = data.draw(st.integers(0, len(encoded)))
    _decode_or_message_error(bytes(encoded[:cut]))
    at = data.draw(st.integers(0, len(encoded) - 1))
    encoded[at] = data.draw(st.integers(0, 255))
    _decode_or_message_error(bytes(encoded))


@FAST
@given(st.one_of(st.binary(max_size=200), st.text(alphabet="0123456789abcdef.:[]%,x", max_size=60).map(str.encode)))
def test_decode_peer_list_on_arbitrary_bytes_raises_only_message_error(data: bytes) -> None:
    try:
        decode_peer_list(data)
    except MessageError:
        pass


def test_padding_is_a_field_of_zero_bytes_that_older_decoders_skip() -> None:
    """The PADDING field (tag 0x17) of a first registration: docs/wire-protocol.md §3."""
    plain = ExtRegister(b"room1", bytes(range(1, 9)), 2)
    padded = encode_ext(dataclasses.replace(plain, padding=1))
    assert padded.hex() == "fa6870780101010005726f6f6d310200080102030405060708030002000217000100"
    assert decode_ext(padded) == dataclasses.replace(plain, padding=1)
    assert decode_ext(encode_ext(plain) + b"\x17\x00\x02ab").padding == 2  # only its length counts
    assert encode_ext(plain) == padded[:-4]  # unpadded, the bytes are those of before
