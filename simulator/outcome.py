"""Outcomes of simulated runs, and plain-language explanations derived from their traces.

Rule: an outcome is computed only from what the run recorded (the drivers' events, the trace,
who sent what); `explain()` reads the trace the way a learner would (which packet died where,
and why) and never re-derives anything from the NAT behaviours' names.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action, Trace, TraceRecord

if TYPE_CHECKING:  # pragma: no cover
    from .scenarios import Scenario

HANDSHAKE = ("syn", "ack", "punch", "punch-ack")
GLOSS = {
    "filtered (address-and-port dependent)":
        "that NAT lets in only endpoints its inside host has already sent to",
    "filtered (address dependent)": "that NAT lets in only addresses its inside host has already sent to",
    "no mapping": "nothing inside had ever sent from that public port",
    "mapping expired": "the mapping had timed out, as no packet had gone out through it for the whole timeout",
    "hairpin not supported": "that NAT does not loop packets for its own public address back inside",
    "lost on link": "the link lost it",
}


@dataclass(frozen=True)
class PairResult:
    """Whether two peers both confirmed each other, and how long it took."""

    a: str
    b: str
    connected: bool
    time_to_connect: float | None
    """Seconds from the later start to the moment both sides had confirmed; None if not."""
    a_confirmed: bool
    b_confirmed: bool
    connected_at: float | None = None
    """Simulated time at which the second side confirmed; None if not connected."""
    path: str = "direct"
    """"relayed" when either side first reached the other through the server's relay
    (`PeerRelayed`, relay fallback), else "direct"."""

    @property
    def relayed(self) -> bool:
        """True when the pair connected through the relay, not through a punched hole."""
        return self.connected and self.path == "relayed"


@dataclass(frozen=True)
class Outcome:
    """What a punch run produced: per pair results, traffic, the trace."""

    pairs: tuple[PairResult, ...]
    packets_sent: int
    trace: Trace = field(repr=False)
    end_time: float
    nats: dict[str, str]
    """Peer letter -> its NATs, outermost first, e.g. {"A": "SYMMETRIC > PORT_RESTRICTED_CONE"}."""
    listed: dict[str, Endpoint | None] = field(repr=False)
    """Peer letter -> the endpoint the server saw (and listed to the others)."""
    scenario: "Scenario | None" = field(default=None, repr=False, compare=False)

    @property
    def connected(self) -> bool:
        """True only if every pair connected."""
        return all(p.connected for p in self.pairs)

    @property
    def time_to_connect(self) -> float | None:
        """The slowest pair's time to connect, if every pair connected."""
        if not self.connected:
            return None
        return max((p.time_to_connect or 0.0) for p in self.pairs)

    def pair(self, a: str, b: str) -> PairResult:
        """The result for peers `a` and `b` (letters, either order)."""
        for p in self.pairs:
            if {p.a, p.b} == {a, b}:
                return p
        raise KeyError(f"no pair {a}-{b}")

    def packets_by_kind(self) -> Counter[str]:
        """Datagrams sent, by kind ("syn", "ack", "ext-register", ...)."""
        return Counter(r.kind for r in self.trace if r.action is Action.SEND)

    def explain(self) -> str:
        """One paragraph: for each pair, what got through, what died where, and why."""
        index = _Index(self.trace)
        return " ".join(_explain_pair(self, pair, index) for pair in self.pairs)

    @classmethod
    def from_scenario(cls, sc: "Scenario") -> "Outcome":
        """Read the result of a run off its drivers and trace."""
        confirmed = {letter: _confirmed(sc, driver) for letter, driver in sc.peers.items()}
        letters = list(sc.peers)
        pairs = []
        for i, a in enumerate(letters):
            for b in letters[i + 1:]:
                pairs.append(_pair(sc, confirmed, a, b))
        sent = sc.network.packets_sent
        nats = {letter: _nat_path(driver.host) for letter, driver in sc.peers.items()}
        listed = {letter: sc.public_endpoint(letter) for letter in letters}
        return cls(tuple(pairs), sent, sc.trace, sc.now, nats, listed, sc)


def _confirmed(sc: "Scenario", driver: Any) -> dict[str, tuple[float, bool]]:
    """Peer letters this driver's machine confirmed, with the time of the first confirmation and
    whether it came through the relay (`PeerRelayed`) rather than a handshake."""
    seen = {**driver.host.seen_from, **sc.server.host.seen_from}
    out: dict[str, tuple[float, bool]] = {}
    for time, event in driver.events:
        name = type(event).__name__
        endpoints = []
        if name in ("PeerConnected", "PeerRelayed"):
            endpoints = [event.peer]
        elif name == "ConnectCompleted":
            endpoints = list(event.connected)
        for endpoint in endpoints:
            origin = seen.get(endpoint)
            if origin is not None:
                out.setdefault(origin.removeprefix("peer "), (time, name == "PeerRelayed"))
    return out


