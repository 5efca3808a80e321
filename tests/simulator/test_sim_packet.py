"""Trace summaries of simulated datagrams: every wire message says what it carries.

Rule: a table of messages and the exact summary each one gets (the summaries of the plain and
extension messages the golden traces hold are pinned there), discovery probes read as probes,
not "malformed extension", and a simulated NAT check's trace shows them so. `simulator`
exports `check_nat`.
"""

from __future__ import annotations

import pytest

import simulator
from holepunch.protocol.discovery import Probe, ProbeReply, Via, encode_discovery
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.messages import (
    ExtCookie,
    ExtError,
    ExtLeave,
    ExtPeers,
    ExtPunch,
    ExtPunchAck,
    ExtRegister,
    ExtRelay,
    PeerInfo,
    encode_ext,
)
from holepunch.trace import Action
from simulator.discovery import discovery_network
from simulator.packet import summarize
from simulator.presets import PORT_RESTRICTED_CONE

ME, YOU = bytes.fromhex("0101010101010101"), bytes.fromhex("0202020202020202")
TOKEN = bytes(16)
HERE = Endpoint("198.51.100.10", 4000)
MAC = bytes(range(16))

CASES = [
    ("plain register", b"room", "register", "session b'room'"),
    ("plain peer list", b"198.51.100.10:4000", "peer-list", "[198.51.100.10:4000]"),
    ("keep-alive", b"", "keepalive", ""),
    ("register", encode_ext(ExtRegister(b"room", ME, 1)), "ext-register", "session b'room'"),
    ("register with cookie and MAC", encode_ext(ExtRegister(b"room", ME, 1, b"\xcc" * 8, MAC)), "ext-register",
     "session b'room', cookie cccccccc, mac"),
    ("peers", encode_ext(ExtPeers(b"room", HERE, (PeerInfo(Endpoint("198.51.100.20", 4000), YOU, True),))),
     "ext-peers", "session b'room' you are 198.51.100.10:4000 [198.51.100.20:4000]"),
    ("leave", encode_ext(ExtLeave(b"room", ME)), "ext-leave", "session b'room'"),
    ("error", encode_ext(ExtError(5, "bad-auth (wrong or missing secret)")), "ext-error",
     "bad-auth (wrong or missing secret)"),
    ("cookie", encode_ext(ExtCookie(bytes.fromhex("a1b2c3d4e5f60708"))), "ext-cookie",
     "cookie a1b2c3d4: echo it to register"),
    ("relay", encode_ext(ExtRelay(b"room", ME, YOU, b"hello")), "relay",
     "session b'room' from 0101010101010101 to 0202020202020202: b'hello'"),
    ("relay with MAC", encode_ext(ExtRelay(b"room", ME, YOU, b"hello", MAC)), "relay",
     "session b'room' from 0101010101010101 to 0202020202020202: b'hello', mac"),
    ("plain punch", encode_ext(ExtPunch(TOKEN, ME, YOU)), "punch", ""),
    ("birthday probe", encode_ext(ExtPunch(TOKEN, ME, YOU, 2)), "punch", "birthday probe"),
    ("authenticated punch", encode_ext(ExtPunch(TOKEN, ME, YOU, 1, b"\x12" * 8, b"", MAC)), "punch",
     "prediction probe, nonce 12121212, mac"),
    ("authenticated punch-ack", encode_ext(ExtPunchAck(TOKEN, ME, YOU, 0, b"\x34" * 8, b"\x12" * 8, MAC)),
     "punch-ack", "nonce 34343434, echo 12121212, mac"),
    ("probe", encode_discovery(Probe(b"\x00\x01\x02\x03", Via.ALT_ADDRESS)), "probe",
     "request 00010203, reply from alternate address"),
    ("probe reply", encode_discovery(ProbeReply(b"\x00\x01\x02\x03", HERE, Via.ALT_PORT, 3479, "203.0.113.2")),
     "probe-reply", ("request 00010203, you are 198.51.100.10:4000, from alternate port; "
                     "alternates: port 3479, address 203.0.113.2")),
    ("probe reply without alternates", encode_discovery(ProbeReply(b"\x00\x01\x02\x03", HERE)), "probe-reply",
     "request 00010203, you are 198.51.100.10:4000, from same socket"),
    ("truncated probe", encode_discovery(Probe(b"\x00\x01\x02\x03"))[:-2], "probe",
     "malformed probe: truncated field header"),
    ("unknown extension type", b"\xfahpx\x01\x7f", "data", "malformed extension: unknown extension type 127"),
]


@pytest.mark.parametrize(("data", "kind", "summary"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_message_is_summarised(data: bytes, kind: str, summary: str) -> None:
    assert summarize(data, kind) == summary


def test_a_simulated_nat_check_traces_its_probes_as_probes() -> None:
    run = discovery_network(PORT_RESTRICTED_CONE, seed=1)
    assert run.run() is not None
    probes = [r for r in run.network.trace if r.action is Action.SEND and r.kind in ("probe", "probe-reply")]
    assert {r.kind for r in probes} == {"probe", "probe-reply"}
    assert all(r.summary.startswith("request ") for r in probes), [r.summary for r in probes]
    assert not [r for r in run.network.trace if "malformed" in r.summary]


def test_simulator_exports_check_nat() -> None:
    assert "check_nat" in simulator.__all__
    verdict = simulator.check_nat(simulator.SYMMETRIC)
    assert verdict is not None and verdict.classic_name == "symmetric"
