"""The simulated datagram, and a one-line summary of its payload for traces.

Rule: a packet is immutable; a NAT that rewrites it makes a new `Packet` with the same id, so
every hop of one datagram shares `id` in the trace. The payload bytes are shared, never copied.
Summaries only *decode* wire formats (for people reading traces); nothing here builds a message.
"""

from __future__ import annotations

from typing import NamedTuple

from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.messages import MessageError, decode_ext, decode_peer_list, is_extension


class Packet(NamedTuple):
    """A UDP datagram in flight: addresses as they are *now*, on the hop it is on."""

    id: int
    source: Endpoint
    destination: Endpoint
    data: bytes
    kind: str
    origin: str
    """Name of the host that sent it: simulator bookkeeping, not on the wire."""

    def with_source(self, source: Endpoint) -> "Packet":
        """The same datagram after a NAT rewrote its source."""
        return Packet(self.id, source, self.destination, self.data, self.kind, self.origin)

    def with_destination(self, destination: Endpoint) -> "Packet":
        """The same datagram after a NAT rewrote its destination."""
        return Packet(self.id, self.source, destination, self.data, self.kind, self.origin)


def summarize(data: bytes, kind: str) -> str:
    """A short human summary of a payload (empty for SYN, ACK and keep-alives: kind says it)."""
    if kind in ("syn", "ack", "punch", "punch-ack", "keepalive"):
        return ""
    if is_extension(data):
        return _summarize_ext(data)
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
    session = getattr(msg, "session", None)
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
    return " ".join(parts)


def _short(data: bytes, limit: int = 24) -> str:
    """`repr` of at most `limit` bytes, marked when cut."""
    if len(data) <= limit:
        return repr(data)
    return repr(data[:limit]) + f"...({len(data)} bytes)"
