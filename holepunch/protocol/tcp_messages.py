"""TCP wire format and driver vocabulary: length-prefixed frames, intents, and what errnos mean.

Rule: a TCP stream carries frames, each a 4-byte big-endian body length and one extension-v1
message as the body (messages.py), so REGISTER, PEERS, LEAVE and ERROR are byte for byte the
UDP datagrams; HELLO and SELECT exist only on peer streams. `FrameDecoder` takes bytes in any
chunks and raises `MessageError`, never anything else. The core asks its driver for sockets with
frozen intents (as the UDP machines hand out `Transmit`) and reads results by errno name.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Hashable
from dataclasses import dataclass

from .endpoint import Endpoint
from .messages import (
    HEADER,
    MAGIC,
    PEER_ID_LENGTH,
    VERSION,
    ExtCookie,
    ExtError,
    ExtLeave,
    ExtPeers,
    ExtPunch,
    ExtRegister,
    ExtRelay,
    ExtType,
    MessageError,
    MessageKind,
    Tag,
    _split_tlvs,  # the TLV layout is shared with the UDP extension on purpose
    _tlv,
    decode_ext,
    encode_ext,
)

LENGTH = struct.Struct("!I")
MIN_BODY = len(HEADER) + 1  # magic, version and type byte
DEFAULT_MAX_FRAME = 1 << 20
"""Largest frame a client accepts: a PEERS reply for 1,024 IPv6 members is about 70 KB."""
TOKEN_LENGTH = 16
ConnId = Hashable
"""A connection id: the core numbers its own connects 1, 2, 3...; drivers name accepted ones."""


class TcpType(enum.IntEnum):
    """Frame types used only over TCP; 0x01-0x04 are the UDP extension's `ExtType`."""

    HELLO = 0x05
    SELECT = 0x06


class TcpTag(enum.IntEnum):
    """Field tags used only in HELLO; 0x01-0x08 are the UDP extension's `Tag`."""

    TOKEN = 0x09
    TARGET = 0x0A


class TcpKind(str, enum.Enum):
    """Trace kinds of the TCP-only frames (the others keep their `MessageKind`)."""

    HELLO = "tcp-hello"
    SELECT = "tcp-select"


@dataclass(frozen=True)
class Hello:
    """Peer to peer, first frame on a fresh stream: I am `peer_id` of session `token`, for `target`."""

    token: bytes
    peer_id: bytes
    target: bytes


@dataclass(frozen=True)
class Select:
    """Controlling peer to controlled peer: this stream is the one we keep (no fields)."""


TcpFrame = ExtRegister | ExtPeers | ExtLeave | ExtError | Hello | Select


def session_token(session: bytes) -> bytes:
    """HELLO's proof of membership: a stranger behind a reused address learns no session ID."""
    return hashlib.sha256(b"holepunch tcp hello v1\x00" + session).digest()[:TOKEN_LENGTH]


# --- encoding --------------------------------------------------------------------------------


def encode_body(msg: TcpFrame) -> bytes:
    """The frame body: an extension message (messages.py layout) without the length prefix."""
    if isinstance(msg, Hello):
        fields = [_tlv(TcpTag.TOKEN, msg.token), _tlv(Tag.PEER_ID, msg.peer_id)]
        return HEADER + bytes([TcpType.HELLO]) + b"".join(fields) + _tlv(TcpTag.TARGET, msg.target)
    if isinstance(msg, Select):
        return HEADER + bytes([TcpType.SELECT])
    return encode_ext(msg)


def encode_frame(msg: TcpFrame) -> bytes:
    """One frame: the 4-byte big-endian body length, then the body."""
    body = encode_body(msg)
    return LENGTH.pack(len(body)) + body


def frame_kind(msg: TcpFrame) -> MessageKind | TcpKind:
    """Trace kind of a frame: the UDP extension's kinds, or a TCP-only one."""
    if isinstance(msg, Hello):
        return TcpKind.HELLO
    if isinstance(msg, Select):
        return TcpKind.SELECT
    if isinstance(msg, ExtPeers):
        return MessageKind.EXT_PUSH if msg.push else MessageKind.EXT_PEERS
    return {
        ExtRegister: MessageKind.EXT_REGISTER,
        ExtLeave: MessageKind.EXT_LEAVE,
        ExtError: MessageKind.EXT_ERROR,
    }[type(msg)]


