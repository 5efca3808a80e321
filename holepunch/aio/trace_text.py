"""Short human text for trace records: what a datagram says and what an event means.

Rule: pure functions of bytes and events, only computed when tracing. A datagram that does not
decode is described as malformed, never raised on: traces record whatever arrives.
"""

from __future__ import annotations

from ..protocol import events as ev
from ..protocol.events import Event
from ..protocol.messages import (
    ExtCookie,
    ExtError,
    ExtLeave,
    ExtPeers,
    ExtPunch,
    ExtRegister,
    ExtRelay,
    MessageError,
    MessageKind,
    decode_ext,
)


def session_text(session: bytes, limit: int = 40) -> str:
    """A session ID for people: quoted UTF-8 text when it is text, hex otherwise."""
    try:
        text = repr(session.decode("utf-8"))
    except UnicodeDecodeError:
        text = "0x" + session.hex()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _preview(data: bytes, limit: int = 24) -> str:
    """Size and the first bytes of application data."""
    head = repr(data[:limit]) + ("..." if len(data) > limit else "")
    return f"{len(data)} bytes {head}"


def _names(endpoints: object) -> str:
    items = [str(e) for e in endpoints]  # type: ignore[attr-defined]
    return ", ".join(items) if items else "none"


def _extras(**fields: bytes) -> str:
    """", nonce 1a2b3c4d, mac" for the optional fields present (auth, cookies); "" when none is."""
    shown = [name if name == "mac" else f"{name} {value[:4].hex()}" for name, value in fields.items() if value]
    return "".join(", " + text for text in shown)


def describe_packet(kind: MessageKind, data: bytes) -> str:
    """What a datagram says, in a few words (its kind is recorded separately)."""
    if kind in (MessageKind.SYN, MessageKind.ACK, MessageKind.KEEPALIVE):
        return ""
    if kind is MessageKind.REGISTER:
        return f"session {session_text(data)}"
    if kind is MessageKind.PEER_LIST:
        return f"peers: {data.decode('ascii', 'replace')}" if data else "peers: none"
    if kind is MessageKind.DATA:
        return _preview(data)
    try:
        msg = decode_ext(data)
    except MessageError as exc:
        return f"malformed: {exc}"
    if isinstance(msg, ExtRegister):
        text = f"session {session_text(msg.session)}, expects {msg.expected} others"
        return text + _extras(cookie=msg.cookie, mac=msg.mac)
    if isinstance(msg, ExtPeers):
        return f"you are {msg.observed}; peers: {_names(p.endpoint for p in msg.peers)}"
    if isinstance(msg, ExtPunch):
        text = f"{type(msg).__name__[3:].lower()} from {msg.peer_id.hex()} to {msg.target.hex()}"
        return text + _extras(nonce=msg.nonce, echo=msg.echo, mac=msg.mac)
    if isinstance(msg, ExtLeave):
        return f"leave session {session_text(msg.session)}"
    if isinstance(msg, ExtCookie):
        return f"cookie {msg.cookie[:4].hex()}: echo it to register"
    if isinstance(msg, ExtRelay):
        text = f"relay from {msg.peer_id.hex()} to {msg.target.hex()}: {_preview(msg.data)}"
        return text + _extras(mac=msg.mac)
    assert isinstance(msg, ExtError)
    return f"refused: {msg.text}"


def describe_event(event: Event) -> str:
    """One line saying what a protocol event means."""
    if isinstance(event, ev.PeerJoined):
        members = f"{event.members} member{'s' if event.members != 1 else ''}"
        return f"{event.endpoint} joined session {session_text(event.session)} ({members})"
    if isinstance(event, ev.PeerLeft):
        return f"{event.endpoint} left session {session_text(event.session)} ({event.reason})"
    if isinstance(event, ev.RegistrationRefused):
        return f"refused {event.source}: {event.reason}"
    if isinstance(event, ev.DatagramDropped):
        return f"dropped {event.size} bytes from {event.source}: {event.reason}"
    if isinstance(event, ev.Registered):
        how = f"extension, public address {event.public_endpoint}" if event.extended else "plain protocol"
        return f"registered ({how})"
    if isinstance(event, ev.PeerListReceived):
        return f"{'pushed' if event.push else 'listed'} peers: {_names(p.endpoint for p in event.peers)}"
    if isinstance(event, ev.PunchingStarted):
        return f"punching {len(event.peers)} of {event.expected} expected: {_names(p.endpoint for p in event.peers)}"
    if isinstance(event, ev.PeerConnected):
        return f"connected to {event.peer} in {event.elapsed * 1000:.1f} ms"
    if isinstance(event, ev.PeerFailed):
        return f"gave up on {event.peer} (last received: {event.reason})"
    if isinstance(event, ev.ConnectCompleted):
        text = f"connect finished: {len(event.connected)} of {event.expected} peers connected"
        return text + (f" ({event.reason})" if event.reason else "")
    if isinstance(event, ev.DataReceived):
        return f"from {event.peer}: {_preview(event.data)}"
    return _describe_later_event(event)


def _describe_later_event(event: Event) -> str:
    """The events of the guard and the relay fallback (kept apart so each function stays short)."""
    if isinstance(event, ev.RequestRefused):
        more = f", {event.suppressed} more not logged" if event.suppressed else ""
        return f"refused a request from {event.source}: {event.reason}{more}"
    if isinstance(event, ev.PeerRelayed):
        return f"relaying to {event.peer} through the server after {event.elapsed * 1000:.1f} ms (punch: {event.reason})"
    if isinstance(event, ev.PeerUpgraded):
        return f"upgraded {event.peer} from relayed to direct after {event.relayed_for * 1000:.1f} ms relayed"
    if isinstance(event, ev.RelayRefused):
        return f"the server refused to relay: {event.reason}"
    return type(event).__name__
