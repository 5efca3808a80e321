"""TCP in the simulator: segments through NATs (RFC 5382), the real TCP machines, the grid.

The NAT x NAT grid over the presets, simultaneous open in the trace, an RST-answering NAT
against a silent one, session states and timeouts (table-driven, as test_sim_nat.py does for
UDP), the endpoint model (RST from a closed port, retransmission through loss), determinism and
layering. Everything runs on simulated time: the whole file takes a few seconds.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action
from simulator import (
    FULL_CONE,
    NO_NAT,
    PORT_RESTRICTED_CONE,
    PRESETS,
    RESTRICTED_CONE,
    RST_SENT,
    SYMMETRIC,
    Conn,
    LinkProfile,
    NatBehavior,
    Outcome,
    Packet,
    Segment,
    SegmentKind,
    SessionState,
    TcpNatPolicy,
    TcpNatTable,
    TcpNetwork,
    TcpOutcome,
    TcpStackConfig,
    format_grid,
    nat_grid,
    run_tcp_punch,
    tcp_nat_grid,
    tcp_two_peers,
)
from simulator.nat import EXPIRED, FILTERED, NO_MAPPING, Filtering, Mapping
from simulator.tcp_driver import TcpClientDriver
from simulator.tcp_nat import NO_SESSION, RESET_SESSION

ROOT = Path(__file__).resolve().parents[2]
APDF = FILTERED[Filtering.APDF]
SK = SegmentKind
SLOW_B = (0.001, 0.3)
"""LAN latencies (A, B): B learns of A late, so A's first SYN reaches NAT B before B's SYN leaves."""


def sends(outcome: TcpOutcome, kind: str, actor: str | None = None) -> list:
    return [r for r in outcome.trace if r.action is Action.SEND and r.kind == kind
            and (actor is None or r.actor == actor)]


def peer_record(outcome: TcpOutcome, letter: str):  # type: ignore[no-untyped-def]
    """The TCP client's record of its one peer (attempts, errors by errno)."""
    assert outcome.scenario is not None
    (record,) = outcome.scenario.peer(letter).machine.peers.values()  # type: ignore[attr-defined]
    return record


# --- the grid ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid() -> dict[tuple[str, str], TcpOutcome]:
    return tcp_nat_grid()


def symmetric_meets_apdf(a: NatBehavior, b: NatBehavior) -> bool:
    """The model's rule: one side's NAT maps per destination and the other's filters by endpoint."""
    def blocks(sym: NatBehavior, other: NatBehavior) -> bool:
        return (sym.translates and sym.mapping is Mapping.APDM
                and other.translates and other.filtering is Filtering.APDF)
    return blocks(a, b) or blocks(b, a)


def test_the_tcp_grid_fails_exactly_where_a_symmetric_nat_meets_endpoint_filtering(
        grid: dict[tuple[str, str], TcpOutcome]) -> None:
    names = {p.name: p for p in PRESETS}
    assert set(grid) == {(a, b) for a in names for b in names}
    for (a, b), outcome in grid.items():
        assert outcome.connected is not symmetric_meets_apdf(names[a], names[b]), (a, b, outcome.explain())
    failing = {pair for pair, o in grid.items() if not o.connected}
    assert failing == {("SYMMETRIC", x) for x in ("PORT_RESTRICTED_CONE", "SYMMETRIC", "LINUX_MASQUERADE")} | {
        (x, "SYMMETRIC") for x in ("PORT_RESTRICTED_CONE", "SYMMETRIC", "LINUX_MASQUERADE")}
    text = format_grid(dict[tuple[str, str], Outcome](grid))
    assert "yes" in text and "no" in text


def test_tcp_connects_wherever_udp_does_and_also_symmetric_against_open_filters(
        grid: dict[tuple[str, str], TcpOutcome]) -> None:
    udp = nat_grid()
    assert all(grid[pair].connected for pair, o in udp.items() if o.connected)
    gained = {pair for pair in udp if grid[pair].connected and not udp[pair].connected}
    # UDP drops datagrams from unlisted endpoints; over TCP the listener accepts them and HELLO
    # proves who is there, so a symmetric side gets through any NAT that admits its new port.
    opens = ("NO_NAT", "FULL_CONE", "RESTRICTED_CONE")
    assert gained == {("SYMMETRIC", x) for x in opens} | {(x, "SYMMETRIC") for x in opens}