def _pair(sc: "Scenario", confirmed: dict[str, dict[str, tuple[float, bool]]], a: str, b: str) -> PairResult:
    a_ok, b_ok = b in confirmed[a], a in confirmed[b]
    if not (a_ok and b_ok):
        return PairResult(a, b, False, None, a_ok, b_ok)
    (at_a, relay_a), (at_b, relay_b) = confirmed[a][b], confirmed[b][a]
    at = max(at_a, at_b)
    # Rounded to the nanosecond so that sums like 0.1 + 0.066 print as 0.166.
    time = round(at - max(sc.starts[a], sc.starts[b]), 9)
    return PairResult(a, b, True, time, True, True, at, "relayed" if relay_a or relay_b else "direct")


def _nat_path(host: Any) -> str:
    path, realm = [], host.realm
    while realm.gateway is not None:
        path.append(realm.gateway.behavior.name)
        realm = realm.gateway.realm
    return " > ".join(reversed(path)) or "NO_NAT"


# --- explanations -------------------------------------------------------------------------------


class _Index:
    """Each packet's send record and final fate (drop, receive, or dropped by the receiver)."""

    def __init__(self, trace: Trace) -> None:
        self.sends: dict[int, TraceRecord] = {}
        self.fates: dict[int, TraceRecord] = {}
        self.refused: dict[int, TraceRecord] = {}
        self.parent: dict[int, int] = {}
        self.arrived_from: dict[int, Endpoint] = {}  # source as the receiving side saw it
        for r in trace:
            if r.packet is None:
                continue
            if r.action is Action.SEND:
                self.sends[r.packet] = r
            elif r.action in (Action.DROP, Action.RECEIVE):
                self.fates[r.packet] = r
                if r.action is Action.RECEIVE or r.summary == "inbound":
                    if r.source is not None:
                        self.arrived_from[r.packet] = r.source
            elif r.action is Action.EVENT and r.kind == "DatagramDropped":
                self.refused[r.packet] = r
            elif r.action is Action.LINK and "duplicate of #" in r.detail:
                self.parent[r.packet] = int(r.detail.rsplit("#", 1)[1])

    def between(self, sender: str, dest: Endpoint | None, kinds: tuple[str, ...]) -> list[int]:
        """Ids of `kinds` packets `sender` sent to `dest` (copies made by links included)."""
        ids = [pid for pid, r in self.sends.items()
               if r.actor == sender and r.destination == dest and r.kind in kinds]
        wanted = set(ids)
        ids += [pid for pid, parent in self.parent.items() if parent in wanted]
        return sorted(ids)


def _explain_pair(outcome: Outcome, pair: PairResult, index: _Index) -> str:
    a, b = pair.a, pair.b
    head = f"Peers {a} ({outcome.nats[a]}) and {b} ({outcome.nats[b]})"
    ab = index.between(f"peer {a}", outcome.listed.get(b), HANDSHAKE)
    ba = index.between(f"peer {b}", outcome.listed.get(a), HANDSHAKE)
    if pair.relayed:
        return _explain_relayed(head, pair, index, ab, ba, outcome)
    if pair.connected:
        return _explain_success(head, pair, index, ab + ba, outcome)
    if not ab and not ba:
        return f"{head} did not connect: neither ever sent the other a SYN, so registration never listed them to each other."
    parts = [f"{head} did not connect."]
    parts += [_direction(index, outcome, x, y, ids) for x, y, ids in ((a, b, ab), (b, a, ba))]
    first = _first_loss(index, ab + ba)
    if first is not None:
        parts.append("The first fatal drop: " + _loss_sentence(index, first, outcome))
    return " ".join(p for p in parts if p)


def _explain_success(head: str, pair: PairResult, index: _Index, ids: list[int], outcome: Outcome) -> str:
    text = (f"{head} connected at {pair.connected_at:.3f} s, {pair.time_to_connect:.3f} s after both "
            f"had started, with {len(ids)} handshake packets.")
    lost = [pid for pid in ids if _died(index, pid)]
    through = [pid for pid in ids if pid in index.fates and not _died(index, pid)]
    if through:
        first = min(through, key=lambda pid: (index.fates[pid].time, pid))
        rec = index.fates[first]
        send = index.sends.get(first) or index.sends[index.parent[first]]
        text += f" The first to get through was {send.kind.upper()} #{first} from {send.actor}, at {rec.time:.3f} s."
    if not lost:
        return text + " None was lost on the way."
    first_lost = _first_loss(index, ids)
    assert first_lost is not None
    return text + f" {len(lost)} died on the way; the first: {_loss_sentence(index, first_lost, outcome)}"


def _explain_relayed(head: str, pair: PairResult, index: _Index, ab: list[int], ba: list[int],
                     outcome: Outcome) -> str:
    """A pair the relay carries: when, and why the direct punch had not worked by then."""
    parts = [f"{head} connected through the server's relay at {pair.connected_at:.3f} s, "
             f"{pair.time_to_connect:.3f} s after both had started: the direct punch had not got through."]
    parts += [_direction(index, outcome, x, y, ids) for x, y, ids in ((pair.a, pair.b, ab), (pair.b, pair.a, ba))]
    first = _first_loss(index, ab + ba)
    if first is not None:
        parts.append("The first fatal drop: " + _loss_sentence(index, first, outcome))
    return " ".join(p for p in parts if p)


