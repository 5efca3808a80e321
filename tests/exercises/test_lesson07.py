"""Lesson 7's checks: crossing segments, connects against an RST-answering NAT, the cells only TCP
connects (all read off simulator runs), and an echo over a real TCP stream on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import holepunch
from holepunch.aio import TcpMesh, serve_tcp
from holepunch.trace import Action
from simulator import (
    FULL_CONE,
    RESTRICTED_CONE,
    SYMMETRIC,
    SegmentKind,
    nat_grid,
    run_tcp_punch,
    tcp_nat_grid,
)
from simulator.exercises import Feedback
from simulator.exercises.lesson07 import (
    GRID_PRESETS,
    check_crossing_segments,
    check_echo,
    check_rst_attempts,
    check_tcp_only_cells,
    connect_attempts,
    crossing_kinds,
    crossing_run,
    rst_run,
    segment_kind,
    tcp_only_cells,
)

pytestmark = pytest.mark.timeout(60)
CROSSING = {"tcp-syn", "tcp-syn-ack"}
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.sets(st.text(max_size=8), max_size=3),
                     st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=3),
                     st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


# --- exercise 1: the segments that cross --------------------------------------------------------


def test_in_the_lessons_run_both_syns_and_both_syn_acks_cross() -> None:
    out = crossing_run()
    assert crossing_kinds(out) == CROSSING
    records = list(out.trace)
    syn_sends = [i for i, r in enumerate(records) if r.action is Action.SEND and r.kind == "tcp-syn"
                 and r.destination in (out.listed["A"], out.listed["B"])]
    syn_arrivals = [i for i, r in enumerate(records) if r.action is Action.RECEIVE and r.kind == "tcp-syn"
                    and r.actor.startswith("peer")]
    assert len(syn_sends) == len(syn_arrivals) == 2 and max(syn_sends) < min(syn_arrivals)


def test_nothing_crosses_when_a_listener_accepts_or_a_silent_nat_drops_the_first_syn() -> None:
    assert crossing_kinds(run_tcp_punch(SYMMETRIC, FULL_CONE)) == frozenset()  # B's listener accepts
    assert crossing_kinds(rst_run(False)) == frozenset()  # A's first SYN dies, B's meets A's connect


def test_crossing_segments_right_answers_in_any_spelling() -> None:
    for answer in (CROSSING, ["SYN", "SYN-ACK"], ("syn", "syn/ack"), {"tcp_syn", "SynAck"},
                   {SegmentKind.SYN, SegmentKind.SYN_ACK}):
        assert check_crossing_segments(answer), answer


def test_crossing_segments_wrong_answers_say_what_is_off() -> None:
    assert "more kind" in check_crossing_segments({"tcp-syn"}).message
    assert "more kind" in check_crossing_segments("SYN").message  # one kind, not in a set
    assert "tcp-ack does not cross" in check_crossing_segments(CROSSING | {"ack"}).message
    assert "after the opening" in check_crossing_segments(CROSSING | {"tcp-data"}).message
    assert "not a kind of segment" in check_crossing_segments({"hello"}).message
    assert "set of segment kinds" in check_crossing_segments(3).message


def test_segment_kind() -> None:
    assert segment_kind("SYN-ACK") == segment_kind("syn ack") == segment_kind(SegmentKind.SYN_ACK) == "tcp-syn-ack"
    assert segment_kind("tcp-rst") == "tcp-rst" and segment_kind("hello") is None and segment_kind(4) is None


# --- exercise 2: connects against an RST-answering NAT ------------------------------------------


def test_the_rst_nat_costs_a_second_connect_which_the_client_counts_too() -> None:
    reset, silent = rst_run(True), rst_run(False)
    assert reset.connected and silent.connected
    assert connect_attempts(reset) == 2 and connect_attempts(silent) == 1
    for outcome, errors in ((reset, {"ECONNREFUSED": 1}), (silent, {})):
        assert outcome.scenario is not None
        (record,) = outcome.scenario.peer("A").machine.peers.values()  # type: ignore[attr-defined]
        assert record.attempts == connect_attempts(outcome) and dict(record.errors) == errors
    assert [r.actor for r in reset.rsts("A")] == ["NAT B"] and not silent.rsts("A")


def test_rst_attempts_right_and_wrong() -> None:
    assert check_rst_attempts(2)
    assert "silent NAT" in check_rst_attempts(1).message
    assert "server too" in check_rst_attempts(3).message
    assert "Not 7" in check_rst_attempts(7).message
    assert "not a bool" in check_rst_attempts(True).message and "not a str" in check_rst_attempts("2").message


# --- exercise 3: cells only TCP connects --------------------------------------------------------


def test_tcp_gains_exactly_symmetric_against_the_open_cones() -> None:
    tcp, udp = tcp_nat_grid(GRID_PRESETS), nat_grid(GRID_PRESETS)
    assert all(tcp[pair].connected for pair, outcome in udp.items() if outcome.connected)
    opens = ("FULL_CONE", "RESTRICTED_CONE")
    assert tcp_only_cells() == {("SYMMETRIC", x) for x in opens} | {(x, "SYMMETRIC") for x in opens}


def test_tcp_only_cells_right_and_wrong() -> None:
    cells = set(tcp_only_cells())
    assert check_tcp_only_cells(cells)
    assert check_tcp_only_cells([[SYMMETRIC, FULL_CONE], [FULL_CONE, SYMMETRIC],  # behaviours, lists
                                 ["symmetric", "restricted_cone"], [RESTRICTED_CONE, SYMMETRIC]])
    assert "missing" in check_tcp_only_cells(cells - {("FULL_CONE", "SYMMETRIC")}).message
    assert "not one of them" in check_tcp_only_cells(cells | {("FULL_CONE", "FULL_CONE")}).message
    assert "not one of them" in check_tcp_only_cells(cells | {("SYMMETRIC", "SYMMETRIC")}).message
    assert "set of pairs" in check_tcp_only_cells("SYMMETRIC").message
    assert "set of pairs" in check_tcp_only_cells([("A", "B", "C")]).message


# --- exercise 4: an echo over a real stream -----------------------------------------------------


async def with_tcp_mesh(body: Callable[[TcpMesh, TcpMesh, TcpMesh], Awaitable[None]]) -> None:
    """Run `body(a, b, c)` on a real TCP server and three peers on 127.0.0.1, then close them all."""
    async with await serve_tcp("127.0.0.1", 0) as server:
        meshes = await asyncio.gather(*(
            holepunch.connect(server.address, "lesson-7-test", 2, timeout=10, bind=("127.0.0.1", 0),
                              transport="tcp") for _ in range(3)))
        try:
            assert all(m.complete for m in meshes)
            await body(*meshes)
        finally:
            await asyncio.gather(*(m.close() for m in meshes))


async def echo(a: TcpMesh, c: TcpMesh, line: bytes) -> tuple[socket.socket, bytes]:
    """The exercise's solution: A writes a line on its raw socket to C, C echoes it, A reads it."""
    sock = a.socket(c.local)
    sock.settimeout(2)
    reader, writer = await c.open_stream(a.local)
    sock.sendall(line)
    got = await asyncio.wait_for(reader.readline(), 2)
    writer.write(got)
    await writer.drain()
    with sock.makefile("rb") as lines:
        back = await asyncio.to_thread(lines.readline)
    writer.close()
    return sock, back


