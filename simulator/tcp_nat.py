"""TCP through NATs (RFC 5382): sessions with conntrack-like states and timeouts, and the network that carries them.

Rule: a TCP session is one connection through a NAT, keyed by (inside endpoint, remote endpoint).
Its public port comes from a `NatTable` for the NAT's own `NatBehavior` (mapping and port
allocation, REQ-1), kept apart from the UDP table as NATs keep per-protocol state. A session
lives for the transitory idle-timeout while it opens or closes and for the established one once
established (REQ-5), refreshed by segments either way, as conntrack does. A SYN from outside that
matches no session opens one only if a live session holds that public port and the filtering
admits the sender (REQ-3); else it is unsolicited and, by `TcpNatPolicy`, dropped silently
(REQ-4) or answered with RST (the NAT box's own stack, as Linux without an input drop rule).
Any other segment without a session is dropped: conntrack calls it INVALID. The tables are pure
(`now` is a parameter, randomness from the injected rng); `TcpNetwork` routes segments through
them and records every hop like a UDP datagram.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from dataclasses import dataclass
from typing import NamedTuple

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action

from .link import LinkProfile
from .nat import EXPIRED, FILTERED, NO_MAPPING, Filtering, NatBehavior, NatTable
from .network import Host, NatBox, Network
from .packet import Packet
from .scheduler import Scheduler
from .tcp import Segment, SegmentKind, TcpStack, TcpStackConfig, segment_summary

RST_SENT = "RST sent (unsolicited SYN)"
NO_SESSION = "no TCP session (not a SYN)"
HAIRPIN_TCP = "hairpinning is not modelled for TCP"
RESET_SESSION = "session reset (a SYN back on a connection the NAT saw reset)"


@dataclass(frozen=True)
class TcpNatPolicy:
    """The TCP-only behaviour of a NAT, next to its `NatBehavior` (which stays UDP's and TCP's mapping)."""

    rst_unsolicited: bool = False
    """Answer an unsolicited inbound SYN with RST at once (the box's own stack, as Linux does
    without a `ct state new` drop rule on the WAN input); False drops it silently (RFC 5382
    REQ-4a). Either way the SYN does not get in."""
    transitory_timeout: float = 240.0
    """Idle seconds a session lives while opening or closing (RFC 5382 REQ-5: at least 4 min)."""
    established_timeout: float = 7440.0
    """Idle seconds an established session lives (RFC 5382 REQ-5: at least 2 h 4 min)."""

    def __post_init__(self) -> None:
        for name in ("transitory_timeout", "established_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")


class SessionState(enum.Enum):
    """Where a session is, as Linux conntrack names it (nf_conntrack_proto_tcp.c)."""

    SYN_SENT = "SYN_SENT"  # a SYN seen from the side that opened the session
    SYN_SENT2 = "SYN_SENT2"  # the other side's SYN too: the SYNs crossed (simultaneous open)
    SYN_RECV = "SYN_RECV"  # a SYN-ACK answered a SYN
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT = "FIN_WAIT"  # one side sent FIN
    TIME_WAIT = "TIME_WAIT"  # both sides sent FIN
    CLOSE = "CLOSE"  # reset


class Direction(enum.Enum):
    """A segment's direction relative to the session's first SYN."""

    ORIGINAL = "original"
    REPLY = "reply"


SS, SK, D = SessionState, SegmentKind, Direction
SESSION_TRANSITIONS: dict[tuple[SessionState, SegmentKind, Direction], SessionState] = {
    (SS.SYN_SENT, SK.SYN, D.REPLY): SS.SYN_SENT2,
    (SS.SYN_SENT, SK.SYN_ACK, D.REPLY): SS.SYN_RECV,
    (SS.SYN_SENT2, SK.SYN_ACK, D.ORIGINAL): SS.SYN_RECV,
    (SS.SYN_SENT2, SK.SYN_ACK, D.REPLY): SS.SYN_RECV,
    **{(SS.SYN_RECV, kind, d): SS.ESTABLISHED for kind in (SK.ACK, SK.DATA) for d in D},
    **{(SS.ESTABLISHED, SK.FIN, d): SS.FIN_WAIT for d in D},
    **{(SS.FIN_WAIT, SK.FIN, d): SS.TIME_WAIT for d in D},
    **{(state, SK.RST, d): SS.CLOSE for state in SS for d in D},
}
"""(state, segment, direction) -> next state; pairs not listed leave the state as it is."""
REOPENABLE = frozenset({SS.CLOSE, SS.TIME_WAIT})
"""States in which a new SYN for the same endpoints starts a new session."""


@dataclass(frozen=True)
class TcpSessionRow:
    """One session of a NAT's TCP table, as a learner sees it."""

    internal: Endpoint
    external: Endpoint
    remote: Endpoint
    state: SessionState
    opened_by: str
    """"inside" or "outside": who sent the first SYN."""
    created: float
    refreshed: float
    expires: float

    def to_text(self) -> str:
        """One aligned line."""
        return (f"{self.internal!s:<22} {self.external!s:<22} {self.remote!s:<22} "
                f"{self.state.value:<11} {self.opened_by:<7} {self.created:9.3f} {self.refreshed:9.3f} "
                f"{self.expires:9.3f}")