def test_cone_nats_connect_by_simultaneous_open_with_both_syns_crossing(grid: dict[tuple[str, str], TcpOutcome]) -> None:
    outcome = grid["PORT_RESTRICTED_CONE", "PORT_RESTRICTED_CONE"]
    records = list(outcome.trace)
    syns = [i for i, r in enumerate(records) if r.kind == SK.SYN.value and r.actor.startswith("peer")
            and r.destination in (outcome.listed["A"], outcome.listed["B"])]
    arrivals = [i for i, r in enumerate(records) if r.kind == SK.SYN.value and r.action is Action.RECEIVE
                and r.actor.startswith("peer")]
    assert len(syns) == 2 and len(arrivals) == 2
    assert max(syns) < min(arrivals), "both SENDs come before either RECEIVE: the SYNs cross"
    assert all("simultaneous open" in records[i].summary for i in arrivals)
    crossing = [r for r in records if r.action is Action.TRANSLATE and r.kind == SK.SYN.value
                and r.summary == "inbound" and r.detail.endswith("session SYN_SENT2")]
    assert {r.actor for r in crossing} == {"NAT A", "NAT B"}
    assert len(sends(outcome, SK.SYN_ACK.value, "peer A")) == len(sends(outcome, SK.SYN_ACK.value, "peer B")) == 1
    assert "simultaneous open" in outcome.explain()


def test_symmetric_vs_full_cone_connects_through_the_cone_sides_listener(grid: dict[tuple[str, str], TcpOutcome]) -> None:
    outcome = grid["SYMMETRIC", "FULL_CONE"]
    listed_a = outcome.listed["A"]
    # A's NAT gave the connection to B a new port; B's full cone let it in, to B's listener...
    (arrival,) = [r for r in outcome.trace.filter(actor="peer B", action=Action.RECEIVE, kind=SK.SYN.value)]
    assert arrival.source != listed_a and arrival.summary == "to the listener"
    # ...while B's SYNs to the listed endpoint die at A's symmetric NAT.
    drops = outcome.trace.filter(actor="NAT A", action=Action.DROP, kind=SK.SYN.value)
    assert drops and {r.detail for r in drops} == {APDF}
    text = outcome.explain()
    assert "B's listener accepted A's SYN" in text and "new mapping" in text


def test_symmetric_vs_port_restricted_fails_at_both_filters(grid: dict[tuple[str, str], TcpOutcome]) -> None:
    outcome = grid["SYMMETRIC", "PORT_RESTRICTED_CONE"]
    for sender, nat in (("A", "NAT B"), ("B", "NAT A")):
        syns = outcome.syns(sender, "B" if sender == "A" else "A")
        assert len(syns) > 5  # the client kept trying until its deadline
        fates = {r.packet: r for r in outcome.trace if r.action in (Action.DROP, Action.RECEIVE)}
        assert {(fates[s.packet].actor, fates[s.packet].detail) for s in syns} == {(nat, APDF)}
    assert {r.actor for r in outcome.trace.filter(action=Action.RECEIVE, kind=SK.SYN.value)} == {"server"}
    assert "did not connect" in outcome.explain() and APDF in outcome.explain()


# --- an RST-answering NAT against a silent one ------------------------------------------------


def test_a_silent_nat_drops_the_early_syn_and_the_peers_connect_without_retrying() -> None:
    outcome = run_tcp_punch(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, rst=False, lan_latency=SLOW_B)
    assert outcome.connected
    first = outcome.syns("A", "B")[0]
    (drop,) = [r for r in outcome.trace if r.packet == first.packet and r.action is Action.DROP]
    assert (drop.actor, drop.detail) == ("NAT B", APDF)
    assert not sends(outcome, SK.RST.value)
    record = peer_record(outcome, "A")
    assert record.attempts == 1 and not record.errors  # B's SYN met A's connect, still waiting


