"""The network and the driver: hops, links, routing, and the one-timer drive loop.

The machines here are tiny test machines with the machine interface (not mocks of ours): the
driver must run ANY object that has `receive_datagram`, `handle_timer`, `get_timer`,
`datagrams_to_send` and `next_event`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from holepunch.protocol import MessageKind, Transmit
from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action
from simulator import (
    FULL_CONE,
    PORT_RESTRICTED_CONE,
    LinkProfile,
    MachineDriver,
    Network,
    NO_NAT,
)


@dataclass(frozen=True)
class Echoed:
    """Test event: a datagram came in."""

    source: Endpoint
    data: bytes


class Pinger:
    """Sends `count` pings `interval` apart to `target`, echoes whatever it receives."""

    def __init__(self, target: Endpoint | None, count: int = 1, interval: float = 1.0) -> None:
        self.target, self.left, self.interval = target, count, interval
        self.next_at: float | None = None
        self.out: list[Transmit] = []
        self.events: list[Any] = []
        self.timer_calls: list[float] = []

    def start(self, now: float) -> None:
        if self.target is not None and self.left:
            self.next_at = now

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None:
        self.events.append(Echoed(source, data))
        if not data.startswith(b"echo"):
            self.out.append(Transmit(b"echo " + data, source, MessageKind.DATA))

    def handle_timer(self, now: float) -> None:
        self.timer_calls.append(now)
        if self.next_at is not None and now >= self.next_at and self.target is not None:
            self.out.append(Transmit(b"ping %d" % self.left, self.target, MessageKind.DATA))
            self.left -= 1
            self.next_at = now + self.interval if self.left else None

    def get_timer(self) -> float | None:
        return self.next_at

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out, self.out = self.out, []
        return out

    def next_event(self) -> Any:
        return self.events.pop(0) if self.events else None


def two_hosts(behavior_a=FULL_CONE, profile: LinkProfile | None = None, count: int = 1):  # type: ignore[no-untyped-def]
    net = Network(seed=1, profile=profile)
    server = net.add_host("server", ip="198.51.100.1", role="server")
    nat = net.add_nat("NAT A", behavior_a)
    host = net.add_host("peer A", behind=nat)
    echo = MachineDriver(server, 5000, Pinger(None))
    pinger = MachineDriver(host, 4000, Pinger(echo.endpoint, count=count))
    return net, pinger, echo


def test_one_datagram_leaves_a_record_at_every_hop_with_one_packet_id() -> None:
    net, pinger, echo = two_hosts()
    pinger.start()
    net.scheduler.run(until=0.05)  # the ping's trip: lan, NAT, wan, server link; not the echo
    first = [r for r in net.trace if r.packet == 1]
    assert [(r.actor, r.action) for r in first] == [
        ("peer A", Action.SEND), ("lan A", Action.LINK), ("NAT A", Action.TRANSLATE),
        ("wan A", Action.LINK), ("wan server", Action.LINK), ("server", Action.RECEIVE),
        ("server", Action.EVENT),  # the machine's event, tied to the datagram that caused it
    ]
    translate = first[2]
    assert translate.detail == "10.0.1.2:4000 -> 198.51.100.10:4000"
    assert translate.summary == "outbound"
    assert first[5].source == Endpoint("198.51.100.10", 4000)
    assert first[5].time == pytest.approx(0.001 + 0.02 + 0.02)
    assert first[1].detail == "delay 0.001000 s"


def test_the_reply_comes_back_through_the_mapping_and_events_are_recorded() -> None:
    net, pinger, echo = two_hosts()
    pinger.start()
    net.scheduler.run()
    assert [type(e).__name__ for _, e in pinger.events] == ["Echoed"]
    assert pinger.events[0][1].data == b"echo ping 1"
    events = net.trace.filter(action=Action.EVENT)
    assert [r.actor for r in events] == ["server", "peer A"]
    assert events[1].kind == "Echoed" and events[1].packet == 2  # tied to the datagram that caused it
    inbound = [r for r in net.trace if r.action is Action.TRANSLATE and r.summary == "inbound"]
    assert inbound[0].detail == "198.51.100.10:4000 -> 10.0.1.2:4000"


def test_the_driver_keeps_exactly_one_timer_armed() -> None:
    net, pinger, echo = two_hosts(count=5)
    pinger.start()
    net.scheduler.run(until=2.5)
    live = [h for _, _, h in net.scheduler._heap if not h.cancelled and h.callback == pinger._fire]
    assert len(live) == 1 and live[0].when == 3.0
    net.scheduler.run()
    assert pinger.machine.timer_calls == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert net.packets_sent == 10  # five pings, five echoes


def test_any_object_with_the_machine_interface_can_be_driven_without_a_start_method() -> None:
    class NoStart(Pinger):
        start = None  # type: ignore[assignment]

    net = Network()
    host = net.add_host("server")
    driver = MachineDriver(host, 5000, NoStart(None))
    driver.start()
    net.scheduler.run()
    assert driver.events == []


def test_a_lossy_link_drops_with_its_reason() -> None:
    net, pinger, echo = two_hosts(profile=LinkProfile(latency=0.02, loss=1.0))
    pinger.start()
    net.scheduler.run()
    (drop,) = net.trace.filter(action=Action.DROP)
    assert (drop.actor, drop.detail) == ("wan A", "lost on link")
    assert echo.events == []


def test_duplication_delivers_a_second_copy_with_its_own_id() -> None:
    net, pinger, echo = two_hosts(profile=LinkProfile(latency=0.02, duplicate=1.0))
    pinger.start()
    net.scheduler.run(until=0.5)
    received = net.trace.filter(actor="server", action=Action.RECEIVE)
    assert len(received) >= 2
    copies = [r for r in net.trace if r.action is Action.LINK and "duplicate of #1" in r.detail]
    assert copies and copies[0].packet != 1


def test_reordering_lets_a_later_packet_overtake_a_held_back_one() -> None:
    net = Network(seed=3, profile=LinkProfile(latency=0.01, reorder=0.5, reorder_delay=0.2))
    a = net.add_host("peer A", ip="198.51.100.10")
    b = net.add_host("peer B", ip="198.51.100.20")
    receiver = MachineDriver(b, 4000, Pinger(None))
    for i in range(20):
        net.scheduler.call_at(i * 0.01, a.send, 4000, b"%02d" % i, receiver.endpoint, "data")
    net.scheduler.run()
    order = [e.data for _, e in receiver.events]
    assert sorted(order) == [b"%02d" % i for i in range(20)]
    assert order != sorted(order)
    assert any("held back (reordered)" in r.detail for r in net.trace)


def test_jitter_varies_delays_within_bounds_and_is_seeded() -> None:
    def delays(seed: int) -> list[str]:
        net = Network(seed=seed, profile=LinkProfile(latency=0.05, jitter=0.01))
        a = net.add_host("peer A")
        b = net.add_host("peer B")
        MachineDriver(b, 4000, Pinger(None))
        for i in range(10):
            net.scheduler.call_at(i * 1.0, a.send, 4000, b"x", b.endpoint(4000), "data")
        net.scheduler.run()
        return [r.detail for r in net.trace if r.action is Action.LINK]

    first = delays(1)
    assert first == delays(1) and first != delays(2)
    values = [float(d.split()[1]) for d in first]
    assert all(0.04 <= v <= 0.06 for v in values) and len(set(values)) > 1


def test_unknown_destinations_and_closed_ports_are_dropped_with_a_reason() -> None:
    net = Network()
    a = net.add_host("peer A")
    b = net.add_host("peer B")
    a.send(4000, b"x", Endpoint("192.0.2.99", 1), "data")
    a.send(4000, b"x", b.endpoint(9), "data")
    net.scheduler.run()
    drops = [(r.actor, r.detail) for r in net.trace.filter(action=Action.DROP)]
    assert drops == [("internet", "no route"), ("peer B", "port unreachable")]


def test_topology_building_assigns_documented_addresses_and_checks_names() -> None:
    net = Network()
    cgnat = net.add_nat("CGNAT", PORT_RESTRICTED_CONE, lan="100.64.0.")
    home = net.add_nat("NAT A", FULL_CONE, behind=cgnat)
    host = net.add_host("peer A", behind=home)
    public = net.add_host("peer B")
    assert (cgnat.ip, home.ip, host.ip, public.ip) == ("198.51.100.10", "100.64.0.2", "10.0.1.2", "198.51.100.20")
    with pytest.raises(ValueError, match="already used"):
        net.add_host("peer A")
    with pytest.raises(ValueError, match="add_host"):
        net.add_nat("NAT X", NO_NAT)
    with pytest.raises(ValueError, match="already used"):
        net.add_host("peer C", ip="198.51.100.20")


def test_graph_exposes_nodes_and_links_for_drawing() -> None:
    net = Network()
    net.add_host("server", ip="198.51.100.1", role="server")
    cgnat = net.add_nat("CGNAT", PORT_RESTRICTED_CONE, lan="100.64.0.")
    home = net.add_nat("NAT A", FULL_CONE, behind=cgnat)
    net.add_host("peer A", behind=home)
    g = net.graph()
    assert set(g.nodes) == {"internet", "server", "CGNAT", "NAT A", "peer A"}
    assert set(map(frozenset, g.edges)) == {
        frozenset(e) for e in [("server", "internet"), ("CGNAT", "internet"), ("NAT A", "CGNAT"), ("peer A", "NAT A")]
    }
    assert g.nodes["NAT A"]["behavior"] == "FULL_CONE" and g.nodes["server"]["kind"] == "server"
    assert g.edges["peer A", "NAT A"]["name"] == "lan A"
