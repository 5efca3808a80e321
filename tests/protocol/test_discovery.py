"""NAT discovery: PROBE/PROBE_REPLY wire format, the responder, and the checker's logic."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holepunch.protocol.discovery import (
    MAGIC,
    DiscoveryKind,
    Probe,
    ProbeReply,
    Via,
    decode_discovery,
    encode_discovery,
    is_discovery,
)
from holepunch.protocol.discovery_server import DiscoveryResponder
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.messages import (
    ExtRegister,
    MessageError,
    _split_tlvs,
    decode_ext,
    encode_ext,
)
from holepunch.protocol.nat_check import (
    COPIES,
    CheckPhase,
    FilteringBehavior,
    MappingBehavior,
    NatChecker,
    conclude,
)
from holepunch.protocol.server import RendezvousServer

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RID = b"\x00\x00\x00\x01"
SERVER = Endpoint("192.0.2.1", 3478)
ALT_PORT = Endpoint("192.0.2.1", 3479)
ALT_ADDRESS = Endpoint("192.0.2.2", 3478)
CLIENT = Endpoint("198.51.100.7", 40000)
LOCAL = Endpoint("10.0.0.2", 40000)

# --- wire format ---------------------------------------------------------------------------------

PROBE_HEX = "fa68707801090e0004000000010f000101"
REPLY_HEX = ("fa687078010a0e0004000000010400123139382e35312e3130302e373a34303030300f0001011000020d97"
             "1100093139322e302e322e32")


def test_probe_golden_hex() -> None:
    assert encode_discovery(Probe(RID, Via.ALT_PORT)).hex() == PROBE_HEX
    assert decode_discovery(bytes.fromhex(PROBE_HEX)) == Probe(RID, Via.ALT_PORT)


def test_probe_reply_golden_hex() -> None:
    reply = ProbeReply(RID, Endpoint("198.51.100.7", 40000), Via.ALT_PORT, 3479, "192.0.2.2")
    assert encode_discovery(reply).hex() == REPLY_HEX
    assert decode_discovery(bytes.fromhex(REPLY_HEX)) == reply


def test_reply_without_alternates_omits_their_fields() -> None:
    data = encode_discovery(ProbeReply(RID, CLIENT))
    assert [tag for tag, _ in _split_tlvs(data[6:])] == [0x0E, 0x04, 0x0F]
    assert decode_discovery(data) == ProbeReply(RID, CLIENT, Via.SAME, 0, "")


def test_unknown_tags_are_skipped() -> None:
    data = encode_discovery(Probe(RID)) + bytes([0x7F, 0, 2]) + b"hi"
    assert decode_discovery(data) == Probe(RID)


@pytest.mark.parametrize("data, reason", [
    (b"", "not an extension"),
    (MAGIC + b"\x02\x09", "version"),
    (encode_ext(ExtRegister(b"s", bytes(8))), "not a discovery"),
    (MAGIC + b"\x01\x09", "missing field"),
    (MAGIC + b"\x01\x09\x0e\x00\x02ab", "request id"),
    (MAGIC + b"\x01\x09\x0e\x00\x04abcd\x0f\x00\x01\x07", "reply-from"),
    (MAGIC + b"\x01\x0a\x0e\x00\x04abcd", "missing field"),
    (MAGIC + b"\x01\x0a\x0e\x00\x04abcd\x04\x00\x05hello", "bad endpoint"),
    (MAGIC + b"\x01\x09\x0e\x00\x09abcd", "truncated"),
])
def test_malformed_messages_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode_discovery(data)


def test_is_discovery_looks_at_the_header_only() -> None:
    assert is_discovery(bytes.fromhex(PROBE_HEX)) and is_discovery(bytes.fromhex(REPLY_HEX))
    assert not is_discovery(encode_ext(ExtRegister(b"s", bytes(8)))) and not is_discovery(b"SYN")


def test_decode_ext_still_rejects_discovery_types() -> None:
    with pytest.raises(MessageError, match="unknown extension type 9"):
        decode_ext(bytes.fromhex(PROBE_HEX))


# v4-mapped IPv6 prints as IPv4 (Go's UDPAddr.String), so it does not round-trip by design
ips = st.ip_addresses().filter(lambda ip: getattr(ip, "ipv4_mapped", None) is None).map(str)
endpoints = st.builds(Endpoint, ips, st.integers(1, 65535))
messages = st.one_of(
    st.builds(Probe, st.binary(min_size=4, max_size=4), st.sampled_from(Via)),
    st.builds(ProbeReply, st.binary(min_size=4, max_size=4), endpoints, st.sampled_from(Via),
              st.integers(0, 65535), st.one_of(st.just(""), st.ip_addresses().map(str))),
)


@FAST
@given(messages)
def test_round_trip(msg: Probe | ProbeReply) -> None:
    assert decode_discovery(encode_discovery(msg)) == msg


@FAST
@given(st.binary(max_size=120))
def test_decoder_raises_only_message_error(body: bytes) -> None:
    for data in (body, MAGIC + b"\x01\x09" + body, MAGIC + b"\x01\x0a" + body):
        try:
            decode_discovery(data)
        except MessageError:
            pass


@FAST
@given(st.sampled_from([0x09, 0x0A]), st.lists(st.tuples(st.sampled_from([0x04, 0x0E, 0x0F, 0x10, 0x11, 0x20]),
                                                          st.binary(max_size=12)), max_size=6))
def test_decoder_on_well_framed_garbage(kind: int, fields: list[tuple[int, bytes]]) -> None:
    data = MAGIC + bytes([1, kind]) + b"".join(bytes([t, 0, len(v)]) + v for t, v in fields)
    try:
        decode_discovery(data)
    except MessageError:
        pass


# --- the responder -----------------------------------------------------------------------------


def test_responder_answers_from_the_socket_asked_for() -> None:
    responder = DiscoveryResponder(3479, "192.0.2.2")
    assert responder.sockets_wanted() == 2
    for ask, via in ((Via.SAME, 0), (Via.ALT_PORT, 1), (Via.ALT_ADDRESS, 2)):
        responder.receive_datagram(encode_discovery(Probe(RID, ask)), CLIENT, 1.0)
        [out] = responder.datagrams_to_send(1.0)
        assert (out.destination, out.via, out.kind) == (CLIENT, via, DiscoveryKind.PROBE_REPLY)
        assert decode_discovery(out.data) == ProbeReply(RID, CLIENT, Via(via), 3479, "192.0.2.2")


def test_responder_answers_on_the_socket_a_probe_came_in() -> None:
    responder = DiscoveryResponder(3479)
    responder.receive_datagram(encode_discovery(Probe(RID)), CLIENT, 1.0, 1)
    [out] = responder.datagrams_to_send(1.0)
    assert out.via == 1


def test_responder_without_the_socket_says_where_it_answered_from() -> None:
    responder = DiscoveryResponder(3479)  # no alternate address
    responder.receive_datagram(encode_discovery(Probe(RID, Via.ALT_ADDRESS)), CLIENT, 1.0)
    [out] = responder.datagrams_to_send(1.0)
    assert out.via == 0 and decode_discovery(out.data).replied_from == Via.SAME  # type: ignore[union-attr]


def test_responder_drops_garbage_and_passes_the_rest_to_the_rendezvous_server() -> None:
    rendezvous = RendezvousServer()
    responder = DiscoveryResponder(3479, rendezvous=rendezvous)
    responder.receive_datagram(MAGIC + b"\x01\x09\xff", CLIENT, 1.0)
    responder.receive_datagram(encode_discovery(ProbeReply(RID, CLIENT)), CLIENT, 1.0)
    responder.receive_datagram(b"session", CLIENT, 1.0, 1)  # a registration on an alternate: dropped
    assert responder.datagrams_to_send(1.0) == [] and responder.dropped == 3
    responder.receive_datagram(b"session", CLIENT, 1.0)
    [out] = responder.datagrams_to_send(1.0)
    assert out.data == b"" and rendezvous.members(b"session") == [CLIENT]
    assert type(responder.next_event()).__name__ == "PeerJoined"


# --- the checker's conclusions (hand-fed replies) -------------------------------------------------


def _reply(observed: Endpoint, alt_port: int = 3479, alt_address: str = "192.0.2.2") -> ProbeReply:
    return ProbeReply(RID, observed, Via.SAME, alt_port, alt_address)


def _replies(basic: Endpoint, *, address: Endpoint | None = None, port: Endpoint | None = None,
             filter_address: bool = False, filter_port: bool = False, second: Endpoint | None = None,
             alt_port: int = 3479, alt_address: str = "192.0.2.2") -> dict[str, ProbeReply | None]:
    replies: dict[str, ProbeReply | None] = {"basic": _reply(basic, alt_port, alt_address)}
    replies["second-socket"] = _reply(second or basic._replace(port=basic.port + 1))
    replies["map-address"] = _reply(address or basic)
    replies["map-port"] = _reply(port or basic)
    if filter_address:
        replies["filter-address"] = _reply(CLIENT)
    if filter_port:
        replies["filter-port"] = _reply(CLIENT)
    return replies


@pytest.mark.parametrize("kwargs, mapping, filtering, name", [
    ({"filter_address": True, "filter_port": True}, "EIM", "EIF", "full cone"),
    ({"filter_port": True}, "EIM", "ADF", "restricted cone"),
    ({}, "EIM", "APDF", "port-restricted cone"),
    ({"address": CLIENT._replace(port=1)}, "ADM", "APDF", "symmetric"),
    ({"address": CLIENT._replace(port=1), "port": CLIENT._replace(port=2)}, "APDM", "APDF", "symmetric"),
    ({"port": CLIENT._replace(port=2)}, "APDM", "APDF", "symmetric"),
])
def test_conclusions_in_rfc_4787_terms(kwargs: dict, mapping: str, filtering: str, name: str) -> None:
    verdict = conclude(SERVER, LOCAL, _replies(CLIENT, **kwargs))
    assert (verdict.mapping.name, verdict.filtering.name, verdict.classic_name) == (mapping, filtering, name)  # type: ignore[union-attr]
    assert verdict.nat is True and verdict.preserving is True and verdict.delta == 1


def test_no_nat_when_the_server_sees_our_own_endpoint() -> None:
    verdict = conclude(SERVER, CLIENT, _replies(CLIENT, filter_address=True, filter_port=True))
    assert verdict.classic_name == "no NAT" and verdict.nat is False


def test_never_full_cone_without_an_alternate_address() -> None:
    replies = _replies(CLIENT, filter_port=True, alt_address="")
    del replies["map-address"]
    verdict = conclude(SERVER, LOCAL, replies)
    assert verdict.filtering is FilteringBehavior.ADF and verdict.classic_name == "restricted cone"
    assert any("never full cone" in note for note in verdict.notes)


def test_without_alternates_nothing_is_claimed() -> None:
    verdict = conclude(SERVER, LOCAL, {"basic": _reply(CLIENT, 0, "")})
    assert (verdict.mapping, verdict.filtering, verdict.classic_name) == (None, None, "unknown")
    assert verdict.alt_port_tested is False and "untested" in verdict.to_text()


def test_port_change_and_delta() -> None:
    replies = _replies(CLIENT._replace(port=50000), second=CLIENT._replace(port=50004))
    verdict = conclude(SERVER, LOCAL, replies)
    assert verdict.preserving is False and verdict.delta == 4
    assert verdict.to_dict()["delta"] == 4 and verdict.to_dict()["mapping"] == "EIM"


def test_no_reply_means_no_verdict_beyond_unknown() -> None:
    verdict = conclude(SERVER, LOCAL, {})
    assert verdict.observed is None and verdict.classic_name == "unknown"


# --- the checker machine, fed by hand ------------------------------------------------------------


def _answer(checker: NatChecker, now: float, observed_by: dict[tuple[int, Endpoint], Endpoint],
            arrives: set[tuple[int, Via]]) -> None:
    """Play a responder and a NAT: answer every probe sent, deliver only the replies in `arrives`."""
    for out in checker.datagrams_to_send(now):
        probe = decode_discovery(out.data)
        assert isinstance(probe, Probe)
        source = {Via.SAME: out.destination, Via.ALT_PORT: ALT_PORT, Via.ALT_ADDRESS: ALT_ADDRESS}[probe.reply_from]
        if probe.reply_from == Via.SAME or (out.via, probe.reply_from) in arrives:
            reply = ProbeReply(probe.request_id, observed_by[(out.via, out.destination)],
                               probe.reply_from, 3479, "192.0.2.2")
            checker.receive_datagram(encode_discovery(reply), source, now, out.via)


def _run(arrives: set[tuple[int, Via]], observed_by: dict[tuple[int, Endpoint], Endpoint]) -> NatChecker:
    checker = NatChecker(SERVER, local=LOCAL, rng=random.Random(1))
    checker.start(0.0)
    now = 0.0
    for _ in range(100):
        _answer(checker, now, observed_by, arrives)
        timer = checker.get_timer()
        if checker.done or timer is None:
            break
        now = timer
        checker.handle_timer(now)
    return checker


def test_checker_phases_and_a_full_cone() -> None:
    eim = {(0, SERVER): CLIENT, (0, ALT_PORT): CLIENT, (0, ALT_ADDRESS): CLIENT, (1, SERVER): CLIENT._replace(port=40001)}
    checker = _run({(1, Via.ALT_PORT), (1, Via.ALT_ADDRESS)}, eim)
    assert checker.done and checker.phase is CheckPhase.DONE
    verdict = checker.verdict
    assert verdict is not None and verdict.classic_name == "full cone" and verdict.mapping is MappingBehavior.EIM


def test_checker_retransmits_and_unanswered_filtering_means_filtered() -> None:
    eim = {(0, SERVER): CLIENT, (0, ALT_PORT): CLIENT, (0, ALT_ADDRESS): CLIENT, (1, SERVER): CLIENT._replace(port=40001)}
    checker = NatChecker(SERVER, local=LOCAL, rng=random.Random(1))
    checker.start(0.0)
    sent: list[tuple[int, Via]] = []
    now = 0.0
    while not checker.done:
        for out in checker.datagrams_to_send(now):
            probe = decode_discovery(out.data)
            assert isinstance(probe, Probe)
            sent.append((out.via, probe.reply_from))
            if probe.reply_from == Via.SAME:
                reply = ProbeReply(probe.request_id, eim[(out.via, out.destination)], Via.SAME, 3479, "192.0.2.2")
                checker.receive_datagram(encode_discovery(reply), out.destination, now, out.via)
        timer = checker.get_timer()
        if timer is None:
            break
        now = timer
        checker.handle_timer(now)
    assert sent.count((1, Via.ALT_ADDRESS)) == COPIES and sent.count((1, Via.ALT_PORT)) == COPIES
    assert checker.verdict is not None and checker.verdict.classic_name == "port-restricted cone"
    assert 1.0 <= now <= 3.0  # each phase waits about a second for what does not come


def test_checker_ignores_replies_from_the_wrong_source() -> None:
    checker = NatChecker(SERVER, local=LOCAL, rng=random.Random(1))
    checker.start(0.0)
    [out] = checker.datagrams_to_send(0.0)
    probe = decode_discovery(out.data)
    reply = encode_discovery(ProbeReply(probe.request_id, CLIENT, Via.SAME, 3479, ""))
    checker.receive_datagram(reply, ALT_PORT, 0.1)  # right id, wrong sender: does not count
    checker.receive_datagram(b"junk", SERVER, 0.1)
    checker.receive_datagram(MAGIC + b"\x01\x0a\x00", SERVER, 0.1)
    assert checker.phase is CheckPhase.BASIC
    checker.receive_datagram(reply, SERVER, 0.1)
    assert checker.phase is CheckPhase.MAPPING


def test_checker_without_an_answer_gives_up() -> None:
    checker = NatChecker(SERVER, local=LOCAL)
    checker.start(0.0)
    while (timer := checker.get_timer()) is not None:
        checker.handle_timer(timer)
    assert checker.done and checker.verdict is not None and checker.verdict.observed is None
    assert len(checker.datagrams_to_send(10.0)) == COPIES