def test_an_rst_answering_nat_makes_the_client_retry_and_it_still_connects() -> None:
    outcome = run_tcp_punch(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, rst=True, lan_latency=SLOW_B)
    assert outcome.connected
    first, *retries = outcome.syns("A", "B")
    (drop,) = [r for r in outcome.trace if r.packet == first.packet and r.action is Action.DROP]
    assert drop.actor == "NAT B" and drop.detail == f"{APDF}; {RST_SENT}"
    (rst,) = sends(outcome, SK.RST.value, "NAT B")
    refused = outcome.trace.filter(actor="peer A", action=Action.RECEIVE, kind=SK.RST.value)
    assert [r.packet for r in refused] == [rst.packet] and refused[0].summary == "connection refused"
    record = peer_record(outcome, "A")
    assert record.errors["ECONNREFUSED"] == 1 and record.attempts == 2 and len(retries) == 1
    delivered = [r for r in outcome.trace if r.packet == retries[0].packet and r.action is Action.RECEIVE]
    assert delivered and "simultaneous open" in delivered[0].summary
    assert "RST came back to A from NAT B" in outcome.explain()


def test_rst_or_silence_is_a_per_nat_policy_on_unsolicited_syns() -> None:
    for rst in (False, True):
        table = TcpNatTable(PORT_RESTRICTED_CONE, PUBLIC, TcpNatPolicy(rst_unsolicited=rst))
        verdict = table.inbound(seg(SK.SYN, R1, Endpoint(PUBLIC, 4000)), 0.0)
        assert (verdict.packet, verdict.reason, verdict.rst) == (None, NO_MAPPING, rst)
        assert not table.inbound(seg(SK.ACK, R1, Endpoint(PUBLIC, 4000)), 0.0).rst  # only SYNs get RST


# --- the NAT's TCP table: filtering, states, timeouts -----------------------------------------

PUBLIC = "198.51.100.10"
INSIDE = Endpoint("10.0.1.2", 4000)
R1 = Endpoint("203.0.113.5", 7000)


def seg(kind: SegmentKind, source: Endpoint, destination: Endpoint, pid: int = 1) -> Packet:
    return Packet(pid, source, destination, Segment(kind), kind.value, "test")  # type: ignore[arg-type]


@pytest.mark.parametrize("behavior, same_host_other_port, other_host", [
    (FULL_CONE, None, None),
    (RESTRICTED_CONE, None, FILTERED[Filtering.ADF]),
    (PORT_RESTRICTED_CONE, APDF, APDF),
])
def test_inbound_syns_are_admitted_by_the_filtering_of_live_sessions(
        behavior: NatBehavior, same_host_other_port: str | None, other_host: str | None) -> None:
    table = TcpNatTable(behavior, PUBLIC)
    out = table.outbound(seg(SK.SYN, INSIDE, R1), 0.0).packet
    assert out is not None and out.source == Endpoint(PUBLIC, 4000)  # EIM, port kept (REQ-1)
    public = out.source
    for source, expected in ((Endpoint(R1.host, 7001), same_host_other_port),
                             (Endpoint("192.0.2.9", 7000), other_host)):
        verdict = table.inbound(seg(SK.SYN, source, public), 1.0)
        assert verdict.reason == (expected or ""), source
        if expected is None:
            assert verdict.packet is not None and verdict.packet.destination == INSIDE
    assert table.inbound(seg(SK.SYN, R1, Endpoint(PUBLIC, 4001)), 1.0).reason == NO_MAPPING


def test_a_session_walks_the_conntrack_states_of_a_simultaneous_open() -> None:
    table = TcpNatTable(PORT_RESTRICTED_CONE, PUBLIC)
    public = Endpoint(PUBLIC, 4000)
    steps = [
        (table.outbound, SK.SYN, INSIDE, R1, SessionState.SYN_SENT),
        (table.inbound, SK.SYN, R1, public, SessionState.SYN_SENT2),
        (table.outbound, SK.SYN_ACK, INSIDE, R1, SessionState.SYN_RECV),
        (table.inbound, SK.SYN_ACK, R1, public, SessionState.SYN_RECV),
        (table.outbound, SK.DATA, INSIDE, R1, SessionState.ESTABLISHED),
        (table.outbound, SK.FIN, INSIDE, R1, SessionState.FIN_WAIT),
        (table.inbound, SK.FIN, R1, public, SessionState.TIME_WAIT),
    ]
    for i, (direction, kind, source, destination, state) in enumerate(steps):
        verdict = direction(seg(kind, source, destination), float(i))
        assert verdict.packet is not None and verdict.state is state, kind
    (row,) = table.sessions(10.0)
    assert (row.state, row.opened_by, row.external) == (SessionState.TIME_WAIT, "inside", public)
    assert "TIME_WAIT" in table.format(10.0)


