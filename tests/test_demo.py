"""The in-process demo: real sockets on 127.0.0.1, a trace, and the timeline made from it."""

from __future__ import annotations

import asyncio
import re

import pytest

from holepunch import Endpoint
from holepunch.demo import format_report, format_timeline, peer_names, rename, run_demo
from holepunch.trace import Action, Trace, TraceRecord

pytestmark = pytest.mark.timeout(60)


def test_demo_connects_everyone_and_tells_the_story() -> None:
    result = asyncio.run(run_demo(3))
    assert result.ok and result.greetings_sent == result.greetings_received == 6
    assert sorted(result.names.values()) == ["peer A", "peer B", "peer C", "server"]
    text = "\n".join(format_report(result))
    for phrase in (
        "peer A  -> server  ext-register session 'demo', expects 2 others",
        "server  * peer A joined session 'demo' (1 member)",
        "ext-peers    you are peer C; peers: peer A, peer B",
        "punching 2 of 2 expected",
        "-> peer B  syn",
        "-> peer C  ack",
        "connected to peer B in",
        "from peer A: 17 bytes b'hello from peer A'",
        "Result: every peer connected to every other; 6 of 6 greetings delivered.",
    ):
        assert phrase in text, phrase
    assert not re.search(r"127\.0\.0\.1:\d+", text.split("Timeline", 1)[1]), "addresses are named"


def test_timeline_is_in_time_order_with_ms_from_the_first_record() -> None:
    result = asyncio.run(run_demo(2))
    lines = format_timeline(result.trace, result.names)
    stamps = [float(line.split(" ms", 1)[0]) for line in lines]
    assert stamps[0] == 0.0 and stamps == sorted(stamps)
    with_receives = format_timeline(result.trace, result.names, receives=True)
    assert len(with_receives) > len(lines) and any("<- server" in line for line in with_receives)


def test_rename_replaces_whole_endpoints_only() -> None:
    names = {Endpoint("127.0.0.1", 5000): "server", Endpoint("::1", 7): "peer A"}
    text = "127.0.0.1:5000, 127.0.0.1:50001 and [::1]:7 and 10.127.0.1:5000"
    assert rename(text, names) == "server, 127.0.0.1:50001 and peer A and 10.127.0.1:5000"


def test_format_timeline_of_a_hand_made_trace() -> None:
    a, s = Endpoint("10.0.0.1", 1), Endpoint("10.0.0.9", 9)
    trace = Trace([
        TraceRecord(5.0, "peer A", Action.SEND, a, s, "register", "session 'x'"),
        TraceRecord(5.0125, "server", Action.EVENT, kind="PeerJoined", summary="10.0.0.1:1 joined"),
    ])
    assert format_timeline(trace, {a: "peer A", s: "server"}) == [
        "     0.0 ms  peer A  -> server  register     session 'x'",
        "    12.5 ms  server  * peer A joined",
    ]
    assert format_timeline(Trace(), {}) == []


def test_peer_names_are_letters_within_bounds() -> None:
    assert peer_names(3) == ["peer A", "peer B", "peer C"]
    with pytest.raises(ValueError, match="1 to 26"):
        peer_names(27)
