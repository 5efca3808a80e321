"""Wire formats: the reference's plain messages and our versioned extension.

Rule: pure encode/decode, no state. Plain messages (wire-protocol.md §2) have no framing at all;
extension messages start with `MAGIC` + version and carry type-length-value fields, so that new
fields never break old decoders (unknown tags are skipped). `0xFA` cannot start a UTF-8 text, so
no textual session ID collides with the magic. Decoders raise `MessageError`, never anything else.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from .endpoint import Endpoint, format_endpoint, parse_endpoint

MAGIC = b"\xfahpx"
VERSION = 1
HEADER = MAGIC + bytes([VERSION])
MAX_ID_LENGTH = 1024  # the reference's MaxPacketSize: longer registrations are dropped
SYN = b"SYN"
ACK = b"ACK"
PEER_ID_LENGTH = 8
TOKEN_LENGTH = 16  # the session token of PUNCH, as of the TCP HELLO (tcp_messages.session_token)


class MessageError(ValueError):
    """A datagram that does not decode; the message says why."""


class MessageKind(str, enum.Enum):
    """What a datagram is, for traces, timelines and statistics."""

    REGISTER = "register"
    PEER_LIST = "peer-list"
    KEEPALIVE = "keepalive"
    SYN = "syn"
    ACK = "ack"
    DATA = "data"
    EXT_REGISTER = "ext-register"
    EXT_PEERS = "ext-peers"
    EXT_PUSH = "ext-push"
    EXT_LEAVE = "ext-leave"
    EXT_ERROR = "ext-error"
    PUNCH = "punch"
    PUNCH_ACK = "punch-ack"
    EXT_COOKIE = "ext-cookie"
    RELAY = "relay"


class Transmit(NamedTuple):
    """One datagram to send: what the machines hand their driver."""

    data: bytes
    destination: Endpoint
    kind: MessageKind
    via: int = 0
    """The local socket to send from: 0 is the registered one, 1.. the extra sockets a client
    asked for (`PeerClient.sockets_wanted`, birthday probing)."""


class ExtType(enum.IntEnum):
    """Extension message types (the byte after MAGIC and version)."""

    REGISTER = 0x01
    PEERS = 0x02
    LEAVE = 0x03
    ERROR = 0x04
    PUNCH = 0x07  # 0x05 and 0x06 are TCP-only (HELLO, SELECT)
    PUNCH_ACK = 0x08
    COOKIE = 0x0B  # 0x09 and 0x0A are discovery's PROBE and PROBE_REPLY
    RELAY = 0x0C


class Tag(enum.IntEnum):
    """Field tags inside extension messages."""

    SESSION = 0x01
    PEER_ID = 0x02
    EXPECTED = 0x03
    OBSERVED = 0x04
    PEER = 0x05
    PUSH = 0x06
    ERROR_CODE = 0x07
    ERROR_TEXT = 0x08
    TOKEN = 0x0B  # 0x09 and 0x0A are TCP-only (HELLO's TOKEN and TARGET)
    TARGET = 0x0C
    PROBE = 0x0D
    COOKIE = 0x12  # 0x0E-0x11 are discovery's
    MAC = 0x13
    NONCE = 0x14
    DATA = 0x15
    ECHO = 0x16
    PADDING = 0x17


class ErrorCode(enum.IntEnum):
    """Why the server refused an extended registration."""

    ID_TOO_LONG = 1
    TOO_MANY_SESSIONS = 2
    SESSION_FULL = 3
    RATE_LIMITED = 4
    BAD_AUTH = 5
    RELAY_REFUSED = 6


@dataclass(frozen=True)
class PeerInfo:
    """One entry of an extended peer list: where the peer is and who it says it is."""

    endpoint: Endpoint
    peer_id: bytes = bytes(PEER_ID_LENGTH)
    extended: bool = False


@dataclass(frozen=True)
class ExtRegister:
    """Client to server: register or refresh under `session`, announcing `peer_id`."""

    session: bytes
    peer_id: bytes
    expected: int = 0
    cookie: bytes = b""
    """The server's address cookie, echoed (`ExtCookie`); empty on a first registration."""
    mac: bytes = b""
    """HMAC of the registration under the session secret (holepunch.protocol.auth); empty without one."""
    padding: int = 0
    """Zero bytes carried only so that the registration pays for its answer under the server's
    amplification budget (RFC 9000 §8.1 pads a first Initial likewise); 0 leaves the field out."""


@dataclass(frozen=True)
class ExtPeers:
    """Server to client: the other members (a reply, or a push of newcomers) and your address."""

    session: bytes
    observed: Endpoint
    peers: tuple[PeerInfo, ...] = ()
    push: bool = False


@dataclass(frozen=True)
class ExtLeave:
    """Client to server: remove me from `session` now instead of at expiry."""

    session: bytes
    peer_id: bytes