def test_sessions_live_for_the_transitory_timeout_until_established() -> None:
    policy = TcpNatPolicy(transitory_timeout=5.0, established_timeout=50.0)
    public = Endpoint(PUBLIC, 4000)
    table = TcpNatTable(PORT_RESTRICTED_CONE, PUBLIC, policy)
    table.outbound(seg(SK.SYN, INSIDE, R1), 0.0)
    assert table.inbound(seg(SK.SYN_ACK, R1, public), 4.9).packet is not None  # SYN_RECV, refreshed
    assert table.inbound(seg(SK.ACK, R1, public), 9.8).packet is not None  # ESTABLISHED now
    assert table.inbound(seg(SK.DATA, R1, public), 59.7).packet is not None  # idle 49.9 s < 50 s
    assert table.inbound(seg(SK.DATA, R1, public), 109.8).reason == EXPIRED  # idle 50.1 s
    assert table.outbound(seg(SK.DATA, INSIDE, R1), 110.0).reason == EXPIRED
    half_open = TcpNatTable(PORT_RESTRICTED_CONE, PUBLIC, policy)
    half_open.outbound(seg(SK.SYN, INSIDE, R1), 0.0)
    assert half_open.inbound(seg(SK.SYN, R1, public), 5.0).reason == EXPIRED  # transitory: 5 s
    assert half_open.outbound(seg(SK.ACK, Endpoint("10.0.1.3", 4000), R1), 5.0).reason == NO_SESSION


@pytest.mark.parametrize("rst", [False, True])
def test_a_reset_session_reopens_from_inside_but_refuses_the_remotes_syn(rst: bool) -> None:
    """Linux conntrack: a SYN in the reply direction of a reset (CLOSE) entry is INVALID, so the
    remote cannot reopen it (the lab's linux-masquerade pair shows it); the inside can."""
    public = Endpoint(PUBLIC, 4000)
    table = TcpNatTable(PORT_RESTRICTED_CONE, PUBLIC, TcpNatPolicy(rst_unsolicited=rst))
    table.outbound(seg(SK.SYN, INSIDE, R1), 0.0)
    assert table.inbound(seg(SK.RST, R1, public), 0.1).state is SessionState.CLOSE
    refused = table.inbound(seg(SK.SYN, R1, public), 0.2)
    assert refused.packet is None and refused.reason == RESET_SESSION and refused.rst is rst
    reopened = table.outbound(seg(SK.SYN, INSIDE, R1), 0.3)
    assert reopened.packet is not None and reopened.state is SessionState.SYN_SENT
    crossed = table.inbound(seg(SK.SYN, R1, public), 0.4)
    assert crossed.packet is not None and crossed.state is SessionState.SYN_SENT2
    assert table.sessions(0.5)[0].opened_by == "inside"


@pytest.mark.parametrize("quiet, delivered", [(10.0, True), (30.0, False)])
def test_an_idle_connection_dies_at_the_established_timeout(quiet: float, delivered: bool) -> None:
    sc = tcp_two_peers(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE,
                       policy=TcpNatPolicy(established_timeout=20.0), stack=TcpStackConfig(data_retries=2))
    sc.run(10.0, until_completed=True)
    a, b = sc.peer("A"), sc.peer("B")
    (target,) = [e.peer for _, e in a.events if type(e).__name__ == "PeerConnected"]
    sent_at = sc.now + quiet
    sc.scheduler.call_at(sent_at, a.apply, lambda machine, now: machine.send(target, b"hello"))
    sc.run(sent_at + 30.0)
    got = [e.data for t, e in b.events if type(e).__name__ == "DataReceived" and t >= sent_at]
    assert (got == [b"hello"]) is delivered
    if not delivered:
        drops = sc.trace.filter(actor="NAT A", action=Action.DROP, kind=SK.DATA.value)
        assert drops and {r.detail for r in drops} == {EXPIRED}
        assert any(type(e).__name__ == "PeerDisconnected" for _, e in a.events)


# --- the endpoint model -----------------------------------------------------------------------


