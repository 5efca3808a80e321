"""The techniques, sans-IO: extended punch messages (golden hex), peer-reflexive adoption, port
prediction, birthday probing, per-peer results, and the birthday arithmetic.

A client is driven by hand: a fake extended server reply lists the peers, the test feeds punches
from listed and unlisted addresses, fires timers and reads what the client sends.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from holepunch.protocol import (
    ClientConfig,
    ConnectCompleted,
    DatagramDropped,
    Endpoint,
    MessageKind,
    PeerClient,
    PeerConnected,
    PeerFailed,
    PeerInfo,
    RendezvousServer,
    Transmit,
)
from holepunch.protocol.messages import (
    ACK,
    SYN,
    ExtPeers,
    ExtPunch,
    ExtPunchAck,
    MessageError,
    classify,
    decode_ext,
    encode_ext,
)
from holepunch.protocol.tcp_messages import session_token
from holepunch.protocol.techniques import BirthdayRole, Technique, coerce_techniques, resolve_role
from holepunch.protocol.techniques.probability import birthday_probability, probes_needed
from holepunch.protocol.techniques.probes import Pacer, birthday_ports, prediction_ports

from .helpers import SERVER, Hand, Network, drain, peer_endpoint

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-protocol.md"
SID = b"room1"
TOKEN = session_token(SID)
ME_ID = bytes.fromhex("0102030405060708")
P_ID = bytes.fromhex("a1a2a3a4a5a6a7a8")
ME, P, Q = peer_endpoint(1), peer_endpoint(2), peer_endpoint(3)
ELSEWHERE = Endpoint(P.host, 31337)  # P's NAT, another mapping: a peer-reflexive address
EPS = 1e-9


def config(*techniques: str, **options: object) -> ClientConfig:
    return ClientConfig(techniques=frozenset(techniques), **options)  # type: ignore[arg-type]


def punching(cfg: ClientConfig, *peers: PeerInfo, peer_id: bytes = ME_ID) -> Hand:
    """A client of SID whose extended server listed `peers` at t=0.05 (so it punches them)."""
    hand = Hand(PeerClient(SERVER, SID, len(peers), cfg, rng=random.Random(7), peer_id=peer_id))
    hand.start(0.0)
    hand.feed(encode_ext(ExtPeers(SID, ME, tuple(peers))), SERVER, 0.05)
    return hand


def feed(hand: Hand, data: bytes, source: Endpoint, now: float, via: int = 0) -> list[Transmit]:
    """Like `Hand.feed`, but the datagram arrives on local socket `via`."""
    hand.timers(now)
    hand.machine.receive_datagram(data, source, now, via)  # type: ignore[call-arg]
    out, events = drain(hand.machine, now)
    hand.sent += [(now, t) for t in out]
    hand.events += [(now, e) for e in events]
    return out


def punch(ack: bool = False, *, sender: bytes = P_ID, target: bytes = ME_ID, token: bytes = TOKEN,
          probe: int = 0) -> bytes:
    cls = ExtPunchAck if ack else ExtPunch
    return encode_ext(cls(token, sender, target, probe))


EXTENDED_P = PeerInfo(P, P_ID, True)


# --- wire format ---------------------------------------------------------------------------------

PUNCH_GOLDEN = [
    (ExtPunch(TOKEN, ME_ID, P_ID),
     "fa687078 01 07 | 0b 0010 384c158e86fcf589bc1f41ac0cae254c | 02 0008 0102030405060708 | 0c 0008 a1a2a3a4a5a6a7a8",
     MessageKind.PUNCH),
    (ExtPunchAck(TOKEN, P_ID, ME_ID),
     "fa687078 01 08 | 0b 0010 384c158e86fcf589bc1f41ac0cae254c | 02 0008 a1a2a3a4a5a6a7a8 | 0c 0008 0102030405060708",
     MessageKind.PUNCH_ACK),
    (ExtPunch(TOKEN, ME_ID, P_ID, 2),
     "fa687078 01 07 | 0b 0010 384c158e86fcf589bc1f41ac0cae254c | 02 0008 0102030405060708 | 0c 0008 a1a2a3a4a5a6a7a8"
     " | 0d 0001 02", MessageKind.PUNCH),
]


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace("|", " "))


@pytest.mark.parametrize(("msg", "golden", "kind"), PUNCH_GOLDEN)
def test_punch_messages_golden(msg: ExtPunch, golden: str, kind: MessageKind) -> None:
    assert encode_ext(msg).hex() == h(golden).hex()
    assert decode_ext(h(golden)) == msg
    assert classify(h(golden)) is kind


@pytest.mark.parametrize(("msg", "golden", "kind"), PUNCH_GOLDEN)
def test_docs_quote_the_punch_golden_hex(msg: ExtPunch, golden: str, kind: MessageKind) -> None:
    assert h(golden).hex() in DOC.read_text(encoding="utf-8")


def test_the_token_is_the_tcp_hello_token() -> None:
    assert TOKEN.hex() == "384c158e86fcf589bc1f41ac0cae254c"  # SHA-256("holepunch tcp hello v1" 00 "room1")[:16]


@pytest.mark.parametrize(("golden", "reason"), [
    ("fa687078 01 07 | 02 0008 0102030405060708 | 0c 0008 a1a2a3a4a5a6a7a8", "missing field TOKEN"),
    ("fa687078 01 07 | 0b 0001 00 | 02 0008 0102030405060708 | 0c 0008 a1a2a3a4a5a6a7a8", "token must be 16"),
    ("fa687078 01 08 | 0b 0010 384c158e86fcf589bc1f41ac0cae254c | 02 0008 0102030405060708", "missing field TARGET"),
    ("fa687078 01 07 | 0b 0010 384c158e86fcf589bc1f41ac0cae254c | 02 0008 0102030405060708 | 0c 0001 00",
     "target must be 8"),
    ("fa687078 01 07 | 0b 0010 384c158e86fcf589bc1f41ac0cae254c | 0c 0008 a1a2a3a4a5a6a7a8", "missing field PEER_ID"),
    ("fa687078 01 07 | 0b 0010 384c158e86fcf589bc1f41ac0cae254c | 02 0008 0102030405060708 | 0c 0008 a1a2a3a4a5a6a7a8"
     " | 0d 0002 0102", "probe must be 1 byte"),
])
def test_malformed_punches_raise_message_error(golden: str, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode_ext(h(golden))


def test_the_tcp_only_types_and_tags_stay_unused() -> None:
    # wire-protocol.md §8: types 05/06 and tags 09/0a belong to TCP; PUNCH uses 07/08 and 0b-0d.
    data = encode_ext(ExtPunch(TOKEN, ME_ID, P_ID, 1))
    assert data[5] == 0x07 and encode_ext(ExtPunchAck(TOKEN, ME_ID, P_ID))[5] == 0x08
    assert {data[6], data[6 + 3 + 16], data[6 + 19 + 11]} == {0x0B, 0x02, 0x0C}


# --- configuration -------------------------------------------------------------------------------


def test_techniques_are_off_by_default_and_names_are_checked() -> None:
    assert ClientConfig().techniques == frozenset()
    assert config("peer-reflexive", "birthday").techniques == {Technique.PEER_REFLEXIVE, Technique.BIRTHDAY}
    assert coerce_techniques("prediction") == {Technique.PREDICTION}
    with pytest.raises(ValueError, match="unknown technique 'stun'; choose from peer-reflexive"):
        ClientConfig(techniques={"stun"})
    with pytest.raises(ValueError, match="discovery is not implemented yet"):
        ClientConfig(techniques={"discovery"})
    assert ClientConfig(techniques={"relay"}).techniques == {Technique.RELAY}
    with pytest.raises(ValueError, match="birthday_role must be one of auto, hard, easy, both"):
        ClientConfig(birthday_role="middle")
    with pytest.raises(ValueError, match="birthday_ports"):
        ClientConfig(birthday_ports=(0, 10))
    with pytest.raises(ValueError, match="prediction_delta"):
        ClientConfig(prediction_delta=0)


def test_the_auto_role_follows_what_the_client_knows_of_its_nat() -> None:
    assert resolve_role(BirthdayRole.AUTO, None) == {BirthdayRole.HARD, BirthdayRole.EASY}
    assert resolve_role(BirthdayRole.AUTO, True) == {BirthdayRole.HARD}
    assert resolve_role(BirthdayRole.AUTO, False) == {BirthdayRole.EASY}
    assert resolve_role(BirthdayRole.EASY, True) == {BirthdayRole.EASY}


# --- the extended punch ----------------------------------------------------------------------------


def test_the_default_client_keeps_syn_ack_even_with_extended_peers() -> None:
    hand = punching(ClientConfig(), EXTENDED_P)
    assert [t.data for _, t in hand.sent if t.destination == P] == [SYN]


def test_with_a_technique_extended_peers_get_punch_and_plain_peers_syn() -> None:
    plain_q = PeerInfo(Q)
    hand = punching(config("peer-reflexive"), EXTENDED_P, plain_q)
    to_p = [t for _, t in hand.sent if t.destination == P]
    assert [(t.data, t.kind) for t in to_p] == [(punch(sender=ME_ID, target=P_ID), MessageKind.PUNCH)]
    assert [t.data for _, t in hand.sent if t.destination == Q] == [SYN]


def test_a_default_client_answers_an_extended_punch_in_kind_and_connects() -> None:
    hand = punching(ClientConfig(), EXTENDED_P)
    out = feed(hand, punch(), P, 0.1)
    assert [(t.data, t.destination) for t in out] == [(punch(True, sender=ME_ID, target=P_ID), P)]
    feed(hand, punch(True), P, 0.12)
    assert [e for _, e in hand.of(PeerConnected)] == [PeerConnected(P, pytest.approx(0.07))]


def test_ours_with_techniques_and_ours_without_connect_over_the_real_server() -> None:
    net = Network()
    net.add(SERVER, RendezvousServer())
    a = net.add(ME, PeerClient(SERVER, SID, 1, config("peer-reflexive", "prediction"), rng=random.Random(1)))
    b = net.add(P, PeerClient(SERVER, SID, 1, ClientConfig(), rng=random.Random(2)))
    net.at(0.0, a.start)  # type: ignore[attr-defined]
    net.at(0.05, b.start)  # type: ignore[attr-defined]
    net.run(until=2.0)
    for x in (ME, P):
        assert any(isinstance(e, ConnectCompleted) and e.complete for _, ep, e in net.events if ep == x)
    kinds = {(p.source, p.kind) for p in net.packets}
    assert (ME, MessageKind.PUNCH) in kinds and (P, MessageKind.PUNCH_ACK) in kinds


# --- peer-reflexive learning ---------------------------------------------------------------------------


def test_a_valid_punch_from_an_unlisted_address_of_a_listed_peer_is_adopted() -> None:
    hand = punching(config("peer-reflexive"), EXTENDED_P)
    out = feed(hand, punch(), ELSEWHERE, 0.1)
    assert [(t.kind, t.destination) for t in out] == [(MessageKind.PUNCH_ACK, ELSEWHERE)]
    feed(hand, punch(True), ELSEWHERE, 0.13)
    connected = [e for _, e in hand.of(PeerConnected)]
    assert connected == [PeerConnected(P, pytest.approx(0.08), "peer-reflexive", "direct", ELSEWHERE)]
    result = hand.machine.connect_result().peer(P)  # type: ignore[attr-defined]
    assert (result.technique, result.address, result.path) == ("peer-reflexive", ELSEWHERE, "direct")
    assert result.connected and result.time_to_connect == pytest.approx(0.08)
    hand.machine.send(P, b"hi")  # type: ignore[attr-defined]
    assert drain(hand.machine, 0.2)[0] == [Transmit(b"hi", ELSEWHERE, MessageKind.DATA)]
    feed(hand, b"back", ELSEWHERE, 0.3)
    assert hand.of(DatagramDropped) == []


@pytest.mark.parametrize(("data", "why"), [
    (punch(token=session_token(b"room2")), "another session"),
    (punch(target=bytes(8)), "someone else"),
    (punch(sender=bytes.fromhex("0909090909090909")), "an unknown peer id"),
    (punch()[:-1], "a truncated punch"),
    (SYN, "a plain SYN"),
])
def test_nothing_else_from_an_unlisted_address_is_adopted(data: bytes, why: str) -> None:
    hand = punching(config("peer-reflexive"), EXTENDED_P)
    out = feed(hand, data, ELSEWHERE, 0.1)
    assert out == [], why
    assert [e.reason for _, e in hand.of(DatagramDropped)] == ["stranger"]
    assert all(t.destination != ELSEWHERE for _, t in hand.timers(1.0))


def test_a_peer_listed_as_plain_is_never_adopted_nor_sent_a_punch() -> None:
    plain_p = PeerInfo(P, P_ID, False)  # same id, but the server says it registered in plain
    hand = punching(config("peer-reflexive", "prediction", "birthday"), plain_p)
    assert feed(hand, punch(), ELSEWHERE, 0.1) == []
    hand.timers(8.0)
    to_p_host = [t for _, t in hand.sent if t.destination.host == P.host]
    assert to_p_host and all(t.destination == P and t.data in (SYN, ACK) and t.via == 0 for t in to_p_host)
    assert hand.machine.sockets_wanted() == 0  # type: ignore[attr-defined]


def test_behind_a_plain_server_no_technique_runs() -> None:
    hand = Hand(PeerClient(SERVER, SID, 1, config("peer-reflexive", "prediction", "birthday", extension=False)))
    hand.start(0.0)
    hand.feed(P.text.encode(), SERVER, 0.05)
    hand.timers(8.0)
    assert {t.kind for _, t in hand.sent if t.destination.host == P.host} <= {MessageKind.SYN}
    assert {t.destination for _, t in hand.sent} == {SERVER, P}


def test_without_peer_reflexive_learning_the_punch_is_dropped_and_the_failure_says_why() -> None:
    hand = punching(config("prediction", timeout=2.0), EXTENDED_P)
    assert feed(hand, punch(), ELSEWHERE, 0.1) == []
    hand.timers(2.5)
    (_, failed), = hand.of(PeerFailed)
    assert f"PUNCH from the unlisted {ELSEWHERE} (peer-reflexive learning is off)" in failed.reason  # type: ignore[attr-defined]
    result = hand.machine.connect_result()  # type: ignore[attr-defined]
    assert not result.complete and result.reason == "timed out"
    assert "timed out; last seen: PUNCH from the unlisted" in result.peer(P).reason


def test_punches_from_the_listed_address_are_checked_too() -> None:
    hand = punching(config("peer-reflexive"), EXTENDED_P)
    assert feed(hand, punch(token=bytes(16)), P, 0.1) == []
    assert feed(hand, punch(sender=bytes(8)), P, 0.11) == []
    reasons = [e.reason for _, e in hand.of(DatagramDropped)]  # type: ignore[attr-defined]
    assert reasons == ["punch for another session", "punch from another peer"]


# --- port prediction ---------------------------------------------------------------------------------


def test_prediction_probes_the_window_after_the_listed_port_paced() -> None:
    cfg = config("prediction", prediction_window=8, escalation_delay=0.5, probe_interval=0.002)
    hand = punching(cfg, EXTENDED_P)
    probes = [(t, x) for t, x in hand.timers(0.6) if x.destination != P]
    assert [x.destination for _, x in probes] == [Endpoint(P.host, P.port + i) for i in range(1, 9)]
    times = [t for t, _ in probes]
    assert times[0] == pytest.approx(0.55) and all(b - a >= 0.002 - EPS for a, b in zip(times, times[1:]))
    assert {decode_ext(x.data) for _, x in probes} == {ExtPunch(TOKEN, ME_ID, P_ID, 1)}


def test_prediction_steps_by_the_configured_delta_and_sweeps_again() -> None:
    cfg = config("prediction", prediction_window=3, prediction_delta=2, sweep_interval=1.0, max_sweeps=2)
    hand = punching(cfg, EXTENDED_P)
    probes = [(round(t, 3), x.destination.port) for t, x in hand.timers(5.0) if x.kind is MessageKind.PUNCH
              and x.destination != P]
    assert [port for _, port in probes] == [P.port + 2, P.port + 4, P.port + 6] * 2
    assert probes[3][0] == pytest.approx(probes[0][0] + 1.0)


def test_an_answer_from_a_predicted_port_is_adopted_as_prediction() -> None:
    hand = punching(config("prediction", prediction_window=4), EXTENDED_P)
    hand.timers(0.6)
    predicted = Endpoint(P.host, P.port + 3)
    assert feed(hand, punch(True), predicted, 0.62) != []
    (_, event), = hand.of(PeerConnected)
    assert (event.technique, event.address) == ("prediction", predicted)  # type: ignore[attr-defined]
    assert feed(hand, punch(True), Endpoint(P.host, P.port + 9), 0.63) == []  # never probed: a stranger


def test_a_probe_that_reaches_us_names_its_technique() -> None:
    hand = punching(config("prediction"), EXTENDED_P)
    feed(hand, punch(probe=1), P, 0.1)
    feed(hand, punch(True), P, 0.12)
    (_, event), = hand.of(PeerConnected)
    assert (event.technique, event.address) == ("prediction", None)  # type: ignore[attr-defined]


def test_no_probe_goes_to_a_peer_that_connected_before_escalation() -> None:
    hand = punching(config("prediction", "birthday"), EXTENDED_P)
    feed(hand, punch(), P, 0.1)
    feed(hand, punch(True), P, 0.12)
    later = hand.timers(10.0)
    assert all(x.destination == P for _, x in later)
    assert hand.machine.sockets_wanted() == 0  # type: ignore[attr-defined]


# --- birthday probing -------------------------------------------------------------------------------


def test_the_hard_side_asks_for_k_minus_one_sockets_and_punches_from_each_paced() -> None:
    cfg = config("birthday", birthday_role="hard", birthday_sockets=16, escalation_delay=0.5, probe_interval=0.004)
    hand = punching(cfg, EXTENDED_P)
    assert hand.machine.sockets_wanted() == 0  # type: ignore[attr-defined]
    sends = [(t, x) for t, x in hand.timers(0.7) if x.via]
    assert hand.machine.sockets_wanted() == 15  # type: ignore[attr-defined]
    assert [x.via for _, x in sends] == list(range(1, 16))
    assert {x.destination for _, x in sends} == {P}
    assert {decode_ext(x.data) for _, x in sends} == {ExtPunch(TOKEN, ME_ID, P_ID, 2)}
    times = [t for t, _ in sends]
    assert all(b - a == pytest.approx(0.004) for a, b in zip(times, times[1:]))
    assert not [x for _, x in hand.sent if x.destination.host == P.host and x.destination != P]  # no easy probes


def test_the_hard_side_switches_to_the_socket_a_probe_arrived_on_and_keeps_only_that_many() -> None:
    cfg = config("birthday", birthday_role="hard", birthday_sockets=16)
    hand = punching(cfg, EXTENDED_P)
    hand.timers(0.6)
    out = feed(hand, punch(probe=2), P, 0.61, via=7)
    assert [(x.kind, x.destination, x.via) for x in out] == [(MessageKind.PUNCH_ACK, P, 7)]
    feed(hand, punch(True), P, 0.63, via=7)
    (_, event), = hand.of(PeerConnected)
    assert event.technique == "birthday"  # type: ignore[attr-defined]
    result = hand.machine.connect_result().peer(P)  # type: ignore[attr-defined]
    assert (result.via, result.address, result.technique) == (7, P, "birthday")
    assert hand.machine.sockets_wanted() == 7  # type: ignore[attr-defined]
    hand.machine.send(P, b"data")  # type: ignore[attr-defined]
    assert drain(hand.machine, 0.7)[0] == [Transmit(b"data", P, MessageKind.DATA, 7)]


def test_without_birthday_a_punch_on_another_socket_is_refused() -> None:
    hand = punching(config("peer-reflexive"), EXTENDED_P)
    assert feed(hand, punch(), P, 0.1, via=3) == []
    assert [e.reason for _, e in hand.of(DatagramDropped)] == ["punch on another socket"]  # type: ignore[attr-defined]


def test_the_easy_side_probes_m_distinct_random_ports_the_same_on_every_sweep() -> None:
    cfg = config("birthday", birthday_role="easy", birthday_probes=40, sweep_interval=1.0, max_sweeps=2)
    hand = punching(cfg, EXTENDED_P)
    probes = [(t, x) for t, x in hand.timers(3.0) if x.destination not in (P, SERVER)]  # not the refreshes
    assert hand.machine.sockets_wanted() == 0  # type: ignore[attr-defined]
    first, second = [x.destination for _, x in probes[:40]], [x.destination for _, x in probes[40:]]
    assert len(set(first)) == 40 and first == second and len(probes) == 80
    assert all(d.host == P.host and 1024 <= d.port <= 65535 and x.via == 0 for d, (_, x) in zip(first, probes))
    assert {decode_ext(x.data) for _, x in probes} == {ExtPunch(TOKEN, ME_ID, P_ID, 2)}
    times = [t for t, _ in probes[:40]]
    assert all(b - a == pytest.approx(cfg.probe_interval) for a, b in zip(times, times[1:]))
    # The answer from a probed port is adopted; the same seed draws the same ports.
    feed(hand, punch(True), first[5], 3.1)
    (_, event), = hand.of(PeerConnected)
    assert (event.technique, event.address) == ("birthday", first[5])  # type: ignore[attr-defined]
    again = punching(cfg, EXTENDED_P)
    assert [x.destination for t, x in again.timers(3.0) if x.destination != P][:40] == first


def test_the_pacer_never_bursts_and_skips_probes_nobody_wants() -> None:
    pacer = Pacer(0.01)
    pacer.push("a", [Transmit(b"1", P, MessageKind.PUNCH), Transmit(b"2", P, MessageKind.PUNCH)], 1.0)
    pacer.push("b", [Transmit(b"3", Q, MessageKind.PUNCH)], 1.0)
    assert [t.data for t in pacer.due(1.0, lambda k: True)] == [b"1"]
    assert pacer.due(1.005, lambda k: True) == [] and pacer.next_timer() == pytest.approx(1.01)
    assert [t.data for t in pacer.due(5.0, lambda k: k != "a")] == [b"3"]  # late: still one, "a" skipped
    assert pacer.next_timer() is None and not pacer.pending("b")


def test_probe_plans_stay_in_the_port_range() -> None:
    edge = Endpoint("192.0.2.9", 65533)
    assert prediction_ports(edge, 4) == [Endpoint("192.0.2.9", 65534), Endpoint("192.0.2.9", 65535)]
    assert [e.port for e in prediction_ports(Endpoint("192.0.2.9", 10), 3, -4)] == [6, 2]
    ports = birthday_ports("192.0.2.9", 100, (2000, 2049), random.Random(1))
    assert sorted(e.port for e in ports) == list(range(2000, 2050))
    with pytest.raises(ValueError, match="ports must be a range"):
        birthday_ports("192.0.2.9", 1, (0, 5), random.Random(1))


# --- the arithmetic ---------------------------------------------------------------------------------


def test_the_birthday_probability_matches_the_formula_and_brute_force() -> None:
    assert birthday_probability(256, 256) == pytest.approx(1 - math.exp(-1))  # 63.2 %
    assert birthday_probability(256, 256, 64512, exact=True) == pytest.approx(0.6394, abs=1e-4)  # "about 64 %"
    for k, m, space in ((3, 2, 10), (5, 4, 20), (1, 1, 7), (0, 5, 9), (7, 7, 12)):
        brute = 1 - math.comb(space - k, m) / math.comb(space, m)
        assert birthday_probability(k, m, space, exact=True) == pytest.approx(brute)
    assert birthday_probability(256, 256, exact=True) == pytest.approx(birthday_probability(256, 256), abs=0.002)
    assert probes_needed(0.5, 256) == 178 and birthday_probability(256, 178) >= 0.5


@pytest.mark.parametrize(("args", "error"), [
    ((-1, 2), ValueError), ((2, 70000), ValueError), ((2, 2, 0), ValueError), ((2.0, 2), TypeError),
])
def test_the_birthday_probability_refuses_nonsense(args: tuple, error: type) -> None:  # type: ignore[type-arg]
    with pytest.raises(error):
        birthday_probability(*args)


# --- which path is kept ------------------------------------------------------------------------------


@pytest.mark.parametrize(("my_id", "follows"), [(ME_ID, False), (bytes.fromhex("ffffffffffffffff"), True)])
def test_before_connecting_the_latest_punch_sets_the_path_after_only_the_controlled_peer_moves(
        my_id: bytes, follows: bool) -> None:
    first, second = ELSEWHERE, Endpoint(P.host, 31338)
    hand = punching(config("peer-reflexive"), EXTENDED_P, peer_id=my_id)
    assert [t.destination for t in feed(hand, punch(target=my_id), first, 0.1)] == [first]
    assert [t.destination for t in feed(hand, punch(target=my_id), second, 0.2)] == [second]  # answered where it came
    feed(hand, punch(True, target=my_id), first, 0.3)
    (_, event), = hand.of(PeerConnected)
    assert event.address == first  # type: ignore[attr-defined]
    feed(hand, b"data", second, 0.4)  # the peer now uses the other flow
    hand.machine.send(P, b"reply")  # type: ignore[attr-defined]
    expected = second if follows else first  # the lower peer id (RFC 8445 controlling) never moves
    assert drain(hand.machine, 0.5)[0] == [Transmit(b"reply", expected, MessageKind.DATA)]
    assert feed(hand, punch(target=my_id), Endpoint(P.host, 40000), 0.6) == []  # no new address once connected
