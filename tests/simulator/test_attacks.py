"""Reflection and amplification in the simulator (issue 8, lesson 09): a spoofing attacker, the
real server with and without its amplification budget, a victim that counts what it gets."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from holepunch.protocol import ClientConfig, ServerConfig
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.messages import MessageKind, Transmit
from holepunch.trace import Action
from simulator import MachineDriver, Network
from simulator.attacks import HEADER_BYTES, AmplificationReport, reflection_attack

GUARDED = any(f.name == "amplification_factor" for f in dataclasses.fields(ServerConfig))
needs_guard = pytest.mark.skipif(not GUARDED, reason="ServerConfig has no amplification_factor "
                                 "field yet (the guard of issue 8 is not in this tree)")


def unprotected() -> ServerConfig:
    """The server with no amplification budget and no cookies (the guard's off switches)."""
    names = {f.name for f in dataclasses.fields(ServerConfig)}
    off: dict[str, Any] = {name: value for name, value in (("amplification_factor", None), ("cookies", False))
           if name in names}
    return dataclasses.replace(ServerConfig(), **off)


def protected() -> ServerConfig:
    """The server with the QUIC budget of 3 (RFC 9000 §8)."""
    return ServerConfig(amplification_factor=3.0)  # type: ignore[call-arg]


class Echo:
    """A tiny machine that answers every datagram with b"reply to " + it."""

    def __init__(self) -> None:
        self.out: list[Transmit] = []

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None:
        self.out.append(Transmit(b"reply to " + data, source, MessageKind.DATA))

    def handle_timer(self, now: float) -> None: ...
    def get_timer(self) -> float | None: return None
    def next_event(self) -> Any: return None

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out, self.out = self.out, []
        return out


def test_a_spoofed_datagram_is_answered_to_the_forged_address() -> None:
    net = Network()
    server = MachineDriver(net.add_host("server"), 7, Echo())
    victim, attacker = net.add_host("victim"), net.add_host("attacker")
    got: list[tuple[bytes, Endpoint]] = []
    victim.bind(9, type("Sink", (), {"on_datagram": lambda self, d, s, p: got.append((d, s))})())
    attacker.send(1234, b"hi", server.endpoint, "data", spoof=victim.endpoint(9))
    net.scheduler.run(1.0)
    assert got == [(b"reply to hi", server.endpoint)]
    send = net.trace.filter(actor="attacker", action=Action.SEND)[0]
    assert send.source == victim.endpoint(9) and send.detail == f"spoofed source (really {attacker.ip}:1234)"
    assert net.trace.filter(actor="server", action=Action.RECEIVE)[0].source == victim.endpoint(9)
    assert server.host.seen_from[victim.endpoint(9)] == "attacker"  # the simulator knows the truth


@pytest.mark.parametrize("message", ["plain", "extended"])
def test_without_the_budget_a_large_session_amplifies_every_forged_registration(message: str) -> None:
    report = reflection_attack(unprotected(), session_size=40, requests=20, message=message)
    assert not report.protected or not GUARDED
    assert report.victim_datagrams == report.requests == 20  # every forgery answered in full
    assert report.largest_reply >= 40 * len("198.51.100.10:4000")  # the whole session listed
    assert report.amplification > 15 and report.payload_amplification > report.amplification
    assert report.attacker_bytes == 20 * report.request_size and report.from_peers == 0
    assert report.server_counted["registrations"] >= 40 + 20


@needs_guard
@pytest.mark.parametrize("message", ["plain", "extended"])
def test_with_the_budget_the_victim_gets_at_most_three_times_what_was_forged(message: str) -> None:
    report = reflection_attack(protected(), session_size=40, requests=20, message=message)
    assert report.protected
    assert report.amplification <= 3.0, report.to_text()
    counted = report.server_counted
    if message == "plain":  # answered within the budget; the rest withheld, counted by reason
        assert counted["refused"].get("amplification", 0) > 0
    else:  # every extended forgery is challenged with a cookie, which the victim cannot echo
        assert counted["cookies"] >= report.requests and counted["verified"] == report.session_size
    unguarded = reflection_attack(unprotected(), session_size=40, requests=20, message=message)
    assert unguarded.victim_bytes > 5 * report.victim_bytes


def test_the_report_counts_bytes_on_the_wire_with_their_headers() -> None:
    report = reflection_attack(unprotected(), session_size=5, requests=4)
    on_wire = (report.victim_bytes + HEADER_BYTES * report.victim_datagrams) / \
              (report.attacker_bytes + HEADER_BYTES * report.requests)
    assert report.amplification == pytest.approx(on_wire)
    assert "amplification" in report.to_text() and isinstance(report, AmplificationReport)


def test_members_punch_a_forged_registrant_ever_more_slowly() -> None:
    """A forged plain registration makes the victim a listed member, whatever the server's
    budget, and members still waiting for it punch it until their 40 s deadline. Every 150 ms
    that was about 267 SYNs per member for one 5-byte datagram (found by this test); a peer
    silent for `punch_backoff_after` now gets SYNs ever further apart, up to `punch_interval_max`
    (54 in all)."""
    report = reflection_attack(None, session_size=5, requests=1, members_expect=5, watch=41.0)
    syns = report.trace.filter(actor="victim", action=Action.RECEIVE, kind="syn")
    members = {report.trace.filter(actor=f"member {i}", action=Action.SEND)[0].source for i in range(1, 6)}
    assert report.from_peers == len(syns) and {r.source for r in syns} == members
    config = ClientConfig()
    for member in members:
        times = [r.time for r in syns if r.source == member]
        assert config.punch_backoff_after / config.punch_interval < len(times) <= 60
        assert max(b - a for a, b in zip(times, times[1:])) == pytest.approx(config.punch_interval_max)


def test_bad_attack_parameters_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="message must be one of plain, extended"):
        reflection_attack(message="cookie")
    with pytest.raises(ValueError, match="session_size must be 1..240"):
        reflection_attack(session_size=0)
    with pytest.raises(ValueError, match="at least one request"):
        reflection_attack(requests=0)