def _died(index: _Index, pid: int) -> bool:
    return pid in index.refused or (pid in index.fates and index.fates[pid].action is Action.DROP)


def _first_loss(index: _Index, ids: list[int]) -> int | None:
    """The earliest packet that died: dropped on the way, or refused by the receiving client."""
    lost = [pid for pid in ids if _died(index, pid)]
    return min(lost, key=lambda pid: (_death(index, pid).time, pid)) if lost else None


def _death(index: _Index, pid: int) -> TraceRecord:
    return index.refused.get(pid) or index.fates[pid]


def _loss_sentence(index: _Index, pid: int, outcome: Outcome) -> str:
    send = index.sends.get(pid) or index.sends[index.parent[pid]]
    death = _death(index, pid)
    what = f"{send.kind.upper()} #{pid} from {send.actor}"
    if death.action is Action.EVENT:
        return (f"{what} reached {death.actor} at {death.time:.3f} s but was refused "
                f"({_reason(death.summary)}){_stranger_gloss(death)}.")
    gloss = GLOSS.get(death.detail, "")
    return f"{what} was dropped at {death.actor} at {death.time:.3f} s ({death.detail}){': ' + gloss if gloss else ''}."


def _stranger_gloss(event: TraceRecord) -> str:
    if "stranger" not in event.summary:
        return ""
    return ": it came from an endpoint the server had not listed, and the client accepts only listed endpoints"


def _reason(summary: str) -> str:
    for part in summary.split(" "):
        if part.startswith("reason="):
            return part[len("reason="):]
    return summary


def _direction(index: _Index, outcome: Outcome, x: str, y: str, ids: list[int]) -> str:
    if not ids:
        return f"Peer {x} never sent a SYN to {y}."
    fates: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    for pid in ids:
        if pid in index.arrived_from:
            sources[str(index.arrived_from[pid])] += 1
        if pid in index.refused:
            fates[f"refused by peer {y} ({_reason(index.refused[pid].summary)})"] += 1
        elif pid in index.fates and index.fates[pid].action is Action.DROP:
            fate = index.fates[pid]
            fates[f"dropped at {fate.actor} ({fate.detail})"] += 1
        elif pid in index.fates:
            fates["delivered"] += 1
        else:
            fates["still in flight"] += 1
    text = f"Of the {len(ids)} handshake packets {x} sent to {y} ({outcome.listed.get(y)}): "
    text += ", ".join(f"{n} {what}" for what, n in fates.most_common()) + "."
    listed = str(outcome.listed.get(x))
    odd = [s for s in sources if s != listed]
    if odd:
        text += (f" They arrived from {', '.join(odd)}, not from {listed} where the server saw {x}: "
                 f"{x}'s NAT gave the new destination a new mapping{_claim_note(outcome, x, y)}.")
    return text


def _claim_note(outcome: Outcome, x: str, y: str) -> str:
    """Why a NAT could not keep the listed port: a claim left by the conntrack race, if any."""
    if outcome.scenario is None:
        return ""
    listed, remote = outcome.listed.get(x), str(outcome.listed.get(y))
    for nat in outcome.scenario.network.nats.values():
        for row in nat.rows(outcome.end_time, include_expired=True):
            if row.internal is None and row.external == listed and row.remote == remote:
                return (f", because {y}'s early SYN had already claimed ({row.external}, {row.remote}) "
                        f"on {nat.name} at {row.created:.3f} s (the conntrack race)")
    return ""


@dataclass(frozen=True)
class QuietOutcome:
    """A connect, a quiet period, then one message from A to B: did the hole survive?"""

    outcome: Outcome
    connected_at: float | None
    sent_at: float | None
    packet: int | None
    """Id of the message sent after the quiet period."""
    delivered: bool
    message: bytes = b"hello"

    @property
    def trace(self) -> Trace:
        """The whole run's trace."""
        return self.outcome.trace

    def explain(self) -> str:
        """What happened to the message after the quiet period, from the trace."""
        if self.connected_at is None or self.sent_at is None:
            return "The peers never connected, so there was no hole to keep. " + self.outcome.explain()
        quiet = self.sent_at - self.connected_at
        start = f"Connected at {self.connected_at:.3f} s, quiet for {quiet:.1f} s, then A sent {self.message!r}"
        index = _Index(self.outcome.trace)
        keepalives = sum(1 for r in self.outcome.trace if r.action is Action.SEND and r.kind == "keepalive"
                         and r.actor.startswith("peer") and self.connected_at < r.time < self.sent_at)
        kept = f" ({keepalives} peer keep-alives went out meanwhile)"
        if self.delivered:
            return start + f" and B received it{kept}: the mappings never went 30 s without an outbound packet."
        fate = index.fates.get(self.packet) if self.packet is not None else None
        if fate is None or fate.action is not Action.DROP:
            return start + f"{kept}, and it did not arrive."
        gloss = GLOSS.get(fate.detail, "")
        return start + f"{kept}; it was dropped at {fate.actor} ({fate.detail}){': ' + gloss if gloss else ''}."
