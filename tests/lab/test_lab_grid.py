"""The simulator predicts every outcome of the real lab: the NAT x NAT grids (UDP and TCP, basic
technique, every ordered pair of the lab's NAT types), a hairpin case and an impaired link,
each behind a negative control; and a lab run's capture becomes trace records that the
simulator's timeline draws.

Rule: the root tests assert what real clients reported through real NATs against what the
simulator says for the same configuration (`simulator.lab_compare`); a disagreement fails with
both grids printed. The capture's conversion and the lab-mirroring predictions are checked
without root, on built frames and in the simulator.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
from dataclasses import replace

import pytest

from holepunch.lab import Lab, netns
from holepunch.lab.capture import Frame, Point, parse_frame
from holepunch.lab.capture_trace import frames_to_trace
from holepunch.lab.cli import lab_main
from holepunch.lab.grid import RealCell, RealGrid, Trial, run_hairpin, run_pair
from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action
from simulator import NatTable, Packet
from simulator.lab_compare import (
    CellComparison,
    GridComparison,
    Prediction,
    compare,
    format_comparison,
    lab_behavior,
    lab_grid,
    lab_tcp_policy,
    predict,
    predict_trial,
    unresolved,
)
from simulator.viz.hops import timeline_hops, timeline_lanes

MASQ, PORT = "linux-masquerade", "port-restricted"
EP = Endpoint


# --- without root: the capture's frames become trace records --------------------------------------

def _lab() -> Lab:
    return Lab({"A": PORT, "B": PORT}, prefix="hpt")  # planned only: nothing is built


def _frame(t: float, site: str, side: str, outgoing: bool, src: str, dst: str,
           payload: bytes = b"SYN", proto: int = 17) -> Frame:
    point = Point(site, side, "ns", "eth")
    return Frame(t, point, outgoing, proto, EP.parse(src), EP.parse(dst), payload)


def test_a_datagram_seen_at_four_points_becomes_one_packet_of_send_translate_receive() -> None:
    frames = [
        _frame(1.000, "A", "lan", False, "10.0.1.10:4000", "198.51.100.12:5000"),
        _frame(1.001, "A", "wan", True, "198.51.100.11:4000", "198.51.100.12:5000"),
        _frame(1.002, "B", "wan", False, "198.51.100.11:4000", "198.51.100.12:5000"),
        _frame(1.003, "B", "lan", True, "198.51.100.11:4000", "10.0.2.10:5000"),
    ]
    trace = frames_to_trace(frames, _lab())
    got = [(r.time, r.actor, r.action, r.summary, r.detail, r.kind, r.packet) for r in trace]
    assert got == [
        (0.0, "peer A", Action.SEND, "", "", "syn", 1),
        (0.001, "NAT A", Action.TRANSLATE, "outbound", "10.0.1.10:4000 -> 198.51.100.11:4000", "syn", 1),
        (0.003, "NAT B", Action.TRANSLATE, "inbound", "198.51.100.12:5000 -> 10.0.2.10:5000", "syn", 1),
        (0.003, "peer B", Action.RECEIVE, "", "", "syn", 1),
    ]
    lanes = timeline_lanes(trace)
    assert lanes == ["peer A", "NAT A", "NAT B", "peer B"]
    assert [(h.src, h.dst) for h in timeline_hops(trace, lanes)] == [
        ("peer A", "NAT A"), ("NAT A", "NAT B"), ("NAT B", "peer B")]


def test_a_datagram_that_never_leaves_a_nat_becomes_a_drop_saying_why() -> None:
    frames = [  # B's NAT has sent from port 5000 (to the server), then A's punch arrives
        _frame(0.5, "B", "wan", True, "198.51.100.12:5000", "198.51.100.1:5000", b"x" * 9),
        _frame(1.0, "A", "lan", False, "10.0.1.10:4000", "198.51.100.12:5000"),
        _frame(1.001, "A", "wan", True, "198.51.100.11:4000", "198.51.100.12:5000"),
        _frame(1.002, "B", "wan", False, "198.51.100.11:4000", "198.51.100.12:5000"),
        _frame(1.003, "B", "wan", True, "198.51.100.12:0", "198.51.100.11:0", b"\x03\x03", proto=1),
        _frame(2.0, "A", "lan", False, "10.0.1.10:4000", "198.51.100.12:6000"),
        _frame(2.001, "A", "wan", True, "198.51.100.11:4000", "198.51.100.12:6000"),
        _frame(2.002, "B", "wan", False, "198.51.100.11:4000", "198.51.100.12:6000"),
    ]
    drops = [r for r in frames_to_trace(frames, _lab()) if r.action is Action.DROP]
    assert [(r.actor, r.kind, r.detail) for r in drops] == [
        ("internet", "register", "lost on link"),  # left B's NAT, never seen at the server
        ("NAT B", "syn", "filtered (address-and-port dependent); the NAT itself answered (ICMP)"),
        ("internet", "icmp", "lost on link"),
        ("NAT B", "syn", "no mapping"),
    ]


def test_retransmissions_with_the_same_bytes_are_told_apart_by_time() -> None:
    frames = []
    for t in (1.0, 1.15):  # two identical SYNs, 150 ms apart; only the second gets through
        frames += [_frame(t, "A", "lan", False, "10.0.1.10:4000", "198.51.100.12:5000"),
                   _frame(t + 0.001, "A", "wan", True, "198.51.100.11:4000", "198.51.100.12:5000"),
                   _frame(t + 0.002, "B", "wan", False, "198.51.100.11:4000", "198.51.100.12:5000")]
    frames.append(_frame(1.153, "B", "lan", True, "198.51.100.11:4000", "10.0.2.10:5000"))
    trace = frames_to_trace(frames, _lab())
    assert [(r.packet, r.action) for r in trace if r.action in (Action.DROP, Action.RECEIVE)] == [
        (1, Action.DROP), (2, Action.RECEIVE)]


def _ethernet(src: str, dst: str, sport: int, dport: int, payload: bytes, proto: int = 17) -> bytes:
    header = payload if proto != 17 else struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(header), 0, 0x4000, 64, proto, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return b"\x00" * 12 + b"\x08\x00" + ip + header


def test_parse_frame_reads_ipv4_udp_and_ignores_everything_else() -> None:
    point = Point("A", "wan", "ns", "eth")
    frame = parse_frame(_ethernet("198.51.100.11", "198.51.100.12", 4000, 5000, b"SYN"), 7.0, point, True)
    assert frame == Frame(7.0, point, True, 17, EP("198.51.100.11", 4000), EP("198.51.100.12", 5000), b"SYN")
    assert parse_frame(b"\x00" * 12 + b"\x08\x06" + b"\x00" * 28, 7.0, point, False) is None  # ARP
    assert parse_frame(b"\x00" * 20, 7.0, point, False) is None  # truncated
    assert parse_frame(_ethernet("1.2.3.4", "5.6.7.8", 1, 2, b"x" * 4, proto=47), 7.0, point, False) is None


# --- without root: the simulator under the lab's timing -------------------------------------------

@pytest.mark.parametrize(("a", "b", "transport", "early", "together", "late"), [
    (MASQ, MASQ, "udp", False, True, False),  # whoever punches first, both lose the race
    (MASQ, PORT, "udp", True, True, False),  # the masquerading side must punch first
    (PORT, MASQ, "udp", False, True, True),
    (PORT, PORT, "udp", True, True, True),
    (MASQ, MASQ, "tcp", False, True, False),  # RSTs reset both NATs' sessions every attempt
    (MASQ, PORT, "tcp", True, True, True),  # the port-restricted NAT drops silently: a retry wins
])
def test_the_simulator_under_lab_timing_says_who_must_punch_first(a: str, b: str, transport: str, early: bool,
                                                                  together: bool, late: bool) -> None:
    """skew < 0: A's first punch leaves 1 ms before B's; lab links take microseconds."""
    got = [predict(a, b, transport, skew=s).connected for s in (-1e-3, 0.0, 1e-3)]
    assert got == [early, together, late]


def test_the_labs_hairpinning_is_unfiltered_and_claims_nothing() -> None:
    """The lab DNATs a hairpinned packet through its map: it reaches the port's holder even
    under APDF, and (never reaching the NAT box itself) takes no port from anyone."""
    table = NatTable(lab_behavior(MASQ, hairpin=True), "198.51.100.11")
    server, one, two = EP("198.51.100.1", 5000), EP("10.0.1.10", 4000), EP("10.0.1.11", 4001)
    table.outbound(Packet(1, two, server, b"", "register", "peer A:1"), 0.0)  # maps :4001
    verdict = table.outbound(Packet(2, one, EP("198.51.100.11", 4001), b"SYN", "syn", "peer A"), 0.1)
    assert verdict.hairpin and verdict.packet is not None
    assert (verdict.packet.source, verdict.packet.destination) == (EP("198.51.100.11", 4000), two)
    assert not [row for row in table.rows(0.2) if row.internal is None]  # no claim
    filtered = NatTable(replace(lab_behavior(MASQ, hairpin=True), hairpin_filtering=True), "198.51.100.11")
    filtered.outbound(Packet(1, two, server, b"", "register", "peer A:1"), 0.0)
    assert filtered.outbound(Packet(2, one, EP("198.51.100.11", 4001), b"SYN", "syn", "peer A"), 0.1).packet is None


def test_only_linux_masquerade_answers_unsolicited_syns_with_rst() -> None:
    assert lab_tcp_policy(MASQ).rst_unsolicited
    assert not any(lab_tcp_policy(k).rst_unsolicited for k in ("none", PORT, "symmetric", "full-cone"))


def _trial(a: str, b: str, connected: bool, skew: float) -> Trial:
    peers = [{"elapsed_ms": 1.0 if connected else None}]
    return Trial(a, b, "udp", ({"peers": peers}, {"peers": peers}), skew, 1.0)


def test_the_side_by_side_grid_marks_disagreements() -> None:
    trials = {(MASQ, MASQ): _trial(MASQ, MASQ, False, 1e-3), (MASQ, PORT): _trial(MASQ, PORT, True, 1e-3),
              (PORT, MASQ): _trial(PORT, MASQ, True, 1e-3), (PORT, PORT): _trial(PORT, PORT, True, 0.0)}
    real = RealGrid("udp", "basic", (MASQ, PORT),
                    {pair: RealCell(*pair, "udp", (t,), ()) for pair, t in trials.items()}, 3.0)
    cells = {pair: CellComparison(real.cells[pair], (predict_trial(t),), pair != (PORT, PORT))
             for pair, t in trials.items()}
    text = format_comparison(GridComparison(real, cells, {}))
    assert GridComparison(real, cells, {}).disagreements == [(MASQ, PORT)]  # A punched late: no
    assert "!!yes|no~" in text and "no|no~" in text and "yes|yes~" in text
    assert "3 of 4 pairs agree; differ: linux-masquerade x port-restricted" in text
    assert CellComparison(real.cells[(PORT, PORT)], (Prediction(True, 0.1, ""),), False).simulated_text() == "yes 0.100"


def test_a_tie_the_capture_cannot_order_agrees_with_either_answer() -> None:
    """TCP masquerade x masquerade: who punches first decides, and a skew of 12 us (seen after
    two reruns) is below RACE_RESOLUTION, where the simulator gives both answers."""
    tie = dataclasses.replace(_trial(MASQ, MASQ, True, 1.2e-5), transport="tcp")
    late = dataclasses.replace(_trial(MASQ, MASQ, True, 1e-3), transport="tcp")
    assert unresolved(tie) and not unresolved(late)
    grids = {}
    for name, trial in (("tie", tie), ("late", late)):
        real = RealGrid("tcp", "basic", (MASQ,), {(MASQ, MASQ): RealCell(MASQ, MASQ, "tcp", (trial,), ())}, 1.0)
        grids[name] = compare(real)
    assert grids["tie"].disagreements == [] and "yes|no?" in grids["tie"].to_text()
    assert "1 still tied" in grids["tie"].to_text()
    real_late, = grids["late"].cells.values()
    assert real_late.agrees is (predict_trial(late).connected is True)  # outside the band: compared as is


def test_holepunch_lab_is_wired_into_the_main_command(capsys: pytest.CaptureFixture[str]) -> None:
    from holepunch.cli import main

    assert main(["lab", "types"]) == 0
    assert "linux-masquerade" in capsys.readouterr().out
    assert main(["lab", "grid", "--transport", "tcp", "--technique", "prediction"]) == 2
    assert "techniques apply to UDP only" in capsys.readouterr().err
    assert main(["lab", "grid", "--types", "no-such-nat"]) == 2


# --- with root: the real lab -------------------------------------------------------------------------

@pytest.fixture
def grid_env(lab_env: None) -> None:
    """The grid flushes conntrack between trials: without the tool old entries would decide them."""
    if not netns.tool_available("conntrack"):
        pytest.skip("the grid needs the conntrack tool (apt-get install conntrack)")


def _explain(comparison: GridComparison) -> str:
    lines = [comparison.to_text()]
    for pair in comparison.disagreements:
        cell = comparison.cells[pair]
        lines.append(f"{pair}: controls {[c.describe() for c in cell.real.controls]}; trials "
                     f"{[(t.connected, t.skew, t.reports) for t in cell.real.trials]}")
    return "\n".join(lines)


@pytest.mark.root
@pytest.mark.timeout(600)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_the_real_grid_is_the_simulated_grid(grid_env: None, prefix: str, transport: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    comparison = lab_grid(transport=transport, workers=6, prefix=prefix)
    with capsys.disabled():
        print("\n" + comparison.to_text())
    assert len(comparison.cells) == 49
    assert all(cell.real.controls_ok and len(cell.real.controls) == 2 for cell in comparison.cells.values())
    assert comparison.disagreements == [], _explain(comparison)
    outcomes = {cell.real.successes > 0 for cell in comparison.cells.values()}
    assert outcomes == {True, False}  # the grid has both answers, so agreement means something


@pytest.mark.root
@pytest.mark.parametrize(("kind", "hairpin", "connects"), [
    (PORT, True, True), (PORT, False, False), (MASQ, True, True), ("symmetric", True, False)])
def test_two_hosts_behind_one_nat_connect_exactly_when_it_hairpins(grid_env: None, prefix: str, kind: str,
                                                                   hairpin: bool, connects: bool) -> None:
    cell = run_hairpin(kind, "udp", hairpin=hairpin, prefix=prefix)
    assert [c.target for c in cell.controls] == ["A", "A:1"] and cell.controls_ok
    (trial,) = cell.trials
    assert trial.connected is connects
    assert predict_trial(trial).connected is connects


@pytest.mark.root
@pytest.mark.parametrize(("a", "b", "transport"), [(PORT, PORT, "udp"), ("full-cone", "restricted-cone", "tcp")])
def test_an_impaired_link_still_connects_cone_to_cone(grid_env: None, prefix: str, a: str, b: str,
                                                      transport: str) -> None:
    impairment = {"delay": 0.02, "loss": 0.1}
    cell = run_pair(a, b, transport, prefix=prefix, lab_options={**impairment, "seed": 1})
    assert cell.controls_ok
    (trial,) = cell.trials
    assert trial.connected, [{k: r.get(k) for k in ("complete", "reason", "peers")} for r in trial.reports]
    assert predict_trial(trial, **impairment).connected


@pytest.mark.root
def test_a_captured_run_is_a_trace_the_timeline_draws(grid_env: None, prefix: str) -> None:
    cell = run_pair(MASQ, "symmetric", "udp", prefix=prefix, keep_traces=True, timeout=1.0)
    (trial,) = cell.trials
    assert trial.trace is not None and not trial.connected
    trace = trial.trace
    assert {"peer A", "NAT A", "server", "NAT B", "peer B"} <= {r.actor for r in trace}
    register = next(r for r in trace if r.action is Action.SEND and r.kind == "ext-register")
    hops = [r.action for r in trace if r.packet == register.packet]
    assert hops == [Action.SEND, Action.TRANSLATE, Action.RECEIVE]  # host, its NAT, the server
    drops = [r for r in trace if r.action is Action.DROP and r.kind == "syn"]
    assert drops and all(r.actor in ("NAT A", "NAT B") for r in drops)
    lanes = timeline_lanes(trace)
    assert lanes == ["peer A", "NAT A", "server", "NAT B", "peer B"]
    assert timeline_hops(trace, lanes)


@pytest.mark.root
def test_lab_grid_and_trace_commands(grid_env: None, prefix: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert lab_main(["grid", "--types", f"{MASQ},symmetric", "--prefix", prefix, "--workers", "4"]) == 0
    out = capfd.readouterr().out
    assert "UDP grid, technique basic: real | simulated" in out and "4 of 4 pairs agree" in out
    assert lab_main(["trace", PORT, PORT, "--kinds", "syn,ack", "--prefix", prefix]) == 0
    out = capfd.readouterr().out
    assert "real run (port-restricted x port-restricted, udp): connected" in out
    assert "negative control: udp from B was stopped at A (ok)" in out
    assert "simulated, same configuration: connected" in out
    assert "peer A       send      syn" in out and "NAT B        translate syn" in out