@dataclass(eq=False)
class Recorder:
    """A socket owner that writes down what its sockets report: the tests' application."""

    log: list[tuple[object, ...]] = field(default_factory=list)
    accepted: list[Conn] = field(default_factory=list)

    def tcp_connected(self, conn: Conn) -> None:
        self.log.append(("connected", conn.opened))

    def tcp_failed(self, conn: Conn, errno_name: str) -> None:
        self.log.append(("failed", errno_name))

    def tcp_accepted(self, conn: Conn) -> None:
        self.accepted.append(conn)
        self.log.append(("accepted", str(conn.remote)))

    def tcp_data(self, conn: Conn, data: bytes) -> None:
        self.log.append(("data", data))

    def tcp_lost(self, conn: Conn) -> None:
        self.log.append(("lost",))


def public_pair(**profile: float) -> tuple[TcpNetwork, Recorder, Recorder]:
    net = TcpNetwork(profile=LinkProfile(**profile), stack=TcpStackConfig(syn_retries=2))
    net.add_host("host X")
    net.add_host("host Y")
    return net, Recorder(), Recorder()


def test_a_syn_to_a_closed_port_is_answered_with_rst() -> None:
    net, rx, _ = public_pair()
    net.stack("host X").connect(4000, Endpoint(net.host("host Y").ip, 9), rx)
    net.scheduler.run(5.0)
    assert rx.log == [("failed", "ECONNREFUSED")]
    assert [r.detail for r in net.trace.filter(action=Action.DROP)] == ["port closed: RST sent"]
    assert [r.actor for r in net.trace.filter(action=Action.SEND, kind=SK.RST.value)] == ["host Y"]


def test_an_unanswered_syn_is_retransmitted_then_times_out() -> None:
    net, rx, _ = public_pair()
    net.stack("host X").connect(4000, Endpoint("198.51.100.99", 80), rx)
    net.scheduler.run(20.0)
    syns = net.trace.filter(action=Action.SEND, kind=SK.SYN.value)
    assert [r.time for r in syns] == [0.0, 1.0, 3.0]  # RFC 6298: 1 s, then doubling
    assert rx.log == [("failed", "ETIMEDOUT")]


def test_listen_accept_data_and_close_without_a_reset() -> None:
    net, rx, ry = public_pair()
    x, y = net.stack("host X"), net.stack("host Y")
    assert y.listen(80, ry) is None and y.listen(80, rx) == "EADDRINUSE"
    conn = x.connect(4000, net.host("host Y").endpoint(80), rx)
    assert isinstance(conn, Conn)
    net.scheduler.run(1.0)
    assert rx.log == [("connected", "active")] and ry.log == [("accepted", str(conn.local))]
    assert y.connect(80, conn.local, ry) == "EADDRNOTAVAIL"  # the accepted 4-tuple is taken
    x.write(conn, b"one", "data")
    x.write(conn, b"two", "data")
    x.close(conn)
    net.scheduler.run(2.0)
    assert ry.log[1:] == [("data", b"one"), ("data", b"two"), ("lost",)]
    assert not x.conns and not y.conns and not net.trace.filter(kind=SK.RST.value)


def test_two_connects_to_each_other_open_simultaneously() -> None:
    net, rx, ry = public_pair()
    x_end, y_end = net.host("host X").endpoint(4000), net.host("host Y").endpoint(4000)
    net.stack("host X").connect(4000, y_end, rx)
    net.stack("host Y").connect(4000, x_end, ry)
    net.scheduler.run(1.0)
    assert rx.log == ry.log == [("connected", "simultaneous")]
    kinds = [r.kind for r in net.trace.filter(action=Action.SEND)]
    assert kinds == [SK.SYN.value] * 2 + [SK.SYN_ACK.value] * 2  # no third ACK (RFC 9293 Figure 8)


def test_data_survives_loss_duplication_and_reordering_in_order() -> None:
    net, rx, ry = public_pair(latency=0.02, jitter=0.01, loss=0.2, duplicate=0.1, reorder=0.2)
    net.stack("host Y").listen(80, ry)
    conn = net.stack("host X").connect(4000, net.host("host Y").endpoint(80), rx)
    net.scheduler.run(10.0)
    assert isinstance(conn, Conn) and rx.log == [("connected", "active")]
    chunks = [f"chunk {i}".encode() for i in range(20)]
    for chunk in chunks:
        net.stack("host X").write(conn, chunk, "data")
    net.scheduler.run(200.0)
    assert [entry[1] for entry in ry.log if entry[0] == "data"] == chunks
    assert net.trace.filter(action=Action.DROP)  # the run did lose segments


