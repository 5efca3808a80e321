"""Ready-made scenarios: peers behind NATs, a rendezvous server, and runs that report outcomes.

Rule: a scenario only wires things up (topology, machines, start times) and runs the scheduler;
peers and server are the real `holepunch.protocol` machines (or any object with the machine
interface, via `client_factory` or `kinds`), each under a `MachineDriver`.
"""

from __future__ import annotations

import importlib
import inspect
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from holepunch.protocol import ClientConfig, PeerClient, RendezvousServer, ServerConfig
from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Trace

from .driver import Machine, MachineDriver
from .link import LinkProfile
from .nat import MappingRow, NatBehavior
from .network import NatBox, Network
from .outcome import Outcome, QuietOutcome
from .presets import PRESETS, PORT_RESTRICTED_CONE
from .scheduler import Scheduler

SERVER_IP = "198.51.100.1"
SERVER_PORT = 5000  # the reference server's default (`:5000`)
PEER_PORT = 4000
CGNAT_LAN = "100.64.0."  # RFC 6598 shared address space, between a CGNAT and its customers

ClientFactory = Callable[[str, Endpoint, bytes, int, random.Random], Machine]
"""(peer letter, server endpoint, session, expected other peers, rng) -> a machine."""


@dataclass
class Scenario:
    """A built network with a server and peers, ready to `start()` and `run()`."""

    network: Network
    server: MachineDriver
    peers: dict[str, MachineDriver]
    """Peer letter ("A", "B", ...) -> its driver; the host is called "peer A"."""
    starts: dict[str, float]
    session: bytes
    _started: bool = field(default=False, init=False, repr=False)
    _stop_on_completion: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        for driver in self.peers.values():
            driver.listeners.append(self._on_event)

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler that runs everything."""
        return self.network.scheduler

    @property
    def trace(self) -> Trace:
        """Every hop and event so far."""
        return self.network.trace

    @property
    def now(self) -> float:
        """The simulated time."""
        return self.network.scheduler.now

    def peer(self, name: str) -> MachineDriver:
        """A peer's driver, by letter ("A") or host name ("peer A")."""
        return self.peers[name.removeprefix("peer ")]

    def nat(self, name: str) -> NatBox:
        """A NAT box by name ("NAT A", "CGNAT") or by its peer's letter ("A")."""
        nats = self.network.nats
        return nats[name] if name in nats else nats[f"NAT {name}"]

    def tables(self, *, include_expired: bool = False) -> dict[str, list[MappingRow]]:
        """Every NAT's table right now, by NAT name."""
        return {name: nat.rows(self.now, include_expired=include_expired)
                for name, nat in self.network.nats.items()}

    def public_endpoint(self, name: str) -> Endpoint | None:
        """Where the server saw a peer's datagrams come from (what it lists to others)."""
        host = self.peer(name).host.name
        for endpoint, origin in self.server.host.seen_from.items():
            if origin == host:
                return endpoint
        return None

    def start(self) -> None:
        """Schedule the server and every peer's start (once)."""
        if not self._started:
            self._started = True
            self.server.start(0.0)
            for letter, driver in self.peers.items():
                driver.start(self.starts[letter])

    def run(self, until: float, *, until_completed: bool = False) -> None:
        """Start if needed, then run up to time `until`, or (`until_completed`) until every
        peer has reported `ConnectCompleted`, whichever comes first."""
        self.start()
        self._stop_on_completion = until_completed
        if not (until_completed and self.all_completed()):
            self.scheduler.run(until)
        self._stop_on_completion = False

    def all_completed(self) -> bool:
        """True once every peer machine has reported `ConnectCompleted`."""
        return all(d.completed_at is not None for d in self.peers.values())

    def _on_event(self, now: float, event: Any) -> None:
        if self._stop_on_completion and type(event).__name__ == "ConnectCompleted":
            if self.all_completed():
                self.scheduler.stop()

    def graph(self) -> Any:
        """The topology as a networkx graph (networkx is imported only now)."""
        return self.network.graph()


def two_peers(nat_a: NatBehavior, nat_b: NatBehavior, *, seed: int = 0, latency: float = 0.02,
              jitter: float = 0.0, loss: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0,
              lan_latency: float = 0.001, config: ClientConfig | None = None,
              server_config: ServerConfig | None = None, cgnat: NatBehavior | None = None,
              cgnat_peers: str | Sequence[str] = "A", start_gap: float = 0.1,
              kinds: Sequence[str] | None = None, client_factory: ClientFactory | None = None,
              server_kind: str = "ours", session: bytes = b"demo") -> Scenario:
    """Peers A and B behind `nat_a` and `nat_b` (NO_NAT: on the internet), and a server.

    latency, jitter, loss, duplicate and reorder apply to every link beyond the LANs (NAT
    uplinks, public hosts, the server); LAN links have `lan_latency` only. `cgnat` puts a
    carrier-grade NAT in front of the peers named in `cgnat_peers` ("A", "B" or "AB").
    Peer B starts `start_gap` seconds after A. `kinds` picks each peer's machine ("ours" or
    "reference", the Go client's model); `client_factory` replaces that choice entirely.
    """
    return _build([nat_a, nat_b], seed=seed, latency=latency, jitter=jitter, loss=loss,
                  duplicate=duplicate, reorder=reorder, lan_latency=lan_latency, config=config,
                  server_config=server_config, cgnat=cgnat, cgnat_peers=cgnat_peers,
                  start_gap=start_gap, kinds=kinds, client_factory=client_factory,
                  server_kind=server_kind, session=session)