# --- decoding --------------------------------------------------------------------------------


def _fixed(fields: dict[int, bytes], tag: int, size: int, name: str) -> bytes:
    value = fields.get(tag)
    if value is None:
        raise MessageError(f"missing field {name}")
    if len(value) != size:
        raise MessageError(f"{name} must be {size} bytes, got {len(value)}")
    return value


def _decode_hello(body: bytes) -> Hello:
    fields: dict[int, bytes] = {}
    for tag, value in _split_tlvs(body[MIN_BODY:]):
        fields.setdefault(tag, value)  # first wins and unknown tags are skipped, as over UDP
    token = _fixed(fields, TcpTag.TOKEN, TOKEN_LENGTH, "TOKEN")
    peer_id = _fixed(fields, Tag.PEER_ID, PEER_ID_LENGTH, "PEER_ID")
    return Hello(token, peer_id, _fixed(fields, TcpTag.TARGET, PEER_ID_LENGTH, "TARGET"))


def decode_body(body: bytes) -> TcpFrame:
    """Decode one frame body; `MessageError` for anything malformed or unknown."""
    if len(body) < MIN_BODY or body[:4] != MAGIC:
        raise MessageError("frame body is not an extension message")
    if body[4] != VERSION:
        raise MessageError(f"unsupported extension version {body[4]}")
    if body[5] == TcpType.HELLO:
        return _decode_hello(body)
    if body[5] == TcpType.SELECT:
        _split_tlvs(body[MIN_BODY:])  # no fields defined, but a later revision may add some
        return Select()
    msg = decode_ext(body)
    if isinstance(msg, (ExtPunch, ExtCookie, ExtRelay)):  # a stream is verified by HELLO instead
        raise MessageError(f"{type(msg).__name__} messages are UDP-only")
    return msg


class FrameDecoder:
    """Reassembles frames from stream chunks of any size (h11's receive_data/next_event shape).

    It rejects garbage as early as the bytes allow: a length outside [MIN_BODY, max_size] after
    4 bytes, a wrong magic or version after 9. Once it has raised, it raises the same error again.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME) -> None:
        if max_size < MIN_BODY:
            raise ValueError(f"max_size must be at least {MIN_BODY}, got {max_size}")
        self.max_size = max_size
        self._buffer = bytearray()
        self._error: MessageError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Append bytes from the stream."""
        self._buffer += data

    def next_frame(self) -> TcpFrame | None:
        """The next complete frame, None if more bytes are needed; `MessageError` on garbage."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except MessageError as exc:
            self._error = exc
            raise

    def take_rest(self) -> bytes:
        """Hand over the unparsed bytes: after SELECT the stream carries application data."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    def _next(self) -> TcpFrame | None:
        buf = self._buffer
        if len(buf) < LENGTH.size:
            return None
        (length,) = LENGTH.unpack_from(buf)
        if length < MIN_BODY:
            raise MessageError(f"frame length {length} is shorter than the {MIN_BODY}-byte header")
        if length > self.max_size:
            raise MessageError(f"frame length {length} exceeds the limit of {self.max_size} bytes")
        head = bytes(buf[4 : 4 + min(length, len(HEADER))])
        if head[:4] != MAGIC[: len(head)]:
            raise MessageError("frame body does not start with the extension magic")
        if len(head) == len(HEADER) and head[4] != VERSION:
            raise MessageError(f"unsupported extension version {head[4]}")
        if len(buf) < LENGTH.size + length:
            return None
        body = bytes(buf[4 : 4 + length])
        del buf[: 4 + length]
        return decode_body(body)


def decode_frames(data: bytes, max_size: int = DEFAULT_MAX_FRAME) -> list[TcpFrame]:
    """Every frame in `data`, which must end on a frame boundary (for tests and docs)."""
    decoder = FrameDecoder(max_size)
    decoder.feed(data)
    frames: list[TcpFrame] = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    if decoder.buffered:
        raise MessageError(f"{decoder.buffered} bytes of an unfinished frame at the end")
    return frames


# --- intents: what the client asks its driver to do ------------------------------------------


