"""NAT behaviour discovery in the simulator: the same `NatChecker` and `DiscoveryResponder`.

Rule: the responder's three sockets are real simulated sockets: primary and alternate port on the
server host, the alternate address on a second server host ("server alt"), all bound by
`ResponderSockets`, which feeds each datagram in with its `via` and sends each reply from the
socket its `Transmit.via` names. The checker runs under the ordinary `MachineDriver`, whose
`sockets_wanted` support gives it the second local socket.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from holepunch.protocol.discovery_server import DiscoveryResponder
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.nat_check import NatChecker, NatVerdict

from .driver import MachineDriver, _kind_text
from .link import LinkProfile
from .nat import NatBehavior
from .network import Host, Network

SERVER_IP = "203.0.113.1"
ALT_SERVER_IP = "203.0.113.2"
SERVER_PORT = 3478  # STUN's port, for flavour
ALT_PORT = 3479
CLIENT_PORT = 4000


class ResponderSockets:
    """Binds a responder to (primary, alt port, alt address) and carries its replies."""

    def __init__(self, responder: DiscoveryResponder, primary: Host, port: int, alt_port: int | None = None,
                 alt_host: Host | None = None) -> None:
        self.responder = responder
        self.sockets: list[tuple[Host, int] | None] = [(primary, port), None, None]
        if alt_port is not None:
            self.sockets[1] = (primary, alt_port)
        if alt_host is not None:
            self.sockets[2] = (alt_host, port)
        for via, socket in enumerate(self.sockets):
            if socket is not None:
                socket[0].bind(socket[1], _Socket(self, via))

    def on_datagram(self, via: int, data: bytes, source: Endpoint) -> None:
        """Feed one datagram in with its socket index, then send every reply from its socket."""
        host = self.sockets[via]
        assert host is not None
        now = host[0].network.scheduler.now
        self.responder.receive_datagram(data, source, now, via)
        for transmit in self.responder.datagrams_to_send(now):
            socket = self.sockets[transmit.via]
            if socket is not None:  # the responder only names sockets it announced
                socket[0].send(socket[1], transmit.data, transmit.destination, _kind_text(transmit.kind, transmit.data))


class _Socket:
    """One bound port of the responder."""

    def __init__(self, owner: ResponderSockets, via: int) -> None:
        self.owner = owner
        self.via = via

    def on_datagram(self, data: bytes, source: Endpoint, packet: int) -> None:
        self.owner.on_datagram(self.via, data, source)


@dataclass
class DiscoveryRun:
    """A built network: a checker behind `behavior`, a responder with its alternates."""

    network: Network
    checker: NatChecker
    driver: MachineDriver
    responder: DiscoveryResponder

    def run(self, until: float = 10.0) -> NatVerdict | None:
        """Start the checker and run until it is done (or `until`); returns its verdict."""
        self.driver.start(0.0)
        self.network.scheduler.run(until, stop=lambda: self.checker.done)
        return self.checker.verdict


def discovery_network(behavior: NatBehavior, *, seed: int = 0, alt_port: bool = True, alt_address: bool = True,
                      latency: float = 0.02, loss: float = 0.0) -> DiscoveryRun:
    """A client behind `behavior` (no NAT box when it translates nothing) and a responder."""
    net = Network(seed=seed, profile=LinkProfile(latency=latency, loss=loss))
    server = net.add_host("server", ip=SERVER_IP, role="server")
    alt = net.add_host("server alt", ip=ALT_SERVER_IP, role="server") if alt_address else None
    responder = DiscoveryResponder(ALT_PORT if alt_port else 0, ALT_SERVER_IP if alt_address else "")
    ResponderSockets(responder, server, SERVER_PORT, ALT_PORT if alt_port else None, alt)
    if behavior.translates:
        box = net.add_nat("NAT", behavior)
        host = net.add_host("client", behind=box, profile=LinkProfile(latency=0.001), role="peer")
    else:
        host = net.add_host("client", role="peer")
    checker = NatChecker(Endpoint(SERVER_IP, SERVER_PORT), local=host.endpoint(CLIENT_PORT),
                         rng=random.Random(f"{seed}:checker"))
    return DiscoveryRun(net, checker, MachineDriver(host, CLIENT_PORT, checker), responder)


def check_nat(behavior: NatBehavior, **options: object) -> NatVerdict | None:
    """Run the discovery tests from behind `behavior`; options as for `discovery_network`."""
    return discovery_network(behavior, **options).run()  # type: ignore[arg-type]