def mesh(n: int, nats: NatBehavior | Sequence[NatBehavior], *, seed: int = 0, latency: float = 0.02,
         **options: Any) -> Scenario:
    """`n` peers (A, B, C, ...) that all want each other, behind one behaviour each (or all the
    same); `options` are those of `two_peers`, and peer i starts at i * start_gap."""
    if n < 2:
        raise ValueError(f"a mesh needs at least 2 peers, got {n}")
    behaviors = [nats] * n if isinstance(nats, NatBehavior) else list(nats)
    if len(behaviors) != n:
        raise ValueError(f"need {n} NAT behaviours, got {len(behaviors)}")
    return _build(behaviors, seed=seed, latency=latency, **options)


def _build(nats: list[NatBehavior], *, seed: int, latency: float, jitter: float = 0.0,
           loss: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0,
           lan_latency: float = 0.001, config: ClientConfig | None = None,
           server_config: ServerConfig | None = None, cgnat: NatBehavior | None = None,
           cgnat_peers: str | Sequence[str] = "A", start_gap: float = 0.1, kinds: Sequence[str] | None = None,
           client_factory: ClientFactory | None = None, server_kind: str = "ours",
           session: bytes = b"demo") -> Scenario:
    wan = LinkProfile(latency=latency, jitter=jitter, loss=loss, duplicate=duplicate, reorder=reorder)
    lan = LinkProfile(latency=lan_latency)
    net = Network(seed=seed, profile=wan)
    server_host = net.add_host("server", ip=SERVER_IP, role="server")
    server = MachineDriver(server_host, SERVER_PORT, _server(server_kind, server_config))
    carrier = net.add_nat("CGNAT", cgnat, lan=CGNAT_LAN) if cgnat is not None else None
    behind_carrier = set(cgnat_peers)  # "AB" -> {"A", "B"}; or any collection of names
    kinds = list(kinds) if kinds is not None else ["ours"] * len(nats)
    if len(kinds) != len(nats):
        raise ValueError(f"need one kind per peer ({len(nats)}), got {len(kinds)}")
    peers: dict[str, MachineDriver] = {}
    starts: dict[str, float] = {}
    for i, (letter, behavior) in enumerate(zip(peer_letters(len(nats)), nats)):
        upstream = carrier if carrier is not None and letter in behind_carrier else None
        if behavior.translates:
            box = net.add_nat(f"NAT {letter}", behavior, behind=upstream)
            host = net.add_host(f"peer {letter}", behind=box, profile=lan, role="peer")
        else:
            host = net.add_host(f"peer {letter}", behind=upstream, profile=wan, role="peer")
        factory = client_factory or _factory(kinds[i], config)
        machine = factory(letter, server.endpoint, session, len(nats) - 1,
                          random.Random(f"{seed}:peer:{letter}"))
        peers[letter] = MachineDriver(host, PEER_PORT, machine)
        starts[letter] = i * start_gap
    return Scenario(net, server, peers, starts, session)


def peer_letters(n: int) -> list[str]:
    """A, B, ..., Z, AA, AB, ...: the names of `n` peers."""
    letters = []
    for i in range(n):
        name, i = "", i + 1
        while i:
            i, rest = divmod(i - 1, 26)
            name = chr(ord("A") + rest) + name
        letters.append(name)
    return letters


def _factory(kind: str, config: ClientConfig | None) -> ClientFactory:
    """The machine for a peer kind: "ours" (PeerClient) or "reference" (the Go client's model)."""
    if kind == "ours":
        def ours(letter: str, server: Endpoint, session: bytes, expected: int, rng: random.Random) -> Machine:
            return PeerClient(server, session, expected, config, rng=rng)
        return ours
    if kind == "reference":
        return _reference_factory()
    raise ValueError(f"unknown peer kind {kind!r}: use 'ours' or 'reference'")


def _server(kind: str, config: ServerConfig | None) -> Machine:
    """The rendezvous machine: ours, or the model of the Go reference server."""
    if kind == "ours":
        return RendezvousServer(config)
    if kind == "reference":
        if config is not None:
            raise ValueError("server_config applies to our server only, not to the reference's")
        return _reference_module().ReferenceServer()  # type: ignore[no-any-return]
    raise ValueError(f"unknown server kind {kind!r}: use 'ours' or 'reference'")