class TcpVerdict(NamedTuple):
    """What the NAT did with a segment: the rewritten packet, or None, why, and whether it sent RST."""

    packet: Packet | None
    reason: str = ""
    rst: bool = False
    state: SessionState | None = None


class _Session:
    __slots__ = ("created", "external", "inside", "internal", "refreshed", "remote", "state")

    def __init__(self, internal: Endpoint, external: Endpoint, remote: Endpoint, inside: bool, now: float) -> None:
        self.internal, self.external, self.remote = internal, external, remote
        self.state = SS.SYN_SENT
        self.inside = inside  # the first SYN came from inside
        self.created = self.refreshed = now


class TcpNatTable:
    """The TCP sessions of one NAT with one public address; see the module rule."""

    def __init__(self, behavior: NatBehavior, public_ip: str, policy: TcpNatPolicy | None = None,
                 rng: random.Random | None = None) -> None:
        self.behavior = behavior
        self.policy = policy or TcpNatPolicy()
        self.public_ip = public_ip
        longest = max(self.policy.transitory_timeout, self.policy.established_timeout)
        self.mappings = NatTable(dataclasses.replace(behavior, timeout=longest), public_ip, rng)
        """Chooses public ports (REQ-1); sessions decide how long they are used."""
        self._sessions: dict[tuple[Endpoint, Endpoint], _Session] = {}
        self._by_public: dict[tuple[int, Endpoint], _Session] = {}
        self._ports: dict[int, list[_Session]] = {}

    # --- segments -----------------------------------------------------------------------------

    def outbound(self, pkt: Packet, now: float) -> TcpVerdict:
        """Translate a segment leaving the inside; a SYN opens (or reopens) its session."""
        if not self.behavior.translates:
            return TcpVerdict(pkt)
        if pkt.destination.host == self.public_ip:
            return TcpVerdict(None, HAIRPIN_TCP)
        kind, known = _kind(pkt), self._sessions.get((pkt.source, pkt.destination))
        session = self._live(known, now)
        if session is None or (kind is SK.SYN and session.state in REOPENABLE):
            if kind is not SK.SYN:
                return TcpVerdict(None, NO_SESSION if known is None else EXPIRED)
            translated = self.mappings.outbound(pkt, now).packet
            assert translated is not None  # a translating table always maps outbound packets
            session = self._open(pkt.source, translated.source, pkt.destination, True, now)
        elif session.inside:
            self.mappings.outbound(pkt, now)  # keep the mapping row fresh: same key, same port
        self._advance(session, kind, D.ORIGINAL if session.inside else D.REPLY, now)
        return TcpVerdict(pkt.with_source(session.external), state=session.state)

    def inbound(self, pkt: Packet, now: float) -> TcpVerdict:
        """Translate a segment from outside, or say why it is dropped (and whether RST goes back)."""
        if not self.behavior.translates:
            return TcpVerdict(pkt)
        kind, port, remote = _kind(pkt), pkt.destination.port, pkt.source
        if pkt.destination.host != self.public_ip:
            return TcpVerdict(None, NO_MAPPING)
        session = self._live(self._by_public.get((port, remote)), now)
        if kind is SK.SYN and session is not None and session.inside and session.state is SS.CLOSE:
            # conntrack: a SYN in the reply direction of a reset entry is INVALID (sCL -> sIV in
            # nf_conntrack_proto_tcp.c); it matches that entry, so no other session takes it in
            return TcpVerdict(None, RESET_SESSION, rst=self.policy.rst_unsolicited)
        if session is None or (kind is SK.SYN and session.state in REOPENABLE):
            if kind is not SK.SYN:
                return TcpVerdict(None, self._refusal(port, remote, now, NO_SESSION))
            holder = self._admitting(port, remote, now)
            if holder is None:  # unsolicited (RFC 5382 REQ-4)
                reason = self._refusal(port, remote, now, FILTERED[self.behavior.filtering])
                return TcpVerdict(None, reason, rst=self.policy.rst_unsolicited)
            session = self._open(holder.internal, pkt.destination, remote, False, now)
        self._advance(session, kind, D.REPLY if session.inside else D.ORIGINAL, now)
        return TcpVerdict(pkt.with_destination(session.internal), state=session.state)

    # --- inspection ---------------------------------------------------------------------------

    def sessions(self, now: float, *, include_expired: bool = False) -> list[TcpSessionRow]:
        """The sessions at time `now`, oldest first."""
        return [self._view(s) for s in self._sessions.values()
                if include_expired or now < self._expires(s)]

    def format(self, now: float, *, include_expired: bool = False) -> str:
        """The sessions as aligned text, with a header line."""
        head = (f"{'internal':<22} {'external':<22} {'remote':<22} {'state':<11} {'opened':<7} "
                f"{'created':>9} {'refreshed':>9} {'expires':>9}")
        lines = [r.to_text() for r in self.sessions(now, include_expired=include_expired)]
        return "\n".join([head, *lines]) + "\n"

    def _view(self, s: _Session) -> TcpSessionRow:
        return TcpSessionRow(s.internal, s.external, s.remote, s.state, "inside" if s.inside else "outside",
                             s.created, s.refreshed, self._expires(s))

    # --- sessions -----------------------------------------------------------------------------

    def _expires(self, s: _Session) -> float:
        policy = self.policy
        idle = policy.established_timeout if s.state is SS.ESTABLISHED else policy.transitory_timeout
        return s.refreshed + idle

    def _live(self, session: _Session | None, now: float) -> _Session | None:
        return session if session is not None and now < self._expires(session) else None

    def _open(self, internal: Endpoint, external: Endpoint, remote: Endpoint, inside: bool, now: float) -> _Session:
        session = _Session(internal, external, remote, inside, now)
        self._sessions[(internal, remote)] = session
        self._by_public[(external.port, remote)] = session
        kept = [s for s in self._ports.get(external.port, []) if s.remote != remote or s.internal != internal]
        self._ports[external.port] = kept + [session]
        return session

    def _advance(self, session: _Session, kind: SegmentKind, direction: Direction, now: float) -> None:
        session.state = SESSION_TRANSITIONS.get((session.state, kind, direction), session.state)
        session.refreshed = now  # conntrack refreshes on every segment it accepts, either way

    def _admitting(self, port: int, remote: Endpoint, now: float) -> _Session | None:
        """A live session on `port` whose filtering lets `remote` open a new one (REQ-3)."""
        live = [s for s in self._ports.get(port, []) if now < self._expires(s)]
        filtering = self.behavior.filtering
        for s in live:
            if (filtering is Filtering.EIF or s.remote == remote
                    or (filtering is Filtering.ADF and s.remote.host == remote.host)):
                return s
        return None

    def _refusal(self, port: int, remote: Endpoint, now: float, filtered: str) -> str:
        """Why nothing let the segment in: no session ever on the port, all expired, or `filtered`."""
        sessions = self._ports.get(port, [])
        if not sessions:
            return NO_MAPPING
        if all(now >= self._expires(s) for s in sessions):
            return EXPIRED
        return filtered


