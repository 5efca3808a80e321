"""From captured frames to trace records: each datagram's hops as SEND, TRANSLATE, RECEIVE or DROP.

Rule: every record stands for frames that were seen (capture.py). The frames of one datagram are
chained across the capture points (a NAT rewrites addresses and ports, never the payload), and
each chain becomes records of `holepunch.trace` with the simulator's actor names and drop
reasons, so `simulator.viz.timeline` draws a lab run exactly as it draws a simulated one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..aio.trace_text import describe_packet
from ..protocol.messages import MessageKind, classify
from ..trace import Action, Trace, TraceRecord
from .nft import nat_type

if TYPE_CHECKING:
    from .capture import Frame
    from .topology import Lab

FILTER_REASON = {"EIF": "filtered (endpoint-independent)", "ADF": "filtered (address dependent)",
                 "APDF": "filtered (address-and-port dependent)"}
"""The simulator's drop reasons (simulator.nat.FILTERED), by the lab NAT's filtering."""
NO_MAPPING, LOST, HAIRPIN_OFF = "no mapping", "lost on link", "hairpin not supported"
ICMP_TEXT = {(3, 3): "port unreachable", (3, 1): "host unreachable", (3, 13): "administratively prohibited"}


class _View:
    """Who is who in a lab: actor names (the simulator's: "peer A", "NAT A", "server") by address."""

    def __init__(self, lab: Lab) -> None:
        layout = lab.layout
        self.servers = {ip for ip in (layout.server_ip, layout.server_alt_ip) if ip}
        self.hosts = {ip: f"peer {site.name}" + (f":{i}" if i else "")
                      for site in layout.sites for i, ip in enumerate(site.host_ips)}
        natted = [site for site in layout.sites if site.nat_namespace is not None]
        self.publics = {site.public_ip: site.name for site in natted}
        self.filtering = {site.name: nat_type(site.nat).filtering for site in natted}

    def actor(self, ip: str) -> str | None:
        """The actor that owns an address (a NAT for its public address)."""
        if ip in self.servers:
            return "server"
        return f"NAT {self.publics[ip]}" if ip in self.publics else self.hosts.get(ip)

    def arrival(self, ip: str) -> tuple[str, str] | None:
        """(site or "server", side) of the point where a packet to `ip` enters from the internet."""
        if ip in self.servers or ip in self.publics:
            return ("server", "host") if ip in self.servers else (self.publics[ip], "wan")
        actor = self.hosts.get(ip)
        return (actor.removeprefix("peer "), "host") if actor else None


@dataclass
class _Chain:
    """The frames of one datagram, and the point (site, side, outgoing) where it is expected next."""

    frames: list[Frame]
    expect: tuple[str, str, bool] | None
    rule: str
    """How the next frame relates to the last: "out" (source NAT), "wire", "in" (inbound), "hairpin"."""


def _origin(frame: Frame, view: _View) -> _Chain | None:
    """A new chain if `frame` is where a datagram starts: a host sends it, or a NAT itself does."""
    p = frame.point
    if p.side == "lan" and not frame.outgoing and frame.source.host in view.hosts:
        hairpin = view.publics.get(frame.destination.host) == p.site
        return _Chain([frame], (p.site, "lan", True) if hairpin else (p.site, "wan", True),
                      "hairpin" if hairpin else "out")
    if frame.outgoing and p.side in ("host", "wan"):
        return _Chain([frame], _wire_target(frame, view), "wire")
    return None


def _wire_target(frame: Frame, view: _View) -> tuple[str, str, bool] | None:
    target = view.arrival(frame.destination.host)
    return None if target is None else (*target, False)


def _continues(chain: _Chain, frame: Frame) -> bool:
    """Is `frame` the next hop of `chain`'s datagram? Same bytes, addresses as the rule allows."""
    last = chain.frames[-1]
    if chain.expect != (frame.point.site, frame.point.side, frame.outgoing) or last.key != frame.key:
        return False
    if chain.rule == "out":
        return frame.destination == last.destination
    if chain.rule == "wire":
        return frame.source == last.source and frame.destination == last.destination
    return chain.rule == "hairpin" or frame.source == last.source  # "in": the sender is kept


def _advance(chain: _Chain, frame: Frame, view: _View) -> None:
    chain.frames.append(frame)
    if chain.rule == "out":
        chain.expect, chain.rule = _wire_target(frame, view), "wire"
    elif chain.rule == "wire" and frame.point.side == "wan":
        chain.expect, chain.rule = (frame.point.site, "lan", True), "in"
    else:
        chain.expect = None  # delivered


def chain_frames(frames: Sequence[Frame], view: _View, window: float) -> list[_Chain]:
    """Group frames into datagrams, oldest open chain first (retransmissions share their bytes);
    a chain not continued within `window` seconds has ended there."""
    chains: list[_Chain] = []
    open_: list[_Chain] = []
    for frame in frames:
        open_ = [c for c in open_ if c.expect is not None and frame.time - c.frames[-1].time <= window]
        match = next((c for c in open_ if _continues(c, frame)), None)
        if match is not None:
            _advance(match, frame, view)
            continue
        chain = _origin(frame, view)
        if chain is not None:
            chains.append(chain)
            open_.append(chain)
    return chains


def _kind(frame: Frame, view: _View) -> str:
    if frame.proto == 1:
        return "icmp"
    if frame.proto == 6:
        f = frame.flags
        return ("tcp-rst" if f & 4 else "tcp-syn-ack" if f & 18 == 18 else "tcp-syn" if f & 2
                else "tcp-fin" if f & 1 else "tcp-data" if frame.payload else "tcp-ack")
    return classify(frame.payload, from_server=frame.source.host in view.servers,
                    to_server=frame.destination.host in view.servers).value


def _summary(frame: Frame, kind: str) -> str:
    if frame.proto == 1:
        return ICMP_TEXT.get((frame.payload[0], frame.payload[1]), f"type {frame.payload[0]}")
    if frame.proto == 6:
        return f"{len(frame.payload)} bytes" if frame.payload else ""
    return describe_packet(MessageKind(kind), frame.payload)


def _drop_reason(chain: _Chain, frames: Sequence[Frame], view: _View, window: float) -> str:
    """Why a datagram that reached a NAT's WAN never left its LAN, from what the capture saw:
    no mapping (the public port never sent), or filtered; and whether the NAT answered itself."""
    arrived = chain.frames[-1]
    site, port = arrived.point.site, arrived.destination.port
    mapped = any(f.point.site == site and f.point.side == "wan" and f.outgoing and f.time < arrived.time
                 and f.source.port == port and f.proto == arrived.proto for f in frames)
    reason = FILTER_REASON[view.filtering[site]] if mapped else NO_MAPPING
    answer = next((f for f in frames if f.point.site == site and f.point.side == "wan" and f.outgoing
                   and 0 <= f.time - arrived.time <= window and f.destination.host == arrived.source.host
                   and (f.proto == 1 or (f.proto == 6 and f.flags & 4))), None)
    if answer is not None:
        reason += "; the NAT itself answered (" + ("RST" if answer.proto == 6 else "ICMP") + ")"
    return reason


def _chain_records(chain: _Chain, number: int, frames: Sequence[Frame], view: _View,
                   t0: float, window: float) -> list[TraceRecord]:
    """SEND, then TRANSLATE and RECEIVE per hop, and a DROP where the datagram was last seen."""
    first, last = chain.frames[0], chain.frames[-1]
    kind = _kind(first, view)
    summary = _summary(first, kind)

    def record(f: Frame, actor: str, action: Action, detail: str = "", note: str = "") -> TraceRecord:
        return TraceRecord(round(f.time - t0, 6), actor, action, f.source, f.destination, kind,
                           note or summary, detail, number)

    out = [record(first, view.actor(first.source.host) or f"NAT {first.point.site}", Action.SEND)]
    for prev, f in zip(chain.frames, chain.frames[1:]):
        nat = f"NAT {f.point.site}"
        if f.point.side == "wan":  # outbound: the NAT rewrote the source; inbound: not yet
            if f.outgoing:
                out.append(record(f, nat, Action.TRANSLATE, f"{prev.source} -> {f.source}", "outbound"))
            continue
        if f.point.side == "lan":
            note = "hairpin" if chain.rule == "hairpin" else "inbound"
            out.append(record(f, nat, Action.TRANSLATE, f"{prev.destination} -> {f.destination}", note))
        out.append(record(f, view.actor(f.destination.host) or "?", Action.RECEIVE))
    if chain.expect is not None:
        site = chain.expect[0]
        reason = {"in": lambda: _drop_reason(chain, frames, view, window),
                  "hairpin": lambda: HAIRPIN_OFF, "out": lambda: "not forwarded"}.get(chain.rule)
        actor = f"NAT {site}" if reason else "internet"
        out.append(record(last, actor, Action.DROP, reason() if reason else LOST))
    return out


def frames_to_trace(frames: Sequence[Frame], lab: Lab, *, since: float | None = None,
                    window: float | None = None) -> Trace:
    """The frames of a capture as a `Trace`: per datagram SEND (at the sender), TRANSLATE (at each
    NAT: "outbound", "inbound", "hairpin"), RECEIVE, or DROP where it stopped, with the
    simulator's actor names; times in seconds from `since` (default: the first frame)."""
    frames = sorted(frames, key=lambda f: f.time)
    if not frames:
        return Trace()
    impairment = lab.layout.impairment
    window = window if window is not None else (
        0.05 + 3 * (impairment.get("delay", 0.0) + impairment.get("jitter", 0.0)))
    view = _View(lab)
    t0 = frames[0].time if since is None else since
    records: list[TraceRecord] = []
    for number, chain in enumerate(chain_frames(frames, view, window), start=1):
        records += _chain_records(chain, number, frames, view, t0, window)
    records.sort(key=lambda r: r.time)
    return Trace(records)
