"""The simulated datagram, and a one-line summary of its payload for traces.

Rule: a packet is immutable; a NAT that rewrites it makes a new `Packet` with the same id, so
every hop of one datagram shares `id` in the trace. The payload bytes are shared, never copied.
Summaries only *decode* wire formats (for people reading traces); nothing here builds a message.
"""

from __future__ import annotations

from typing import NamedTuple

from holepunch.protocol.discovery import Probe, Via, decode_discovery, is_discovery
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.messages import (
    ExtCookie,
    ExtPunch,
    ExtRelay,
    MessageError,
    decode_ext,
    decode_peer_list,
    is_extension,
)


class Packet(NamedTuple):
    """A UDP datagram in flight: addresses as they are *now*, on the hop it is on."""

    id: int
    source: Endpoint
    destination: Endpoint
    data: bytes
    kind: str
    origin: str
    """Name of the host that sent it: simulator bookkeeping, not on the wire."""

    def with_source(self, source: Endpoint) -> Packet:
        """The same datagram after a NAT rewrote its source."""
        return Packet(self.id, source, self.destination, self.data, self.kind, self.origin)

    def with_destination(self, destination: Endpoint) -> Packet:
        """The same datagram after a NAT rewrote its destination."""
        return Packet(self.id, self.source, destination, self.data, self.kind, self.origin)


def summarize(data: bytes, kind: str) -> str:
    """A short human summary of a payload (empty for SYN, ACK, keep-alives and plain PUNCHes: kind says it)."""
    if kind in ("syn", "ack", "keepalive"):
        return ""
    if is_extension(data):
        return _summarize_discovery(data) if is_discovery(data) else _summarize_ext(data)
    if kind in ("punch", "punch-ack"):
        return f"malformed {_short(data)}"
    if kind == "register":
        return f"session {_short(data)}"
    if kind == "peer-list":
        try:
            peers = decode_peer_list(data)
        except MessageError:
            return f"malformed {_short(data)}"
        return "[" + ", ".join(str(p) for p in peers) + "]"
    return _short(data)


def _summarize_ext(data: bytes) -> str:
    try:
        msg = decode_ext(data)
    except MessageError as exc:
        return f"malformed extension: {exc}"
    if isinstance(msg, ExtPunch):  # and ExtPunchAck
        return _summarize_punch(msg)
    if isinstance(msg, ExtCookie):
        return f"cookie {msg.cookie[:4].hex()}: echo it to register"
    session = getattr(msg, "session", None)  # REGISTER, PEERS, LEAVE and RELAY name their session
    parts = [] if session is None else [f"session {_short(session)}"]
    observed = getattr(msg, "observed", None)
    if observed is not None:
        parts.append(f"you are {observed}")
    peers = getattr(msg, "peers", None)
    if peers is not None:
        parts.append("[" + ", ".join(str(p.endpoint) for p in peers) + "]")
    text = getattr(msg, "text", None)
    if text:
        parts.append(text)
    if isinstance(msg, ExtRelay):
        parts.append(f"from {msg.peer_id.hex()} to {msg.target.hex()}: {_short(msg.data)}")
    # REGISTER's cookie echo and REGISTER's or RELAY's MAC: shown only when present, so the
    # summaries of unauthenticated runs (and the golden traces) keep their old text.
    return " ".join(parts) + _optional(cookie=getattr(msg, "cookie", b""), mac=getattr(msg, "mac", b""))


PROBE_NAMES = {1: "prediction probe", 2: "birthday probe"}
"""`ExtPunch.probe`: 0 is a plain punch, 1 a port-prediction probe, 2 a birthday probe."""


def _summarize_punch(msg: ExtPunch) -> str:
    """"birthday probe, nonce 1a2b3c4d, mac": what a PUNCH says beyond its kind ("" for a plain one)."""
    probe = PROBE_NAMES.get(msg.probe, f"probe {msg.probe}") if msg.probe else ""
    text = probe + _optional(nonce=msg.nonce, echo=msg.echo, mac=msg.mac)
    return text.removeprefix(", ")


def _optional(**fields: bytes) -> str:
    """", nonce 1a2b3c4d, mac" for the optional fields present; the MAC is only named."""
    shown = [name if name == "mac" else f"{name} {value[:4].hex()}" for name, value in fields.items() if value]
    return "".join(", " + text for text in shown)


VIA_NAMES = {Via.SAME: "same socket", Via.ALT_PORT: "alternate port", Via.ALT_ADDRESS: "alternate address"}


def _summarize_discovery(data: bytes) -> str:
    """PROBE and PROBE_REPLY (RFC 5780 tests, holepunch.protocol.discovery)."""
    try:
        msg = decode_discovery(data)
    except MessageError as exc:
        return f"malformed probe: {exc}"
    if isinstance(msg, Probe):
        return f"request {msg.request_id.hex()}, reply from {VIA_NAMES[msg.reply_from]}"
    text = f"request {msg.request_id.hex()}, you are {msg.observed}, from {VIA_NAMES[msg.replied_from]}"
    alternates = [f"port {msg.alt_port}"] if msg.alt_port else []
    alternates += [f"address {msg.alt_address}"] if msg.alt_address else []
    return text + (f"; alternates: {', '.join(alternates)}" if alternates else "")


def _short(data: bytes, limit: int = 24) -> str:
    """`repr` of at most `limit` bytes, marked when cut."""
    if len(data) <= limit:
        return repr(data)
    return repr(data[:limit]) + f"...({len(data)} bytes)"