def test_echo_over_a_real_stream() -> None:
    async def body(a: TcpMesh, b: TcpMesh, c: TcpMesh) -> None:
        sock, back = await echo(a, c, b"is anybody out there?\n")
        try:
            assert back == b"is anybody out there?\n"
            verdict = check_echo(back, sock, a)
            assert verdict and str(a.local.port) in verdict.message
            assert "whole line" in check_echo(b"is anybody", sock, a).message
            assert "port P" in check_echo(back, sock, b).message  # B is C's peer too, but not this socket's mesh
            assert "third argument" in check_echo(back, sock, None).message
            assert "bytes A read back" in check_echo("text\n", sock, a).message
        finally:
            sock.close()
        assert "second argument" in check_echo(back, sock, a).message  # closed now
        assert "second argument" in check_echo(back, a, a).message  # the mesh is no socket

    asyncio.run(with_tcp_mesh(body))


def test_echo_refuses_a_datagram_socket_and_a_stream_to_a_stranger() -> None:
    async def body(a: TcpMesh, b: TcpMesh, c: TcpMesh) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                socket.create_server(("127.0.0.1", 0)) as listener:
            udp.connect(("127.0.0.1", 9))
            assert "not a TCP stream" in check_echo(b"x\n", udp, a).message
            with socket.create_connection(listener.getsockname()) as stranger:
                assert "not a peer of this mesh" in check_echo(b"x\n", stranger, a).message

    asyncio.run(with_tcp_mesh(body))


# --- every check ---------------------------------------------------------------------------------


@pytest.mark.parametrize("check", [check_crossing_segments, check_rst_attempts, check_tcp_only_cells])
def test_unanswered(check: Callable[[Any], Feedback]) -> None:
    for answer in (..., None):
        verdict = check(answer)
        assert isinstance(verdict, Feedback) and not verdict and "Not answered" in verdict.message
    assert not check_echo(..., None, None) and "Not answered" in check_echo(None, None, None).message


@settings(max_examples=60, deadline=None)
@given(answer=ANYTHING)
def test_checks_never_raise(answer: Any) -> None:
    for verdict in (check_crossing_segments(answer), check_rst_attempts(answer), check_tcp_only_cells(answer),
                    check_echo(answer, answer, answer), check_echo(b"x\n", answer, answer)):
        assert isinstance(verdict, Feedback)
