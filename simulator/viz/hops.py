"""From trace records to the lanes and arrows of a ladder diagram, without drawing anything.

Rule: pure functions of the records. A simulated packet's hops share `record.packet`; a real
run records only each side's SEND and RECEIVE, so those are paired by packet id when both carry
the same one, else first-in first-out on (source, destination, kind), loosening the key when a
NAT rewrote an address between the two sides.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action, TraceRecord

HOP_ACTIONS = frozenset({Action.SEND, Action.TRANSLATE, Action.RECEIVE, Action.DROP})
STUB_LANES = 0.45
"""How far (in lanes) a packet that never arrives is drawn toward its destination."""

_ROLE = re.compile(r"^(peer|host|client|nat)(?:[\s_-]+(.*))?$", re.IGNORECASE)
_SERVERS = {"server", "rendezvous", "rendezvous server"}


@dataclass(frozen=True, slots=True)
class Hop:
    """One arrow: a packet leaving lane `src` at `t0`, heading for lane `dst`, ending at `t1`."""

    kind: str
    src: str
    dst: str
    t0: float
    t1: float
    start: int
    """Index of the record the packet leaves from."""
    end: int | None
    """Index of the record that ends the hop; None if it is still in flight or never arrived."""
    reach: float = 1.0
    """Fraction of the way to `dst` drawn: below 1 for a packet lost on the wire or in flight."""
    dropped: str | None = None
    """The drop reason when the hop ends in a DROP record."""


def natural_key(text: str) -> list[object]:
    """Sort key that puts "peer 2" before "peer 10"."""
    return [(0, int(part)) if part.isdigit() else (1, part.casefold()) for part in re.split(r"(\d+)", text)]


def lane_role(actor: str) -> tuple[str, str]:
    """("peer" | "nat" | "server" | "other", pairing key): "NAT A" pairs with "peer A" by key "a"."""
    match = _ROLE.match(actor)
    if match:
        role = "nat" if match.group(1).lower() == "nat" else "peer"
        return role, (match.group(2) or "").casefold()
    return ("server" if actor.casefold() in _SERVERS else "other"), ""


def order_lanes(actors: Iterable[str]) -> list[str]:
    """Lane order: each peer next to its NAT, half the pairs left of the server, half right.

    Two peers give "peer A", "NAT A", "server", "NAT B", "peer B"; unknown actors go last.
    """
    groups: dict[str, list[str]] = {}
    servers: list[str] = []
    others: list[str] = []
    for actor in dict.fromkeys(actors):
        role, key = lane_role(actor)
        if role in ("peer", "nat"):
            groups.setdefault(key, []).append(actor)
        else:
            (servers if role == "server" else others).append(actor)
    def peer_first(actor: str) -> tuple[bool, list[object]]:
        return lane_role(actor)[0] == "nat", natural_key(actor)

    pairs = [sorted(groups[key], key=peer_first) for key in sorted(groups, key=natural_key)]
    half = math.ceil(len(pairs) / 2)
    left = [actor for pair in pairs[:half] for actor in pair]
    right = [actor for pair in pairs[half:] for actor in reversed(pair)]  # the NAT faces the server
    return left + servers + right + others


def timeline_lanes(trace: Iterable[TraceRecord]) -> list[str]:
    """The default lanes of a trace: every actor that sends, receives, translates or reports.

    Other actors seen only in LINK or DROP records (a link such as "wan A") get no lane: their
    drops are drawn as packets lost on the way. Peers, NATs and the server always get one.
    """
    return order_lanes(r.actor for r in trace
                       if r.action not in (Action.LINK, Action.DROP) or lane_role(r.actor)[0] != "other")


def _endpoints_in(text: str) -> list[Endpoint]:
    """The endpoints named in a detail text such as "10.0.1.2:4000 -> 198.51.100.10:4000"."""
    found = []
    for token in text.replace("->", " ").split():
        try:
            found.append(Endpoint.parse(token.strip("(),;")))
        except ValueError:
            continue
    return found


def endpoint_owners(trace: Iterable[TraceRecord]) -> dict[Endpoint, str]:
    """Which actor owns each address: senders own their source, receivers their destination,
    and a NAT owns the rewritten addresses that no host claims (its public side)."""
    records = list(trace)
    owners: dict[Endpoint, str] = {}
    for r in records:
        if r.action is Action.SEND and r.source is not None:
            owners.setdefault(r.source, r.actor)
        elif r.action is Action.RECEIVE and r.destination is not None:
            owners.setdefault(r.destination, r.actor)
    for r in records:
        if r.action is Action.TRANSLATE:
            for endpoint in _endpoints_in(r.detail):
                owners.setdefault(endpoint, r.actor)
    return owners


def _stand_in(actor: str, lanes: Mapping[str, int]) -> str | None:
    """The lane that speaks for a hidden actor: a NAT's peer when the NAT has no lane."""
    role, key = lane_role(actor)
    if role != "nat":
        return None
    return next((lane for lane in lanes if lane_role(lane) == ("peer", key)), None)