@dataclass(frozen=True)
class Listen:
    """Listen on local `port` (SO_REUSEADDR and SO_REUSEPORT, the port of the server connection)."""

    port: int


@dataclass(frozen=True)
class StopListening:
    """Close the listener on `port`."""

    port: int


@dataclass(frozen=True)
class Connect:
    """Open `conn_id`: bind `local_port` (0: any) with SO_REUSEADDR and SO_REUSEPORT, connect to `remote`."""

    conn_id: ConnId
    local_port: int
    remote: Endpoint


@dataclass(frozen=True)
class Write:
    """Write `data` to `conn_id`; `kind` labels it for traces."""

    conn_id: ConnId
    data: bytes
    kind: MessageKind | TcpKind = MessageKind.DATA


@dataclass(frozen=True)
class Close:
    """Close `conn_id` after the writes queued before it (or abandon the connect in flight)."""

    conn_id: ConnId


Intent = Listen | StopListening | Connect | Write | Close


# --- results: what a failed socket call means and what to do about it ------------------------


class Retry(enum.Enum):
    """How the client reacts to a failed connect."""

    SOON = "retry every retry interval"
    BACKOFF = "retry with exponential backoff"
    FATAL = "give up: the local setup is wrong"


@dataclass(frozen=True)
class ErrnoHelp:
    """What an errno name means for hole punching, and what a person can try."""

    meaning: str
    advice: str
    retry: Retry


_NAT_ADVICE = "check that the peer is running and punching; through symmetric NATs use UDP punching or a relay"
ERRNO_HELP: dict[str, ErrnoHelp] = {
    "ECONNREFUSED": ErrnoHelp(
        "the SYN was answered with RST or ICMP port unreachable: the far NAT saw it before its own "
        "host had connected out (RFC 5382 §7.1), or nothing listens there", _NAT_ADVICE, Retry.SOON),
    "ECONNRESET": ErrnoHelp("the connection was reset during the handshake", _NAT_ADVICE, Retry.SOON),
    "ETIMEDOUT": ErrnoHelp(
        "no SYN-ACK and no RST came back: a NAT or firewall drops the SYNs silently", _NAT_ADVICE, Retry.BACKOFF),
    "NO_ANSWER": ErrnoHelp(
        "no SYN-ACK and no RST came back within the attempt timeout", _NAT_ADVICE, Retry.SOON),
    "EHOSTUNREACH": ErrnoHelp(
        "ICMP host unreachable came back: a router or NAT has no way to the address",
        "check the address; a NAT may also send ICMP for an early SYN (RFC 5382 §7.1)", Retry.BACKOFF),
    "ENETUNREACH": ErrnoHelp(
        "no route to the network", "check this host's network connection and routes", Retry.BACKOFF),
    "EADDRNOTAVAIL": ErrnoHelp(
        "the address pair is taken: a connection between the same two endpoints exists already "
        "(often one we accepted)", "nothing to do: the existing connection is used", Retry.BACKOFF),
    "EADDRINUSE": ErrnoHelp(
        "the local port is held by a socket without SO_REUSEADDR and SO_REUSEPORT (another "
        "program, or a leftover listener)",
        "stop the program holding the port, or set TcpClientConfig.local_port=0 to let the OS pick one",
        Retry.FATAL),
    "ENOPROTOOPT": ErrnoHelp(
        "this platform has no SO_REUSEPORT, and TCP punching needs the server connection, the "
        "listener and every connect on one local port",
        "use UDP hole punching, or Linux 3.9+, macOS or a BSD", Retry.FATAL),
    "EACCES": ErrnoHelp(
        "the system refused the socket call (a privileged port, or a local firewall rule)",
        "use a local port above 1023 and allow outgoing TCP from it", Retry.FATAL),
}
ERRNO_HELP["EPERM"] = ERRNO_HELP["EACCES"]  # Linux: an OUTPUT rule that drops the SYN


def explain_errno(name: str) -> ErrnoHelp:
    """The help entry for an errno name; unknown names back off and say what they were."""
    help_ = ERRNO_HELP.get(name)
    if help_ is None:
        help_ = ErrnoHelp(f"the socket call failed with {name}", _NAT_ADVICE, Retry.BACKOFF)
    return help_
