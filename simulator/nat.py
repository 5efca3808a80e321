"""NAT behaviour as RFC 4787 axes, and the NAT table that applies it to packets.

Rule: the classic names (full cone, symmetric, ...) are only presets (see `presets.py`); the
table knows nothing but the axes: mapping (RFC 4787 §4.1), port allocation (§4.2), mapping
refresh (§4.3: outbound packets only), filtering (§5) and hairpinning (§6). `outbound` and
`inbound` do no I/O and read no clock: `now` is a parameter and randomness comes from the
injected `random.Random`, so the same inputs give the same table.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from holepunch.protocol.endpoint import Endpoint

from .packet import Packet

NO_MAPPING = "no mapping"
EXPIRED = "mapping expired"
HAIRPIN_OFF = "hairpin not supported"


class Mapping(str, enum.Enum):
    """RFC 4787 §4.1: which outbound packets share one external endpoint."""

    EIM = "endpoint-independent"  # one external endpoint per internal endpoint
    ADM = "address-dependent"  # ... per internal endpoint and remote address
    APDM = "address-and-port-dependent"  # ... per internal endpoint and remote endpoint


class Filtering(str, enum.Enum):
    """RFC 4787 §5: which inbound packets a mapping lets in."""

    EIF = "endpoint-independent"  # anyone
    ADF = "address-dependent"  # addresses the inside has sent to
    APDF = "address-and-port-dependent"  # endpoints the inside has sent to


class PortAllocation(str, enum.Enum):
    """RFC 4787 §4.2.1: how the external port of a new mapping is chosen."""

    PRESERVE = "preserving"  # keep the internal port if free, else a random one
    SEQUENTIAL = "sequential"  # next port, stepping by `port_delta`
    RANDOM = "random"  # a random free port (RFC 6056 style)


FILTERED = {
    Filtering.EIF: "filtered (endpoint-independent)",  # cannot happen: EIF lets everyone in
    Filtering.ADF: "filtered (address dependent)",
    Filtering.APDF: "filtered (address-and-port dependent)",
}

E = TypeVar("E", bound=enum.Enum)


def _coerce(kind: type[E], value: object) -> E:
    """Accept an enum member, its name ("EIM") or its value ("endpoint-independent")."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str) and value in kind.__members__:
        return kind[value]
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(kind.__members__)
        raise ValueError(f"{value!r} is not a {kind.__name__}; use one of {names}") from None


