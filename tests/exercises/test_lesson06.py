"""Lesson 6's checks, judged on a real mesh: three peers and a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holepunch import Trace, connect, connect_blocking, serve
from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action, TraceRecord
from simulator.exercises import Feedback
from simulator.exercises.lesson06 import (
    as_endpoint,
    check_handshake_packets,
    check_replies,
    data_sources,
    handshake_sends,
)

NAMES = ["peer A", "peer B", "peer C"]
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.dictionaries(st.text(max_size=8), st.binary(max_size=4), max_size=2),
                     st.lists(st.integers(), max_size=3))


async def with_mesh(body: Callable[[Any, Any, Any, Trace], Awaitable[None]]) -> None:
    """Run `body(a, b, c, trace)` on a fresh server and three connected peers, then close all."""
    trace = Trace()
    async with await serve("127.0.0.1", 0, trace=trace) as server:
        meshes = await asyncio.gather(*(
            connect(server.address, "lesson-6-test", 2, timeout=5, bind=("127.0.0.1", 0), trace=trace, actor=name)
            for name in NAMES))
        try:
            assert all(m.complete for m in meshes)
            await body(*meshes, trace)
        finally:
            await asyncio.gather(*(m.close() for m in meshes))


async def ping_all(a: Any, others: list[Any]) -> dict[Endpoint, bytes]:
    """The exercise's solution: A pings every peer, the others answer, A collects the replies."""
    for peer in a.connected:
        a.send(peer, b"ping")
    for mesh in others:
        source, _ = await asyncio.wait_for(mesh.recv(), 2)
        mesh.send(source, b"pong from " + str(mesh.local).encode())
    replies = {}
    for _ in a.connected:
        source, data = await asyncio.wait_for(a.recv(), 2)
        replies[source] = data
    return replies


def test_replies_right_and_wrong_on_a_real_mesh() -> None:
    async def body(a: Any, b: Any, c: Any, trace: Trace) -> None:
        assert not check_replies({b.local: b"pong"}, a)  # nothing was sent yet
        replies = await ping_all(a, [b, c])
        assert check_replies(replies, a)
        assert check_replies({str(ep): data for ep, data in replies.items()}, a)  # "host:port" keys
        one = dict(list(replies.items())[:1])
        assert "No reply from" in check_replies(one, a).message
        assert "not a peer" in check_replies({**replies, Endpoint("127.0.0.1", 9): b"x"}, a).message
        assert "bytes it sent" in check_replies({ep: "pong" for ep in replies}, a).message
        assert "not a peer" in check_replies({object(): b"x"}, a).message
        # Replies "collected" without the network: B never sent data to C, so C's trace says no.
        assert "no data from" in check_replies({a.local: b"made up", b.local: b"made up"}, c).message
        assert data_sources(trace, a.local) == set(replies)

    asyncio.run(with_mesh(body))


def test_replies_need_a_mesh() -> None:
    assert "second argument" in check_replies({"127.0.0.1:1": b"x"}, None).message
    assert "a dict" in check_replies([b"pong"], None).message


def test_replies_with_a_blocking_mesh(background) -> None:
    """BlockingMesh has no trace: the check then relies on the endpoints alone."""
    server = background.run(serve("127.0.0.1", 0))
    async def open_partner() -> Any:
        return await connect(server.address, "blocking", 1, timeout=5, bind=("127.0.0.1", 0))

    partner = background.submit(open_partner())
    blocking = connect_blocking(server.address, "blocking", 1, timeout=5, bind=("127.0.0.1", 0))
    other = partner.result(10)
    try:
        assert "No reply from" in check_replies({}, blocking).message
        assert check_replies({blocking.connected[0]: b"pong"}, blocking)
    finally:
        blocking.close()
        background.run(other.close())
        background.run(server.close())


def test_handshake_packets_counted_from_the_real_trace() -> None:
    async def body(a: Any, b: Any, c: Any, trace: Trace) -> None:
        await asyncio.sleep(0.15)  # the delayed final ACKs
        sent = sum(1 for r in trace if r.actor == "peer A" and r.action is Action.SEND and r.kind in ("syn", "ack"))
        assert sent >= 4  # at least one SYN and one ACK to each of two peers
        assert check_handshake_packets(sent, trace)
        assert check_handshake_packets(handshake_sends(trace, "peer B"), trace, actor="peer B")
        received = sum(1 for r in trace if r.actor == "peer A" and r.action is Action.RECEIVE and r.kind in ("syn", "ack"))
        if received != sent:
            assert "received" in check_handshake_packets(received, trace).message
        assert not check_handshake_packets(sent + 1, trace)
        assert "no SYN or ACK" in check_handshake_packets(3, Trace()).message
        assert "Trace" in check_handshake_packets(3, 42).message

    asyncio.run(with_mesh(body))


def test_as_endpoint() -> None:
    assert as_endpoint("127.0.0.1:5") == as_endpoint(("127.0.0.1", 5)) == Endpoint("127.0.0.1", 5)
    assert as_endpoint("no port") is None and as_endpoint(7) is None and as_endpoint(("a", "b")) is None


@pytest.mark.parametrize("check", [check_replies, check_handshake_packets])
def test_unanswered(check) -> None:
    for answer in (..., None):
        verdict = check(answer, None)
        assert isinstance(verdict, Feedback) and not verdict and "Not answered" in verdict.message


@settings(max_examples=40, deadline=None)
@given(answer=ANYTHING)
def test_checks_never_raise(answer) -> None:
    record = TraceRecord(0.0, "peer A", Action.SEND, Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2), "syn")
    assert isinstance(check_replies(answer, None), Feedback)
    assert isinstance(check_handshake_packets(answer, Trace([record])), Feedback)