def _stub(records: Sequence[TraceRecord], start: int, end: int | None, src: str,
          owners: Mapping[Endpoint, str], lanes: Mapping[str, int]) -> Hop | None:
    """A short arrow toward the destination's lane for a packet that never reached a lane."""
    leaving = records[start]
    target = owners.get(leaving.destination) if leaving.destination is not None else None
    if target is not None and target not in lanes:
        target = _stand_in(target, lanes)
    if target is None or target == src or target not in lanes or src not in lanes:
        return None
    ending = records[end] if end is not None else leaving
    reach = min(1.0, STUB_LANES / abs(lanes[target] - lanes[src]))
    dropped = (ending.detail or ending.summary or "dropped") if ending.action is Action.DROP else None
    return Hop(leaving.kind or ending.kind, src, target, leaving.time, ending.time, start, end, reach, dropped)


def _chain_hops(records: Sequence[TraceRecord], chain: Sequence[int],
                owners: Mapping[Endpoint, str], lanes: Mapping[str, int]) -> list[Hop]:
    """The arrows of one simulated packet: one per change of lane along its records.

    Records at actors without a lane are passed over: the arrow joins the lanes either side.
    """
    hops: list[Hop] = []
    lane, start = records[chain[0]].actor, chain[0]
    moving = (Action.SEND, Action.TRANSLATE)
    for index in chain[1:]:
        r = records[index]
        if r.actor in lanes and r.actor != lane:
            if lane in lanes:
                dropped = (r.detail or r.summary or "dropped") if r.action is Action.DROP else None
                kind = records[start].kind or r.kind
                hops.append(Hop(kind, lane, r.actor, records[start].time, r.time, start, index, 1.0, dropped))
            lane, start = r.actor, index
        elif r.action is Action.DROP and records[start].action in moving:  # lost on the wire
            stub = _stub(records, start, index, lane, owners, lanes)
            return hops + [stub] if stub else hops
    if records[start].action in moving and records[chain[-1]].action in moving:  # still in flight
        stub = _stub(records, start, None, lane, owners, lanes)
        hops.extend([stub] if stub else [])
    return hops


def _match_keys(r: TraceRecord) -> list[tuple[object, ...]]:
    """Keys from strictest to loosest: the receiver may see a NAT's address instead of the
    sender's (source rewritten) or record its private address (destination rewritten)."""
    return [(r.source, r.destination, r.kind), (None, r.destination, r.kind),
            (r.source, None, r.kind), (None, None, r.kind)]


def _find_send(records: Sequence[TraceRecord], pending: list[int], receive: TraceRecord) -> int | None:
    """The oldest unanswered SEND from another actor that matches `receive` most strictly."""
    for source, destination, kind in _match_keys(receive):
        for index in pending:
            s = records[index]
            if (s.actor != receive.actor and s.kind == kind
                    and (source is None or s.source == source)
                    and (destination is None or s.destination == destination)):
                return index
    return None


def _fifo_hops(records: Sequence[TraceRecord], pool: Sequence[int],
               owners: Mapping[Endpoint, str], lanes: Mapping[str, int]) -> list[Hop]:
    """Pair real-run SENDs and RECEIVEs first-in first-out; unanswered SENDs become stubs."""
    pending: list[int] = []
    hops: list[Hop] = []
    for index in pool:
        r = records[index]
        if r.action is Action.SEND:
            pending.append(index)
            continue
        start = _find_send(records, pending, r) if r.action is Action.RECEIVE else None
        if start is None:
            continue  # a receive from someone who keeps no trace: nothing to draw from
        pending.remove(start)
        sender = records[start].actor
        if sender in lanes and r.actor in lanes:
            kind = records[start].kind or r.kind
            hops.append(Hop(kind, sender, r.actor, records[start].time, r.time, start, index))
    for start in pending:
        stub = _stub(records, start, None, records[start].actor, owners, lanes)
        hops.extend([stub] if stub else [])
    return hops


def timeline_hops(trace: Iterable[TraceRecord], lanes: Sequence[str],
                  owners: Mapping[Endpoint, str] | None = None) -> list[Hop]:
    """Every arrow of the ladder for these records and lanes, sorted by departure time.

    `owners` (see `endpoint_owners`) aims the stubs of lost packets; pass the owners of the
    whole trace when drawing a prefix, so an in-flight packet already points the right way.
    """
    records = list(trace)
    owners = endpoint_owners(records) if owners is None else owners
    lane_index = {lane: i for i, lane in enumerate(lanes)}
    chains: dict[int, list[int]] = {}
    pool: list[int] = []
    for index, r in enumerate(records):
        if r.action not in HOP_ACTIONS:
            continue
        if r.packet is None:
            pool.append(index)
        else:
            chains.setdefault(r.packet, []).append(index)
    hops: list[Hop] = []
    for chain in chains.values():
        if len(chain) == 1 and records[chain[0]].action in (Action.SEND, Action.RECEIVE):
            pool.append(chain[0])  # one side of a real run: its partner carries another id or none
        else:
            hops.extend(_chain_hops(records, chain, owners, lane_index))
    hops.extend(_fifo_hops(records, sorted(pool), owners, lane_index))
    return sorted(hops, key=lambda h: (h.t0, h.start))
