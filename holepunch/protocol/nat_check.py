"""The NAT behaviour check as a sans-IO client machine (RFC 5780 §4.3-4.4, verdict in RFC 4787 terms).

Rule: only replies that arrive count. Phases run in an order that keeps the tests honest:
BASIC (test I from socket 0: observed endpoint and the server's alternates), MAPPING (socket 1 to
the primary, its first mapping giving the allocation delta; socket 0 to each alternate), then
FILTERING on socket 1, which has sent to the primary only, so no filter is open for the
alternates (and a NAT that claims ports on unsolicited packets, like Linux conntrack, cannot spoil
socket 0's mapping test: it is over). Every probe is retransmitted (RFC 5780 §4.3 leaves loss to the client); no reply
within the window means filtered. "full cone" needs an alternate address reply: pystun3's mistake
(trusting a CHANGE-REQUEST modern servers ignore) cannot happen here.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from .discovery import (
    DiscoveryKind,
    Probe,
    ProbeReply,
    Via,
    decode_discovery,
    encode_discovery,
    is_discovery,
)
from .endpoint import Endpoint
from .messages import MessageError, Transmit

RETRANSMIT_INTERVAL = 0.25  # seconds between copies of one probe
COPIES = 4  # copies of each probe: 4 over 0.75 s, then wait one more interval (~1 s in all)


class MappingBehavior(str, enum.Enum):
    """RFC 4787 §4.1 mapping, with the simulator's axis names."""

    EIM = "endpoint-independent"
    ADM = "address-dependent"
    APDM = "address-and-port-dependent"


class FilteringBehavior(str, enum.Enum):
    """RFC 4787 §5 filtering, with the simulator's axis names."""

    EIF = "endpoint-independent"
    ADF = "address-dependent"
    APDF = "address-and-port-dependent"


class CheckPhase(enum.Enum):
    """Where the check is."""

    IDLE = "idle"
    BASIC = "basic"
    MAPPING = "mapping"
    FILTERING = "filtering"
    DONE = "done"


