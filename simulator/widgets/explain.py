"""Plain-English sentences for single trace records, for the stepper's "what just happened" line.

Rule: pure functions of the record (plus, optionally, who sent each packet, read off the same
trace); nothing here imports ipywidgets or matplotlib, and nothing re-derives NAT behaviour:
a drop is explained from the reason the network wrote into the record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from holepunch.trace import Action, TraceRecord

KIND_NAMES: dict[str, str] = {
    "syn": "SYN", "ack": "ACK", "keepalive": "keep-alive", "data": "data packet",
    "register": "registration", "ext-register": "registration (extended)",
    "peer-list": "peer list", "ext-peers": "peer list (extended)", "ext-push": "pushed peer list",
    "ext-leave": "leave notice", "ext-error": "error message",
}
"""How a message kind reads in a sentence."""

DROP_GLOSS: dict[str, str] = {
    "filtered (address-and-port dependent)":
        "it lets in only endpoints (address and port) its inside host has sent to",
    "filtered (address dependent)": "it lets in only addresses its inside host has sent to",
    "no mapping": "no mapping exists for that public port (nothing inside ever sent from it)",
    "mapping expired": "the mapping for that port had expired (nothing went out through it for the whole timeout)",
    "hairpin not supported": "it does not loop packets for its own public address back inside",
    "lost on link": "the link lost it",
    "no route": "no host or NAT there owns that address",
    "port unreachable": "no socket listens on that port",
}
"""Why a packet died, keyed by the reason the network records (simulator.nat / network)."""

_FIELD = re.compile(r" (?=[a-z_]+=)")
_DELAY = re.compile(r"delay ([0-9.]+) s")


def packet_senders(trace: Iterable[TraceRecord]) -> dict[int, str]:
    """Packet id -> the actor that sent it (link-made duplicates inherit their original's sender)."""
    senders: dict[int, str] = {}
    for r in trace:
        if r.packet is None:
            continue
        if r.action is Action.SEND:
            senders.setdefault(r.packet, r.actor)
        elif r.action is Action.LINK and "duplicate of #" in r.detail:
            original = int(r.detail.rsplit("#", 1)[1])
            if original in senders:
                senders.setdefault(r.packet, senders[original])
    return senders


def kind_name(kind: str) -> str:
    """"syn" -> "SYN", "ext-peers" -> "peer list (extended)"; unknown kinds as they are."""
    return KIND_NAMES.get(kind, kind or "datagram")


def _article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _owner(actor: str) -> str:
    """"peer A" -> "A's", "server" -> "the server's"."""
    if actor.startswith("peer "):
        return actor[len("peer "):] + "'s"
    return f"the {actor}'s" if actor == "server" else f"{actor}'s"


def _packet(record: TraceRecord, senders: Mapping[int, str] | None) -> str:
    """The packet as a noun phrase: "A's SYN" when its sender is known, else "a SYN"."""
    noun = kind_name(record.kind)
    sender = senders.get(record.packet) if senders and record.packet is not None else None
    return f"{_owner(sender)} {noun}" if sender else _article(noun)


def _fields(summary: str) -> dict[str, str]:
    """An event summary ("peer=1.2.3.4:5 elapsed=0.084000") as a dict (values may hold spaces)."""
    out = {}
    for part in _FIELD.split(" " + summary):
        key, sep, value = part.strip().partition("=")
        if sep:
            out[key] = value
    return out


def _seconds(text: str) -> str:
    """"0.084000" -> "84 ms", "1.5" -> "1.5 s" (text that is not a number stays as it is)."""
    try:
        value = float(text)
    except ValueError:
        return text
    return f"{value * 1000:.0f} ms" if value < 1.0 else f"{value:.3g} s"


def explain_record(record: TraceRecord, senders: Mapping[int, str] | None = None) -> str:
    """One plain-English sentence saying what `record` shows.

    `senders` (from `packet_senders(trace)`) lets the sentence say whose packet it was
    ("NAT B dropped A's SYN ..."); without it the packet is "a SYN".
    """
    explain = _EXPLAIN.get(record.action)
    if explain is None:
        return f"{record.actor}: {record.action.value} {record.kind}".strip() + "."
    return explain(record, senders)


def _send(r: TraceRecord, senders: Mapping[int, str] | None) -> str:
    noun = kind_name(r.kind)
    what = noun if r.kind in ("syn", "ack") else _article(noun)
    extra = f": {r.summary}" if r.summary else ""
    return f"{r.actor} sent {what} to {r.destination} from {r.source}{extra}."


def _receive(r: TraceRecord, senders: Mapping[int, str] | None) -> str:
    extra = f": {r.summary}" if r.summary else ""
    return f"{r.actor} received {_packet(r, senders)} from {r.source}{extra}."


def _translate(r: TraceRecord, senders: Mapping[int, str] | None) -> str:
    what = _packet(r, senders)
    before, _, after = r.detail.partition(" -> ")
    if r.summary == "outbound":
        return f"{r.actor} let {what} out, rewriting its source {before} to {after} (towards {r.destination})."
    if r.summary == "inbound":
        return f"{r.actor} let {what} in from {r.source}, rewriting its destination {before} to {after}."
    if r.summary == "hairpin":
        return f"{r.actor} looped {what} back inside (hairpinning: {r.detail})."
    return f"{r.actor} rewrote {what} ({r.detail})."


def _drop(r: TraceRecord, senders: Mapping[int, str] | None) -> str:
    what = _packet(r, senders)
    reason = r.detail or r.summary or "dropped"
    gloss = DROP_GLOSS.get(reason)
    if reason == "lost on link":
        return f"link {r.actor} lost {what} on its way to {r.destination}."
    way = {"inbound": " on the way in", "outbound": " on the way out"}.get(r.summary, "")
    origin = f" from {r.source}" if r.source is not None else ""
    why = f"{gloss} ({reason})" if gloss else reason
    return f"{r.actor} dropped {what}{origin}{way}: {why}."


def _link(r: TraceRecord, senders: Mapping[int, str] | None) -> str:
    what = _packet(r, senders)
    what = what[0].upper() + what[1:]
    match = _DELAY.search(r.detail)
    delay = f", arriving {_seconds(match.group(1))} later" if match else ""
    notes = [n.strip() for n in r.detail.split(",")[1:]]
    extra = f" ({', '.join(notes)})" if notes else ""
    return f"{what} went onto link {r.actor}{delay}{extra}."


def _timer(r: TraceRecord, senders: Mapping[int, str] | None) -> str:
    return f"{_owner(r.actor)} timer fired."


def _event(r: TraceRecord, senders: Mapping[int, str] | None) -> str:
    f = _fields(r.summary)
    template = _EVENTS.get(r.kind)
    if template is not None:
        try:
            return template(r.actor, f)
        except KeyError:
            pass  # a machine with other event fields: fall back to the raw summary
    detail = f": {r.summary}" if r.summary else ""
    return f"{r.actor} reported {r.kind}{detail}."


def _connected(actor: str, f: dict[str, str]) -> str:
    return f"{actor} connected with {f['peer']}, {_seconds(f['elapsed'])} after it started punching it."


def _completed(actor: str, f: dict[str, str]) -> str:
    why = f" ({f['reason']})" if f.get("reason") else ""
    return f"{actor} finished connecting{why}: connected to {f['connected']}, failed {f['failed']}."


def _dropped(actor: str, f: dict[str, str]) -> str:
    why = f["reason"]
    if why == "stranger":
        why += ": it came from an endpoint the server had not listed"
    return f"{actor} ignored a {f['size']}-byte datagram from {f['source']} ({why})."


_EVENTS = {
    "Registered": lambda a, f: f"{a} registered with the server, which sees it as {f['public_endpoint']}.",
    "PeerListReceived": lambda a, f: (f"{a} got the peer list {f['peers']}"
                                      + (" (pushed by the server)." if f.get("push") == "True" else ".")),
    "PunchingStarted": lambda a, f: f"{a} started punching towards {f['peers']}.",
    "PeerConnected": _connected,
    "PeerFailed": lambda a, f: f"{a} gave up on {f['peer']} ({f['reason']}).",
    "ConnectCompleted": _completed,
    "PeerJoined": lambda a, f: (f"{a} added {f['endpoint']} to session {f['session']} "
                                f"({f['members']} member(s) now)."),
    "PeerLeft": lambda a, f: f"{a} removed {f['endpoint']} from session {f['session']} ({f['reason']}).",
    "RegistrationRefused": lambda a, f: f"{a} refused the registration from {f['source']} ({f['reason']}).",
    "DatagramDropped": _dropped,
    "DataReceived": lambda a, f: f"{a} received data {f['data']} from {f['peer']}.",
}

_EXPLAIN = {
    Action.SEND: _send, Action.RECEIVE: _receive, Action.TRANSLATE: _translate, Action.DROP: _drop,
    Action.LINK: _link, Action.TIMER: _timer, Action.EVENT: _event,
}
