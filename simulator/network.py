"""The simulated network: hosts and NAT boxes in address realms, joined by links.

Rule: every hop of every datagram becomes one frozen `TraceRecord` (send, link, translate,
drop, receive), stamped with the scheduler's time and the packet id; the network itself never
reads a clock or a global rng. A realm is one address space: the public "internet" or the
inside of one NAT, whose switch *is* that NAT. A packet goes up its sender's link to the realm's
switch, then down the link of the member it is addressed to, or out through the realm's NAT.
A host may forge its source address (`spoof=`), as an attacker on a network without BCP 38
ingress filtering can (RFC 2827); the SEND record says so, and the packet's `origin` keeps
the truth for the trace, never for the receiver.
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING, Any, Protocol

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action

from .link import DUPLICATE, Link, LinkProfile
from .nat import NatBehavior, NatTable, MappingRow
from .packet import Packet, summarize
from .recording import LiveTrace
from .scheduler import Scheduler

if TYPE_CHECKING:  # pragma: no cover
    import networkx

NO_ROUTE = "no route"
NO_SOCKET = "port unreachable"
LOST = "lost on link"
PUBLIC_PREFIX = "198.51.100."  # RFC 5737 documentation range


class Receiver(Protocol):
    """What a bound port hands datagrams to (the machine driver)."""

    def on_datagram(self, data: bytes, source: Endpoint, packet: int) -> None: ...


class Realm:
    """One address space: the internet, or the inside of one NAT (`gateway`)."""

    def __init__(self, name: str, prefix: str, *, public: bool) -> None:
        self.name = name
        self.prefix = prefix if prefix.endswith(".") else prefix + "."
        self.gateway: NatBox | None = None
        self.members: dict[str, Host | NatBox] = {}
        if public:  # 10, 20, ... first, so the addresses are easy to tell apart
            order = list(range(10, 251, 10)) + [n for n in range(2, 255) if n % 10]
        else:  # private: .1 is the NAT's inside address
            order = list(range(2, 255))
        self._free = iter(order)

    def allocate(self, ip: str | None = None) -> str:
        """A free address in this realm (or check that `ip` is free)."""
        if ip is not None:
            if ip in self.members:
                raise ValueError(f"{ip} is already used in {self.name}")
            return ip
        for last in self._free:
            candidate = f"{self.prefix}{last}"
            if candidate not in self.members:
                return candidate
        raise ValueError(f"no free address left in {self.name}")


class Host:
    """A machine with one address; protocol drivers bind its ports."""

    def __init__(self, network: "Network", name: str, ip: str, realm: Realm, link: Link, role: str) -> None:
        self.network = network
        self.name = name
        self.ip = ip
        self.realm = realm
        self.link = link
        self.role = role
        self.sockets: dict[int, Receiver] = {}
        self.seen_from: dict[Endpoint, str] = {}
        """Source endpoint -> name of the host that sent it, for every datagram received."""

    def endpoint(self, port: int) -> Endpoint:
        """This host's address with `port`."""
        return Endpoint(self.ip, port)

    def bind(self, port: int, receiver: Receiver) -> Endpoint:
        """Deliver datagrams for `port` to `receiver`."""
        if port in self.sockets:
            raise ValueError(f"{self.name}: port {port} is already bound")
        self.sockets[port] = receiver
        return self.endpoint(port)

    def send(self, port: int, data: bytes, destination: Endpoint, kind: str, *,
             spoof: Endpoint | None = None) -> int:
        """Send a datagram from `port` (or forged to come from `spoof`); returns its packet id."""
        return self.network.send(self, port, data, destination, kind, spoof=spoof)

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.ip} in {self.realm.name}>"


class NatBox:
    """A NAT between an inside realm and the realm above it."""

    def __init__(self, name: str, behavior: NatBehavior, table: NatTable, realm: Realm, inside: Realm, link: Link) -> None:
        self.name = name
        self.behavior = behavior
        self.table = table
        self.ip = table.public_ip
        self.realm = realm
        self.inside = inside
        self.link = link

    def rows(self, now: float, *, include_expired: bool = False) -> list[MappingRow]:
        """The NAT table at time `now`."""
        return self.table.rows(now, include_expired=include_expired)

    def __repr__(self) -> str:
        return f"<NatBox {self.name} {self.ip} ({self.behavior.name}) inside {self.inside.prefix}0/24>"