@dataclass(frozen=True)
class NatVerdict:
    """What the check found; None means untested (no alternate socket, or no reply)."""

    server: Endpoint
    local: Endpoint | None
    observed: Endpoint | None
    mapping: MappingBehavior | None = None
    filtering: FilteringBehavior | None = None
    preserving: bool | None = None
    delta: int | None = None
    classic_name: str = "unknown"
    alt_port_tested: bool = False
    alt_address_tested: bool = False
    notes: tuple[str, ...] = ()

    @property
    def nat(self) -> bool | None:
        """True behind a NAT, False if the server sees our own endpoint, None if unknown."""
        if self.observed is None or self.local is None:
            return None
        return self.observed != self.local

    @property
    def hard(self) -> bool | None:
        """For `PeerClient.nat_hard`: True when the mapping depends on the destination (a new
        port per remote, so birthday probing's hard half), None when untested."""
        if self.observed is not None and self.observed == self.local:
            return False
        return None if self.mapping is None else self.mapping is not MappingBehavior.EIM

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (enum members as their RFC 4787 text)."""
        return {
            "server": str(self.server), "local": _text(self.local), "observed": _text(self.observed),
            "nat": self.nat, "hard": self.hard, "mapping": _name(self.mapping), "filtering": _name(self.filtering),
            "preserving": self.preserving, "delta": self.delta, "classic_name": self.classic_name,
            "alt_port_tested": self.alt_port_tested, "alt_address_tested": self.alt_address_tested,
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """The verdict as lines for people: RFC 4787 terms, then the classic name."""
        def axis(value: enum.Enum | None) -> str:
            return "untested" if value is None else f"{value.name} ({value.value})"
        lines = [f"server:      {self.server}", f"local:       {_text(self.local) or 'unknown'}",
                 f"observed:    {_text(self.observed) or 'no reply'}",
                 f"mapping:     {axis(self.mapping)}", f"filtering:   {axis(self.filtering)}",
                 f"port:        {_yes_no(self.preserving, 'preserved', 'not preserved')}",
                 f"delta:       {'unknown' if self.delta is None else self.delta}",
                 f"verdict:     {self.classic_name}"]
        return "\n".join(lines + [f"note:        {note}" for note in self.notes])


def _text(endpoint: Endpoint | None) -> str | None:
    return None if endpoint is None else str(endpoint)


def _name(value: enum.Enum | None) -> str | None:
    return None if value is None else value.name


def _yes_no(value: bool | None, yes: str, no: str) -> str:
    return "unknown" if value is None else yes if value else no


@dataclass
class _Probe:
    """One outstanding probe and its retransmissions."""

    destination: Endpoint
    via: int
    reply_from: Via
    expect_from: Endpoint
    next_send: float
    copies_left: int = COPIES
    reply: ProbeReply | None = None


class NatChecker:
    """Runs the discovery tests against a `DiscoveryResponder` at `server`; read `verdict` when done."""

    def __init__(self, server: Endpoint, *, local: Endpoint | None = None, alt_address: str | None = None,
                 rng: random.Random | None = None) -> None:
        self.server = server
        self.local = local
        """Our socket's own endpoint (the driver knows it): "no NAT" and port preservation need it."""
        self.alt_address = alt_address
        """Overrides the alternate address the server announces (e.g. its public one)."""
        self.phase = CheckPhase.IDLE
        self._rng = rng or random.Random(0)
        self._probes: dict[bytes, tuple[str, _Probe]] = {}
        self._replies: dict[str, ProbeReply | None] = {}
        """Replies gathered so far, by test name ("basic", "map-port", "filter-address", ...)."""
        self._deadline: float | None = None
        self._out: list[Transmit] = []
        self._events: deque[Any] = deque()
        self._verdict: NatVerdict | None = None

    # --- the machine interface ----------------------------------------------------------------

    def sockets_wanted(self) -> int:
        """One extra local socket: its first mapping measures the allocation delta."""
        return 1

    def start(self, now: float) -> None:
        """Begin with test I: one probe to the primary socket."""
        self.phase = CheckPhase.BASIC
        self._add("basic", self.server, 0, Via.SAME, self.server, now)

    def receive_datagram(self, data: bytes, source: Endpoint, now: float, via: int = 0) -> None:
        """Record a reply that matches an outstanding probe and came from where we asked; never raises."""
        if not is_discovery(data):
            return
        try:
            msg = decode_discovery(data)
        except MessageError:
            return
        entry = self._probes.get(msg.request_id) if isinstance(msg, ProbeReply) else None
        if entry is None or entry[1].reply is not None:
            return
        test, probe = entry
        if source != probe.expect_from or via != probe.via:
            return  # only what arrives from the socket we asked for counts
        probe.reply = msg  # type: ignore[assignment]
        self._replies[test] = msg  # type: ignore[assignment]
        if all(p.reply is not None for _, p in self._probes.values()):
            self._advance(now)

    def handle_timer(self, now: float) -> None:
        """Retransmit what is due; end the phase at its deadline."""
        if self._deadline is not None and now >= self._deadline:
            self._advance(now)
            return
        for _, probe in self._probes.values():
            if probe.reply is None and probe.copies_left and probe.next_send <= now:
                self._send(probe, now)

    def get_timer(self) -> float | None:
        """The next retransmission or the phase deadline."""
        if self.phase in (CheckPhase.IDLE, CheckPhase.DONE):
            return None
        times = [p.next_send for _, p in self._probes.values() if p.reply is None and p.copies_left]
        return min(times + ([self._deadline] if self._deadline is not None else []))

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        """Probes queued since the last call."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Any:
        """The check reports through `verdict`, not events."""
        return self._events.popleft() if self._events else None

    @property
    def done(self) -> bool:
        """True once the verdict is in."""
        return self.phase is CheckPhase.DONE

    @property
    def verdict(self) -> NatVerdict | None:
        """The verdict, once `done`."""
        return self._verdict

    # --- phases -------------------------------------------------------------------------------

    def _add(self, test: str, destination: Endpoint, via: int, reply_from: Via, expect: Endpoint, now: float) -> None:
        request_id = self._rng.randbytes(4)
        while request_id in self._probes:
            request_id = self._rng.randbytes(4)
        probe = _Probe(destination, via, reply_from, expect, now)
        self._probes[request_id] = (test, probe)
        self._send(probe, now, request_id)
        self._deadline = now + COPIES * RETRANSMIT_INTERVAL

    def _send(self, probe: _Probe, now: float, request_id: bytes | None = None) -> None:
        if request_id is None:
            request_id = next(r for r, (_, p) in self._probes.items() if p is probe)
        data = encode_discovery(Probe(request_id, probe.reply_from))
        self._out.append(Transmit(data, probe.destination, DiscoveryKind.PROBE, probe.via))  # type: ignore[arg-type]
        probe.copies_left -= 1
        probe.next_send = now + RETRANSMIT_INTERVAL

    def _advance(self, now: float) -> None:
        """Close the current phase and open the next one (skipping those without alternates)."""
        self._probes.clear()
        self._deadline = None
        basic = self._replies.get("basic")
        if self.phase is CheckPhase.BASIC and basic is not None:
            self.phase = CheckPhase.MAPPING
            self._start_mapping(basic, now)
            return
        if self.phase is CheckPhase.MAPPING and basic is not None and self._replies.get("second-socket"):
            self.phase = CheckPhase.FILTERING
            if self._start_filtering(basic, now):
                return
        self.phase = CheckPhase.DONE
        self._verdict = self._conclude()

    def _alternates(self, basic: ProbeReply) -> tuple[Endpoint | None, Endpoint | None]:
        alt_port = Endpoint(self.server.host, basic.alt_port) if basic.alt_port else None
        address = self.alt_address or basic.alt_address
        alt_address = Endpoint(address, self.server.port) if address else None
        return alt_port, alt_address

    def _start_filtering(self, basic: ProbeReply, now: float) -> bool:
        """From socket 1, ask the primary to answer from each alternate (RFC 5780 §4.4 tests II, III)."""
        alt_port, alt_address = self._alternates(basic)
        if alt_address is not None:
            self._add("filter-address", self.server, 1, Via.ALT_ADDRESS, alt_address, now)
        if alt_port is not None:
            self._add("filter-port", self.server, 1, Via.ALT_PORT, alt_port, now)
        return bool(self._probes)

    def _start_mapping(self, basic: ProbeReply, now: float) -> None:
        """New mappings in a known order: second socket first (the delta), then the alternates."""
        self._add("second-socket", self.server, 1, Via.SAME, self.server, now)
        alt_port, alt_address = self._alternates(basic)
        if alt_address is not None:
            self._add("map-address", alt_address, 0, Via.SAME, alt_address, now)
        if alt_port is not None:
            self._add("map-port", alt_port, 0, Via.SAME, alt_port, now)

    def _conclude(self) -> NatVerdict:
        return conclude(self.server, self.local, self._replies)


def conclude(server: Endpoint, local: Endpoint | None, replies: dict[str, ProbeReply | None]) -> NatVerdict:
    """Turn the replies of each test into a verdict (pure: the unit tests feed it by hand)."""
    basic = replies.get("basic")
    if basic is None:
        return NatVerdict(server, local, None, notes=("the server did not answer",))
    observed = basic.observed
    tested_port, tested_address = bool(basic.alt_port), bool(basic.alt_address)
    notes: list[str] = []
    mapping = _mapping(observed, replies, tested_port, tested_address, notes)
    filtering = _filtering(replies, tested_port, tested_address, notes)
    second = replies.get("second-socket")
    delta = None if second is None else second.observed.port - observed.port
    preserving = None if local is None else observed.port == local.port
    name = _classic(local, observed, mapping, filtering)
    return NatVerdict(server, local, observed, mapping, filtering, preserving, delta, name,
                      tested_port, tested_address, tuple(notes))


def _mapping(observed: Endpoint, replies: dict[str, ProbeReply | None], tested_port: bool, tested_address: bool,
             notes: list[str]) -> MappingBehavior | None:
    """RFC 5780 §4.3, with our sockets: same endpoint to another address => EIM, same address => ADM."""
    if not tested_port and not tested_address:
        notes.append("the server has no alternate port or address: mapping and filtering untested")
        return None
    by_address = replies.get("map-address")
    by_port = replies.get("map-port")
    if (tested_address and by_address is None) or (tested_port and by_port is None):
        notes.append("a mapping probe got no reply")
        return None
    same_port = by_port is None or by_port.observed == observed
    if by_address is not None and by_address.observed != observed:
        if by_port is None:
            notes.append("no alternate port: ADM and APDM look alike (reported APDM)")
        return MappingBehavior.ADM if by_port is not None and same_port else MappingBehavior.APDM
    if not same_port:
        return MappingBehavior.APDM
    if not tested_address:
        notes.append("no alternate address: EIM and ADM look alike (reported EIM)")
    return MappingBehavior.EIM


def _filtering(replies: dict[str, ProbeReply | None], tested_port: bool, tested_address: bool,
               notes: list[str]) -> FilteringBehavior | None:
    """RFC 5780 §4.4: a reply from the alternate address => EIF, from the alternate port => ADF."""
    if not tested_port and not tested_address:
        return None
    if replies.get("second-socket") is None:
        notes.append("the second socket got no reply: filtering untested")
        return None  # the filtering probes go from that socket, so they never ran
    if replies.get("filter-address") is not None:
        return FilteringBehavior.EIF
    if tested_port and replies.get("filter-port") is not None:
        if not tested_address:
            notes.append("no alternate address: EIF and ADF look alike (reported ADF, never full cone)")
        return FilteringBehavior.ADF
    if not tested_port:
        notes.append("no alternate port: ADF and APDF look alike (reported APDF)")
    return FilteringBehavior.APDF


def _classic(local: Endpoint | None, observed: Endpoint, mapping: MappingBehavior | None,
             filtering: FilteringBehavior | None) -> str:
    """RFC 3489 names: any non-EIM mapping is "symmetric"; cones need a tested filtering."""
    if local is not None and observed == local:
        return "no NAT"
    if mapping is None:
        return "unknown"
    if mapping is not MappingBehavior.EIM:
        return "symmetric"
    return {None: "cone (filtering untested)", FilteringBehavior.EIF: "full cone",
            FilteringBehavior.ADF: "restricted cone", FilteringBehavior.APDF: "port-restricted cone"}[filtering]