@dataclass(frozen=True)
class ExtError:
    """Server to client: the registration was refused, with a code and a readable reason."""

    code: int
    text: str = ""


@dataclass(frozen=True)
class ExtPunch:
    """Peer to peer, only between extended peers: the handshake probe (SYN) that says who sends it.

    `token` proves the session without naming it; `peer_id` is the sender, `target` the peer it
    means to reach, so a punch from an unlisted address can be tied to a listed peer (ICE's
    peer-reflexive candidates, RFC 8445 §7.3.1.3). `probe` is non-zero on probes of port
    prediction (1) or birthday probing (2)."""

    token: bytes
    peer_id: bytes
    target: bytes
    probe: int = 0
    nonce: bytes = b""
    """A fresh random value the answer must echo (authenticated sessions; empty otherwise)."""
    echo: bytes = b""
    """The nonce of the punch this one answers (authenticated sessions; empty otherwise)."""
    mac: bytes = b""
    """HMAC of the message under the session secret; empty without one."""


@dataclass(frozen=True)
class ExtPunchAck(ExtPunch):
    """Peer to peer: the handshake acknowledgement (ACK), with the same fields as `ExtPunch`."""


@dataclass(frozen=True)
class ExtCookie:
    """Server to client: echo `cookie` in your next registration to prove you own your address
    (a stateless round trip, as QUIC's Retry, RFC 9000 §8.1.2)."""

    cookie: bytes


@dataclass(frozen=True)
class ExtRelay:
    """Peer to server to peer: `data` from member `peer_id` for member `target` of `session`,
    forwarded by the server when no direct path exists (TURN-like, our own message)."""

    session: bytes
    peer_id: bytes
    target: bytes
    data: bytes
    mac: bytes = b""


ExtMessage = ExtRegister | ExtPeers | ExtLeave | ExtError | ExtPunch | ExtPunchAck | ExtCookie | ExtRelay
_fields_by_type: dict[type, ExtType] = {
    ExtRegister: ExtType.REGISTER,
    ExtPeers: ExtType.PEERS,
    ExtLeave: ExtType.LEAVE,
    ExtError: ExtType.ERROR,
    ExtPunch: ExtType.PUNCH,
    ExtPunchAck: ExtType.PUNCH_ACK,
    ExtCookie: ExtType.COOKIE,
    ExtRelay: ExtType.RELAY,
}


# --- plain messages (M1, M2) -------------------------------------------------------------


def encode_peer_list(endpoints: list[Endpoint]) -> bytes:
    """M2: the other endpoints joined with `,`; empty bytes when there are none."""
    return ",".join(format_endpoint(e) for e in endpoints).encode()


def decode_peer_list(data: bytes) -> list[Endpoint]:
    """Parse M2. Unlike the reference, a bad entry raises `MessageError` instead of aborting."""
    if not data:
        return []
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MessageError("peer list is not ASCII") from exc
    try:
        return [_wire_endpoint(item) for item in text.split(",")]
    except ValueError as exc:
        raise MessageError(str(exc)) from exc


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_ENDPOINT = re.compile(rf"({_OCTET}(?:\.{_OCTET}){{3}}):([0-9]{{1,5}})")
"""`a.b.c.d:port` with exactly the octets `ipaddress` accepts (0-255, no leading zero): the common
case, matched in a fifth of the time `parse_endpoint` plus `ipaddress` take; anything else goes
that slow way, so the result and the errors are unchanged."""


def _wire_endpoint(text: str) -> Endpoint:
    """Parse an endpoint from a datagram: servers list IP literals only, never names to resolve."""
    match = _IPV4_ENDPOINT.fullmatch(text)
    if match is not None:
        host, port_text = match.groups()
        port = int(port_text)
        if port <= 65535:
            return Endpoint(host, port)
    endpoint = parse_endpoint(text)
    try:
        ipaddress.ip_address(endpoint.host)  # also takes an IPv6 zone, "fe80::1%eth0"
    except ValueError:
        raise ValueError(f"host is not an IP address in {text!r}") from None
    return endpoint


def is_extension(data: bytes) -> bool:
    """True if the datagram claims to be one of our extension messages."""
    return data[:4] == MAGIC


def classify(data: bytes, *, from_server: bool = False, to_server: bool = False) -> MessageKind:
    """Best guess of a datagram's kind from its bytes and direction (for received traces)."""
    if is_extension(data) and len(data) > 5:
        try:
            return _ext_kind(decode_ext(data))
        except MessageError:
            return MessageKind.DATA
    if to_server:
        return MessageKind.REGISTER
    if not data:
        return MessageKind.KEEPALIVE
    if from_server:
        return MessageKind.PEER_LIST
    if data == SYN:
        return MessageKind.SYN
    if data == ACK:
        return MessageKind.ACK
    return MessageKind.DATA