def _kind(pkt: Packet) -> SegmentKind:
    segment: Segment = pkt.data  # type: ignore[assignment]
    return segment.kind


class TcpNetwork(Network):
    """A `Network` that also carries TCP segments: each host gets a `TcpStack`, each NAT a `TcpNatTable`.

    UDP datagrams take the parent's paths unchanged; a packet whose payload is a `Segment` goes
    through the TCP table of each NAT on its way and ends in the TCP stack of its host.
    """

    def __init__(self, scheduler: Scheduler | None = None, *, seed: int = 0, profile: LinkProfile | None = None,
                 policy: TcpNatPolicy | None = None, stack: TcpStackConfig | None = None) -> None:
        super().__init__(scheduler, seed=seed, profile=profile)
        self.policy = policy or TcpNatPolicy()
        self.stack_config = stack or TcpStackConfig()
        self.tcp_tables: dict[str, TcpNatTable] = {}
        self.stacks: dict[str, TcpStack] = {}

    def add_nat(self, name: str, behavior: NatBehavior, *, behind: NatBox | None = None, lan: str | None = None,
                ip: str | None = None, profile: LinkProfile | None = None,
                policy: TcpNatPolicy | None = None) -> NatBox:
        """A NAT as in `Network.add_nat`, with its TCP table (`policy`: this NAT's, else the network's)."""
        nat = super().add_nat(name, behavior, behind=behind, lan=lan, ip=ip, profile=profile)
        rng = random.Random(f"{self.seed}:tcp-nat:{name}")
        self.tcp_tables[name] = TcpNatTable(behavior, nat.ip, policy or self.policy, rng)
        return nat

    def stack(self, host: Host | str) -> TcpStack:
        """The TCP stack of `host` (made on first use)."""
        node = self.hosts[host] if isinstance(host, str) else host
        if node.name not in self.stacks:
            self.stacks[node.name] = TcpStack(node, self, self.stack_config)
        return self.stacks[node.name]

    def sessions(self, nat: str, *, include_expired: bool = False) -> list[TcpSessionRow]:
        """The TCP sessions of the NAT called `nat`, now."""
        return self.tcp_tables[nat].sessions(self.now, include_expired=include_expired)

    # --- carrying segments --------------------------------------------------------------------

    def send_segment(self, actor: str, source: Endpoint, segment: Segment, destination: Endpoint) -> int:
        """Put a segment on the link of `actor` (a host, or a NAT answering with RST); returns its id."""
        pkt = Packet(next(self._ids), source, destination, segment, segment.kind.value, actor)  # type: ignore[arg-type]
        node: Host | NatBox = self.hosts[actor] if actor in self.hosts else self.nats[actor]
        if isinstance(node, Host):
            self.packets_sent += 1
        self._emit((self.now, actor, Action.SEND, source, destination, pkt.kind,
                    segment_summary(segment), segment.label, pkt.id))
        self._traverse(node.link, pkt, self._at_switch, node.realm)
        return pkt.id

    def record_receive(self, host: Host, pkt: Packet, note: str = "") -> None:
        """The stack took a segment: a RECEIVE record (and who sent it, for outcomes)."""
        segment: Segment = pkt.data  # type: ignore[assignment]
        host.seen_from[pkt.source] = pkt.origin
        summary = "; ".join(text for text in (segment_summary(segment), note) if text)
        self._emit((self.now, host.name, Action.RECEIVE, pkt.source, pkt.destination, pkt.kind,
                    summary, segment.label, pkt.id))

    def record_drop(self, actor: str, pkt: Packet, reason: str) -> None:
        """The stack refused a segment."""
        self._drop(actor, pkt, reason)

    def _outbound(self, nat: NatBox, pkt: Packet) -> None:
        if not isinstance(pkt.data, Segment):
            super()._outbound(nat, pkt)
            return
        verdict = self.tcp_tables[nat.name].outbound(pkt, self.now)
        out = verdict.packet
        if out is None:
            self._drop(nat.name, pkt, verdict.reason, "outbound")
            return
        self._translated(nat, out, "outbound", f"{pkt.source} -> {out.source}, {_state(verdict)}")
        self._traverse(nat.link, out, self._at_switch, nat.realm)

    def _inbound(self, nat: NatBox, pkt: Packet) -> None:
        if not isinstance(pkt.data, Segment):
            super()._inbound(nat, pkt)
            return
        verdict = self.tcp_tables[nat.name].inbound(pkt, self.now)
        out = verdict.packet
        if out is None:
            self._drop(nat.name, pkt, f"{verdict.reason}; {RST_SENT}" if verdict.rst else verdict.reason, "inbound")
            if verdict.rst:
                self.send_segment(nat.name, pkt.destination, Segment(SegmentKind.RST), pkt.source)
            return
        self._translated(nat, out, "inbound", f"{pkt.destination} -> {out.destination}, {_state(verdict)}")
        self._at_switch(out, nat.inside)

    def _deliver(self, host: Host, pkt: Packet) -> None:
        if isinstance(pkt.data, Segment):
            self.stack(host).on_segment(pkt)
        else:
            super()._deliver(host, pkt)


def _state(verdict: TcpVerdict) -> str:
    return f"session {verdict.state.value}" if verdict.state is not None else "session"