def _reference_module() -> Any:
    """`holepunch.protocol.reference`, imported only when a scenario asks for the reference."""
    try:
        return importlib.import_module("holepunch.protocol.reference")
    except ImportError as exc:
        raise RuntimeError("the reference models need holepunch.protocol.reference, which is "
                           f"not available here ({exc})") from exc


def _reference_factory() -> ClientFactory:
    """Build `holepunch.protocol.reference.ReferenceClient`s, imported only when asked for."""
    cls = getattr(_reference_module(), "ReferenceClient", None)
    if cls is None:
        raise RuntimeError("holepunch.protocol.reference has no ReferenceClient")
    accepts_rng = "rng" in inspect.signature(cls).parameters

    def reference(letter: str, server: Endpoint, session: bytes, expected: int, rng: random.Random) -> Machine:
        if accepts_rng:
            return cls(server, session, expected, rng=rng)
        return cls(server, session, expected)
    return reference


# --- runs -------------------------------------------------------------------------------------


def run_punch(scenario: Scenario | NatBehavior, nat_b: NatBehavior | None = None, /, *,
              until: float = 60.0, settle: float = 0.25, **options: Any) -> Outcome:
    """Run a scenario (or `two_peers(nat_a, nat_b, **options)`) until every peer completed.

    After the last `ConnectCompleted` the run goes on for `settle` seconds, so the packets still
    in flight (the delayed final ACK) land in the trace; it never goes past `until`.
    """
    if isinstance(scenario, Scenario):
        if nat_b is not None or options:
            raise TypeError("pass either a Scenario, or two NAT behaviours and options")
        sc = scenario
    else:
        if nat_b is None:
            raise TypeError("run_punch(nat_a, nat_b, ...) needs both NAT behaviours")
        sc = two_peers(scenario, nat_b, **options)
    sc.run(until, until_completed=True)
    if sc.all_completed() and settle > 0:
        sc.run(min(sc.now + settle, until))
    return Outcome.from_scenario(sc)


def nat_grid(presets: Sequence[NatBehavior] = PRESETS, **options: Any) -> dict[tuple[str, str], Outcome]:
    """Punch across every ordered pair of behaviours (Tailscale's NAT x NAT grid)."""
    return {(a.name, b.name): run_punch(a, b, **options) for a in presets for b in presets}


def format_grid(grid: Mapping[tuple[str, str], Outcome]) -> str:
    """The grid as a text table: rows are peer A's NAT, columns peer B's; cells "yes 0.123" or "no"."""
    rows = list(dict.fromkeys(a for a, _ in grid))
    cols = list(dict.fromkeys(b for _, b in grid))
    width = max(len(name) for name in rows + cols) + 1
    lines = [" " * width + "".join(f"{c:>{width}}" for c in cols)]
    for a in rows:
        cells = []
        for b in cols:
            outcome = grid.get((a, b))
            if outcome is None:
                cells.append(f"{'-':>{width}}")
            elif outcome.connected and outcome.time_to_connect is not None:
                cells.append(f"{'yes ' + format(outcome.time_to_connect, '.3f'):>{width}}")
            else:
                cells.append(f"{'no':>{width}}")
        lines.append(f"{a:<{width}}" + "".join(cells))
    return "\n".join(lines) + "\n"


def quiet_period(nat_a: NatBehavior = PORT_RESTRICTED_CONE, nat_b: NatBehavior = PORT_RESTRICTED_CONE,
                 *, quiet: float = 45.0, keepalive: bool = True, message: bytes = b"hello",
                 config: ClientConfig | None = None, **options: Any) -> QuietOutcome:
    """Connect, stay quiet for `quiet` seconds, then A sends `message` to B: does it arrive?

    With `keepalive=False` the clients send no keep-alives (ClientConfig(keepalive_interval=0)),
    so a quiet period longer than the NAT mapping timeout (30 s) closes the hole.
    """
    cfg = config or (ClientConfig() if keepalive else ClientConfig(keepalive_interval=0))
    sc = two_peers(nat_a, nat_b, config=cfg, **options)
    sc.run(60.0, until_completed=True)
    a, b = sc.peer("A"), sc.peer("B")
    target = _connected_peer(a)
    if target is None:
        return QuietOutcome(Outcome.from_scenario(sc), None, None, None, False, message)
    connected_at = sc.now
    sent_at = connected_at + quiet
    sc.scheduler.call_at(sent_at, a.apply, lambda machine, now: machine.send(target, message))
    sc.run(sent_at + 2.0)
    packet = next((r.packet for r in sc.trace if r.actor == a.name and r.kind == "data"
                   and r.action.value == "send" and r.time >= sent_at), None)
    delivered = any(type(ev).__name__ == "DataReceived" and getattr(ev, "data", None) == message
                    and t >= sent_at for t, ev in b.events)
    return QuietOutcome(Outcome.from_scenario(sc), connected_at, sent_at, packet, delivered, message)


def _connected_peer(driver: MachineDriver) -> Endpoint | None:
    for _, event in driver.events:
        if type(event).__name__ == "PeerConnected":
            return event.peer  # type: ignore[no-any-return]
    return None