class Network:
    """Builds a topology and carries packets through it, recording every hop in `trace`."""

    def __init__(self, scheduler: Scheduler | None = None, *, seed: int = 0, profile: LinkProfile | None = None) -> None:
        self.scheduler = scheduler if scheduler is not None else Scheduler()
        self.seed = seed
        self.profile = profile or LinkProfile()
        self.trace = LiveTrace()
        self.internet = Realm("internet", PUBLIC_PREFIX, public=True)
        self.hosts: dict[str, Host] = {}
        self.nats: dict[str, NatBox] = {}
        self.links: dict[str, Link] = {}
        self.trace_timers = False
        """Record a TIMER line each time a machine's timer fires (off: traces stay readable)."""
        self._lans = 0
        self.packets_sent = 0
        """Datagrams sent by hosts (copies made by links not counted)."""
        self._ids = itertools.count(1)
        self._emit = self.trace.emit

    @property
    def now(self) -> float:
        """The simulated time."""
        return self.scheduler.now

    # --- building -----------------------------------------------------------------------------

    def add_nat(self, name: str, behavior: NatBehavior, *, behind: NatBox | None = None,
                lan: str | None = None, ip: str | None = None, profile: LinkProfile | None = None) -> NatBox:
        """A NAT on the internet, or behind another NAT (`behind`, e.g. a CGNAT)."""
        if not behavior.translates:
            raise ValueError(f"{behavior.name} translates nothing: add the host with add_host(behind=None)")
        self._check_name(name)
        realm = behind.inside if behind is not None else self.internet
        ip = realm.allocate(ip)
        if lan is None:
            self._lans += 1
            lan = f"10.0.{self._lans}."
        table = NatTable(behavior, ip, random.Random(f"{self.seed}:nat:{name}"))
        link = self._link(_short(name, "wan"), name, realm, profile or self.profile)
        nat = NatBox(name, behavior, table, realm, Realm(f"inside {name}", lan, public=False), link)
        nat.inside.gateway = nat
        realm.members[ip] = nat
        self.nats[name] = nat
        return nat

    def add_host(self, name: str, *, behind: NatBox | None = None, ip: str | None = None,
                 profile: LinkProfile | None = None, role: str = "host") -> Host:
        """A host on the internet, or on the inside of `behind`."""
        self._check_name(name)
        realm = behind.inside if behind is not None else self.internet
        ip = realm.allocate(ip)
        if behind is None:
            link = self._link(_short(name, "wan"), name, realm, profile or self.profile)
        else:
            link = self._link(_short(name, "lan"), name, realm, profile or LinkProfile(latency=0.001))
        host = Host(self, name, ip, realm, link, role)
        realm.members[ip] = host
        self.hosts[name] = host
        return host

    def _check_name(self, name: str) -> None:
        if not name or name in self.hosts or name in self.nats:
            raise ValueError(f"node name {name!r} is empty or already used")

    def _link(self, name: str, lower: str, realm: Realm, profile: LinkProfile) -> Link:
        base, n = name, 2
        while name in self.links:
            name, n = f"{base} {n}", n + 1
        upper = realm.gateway.name if realm.gateway is not None else realm.name
        link = Link(name, lower, upper, profile, random.Random(f"{self.seed}:link:{name}"))
        self.links[name] = link
        return link

    def nat(self, name: str) -> NatBox:
        """The NAT box called `name`."""
        return self.nats[name]

    def host(self, name: str) -> Host:
        """The host called `name`."""
        return self.hosts[name]

    # --- carrying packets ---------------------------------------------------------------------

    def send(self, host: Host, port: int, data: bytes, destination: Endpoint, kind: str, *,
             spoof: Endpoint | None = None) -> int:
        """Put a datagram on `host`'s link; returns its packet id.

        `spoof` forges the source address: the packet travels, is translated and is answered
        as if `spoof` had sent it (replies go to `spoof`, not to `host`). Nothing on the path
        checks it (no BCP 38 filter), which is what makes reflection attacks possible.
        """
        real = Endpoint(host.ip, port)
        source = real if spoof is None else spoof
        pkt = Packet(next(self._ids), source, destination, data, kind, host.name)
        self.packets_sent += 1
        detail = "" if spoof is None else f"spoofed source (really {real})"
        self._emit((self.scheduler.now, host.name, Action.SEND, source, destination,
                    kind, summarize(data, kind), detail, pkt.id))
        self._traverse(host.link, pkt, self._at_switch, host.realm)
        return pkt.id

    def _traverse(self, link: Link, pkt: Packet, then: Any, arg: Any) -> None:
        """Send `pkt` through `link`; `then(pkt, arg)` runs when (each copy of) it comes out."""
        now = self.scheduler.now
        if link.fixed is not None:  # hot path: no randomness on this link
            self._emit((now, link.name, Action.LINK, pkt.source, pkt.destination, pkt.kind, "",
                        link.fixed_detail, pkt.id))
            self.scheduler.call_at(now + link.fixed, then, pkt, arg)
            return
        copies = link.transit()
        if not copies:
            self._drop(link.name, pkt, LOST)
            return
        for delay, note in copies:
            if note.startswith(DUPLICATE):  # the copy is a packet of its own, with its own id
                original = pkt.id
                pkt = pkt._replace(id=next(self._ids))
                # "duplicate of #N" stays last: readers take the original's id after the "#".
                held = note[len(DUPLICATE) + 2:]
                note = (f"{held}, " if held else "") + f"duplicate of #{original}"
            detail = f"delay {delay:.6f} s" + (f", {note}" if note else "")
            self._emit((now, link.name, Action.LINK, pkt.source, pkt.destination,
                        pkt.kind, "", detail, pkt.id))
            self.scheduler.call_at(now + delay, then, pkt, arg)

    def _at_switch(self, pkt: Packet, realm: Realm) -> None:
        """The packet reached `realm`'s switch: down to a member, or out through the NAT."""
        member = realm.members.get(pkt.destination.host)
        if member is not None:
            self._traverse(member.link, pkt, self._arrive, member)
        elif realm.gateway is not None:
            self._outbound(realm.gateway, pkt)
        else:
            self._drop(realm.name, pkt, NO_ROUTE)

    def _arrive(self, pkt: Packet, node: Host | NatBox) -> None:
        if isinstance(node, NatBox):
            self._inbound(node, pkt)
        else:
            self._deliver(node, pkt)

    def _outbound(self, nat: NatBox, pkt: Packet) -> None:
        verdict = nat.table.outbound(pkt, self.scheduler.now)
        out = verdict.packet
        if out is None:
            self._drop(nat.name, pkt, verdict.reason, "outbound")
            return
        if verdict.hairpin:
            detail = f"{pkt.source} -> {out.source}, {pkt.destination} -> {out.destination}"
            self._translated(nat, out, "hairpin", detail)
            self._at_switch(out, nat.inside)
        else:
            self._translated(nat, out, "outbound", f"{pkt.source} -> {out.source}")
            self._traverse(nat.link, out, self._at_switch, nat.realm)

    def _inbound(self, nat: NatBox, pkt: Packet) -> None:
        verdict = nat.table.inbound(pkt, self.scheduler.now)
        out = verdict.packet
        if out is None:
            self._drop(nat.name, pkt, verdict.reason, "inbound")
            return
        self._translated(nat, out, "inbound", f"{pkt.destination} -> {out.destination}")
        self._at_switch(out, nat.inside)

    def _translated(self, nat: NatBox, out: Packet, direction: str, detail: str) -> None:
        self._emit((self.scheduler.now, nat.name, Action.TRANSLATE, out.source,
                    out.destination, out.kind, direction, detail, out.id))

    def _deliver(self, host: Host, pkt: Packet) -> None:
        receiver = host.sockets.get(pkt.destination.port)
        if receiver is None:
            self._drop(host.name, pkt, NO_SOCKET)
            return
        host.seen_from[pkt.source] = pkt.origin
        self._emit((self.scheduler.now, host.name, Action.RECEIVE, pkt.source,
                    pkt.destination, pkt.kind, summarize(pkt.data, pkt.kind), "", pkt.id))
        receiver.on_datagram(pkt.data, pkt.source, pkt.id)

    def _drop(self, actor: str, pkt: Packet, reason: str, where: str = "") -> None:
        """Record the packet's death; `where` says "inbound" or "outbound" at a NAT."""
        self._emit((self.scheduler.now, actor, Action.DROP, pkt.source, pkt.destination,
                    pkt.kind, where, reason, pkt.id))

    # --- drawing ------------------------------------------------------------------------------

    def graph(self) -> "networkx.Graph":
        """The topology as a networkx graph (nodes: hosts, NATs, "internet"; edges: links)."""
        import networkx as nx  # lazily: `import simulator` must not pull in networkx

        g = nx.Graph()
        g.add_node(self.internet.name, kind="internet", address=self.internet.prefix + "0/24")
        for nat in self.nats.values():
            g.add_node(nat.name, kind="nat", address=nat.ip, inside=nat.inside.prefix + "0/24",
                       behavior=nat.behavior.name, description=nat.behavior.describe())
        for host in self.hosts.values():
            g.add_node(host.name, kind=host.role, address=host.ip)
        for link in self.links.values():
            p = link.profile
            g.add_edge(link.lower, link.upper, name=link.name, latency=p.latency, jitter=p.jitter,
                       loss=p.loss, duplicate=p.duplicate, reorder=p.reorder)
        return g


def _short(name: str, kind: str) -> str:
    """Link name from a node name: "peer A" -> "lan A", "NAT B" -> "wan B", "server" -> "wan server"."""
    for prefix in ("peer ", "NAT "):
        if name.startswith(prefix):
            return f"{kind} {name[len(prefix):]}"
    return f"{kind} {name}"