def _ext_kind(msg: ExtMessage) -> MessageKind:
    if isinstance(msg, ExtPeers):
        return MessageKind.EXT_PUSH if msg.push else MessageKind.EXT_PEERS
    return {
        ExtRegister: MessageKind.EXT_REGISTER,
        ExtLeave: MessageKind.EXT_LEAVE,
        ExtError: MessageKind.EXT_ERROR,
        ExtPunch: MessageKind.PUNCH,
        ExtPunchAck: MessageKind.PUNCH_ACK,
        ExtCookie: MessageKind.EXT_COOKIE,
        ExtRelay: MessageKind.RELAY,
    }[type(msg)]


# --- extension messages --------------------------------------------------------------------


def _tlv(tag: int, value: bytes) -> bytes:
    return struct.pack("!BH", tag, len(value)) + value


def _peer_value(peer: PeerInfo) -> bytes:
    flags = 1 if peer.extended else 0
    return peer.peer_id + bytes([flags]) + format_endpoint(peer.endpoint).encode()


def _optional(tag: int, value: bytes) -> list[bytes]:
    """A field that is left out when empty, so messages without it keep their old bytes."""
    return [_tlv(tag, value)] if value else []


def encode_ext(msg: ExtMessage) -> bytes:
    """Encode an extension message: HEADER, type byte, then TLV fields."""
    parts = [HEADER, bytes([_fields_by_type[type(msg)]])]
    if isinstance(msg, ExtRegister):
        parts += [_tlv(Tag.SESSION, msg.session), _tlv(Tag.PEER_ID, msg.peer_id)]
        parts.append(_tlv(Tag.EXPECTED, struct.pack("!H", min(msg.expected, 0xFFFF))))
        parts += _optional(Tag.COOKIE, msg.cookie) + _optional(Tag.MAC, msg.mac)
        parts += _optional(Tag.PADDING, bytes(msg.padding))
    elif isinstance(msg, ExtPeers):
        parts += [_tlv(Tag.SESSION, msg.session), _tlv(Tag.OBSERVED, msg.observed.text.encode())]
        if msg.push:
            parts.append(_tlv(Tag.PUSH, b"\x01"))
        parts += [_tlv(Tag.PEER, _peer_value(p)) for p in msg.peers]
    elif isinstance(msg, ExtLeave):
        parts += [_tlv(Tag.SESSION, msg.session), _tlv(Tag.PEER_ID, msg.peer_id)]
    elif isinstance(msg, ExtPunch):
        parts += [_tlv(Tag.TOKEN, msg.token), _tlv(Tag.PEER_ID, msg.peer_id), _tlv(Tag.TARGET, msg.target)]
        if msg.probe:
            parts.append(_tlv(Tag.PROBE, bytes([msg.probe])))
        parts += _optional(Tag.NONCE, msg.nonce) + _optional(Tag.ECHO, msg.echo) + _optional(Tag.MAC, msg.mac)
    elif isinstance(msg, ExtCookie):
        parts.append(_tlv(Tag.COOKIE, msg.cookie))
    elif isinstance(msg, ExtRelay):
        parts += [_tlv(Tag.SESSION, msg.session), _tlv(Tag.PEER_ID, msg.peer_id), _tlv(Tag.TARGET, msg.target)]
        parts += [_tlv(Tag.DATA, msg.data)] + _optional(Tag.MAC, msg.mac)
    else:
        parts += [_tlv(Tag.ERROR_CODE, bytes([msg.code])), _tlv(Tag.ERROR_TEXT, msg.text.encode())]
    return b"".join(parts)


def _split_tlvs(body: bytes) -> list[tuple[int, bytes]]:
    fields: list[tuple[int, bytes]] = []
    pos, end = 0, len(body)
    while pos < end:
        if pos + 3 > end:
            raise MessageError("truncated field header")
        # The "!BH" header read by hand: struct.unpack_from costs more than the rest of the loop.
        tag, start, length = body[pos], pos + 3, body[pos + 1] << 8 | body[pos + 2]
        pos = start + length
        if pos > end:
            raise MessageError(f"field {tag} truncated: {end - start} of {length} bytes")
        fields.append((tag, body[start:pos]))
    return fields


@dataclass
class _Fields:
    single: dict[int, bytes] = field(default_factory=dict)
    peers: list[bytes] = field(default_factory=list)

    def need(self, tag: Tag) -> bytes:
        if tag not in self.single:
            raise MessageError(f"missing field {tag.name}")
        return self.single[tag]


_PEER_TAG = int(Tag.PEER)  # a plain int: looking up the enum member costs more than the compare


