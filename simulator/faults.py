"""Fault scenarios: a server restart, lossy or shuffling links, a peer that vanishes.

Rule: a fault is injected from outside the protocol, the way it happens in the wild (a crash,
a bad link, a pulled cable), over the ordinary scenario helpers (`two_peers`, `mesh`,
`run_punch`); the machines are never told. A machine is swapped or silenced only through the
wrappers below, which keep the machine interface, so the drivers' one loop runs unchanged.
Every run returns a `FaultRun`: the ordinary `Outcome` plus how each peer's connect ended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from holepunch.protocol import RendezvousServer
from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action, Trace

from .driver import Machine, MachineDriver
from .nat import NatBehavior
from .outcome import Outcome
from .presets import PORT_RESTRICTED_CONE
from .scenarios import Scenario, mesh, run_punch, two_peers

REGISTRATIONS = ("register", "ext-register")
"""Trace kinds of a registration (plain, extended)."""


# --- machine wrappers -------------------------------------------------------------------------


class RestartableServer:
    """A rendezvous machine that can crash and come back empty, on the same address.

    `crash(now)` loses every session and goes silent; `restart(now)` starts a fresh machine of
    the same kind and config. Attributes (`stats`, `members`, ...) are the current machine's.
    """

    def __init__(self, machine: Machine) -> None:
        self.current: Machine | None = machine
        self.original = machine
        """The machine as first built: what a restart builds again."""
        self.crashes: list[float] = []
        self.restarts: list[float] = []

    def crash(self, now: float) -> None:
        """Lose all state: from now on nothing is read, sent or timed."""
        self.current = None
        self.crashes.append(now)

    def restart(self, now: float) -> None:
        """Come back with no session at all (a process restarted from scratch)."""
        old = self.original
        if isinstance(old, RendezvousServer):
            # A new process draws a new cookie key, so cookies from before the crash are void
            # (seeded by the restart count: the run stays reproducible).
            key = f"cookie key after restart {len(self.restarts) + 1}".encode()
            self.current = RendezvousServer(old.config, now=now, cookie_key=key)
        else:  # the reference server's model: its defaults, as scenarios build it
            self.current = type(old)(now)  # type: ignore[call-arg]
        self.restarts.append(now)

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None:
        if self.current is not None:
            self.current.receive_datagram(data, source, now)

    def handle_timer(self, now: float) -> None:
        if self.current is not None:
            self.current.handle_timer(now)

    def get_timer(self) -> float | None:
        return None if self.current is None else self.current.get_timer()

    def datagrams_to_send(self, now: float) -> list[Any]:
        return [] if self.current is None else self.current.datagrams_to_send(now)

    def next_event(self) -> Any:
        return None if self.current is None else self.current.next_event()

    def __getattr__(self, name: str) -> Any:
        current = self.__dict__["current"]
        return getattr(self.__dict__["original"] if current is None else current, name)


class Vanishing:
    """A peer machine that can vanish: after `vanish(now)` it reads, sends and times nothing,
    and sends no goodbye (no `ExtLeave`), as a crashed process or a pulled cable."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.vanished_at: float | None = None

    def vanish(self, now: float) -> None:
        """Be gone from now on; whatever was queued is never sent."""
        if self.vanished_at is None:
            self.vanished_at = now
            self.machine.datagrams_to_send(now)

    @property
    def gone(self) -> bool:
        """True once the peer vanished."""
        return self.vanished_at is not None

    def start(self, now: float) -> None:
        start = getattr(self.machine, "start", None)
        if start is not None and not self.gone:
            start(now)

    def receive_datagram(self, data: bytes, source: Endpoint, now: float, *via: int) -> None:
        if not self.gone:
            self.machine.receive_datagram(data, source, now, *via)  # type: ignore[call-arg]

    def handle_timer(self, now: float) -> None:
        if not self.gone:
            self.machine.handle_timer(now)

    def get_timer(self) -> float | None:
        return None if self.gone else self.machine.get_timer()

    def datagrams_to_send(self, now: float) -> list[Any]:
        return [] if self.gone else self.machine.datagrams_to_send(now)

    def next_event(self) -> Any:
        return None if self.gone else self.machine.next_event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["machine"], name)


def crash_server(driver: MachineDriver) -> None:
    """Crash the server on `driver` (its machine must be a `RestartableServer`): the port
    closes, so datagrams to it die as "port unreachable" until `restart_server`."""
    driver.apply(lambda machine, now: machine.crash(now))
    driver.host.sockets.pop(driver.port, None)