@dataclass(frozen=True)
class NatBehavior:
    """One NAT's behaviour on every RFC 4787 axis; presets are instances of this."""

    name: str
    mapping: Mapping = Mapping.EIM
    filtering: Filtering = Filtering.APDF
    allocation: PortAllocation = PortAllocation.PRESERVE
    port_delta: int = 1
    """Step between consecutive ports under sequential allocation (RFC 4787 §4.2.1)."""
    timeout: float = 30.0
    """Seconds a mapping lives after its last outbound packet (RFC 4787 §4.3; REQ-5 asks for
    at least 120 s, but 30 s is what many NATs and Linux conntrack's UDP default do)."""
    hairpinning: bool = True
    """Loop inside-to-own-public-address packets back in (RFC 4787 §6, REQ-9)."""
    hairpin_filtering: bool = True
    """Filter a hairpinned packet like an inbound one (RFC 4787 §6 leaves it open). False: it
    reaches whichever inside endpoint holds the public port, as Linux hairpin NAT built from DNAT
    does (the real lab's NATs), and never claims a port (it never reaches the NAT itself)."""
    per_flow: bool = False
    """Keep one row per (internal, remote) flow, as Linux conntrack does: a port is then taken
    only towards the remotes that use it, so two flows may share an external port."""
    claim_unsolicited: bool = False
    """Linux without an input drop rule: an unsolicited inbound packet creates a conntrack entry
    on the NAT itself, which reserves (public port, remote) so no flow can use that pair."""
    translates: bool = True
    """False for "no NAT": the host sits on the public segment and nothing is rewritten."""
    ports: tuple[int, int] = (1024, 65535)
    """Inclusive range for random and sequential ports; sequential starts at the low end."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "mapping", _coerce(Mapping, self.mapping))
        set_(self, "filtering", _coerce(Filtering, self.filtering))
        set_(self, "allocation", _coerce(PortAllocation, self.allocation))
        if not self.name:
            raise ValueError("a NAT behaviour needs a name")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, got {self.timeout!r}")
        if self.port_delta == 0:
            raise ValueError("port_delta must not be 0")
        low, high = self.ports
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"ports must be a range within 1..65535, got {self.ports!r}")
        if self.claim_unsolicited and not self.per_flow:
            raise ValueError("claim_unsolicited models conntrack and needs per_flow=True")

    def describe(self) -> str:
        """The axes in one line, e.g. "EIM + APDF, preserving ports, 30 s, hairpinning"."""
        if not self.translates:
            return "no NAT"
        ports = self.allocation.value + " ports"
        if self.allocation is PortAllocation.SEQUENTIAL:
            ports += f" (delta {self.port_delta})"
        parts = [f"{self.mapping.name} + {self.filtering.name}", ports, f"{self.timeout:g} s"]
        parts.append("hairpinning" if self.hairpinning else "no hairpinning")
        if self.per_flow:
            parts.append("per-flow (conntrack)")
        return ", ".join(parts)


@dataclass(frozen=True)
class MappingRow:
    """One row of the NAT table, as a learner sees it in a widget."""

    internal: Endpoint | None
    """The inside endpoint; None for a conntrack entry that belongs to the NAT itself."""
    external: Endpoint
    remote: str
    """The remote the mapping is keyed on: "" under EIM, an address (ADM), an endpoint (APDM)."""
    created: float
    refreshed: float
    expires: float
    permits: tuple[str, ...]
    """Who may send in: ("any",) under EIF, else the addresses or endpoints sent to."""
    note: str = ""

    def to_text(self) -> str:
        """One aligned line."""
        inside = str(self.internal) if self.internal is not None else "(NAT itself)"
        remote = self.remote or "*"
        allow = ",".join(self.permits) or "-"
        note = f"  {self.note}" if self.note else ""
        return (f"{inside:<22} {str(self.external):<22} {remote:<22} {self.created:9.3f} "
                f"{self.refreshed:9.3f} {self.expires:9.3f}  {allow}{note}")


class NatVerdict(NamedTuple):
    """What the NAT did: the rewritten packet, or None and the drop reason."""

    packet: Packet | None
    reason: str = ""
    hairpin: bool = False


class _Row:
    """A live or expired mapping inside the table (mutable; `MappingRow` is its frozen view)."""

    __slots__ = ("internal", "external", "remote", "created", "refreshed", "permits")

    def __init__(self, internal: Endpoint, external: Endpoint, remote: object, now: float) -> None:
        self.internal = internal
        self.external = external
        self.remote = remote  # the key part: None (EIM), an address str (ADM), an Endpoint
        self.created = now
        self.refreshed = now
        self.permits: dict[Endpoint, float] = {}


Key = tuple[Endpoint, object]


class NatTable:
    """The mapping table of one NAT with one public address; see the module rule."""

    def __init__(self, behavior: NatBehavior, public_ip: str, rng: random.Random | None = None) -> None:
        self.behavior = behavior
        self.public_ip = public_ip
        self.rng = rng if rng is not None else random.Random(0)
        self._rows: dict[Key, _Row] = {}
        self._by_port: dict[int, list[_Row]] = {}
        self._claims: dict[tuple[int, Endpoint], _Row] = {}
        self._next_port = behavior.ports[0]

    # --- packets ------------------------------------------------------------------------------

    def outbound(self, pkt: Packet, now: float) -> NatVerdict:
        """Translate a packet leaving the inside: find or create its mapping, refresh it."""
        if not self.behavior.translates:
            return NatVerdict(pkt)
        if pkt.destination.host == self.public_ip:
            return self._hairpin(pkt, now)
        row = self._outbound_row(pkt.source, pkt.destination, now)
        return NatVerdict(pkt.with_source(row.external))

    def inbound(self, pkt: Packet, now: float) -> NatVerdict:
        """Translate a packet arriving from outside, or say why it is dropped."""
        if not self.behavior.translates:
            return NatVerdict(pkt)
        port, source = pkt.destination.port, pkt.source
        rows = self._by_port.get(port) if pkt.destination.host == self.public_ip else None
        timeout = self.behavior.timeout
        live = [r for r in rows if now < r.refreshed + timeout] if rows else []
        if live:
            row = self._permitting(live, source)
            if row is not None:
                # RFC 4787 §4.3: inbound packets do not refresh the mapping (REQ-6 is outbound).
                return NatVerdict(pkt.with_destination(row.internal))
            reason = FILTERED[self.behavior.filtering]
        else:
            reason = EXPIRED if rows else NO_MAPPING
        if self.behavior.claim_unsolicited:
            self._claim(port, source, now)
        return NatVerdict(None, reason)

    # --- inspection ---------------------------------------------------------------------------

    def rows(self, now: float, *, include_expired: bool = False) -> list[MappingRow]:
        """The table at time `now`, oldest mapping first; claims (NAT-owned entries) last."""
        timeout = self.behavior.timeout
        out = [self._view(r, timeout, "") for r in self._rows.values()
               if include_expired or now < r.refreshed + timeout]
        note = "claimed by an unsolicited inbound packet"
        out += [self._view(c, timeout, note) for c in self._claims.values()
                if include_expired or now < c.refreshed + timeout]
        return out

    def format(self, now: float, *, include_expired: bool = False) -> str:
        """The table as aligned text, with a header line."""
        head = (f"{'internal':<22} {'external':<22} {'remote':<22} {'created':>9} "
                f"{'refreshed':>9} {'expires':>9}  permits")
        lines = [r.to_text() for r in self.rows(now, include_expired=include_expired)]
        return "\n".join([head, *lines]) + "\n"

    def _view(self, row: _Row, timeout: float, note: str) -> MappingRow:
        remote = "" if row.remote is None else str(row.remote)
        internal = None if note else row.internal
        return MappingRow(internal, row.external, remote, row.created, row.refreshed,
                          row.refreshed + timeout, self._permit_text(row), note)

    def _permit_text(self, row: _Row) -> tuple[str, ...]:
        filtering = self.behavior.filtering
        if filtering is Filtering.EIF:
            return ("any",)
        if filtering is Filtering.ADF:
            return tuple(dict.fromkeys(p.host for p in row.permits))
        return tuple(str(p) for p in row.permits)

    # --- mappings -----------------------------------------------------------------------------

    def _key(self, internal: Endpoint, remote: Endpoint) -> Key:
        if self.behavior.per_flow:
            return (internal, remote)
        mapping = self.behavior.mapping
        if mapping is Mapping.EIM:
            return (internal, None)
        if mapping is Mapping.ADM:
            return (internal, remote.host)
        return (internal, remote)

    def _outbound_row(self, internal: Endpoint, remote: Endpoint, now: float) -> _Row:
        key = self._key(internal, remote)
        row = self._rows.get(key)
        if row is not None and now >= row.refreshed + self.behavior.timeout:
            del self._rows[key]  # expired: the next packet makes a new mapping
            row = None
        if row is None:
            row = _Row(internal, Endpoint(self.public_ip, self._allocate(internal, remote, now)), key[1], now)
            self._rows[key] = row
            self._index(row, now)
        row.refreshed = now  # RFC 4787 §4.3 REQ-6: outbound packets refresh the mapping
        row.permits[remote] = now  # RFC 4787 §5: filtering admits whom the inside sent to
        return row

    def _index(self, row: _Row, now: float) -> None:
        """Add `row` under its port, forgetting expired rows there (their port was reused)."""
        timeout = self.behavior.timeout
        bucket = self._by_port.get(row.external.port, [])
        self._by_port[row.external.port] = [r for r in bucket if now < r.refreshed + timeout] + [row]

    def _permitting(self, live: list[_Row], source: Endpoint) -> _Row | None:
        filtering = self.behavior.filtering
        for row in live:
            if filtering is Filtering.EIF or source in row.permits:
                return row
        if filtering is Filtering.ADF:
            for row in live:
                if any(p.host == source.host for p in row.permits):
                    return row
        return None

    def _claim(self, port: int, source: Endpoint, now: float) -> None:
        """Conntrack race: the NAT confirms an entry of its own for (port, source)."""
        claim = self._claims.get((port, source))
        if claim is None or now >= claim.refreshed + self.behavior.timeout:
            claim = self._claims[(port, source)] = _Row(Endpoint(self.public_ip, port),
                                                        Endpoint(self.public_ip, port), source, now)
            claim.permits[source] = now
        claim.refreshed = now  # conntrack refreshes an entry on every packet that matches it

    # --- port allocation ----------------------------------------------------------------------

    def _allocate(self, internal: Endpoint, remote: Endpoint, now: float) -> int:
        """RFC 4787 §4.2: preferred ports first (kept mapping, preserved port), then a fresh one."""
        for port in self._preferred(internal, remote, now):
            if not self._taken(port, remote, now):
                return port
        return self._fresh_port(remote, now)

    def _preferred(self, internal: Endpoint, remote: Endpoint, now: float) -> list[int]:
        behavior = self.behavior
        ports: list[int] = []
        if behavior.per_flow and behavior.mapping is not Mapping.APDM:
            # Conntrack keeps flows of one socket on one port while it can: EIM as observed.
            same_host = behavior.mapping is Mapping.ADM
            for (inside, other), row in self._rows.items():
                if inside == internal and now < row.refreshed + behavior.timeout:
                    if not same_host or getattr(other, "host", None) == remote.host:
                        ports.append(row.external.port)
        if behavior.allocation is PortAllocation.PRESERVE:
            ports.append(internal.port)
        return ports

    def _taken(self, port: int, remote: Endpoint, now: float) -> bool:
        timeout = self.behavior.timeout
        rows = self._by_port.get(port, ())
        if not self.behavior.per_flow:
            return any(now < r.refreshed + timeout for r in rows)
        claim = self._claims.get((port, remote))
        if claim is not None and now < claim.refreshed + timeout:
            return True
        return any(r.remote == remote and now < r.refreshed + timeout for r in rows)

    def _fresh_port(self, remote: Endpoint, now: float) -> int:
        low, high = self.behavior.ports
        size = high - low + 1
        if self.behavior.allocation is PortAllocation.SEQUENTIAL:
            for _ in range(size):
                port, self._next_port = self._next_port, low + (self._next_port - low + self.behavior.port_delta) % size
                if not self._taken(port, remote, now):
                    return port
        else:
            for _ in range(64):
                port = self.rng.randint(low, high)
                if not self._taken(port, remote, now):
                    return port
            for port in range(low, high + 1):
                if not self._taken(port, remote, now):
                    return port
        raise RuntimeError(f"NAT {self.behavior.name}: no free external port left")

    # --- hairpinning --------------------------------------------------------------------------

    def _holder(self, port: int, now: float) -> Endpoint | None:
        """The inside endpoint of the oldest live mapping on a public port, if any."""
        timeout = self.behavior.timeout
        live = [r for r in self._by_port.get(port, ()) if now < r.refreshed + timeout]
        return live[0].internal if live else None

    def _hairpin(self, pkt: Packet, now: float) -> NatVerdict:
        """RFC 4787 §6: translate the source as for any outbound packet, then treat it as inbound
        (or, without hairpin filtering, hand it to whoever holds the public port)."""
        if not self.behavior.hairpinning:
            return NatVerdict(None, HAIRPIN_OFF)
        row = self._outbound_row(pkt.source, pkt.destination, now)
        if not self.behavior.hairpin_filtering:
            holder = self._holder(pkt.destination.port, now)
            if holder is None:
                return NatVerdict(None, NO_MAPPING)
            return NatVerdict(pkt.with_source(row.external).with_destination(holder), hairpin=True)
        verdict = self.inbound(pkt.with_source(row.external), now)
        if verdict.packet is None:
            return verdict
        return NatVerdict(verdict.packet, hairpin=True)