def test_a_stranger_sending_garbage_to_the_listener_is_closed() -> None:
    sc = tcp_two_peers(NO_NAT, NO_NAT)
    sc.run(10.0, until_completed=True)
    net = sc.network
    assert isinstance(net, TcpNetwork)
    stranger, rec = net.add_host("stranger"), Recorder()
    conn = net.stack(stranger).connect(6000, sc.peer("A").host.endpoint(4000), rec)
    sc.run(sc.now + 1.0)
    assert isinstance(conn, Conn) and rec.log == [("connected", "active")]
    net.stack(stranger).write(conn, b"GET / HTTP/1.1\r\n\r\n", "data")
    sc.run(sc.now + 1.0)
    assert rec.log[-1] == ("lost",)
    dropped = sc.peer("A").machine.dropped  # type: ignore[attr-defined]
    assert any(reason.startswith("stranger: malformed") for reason in dropped)


# --- determinism, drawing, layering, bad input ------------------------------------------------


def test_the_same_seed_gives_a_byte_identical_trace() -> None:
    options: dict[str, float] = {"seed": 5, "jitter": 0.01, "loss": 0.05, "duplicate": 0.05, "reorder": 0.1}
    first = run_tcp_punch(RESTRICTED_CONE, PORT_RESTRICTED_CONE, **options)
    again = run_tcp_punch(RESTRICTED_CONE, PORT_RESTRICTED_CONE, **options)
    other = run_tcp_punch(RESTRICTED_CONE, PORT_RESTRICTED_CONE, **{**options, "seed": 6})
    assert first.trace.to_text() == again.trace.to_text() != other.trace.to_text()
    assert first.explain() == again.explain()


def test_the_ladder_diagram_draws_a_tcp_trace() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from simulator.viz import timeline, timeline_hops, timeline_lanes

    outcome = run_tcp_punch(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, rst=True, lan_latency=SLOW_B)
    ax = timeline(outcome.trace, ax=Figure().add_subplot())
    assert ax.patches
    lanes = timeline_lanes(outcome.trace)
    assert lanes == ["peer A", "NAT A", "server", "NAT B", "peer B"]
    hops = timeline_hops(outcome.trace, lanes)
    assert {h.kind for h in hops} >= {k.value for k in SegmentKind}
    assert any(h.dropped == f"{APDF}; {RST_SENT}" for h in hops)


TCP_MODULES = ("tcp.py", "tcp_driver.py", "tcp_nat.py", "tcp_scenarios.py")


@pytest.mark.parametrize("name", TCP_MODULES)
def test_the_tcp_modules_import_no_socket_asyncio_or_clock(name: str) -> None:
    tree = ast.parse((ROOT / "simulator" / name).read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m.split(".")[0] for m in modules} & {"socket", "asyncio", "time", "selectors", "matplotlib"}


def test_importing_the_tcp_simulator_loads_no_io_module() -> None:
    code = ("import json, sys; import simulator.tcp_scenarios; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('asyncio', 'socket', 'selectors', 'matplotlib', 'networkx', 'ipywidgets'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(result.stdout) == []


def test_bad_arguments_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="not both"):
        tcp_two_peers(FULL_CONE, FULL_CONE, rst=True, policy=TcpNatPolicy())
    with pytest.raises(ValueError, match="one value or two"):
        tcp_two_peers(FULL_CONE, FULL_CONE, lan_latency=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="transitory_timeout"):
        TcpNatPolicy(transitory_timeout=0)
    with pytest.raises(ValueError, match="initial_rto"):
        TcpStackConfig(initial_rto=0)
    with pytest.raises(TypeError, match="needs both"):
        run_tcp_punch(FULL_CONE)
    from holepunch.protocol.tcp_client import TcpPeerClient
    from simulator import Network

    host = Network().add_host("plain")
    with pytest.raises(TypeError, match="TcpNetwork"):
        TcpClientDriver(host, TcpPeerClient(Endpoint("198.51.100.1", 5000), b"s", 1))
    assert SYMMETRIC.mapping is Mapping.APDM  # the grid rule above leans on this