def _decode_peer(value: bytes) -> PeerInfo:
    if len(value) < PEER_ID_LENGTH + 1:
        raise MessageError("peer entry too short")
    endpoint = _decode_endpoint(value[PEER_ID_LENGTH + 1 :])
    return PeerInfo(endpoint, value[:PEER_ID_LENGTH], bool(value[PEER_ID_LENGTH] & 1))


def _decode_endpoint(value: bytes) -> Endpoint:
    try:
        return _wire_endpoint(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageError(f"bad endpoint: {exc}") from exc


def _decode_punch(fields: _Fields, cls: type[ExtPunch]) -> ExtPunch:
    token, target = fields.need(Tag.TOKEN), fields.need(Tag.TARGET)
    if len(token) != TOKEN_LENGTH:
        raise MessageError(f"token must be {TOKEN_LENGTH} bytes")
    if len(target) != PEER_ID_LENGTH:
        raise MessageError(f"target must be {PEER_ID_LENGTH} bytes")
    probe = fields.single.get(Tag.PROBE, b"\x00")
    if len(probe) != 1:
        raise MessageError("probe must be 1 byte")
    nonce, echo, mac = (fields.single.get(tag, b"") for tag in (Tag.NONCE, Tag.ECHO, Tag.MAC))
    return cls(token, _peer_id(fields), target, probe[0], nonce, echo, mac)


def _peer_id(fields: _Fields) -> bytes:
    value = fields.need(Tag.PEER_ID)
    if len(value) != PEER_ID_LENGTH:
        raise MessageError(f"peer id must be {PEER_ID_LENGTH} bytes")
    return value


def peers_reply_bound(session: bytes, listed: int, ipv6: bool) -> int:
    """The most bytes an ExtPeers reply to `session` listing `listed` members can take: every
    endpoint text at its longest, "255.255.255.255:65535" or a bracketed IPv6 one."""
    text = 47 if ipv6 else 21
    return 6 + (3 + len(session)) + (3 + text) + listed * (3 + PEER_ID_LENGTH + 1 + text)


def punch_in(data: bytes) -> ExtPunch | None:
    """The PUNCH or PUNCH_ACK a peer datagram carries; None for anything else, malformed included."""
    if data[:4] != MAGIC:
        return None
    try:
        msg = decode_ext(data)
    except MessageError:
        return None
    return msg if isinstance(msg, ExtPunch) else None


def decode_ext(data: bytes) -> ExtMessage:
    """Decode an extension message; `MessageError` for anything malformed or unknown."""
    if len(data) < 6 or data[:4] != MAGIC:
        raise MessageError("not an extension message")
    if data[4] != VERSION:
        raise MessageError(f"unsupported extension version {data[4]}")
    fields = _Fields()
    single, repeated = fields.single, fields.peers
    for tag, value in _split_tlvs(data[6:]):
        if tag == _PEER_TAG:
            repeated.append(value)
        elif tag not in single:  # the first of repeated fields counts
            single[tag] = value
    kind = data[5]
    if kind == ExtType.REGISTER:
        expected = fields.single.get(Tag.EXPECTED, b"\x00\x00")
        if len(expected) != 2:
            raise MessageError("expected count must be 2 bytes")
        cookie, mac = fields.single.get(Tag.COOKIE, b""), fields.single.get(Tag.MAC, b"")
        padding = len(fields.single.get(Tag.PADDING, b""))
        return ExtRegister(fields.need(Tag.SESSION), _peer_id(fields), struct.unpack("!H", expected)[0], cookie, mac,
                           padding)
    if kind == ExtType.PEERS:
        peers = tuple(_decode_peer(v) for v in fields.peers)
        observed = _decode_endpoint(fields.need(Tag.OBSERVED))
        return ExtPeers(fields.need(Tag.SESSION), observed, peers, Tag.PUSH in fields.single)
    if kind == ExtType.LEAVE:
        return ExtLeave(fields.need(Tag.SESSION), _peer_id(fields))
    if kind == ExtType.ERROR:
        code = fields.need(Tag.ERROR_CODE)
        text = fields.single.get(Tag.ERROR_TEXT, b"").decode("utf-8", "replace")
        return ExtError(code[0] if code else 0, text)
    if kind in (ExtType.PUNCH, ExtType.PUNCH_ACK):
        return _decode_punch(fields, ExtPunch if kind == ExtType.PUNCH else ExtPunchAck)
    if kind == ExtType.COOKIE:
        return ExtCookie(fields.need(Tag.COOKIE))
    if kind == ExtType.RELAY:
        target = fields.need(Tag.TARGET)
        if len(target) != PEER_ID_LENGTH:
            raise MessageError(f"target must be {PEER_ID_LENGTH} bytes")
        mac = fields.single.get(Tag.MAC, b"")
        return ExtRelay(fields.need(Tag.SESSION), _peer_id(fields), target, fields.need(Tag.DATA), mac)
    raise MessageError(f"unknown extension type {kind}")
