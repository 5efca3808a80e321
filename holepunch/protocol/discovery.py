"""NAT behaviour discovery messages: PROBE and PROBE_REPLY (RFC 5780 tests, our own wire format).

Rule: pure encode/decode in the extension framing of `messages.py` (MAGIC, version, type byte,
TLV fields). The type bytes 0x09/0x0A and tags 0x0E-0x11 are defined here, not in `ExtType`/`Tag`,
so `decode_ext` keeps rejecting them and a rendezvous server drops probes it does not serve.
Decoders raise `MessageError`, never anything else.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .endpoint import Endpoint
from .messages import (
    HEADER,
    MAGIC,
    VERSION,
    MessageError,
    Tag,
    _decode_endpoint,
    _split_tlvs,
    _tlv,
)

PROBE_TYPE = 0x09  # 0x05/0x06 are TCP-only, 0x07/0x08 PUNCH and PUNCH_ACK
PROBE_REPLY_TYPE = 0x0A
REQUEST_ID_LENGTH = 4


class DiscoveryTag(enum.IntEnum):
    """Field tags of PROBE and PROBE_REPLY (0x01-0x0D are taken by `messages.Tag`)."""

    REQUEST_ID = 0x0E
    REPLY_FROM = 0x0F
    ALT_PORT = 0x10
    ALT_ADDRESS = 0x11


class Via(enum.IntEnum):
    """The responder's sockets, as `Transmit.via`: where a reply comes from (RFC 5780 §4.2)."""

    SAME = 0  # in a PROBE: the socket the probe arrived on; in a reply: the primary socket
    ALT_PORT = 1  # primary address, alternate port
    ALT_ADDRESS = 2  # alternate address, primary port


class DiscoveryKind(str, enum.Enum):
    """Trace kinds of the discovery datagrams (`Transmit.kind`)."""

    PROBE = "probe"
    PROBE_REPLY = "probe-reply"


@dataclass(frozen=True)
class Probe:
    """Client to responder: tell me where I come from, and answer from `reply_from`."""

    request_id: bytes
    reply_from: Via = Via.SAME


@dataclass(frozen=True)
class ProbeReply:
    """Responder to client: the source it saw, the socket it answers from, its alternates.

    `replied_from` is the responder's socket index (0 primary, 1 alt port, 2 alt address);
    `alt_port` is 0 and `alt_address` "" when the responder has no such socket."""

    request_id: bytes
    observed: Endpoint
    replied_from: Via = Via.SAME
    alt_port: int = 0
    alt_address: str = ""


DiscoveryMessage = Probe | ProbeReply


def is_discovery(data: bytes) -> bool:
    """True if the datagram claims to be a PROBE or PROBE_REPLY (cheap: header bytes only)."""
    return len(data) > 5 and data[:4] == MAGIC and data[5] in (PROBE_TYPE, PROBE_REPLY_TYPE)


def encode_discovery(msg: DiscoveryMessage) -> bytes:
    """Encode a PROBE or PROBE_REPLY: HEADER, type byte, TLV fields."""
    if isinstance(msg, Probe):
        return b"".join([HEADER, bytes([PROBE_TYPE]), _tlv(DiscoveryTag.REQUEST_ID, msg.request_id),
                         _tlv(DiscoveryTag.REPLY_FROM, bytes([msg.reply_from]))])
    parts = [HEADER, bytes([PROBE_REPLY_TYPE]), _tlv(DiscoveryTag.REQUEST_ID, msg.request_id),
             _tlv(Tag.OBSERVED, msg.observed.text.encode()), _tlv(DiscoveryTag.REPLY_FROM, bytes([msg.replied_from]))]
    if msg.alt_port:
        parts.append(_tlv(DiscoveryTag.ALT_PORT, struct.pack("!H", msg.alt_port)))
    if msg.alt_address:
        parts.append(_tlv(DiscoveryTag.ALT_ADDRESS, msg.alt_address.encode()))
    return b"".join(parts)


def decode_discovery(data: bytes) -> DiscoveryMessage:
    """Decode a PROBE or PROBE_REPLY; `MessageError` for anything else or malformed."""
    if len(data) < 6 or data[:4] != MAGIC:
        raise MessageError("not an extension message")
    if data[4] != VERSION:
        raise MessageError(f"unsupported extension version {data[4]}")
    if data[5] not in (PROBE_TYPE, PROBE_REPLY_TYPE):
        raise MessageError(f"not a discovery message (type {data[5]})")
    fields: dict[int, bytes] = {}
    for tag, value in _split_tlvs(data[6:]):
        fields.setdefault(tag, value)  # unknown tags are skipped, as in messages.decode_ext
    request_id = _need(fields, DiscoveryTag.REQUEST_ID)
    if len(request_id) != REQUEST_ID_LENGTH:
        raise MessageError(f"request id must be {REQUEST_ID_LENGTH} bytes")
    via = _via(fields.get(DiscoveryTag.REPLY_FROM, b"\x00"))
    if data[5] == PROBE_TYPE:
        return Probe(request_id, via)
    observed = _decode_endpoint(_need(fields, Tag.OBSERVED))
    alt_port = fields.get(DiscoveryTag.ALT_PORT, b"\x00\x00")
    if len(alt_port) != 2:
        raise MessageError("alt port must be 2 bytes")
    try:
        alt_address = fields.get(DiscoveryTag.ALT_ADDRESS, b"").decode("ascii")
    except UnicodeDecodeError as exc:
        raise MessageError("alt address is not ASCII") from exc
    return ProbeReply(request_id, observed, via, struct.unpack("!H", alt_port)[0], alt_address)


def _need(fields: dict[int, bytes], tag: int) -> bytes:
    if tag not in fields:
        raise MessageError(f"missing field {tag:#04x}")
    return fields[tag]


def _via(value: bytes) -> Via:
    if len(value) != 1 or value[0] > max(Via):
        raise MessageError("reply-from must be one byte, 0-2")
    return Via(value[0])