def restart_server(driver: MachineDriver) -> None:
    """Bring the crashed (or running) server on `driver` back with no state, same address."""
    if driver.port not in driver.host.sockets:
        driver.host.bind(driver.port, driver)
    driver.apply(lambda machine, now: machine.restart(now))


def vanish(driver: MachineDriver) -> None:
    """Make the peer on `driver` vanish (its machine must be `Vanishing`): its timer stops and
    its ports close, so what others send it dies as "port unreachable"."""
    driver.apply(lambda machine, now: machine.vanish(now))
    for port in [driver.port, *driver.extra_ports]:
        driver.host.sockets.pop(port, None)


def impair(scenario: Scenario, **changes: Any) -> Scenario:
    """Change every link of the scenario (LANs, NAT uplinks, the server's), e.g. `loss=0.2`;
    `changes` are `LinkProfile` fields. Returns the scenario."""
    for link in scenario.network.links.values():
        link.profile = dataclasses.replace(link.profile, **changes)
    return scenario


# --- reports ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerReport:
    """How one peer's connect ended, with the other peers named by letter."""

    name: str
    completed_at: float | None
    """When it reported `ConnectCompleted`; None if it never did (vanished, hung)."""
    connected: tuple[str, ...]
    failed: Mapping[str, str]
    """Peer letter -> the reason it was given up (its `PeerFailed` reason: the last thing seen)."""
    reason: str
    """`ConnectCompleted.reason`: empty when complete, "timed out", a refusal..."""
    extended: bool | None
    """Whether it ended up speaking the extension (False: it fell back to the plain protocol)."""
    registrations: int
    """Registrations it sent (plain and extended), over the whole run."""

    def to_text(self) -> str:
        """One line, e.g. "A: connected to B; gave up C (last seen: SYN) at 40.000 s, reason: timed out"."""
        parts = [f"connected to {', '.join(self.connected)}" if self.connected else "connected to nobody"]
        parts += [f"gave up {who} (last seen: {why or 'nothing'})" for who, why in self.failed.items()]
        end = f" at {self.completed_at:.3f} s" if self.completed_at is not None else ", never completed"
        return f"{self.name}: " + "; ".join(parts) + end + (f", reason: {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class FaultRun:
    """A run with one fault injected: what was done, when, the outcome, and each peer's end."""

    fault: str
    at: float | None
    """When the fault struck (simulated seconds); None for a fault present all along."""
    outcome: Outcome = field(repr=False)
    peers: Mapping[str, PeerReport]
    rejoined: tuple[str, ...] = ()
    """Peers that joined the server again after a restart (letters, in order)."""

    @property
    def trace(self) -> Trace:
        """The run's whole trace."""
        return self.outcome.trace

    @property
    def connected(self) -> bool:
        """True when every pair connected."""
        return self.outcome.connected

    def explain(self) -> str:
        """The fault, then one line per peer, then the outcome's own explanation."""
        when = f" at {self.at:.3f} s" if self.at is not None else ""
        lines = [f"Fault: {self.fault}{when}."]
        if self.rejoined:
            lines.append(f"Joined the server after the restart: {', '.join(self.rejoined)}.")
        lines += [p.to_text() for p in self.peers.values()]
        return "\n".join(lines + [self.outcome.explain()])


def report(scenario: Scenario, outcome: Outcome, fault: str, at: float | None, *,
           restart: bool = False) -> FaultRun:
    """Read a `FaultRun` off a finished scenario (`restart`: list who joined again after `at`)."""
    letters = {endpoint: letter for letter, endpoint in outcome.listed.items() if endpoint is not None}
    peers = {letter: _peer_report(letter, driver, letters, outcome.trace)
             for letter, driver in scenario.peers.items()}
    rejoined: tuple[str, ...] = ()
    if restart and at is not None:
        joins = [e.endpoint for t, e in scenario.server.events
                 if t >= at and type(e).__name__ == "PeerJoined"]
        rejoined = tuple(letters.get(e, str(e)) for e in joins)
    return FaultRun(fault, at, outcome, peers, rejoined)


def _peer_report(letter: str, driver: MachineDriver, letters: dict[Endpoint, str], trace: Trace) -> PeerReport:
    def name(endpoint: Endpoint) -> str:
        return letters.get(endpoint, str(endpoint))

    failed: dict[str, str] = {}
    done = None
    for _, event in driver.events:
        kind = type(event).__name__
        if kind == "PeerFailed":
            failed[name(event.peer)] = event.reason
        elif kind == "ConnectCompleted" and done is None:
            done = event
    sent = sum(1 for r in trace if r.actor == driver.name and r.action is Action.SEND
               and r.kind in REGISTRATIONS)
    return PeerReport(letter, driver.completed_at,
                      tuple(name(e) for e in done.connected) if done is not None else (),
                      failed, done.reason if done is not None else "",
                      getattr(driver.machine, "extended", None), sent)


# --- the scenarios ------------------------------------------------------------------------------


def server_restart(nats: NatBehavior | Sequence[NatBehavior] = PORT_RESTRICTED_CONE, n: int = 2, *,
                   restart_at: float = 1.5, downtime: float = 0.0, start_gap: float = 3.0,
                   seed: int = 0, until: float = 60.0, **options: Any) -> FaultRun:
    """`n` peers; the server crashes at `restart_at` and comes back empty `downtime` later.

    Peer i starts at i * `start_gap`: with the defaults A registers before the crash and B only
    after it, so B meets A only if A registered again with the new server. `options` are those
    of `mesh` (`kinds=["reference"] * n` for the Go client's model, `config`, `server_kind`...).
    """
    sc = mesh(n, nats, seed=seed, start_gap=start_gap, **options)
    sc.server.machine = RestartableServer(sc.server.machine)
    sc.scheduler.call_at(restart_at, crash_server, sc.server)
    sc.scheduler.call_at(restart_at + downtime, restart_server, sc.server)
    down = f", down for {downtime:g} s" if downtime else ""
    fault = f"the server lost all state (crash and restart{down})"
    return report(sc, run_punch(sc, until=until), fault, restart_at, restart=True)


def lossy(nat_a: NatBehavior, nat_b: NatBehavior, loss: float, *, seed: int = 0,
          until: float = 60.0, **options: Any) -> FaultRun:
    """Two peers with `loss` on EVERY link: LANs, NAT uplinks and the server's link alike
    (`two_peers(loss=...)` spares the LANs), so a registration round trip crosses six lossy hops."""
    sc = impair(two_peers(nat_a, nat_b, seed=seed, **options), loss=loss)
    return report(sc, run_punch(sc, until=until), f"{loss:.0%} loss on every link", None)


def shuffled(nat_a: NatBehavior, nat_b: NatBehavior, *, duplicate: float = 0.3, reorder: float = 0.3,
             jitter: float = 0.01, seed: int = 0, until: float = 60.0, **options: Any) -> FaultRun:
    """Two peers whose every link duplicates and reorders (held back `reorder_delay`, 50 ms)
    and jitters: late and repeated server replies, SYNs and ACKs."""
    sc = impair(two_peers(nat_a, nat_b, seed=seed, **options),
                duplicate=duplicate, reorder=reorder, jitter=jitter)
    fault = f"{duplicate:.0%} duplication, {reorder:.0%} reordering, ±{jitter * 1000:g} ms jitter on every link"
    return report(sc, run_punch(sc, until=until), fault, None)


def vanishing_peer(n: int = 3, nats: NatBehavior | Sequence[NatBehavior] = PORT_RESTRICTED_CONE, *,
                   who: str | None = None, after: float = 0.0, seed: int = 0, until: float = 60.0,
                   **options: Any) -> FaultRun:
    """`n` peers; peer `who` (default: the last) vanishes `after` seconds into its punching,
    once its first SYNs are out: the others punch it until their deadline and report it failed.

    The run lasts until `until` (the vanished peer never completes); the others complete at
    their `ClientConfig.timeout` (40 s by default)."""
    sc = mesh(n, nats, seed=seed, **options)
    driver = sc.peer(who or list(sc.peers)[-1])
    driver.machine = Vanishing(driver.machine)
    struck: list[float] = []

    def on_event(now: float, event: Any) -> None:
        if type(event).__name__ == "PunchingStarted" and not struck:
            struck.append(now + after)
            sc.scheduler.call_later(after, vanish, driver)

    driver.listeners.append(on_event)
    outcome = run_punch(sc, until=until)
    fault = f"peer {driver.name.removeprefix('peer ')} vanished {after:g} s into punching"
    return report(sc, outcome, fault, struck[0] if struck else None)
