"""The peer client, driven with bytes and a hand-advanced clock, alone or over the in-memory link.

Checked against the interop rules of the fact sheet (wire-protocol.md §7) and against the
reference bugs we promise not to copy (B1, B3, B4, B6).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holepunch.protocol import (
    ClientConfig,
    ClientState,
    ConnectCompleted,
    DataReceived,
    DatagramDropped,
    Endpoint,
    MessageKind,
    PeerClient,
    PeerConnected,
    PeerFailed,
    PeerInfo,
    PeerListReceived,
    PeerState,
    PunchingStarted,
    Registered,
    RendezvousServer,
    ServerConfig,
    Transmit,
)
from holepunch.protocol.handshake import linger_until
from holepunch.protocol.messages import (
    ACK,
    MAGIC,
    SYN,
    ErrorCode,
    ExtCookie,
    ExtError,
    ExtPeers,
    ExtRegister,
    decode_ext,
    encode_ext,
    encode_peer_list,
    is_extension,
)

from .helpers import SERVER, Hand, Network, Packet, Recorder, ReferenceLikeServer, peer_endpoint

ME, P, Q, R = (peer_endpoint(n) for n in (1, 2, 3, 4))
STRANGER = Endpoint("203.0.113.66", 6666)
SID = b"room1"
PLAIN = ClientConfig(extension=False)
PI = PLAIN.punch_interval  # the tests follow the configured figures, not copies of them
FINAL = PLAIN.final_ack_delay
EPS = 1e-9


def client(expected: int = 1, config: ClientConfig = PLAIN, seed: int = 1) -> Hand:
    """A client of session SID at ME, not started, driven by hand."""
    return Hand(PeerClient(SERVER, SID, expected, config, rng=random.Random(seed)))


def punching(*peers: Endpoint, expected: int | None = None, config: ClientConfig = PLAIN) -> Hand:
    """A plain client whose first reply, at t=0.05, listed `peers`."""
    hand = client(len(peers) if expected is None else expected, config)
    hand.start(0.0)
    hand.feed(encode_peer_list(list(peers)), SERVER, 0.05)
    assert hand.machine.state is ClientState.PUNCHING
    return hand


def completed(hand: Hand) -> list[ConnectCompleted]:
    """Every ConnectCompleted the client reported (there must be at most one)."""
    return [e for _, e in hand.of(ConnectCompleted)]  # type: ignore[misc]


def gaps(times: list[float]) -> list[float]:
    """Differences between consecutive times."""
    return [b - a for a, b in zip(times, times[1:])]


# --- negotiation ------------------------------------------------------------------------------


def mesh(server: object, starts: list[float], expected: int = 2, **net: object) -> tuple[Network, list[PeerClient]]:
    """Our clients at ME, P, Q, ... starting at `starts`, against `server`, run for 5 s."""
    network = Network(**net)  # type: ignore[arg-type]
    network.add(SERVER, server)  # type: ignore[arg-type]
    clients = [PeerClient(SERVER, SID, expected, rng=random.Random(n)) for n in range(len(starts))]
    for n, machine in enumerate(clients):
        network.add(peer_endpoint(n + 1), machine)
    for start, machine in sorted(zip(starts, clients), key=lambda pair: pair[0]):
        network.at(start, machine.start)
    network.run(until=5.0)
    return network, clients


def test_extension_is_negotiated_with_our_server() -> None:
    network, clients = mesh(RendezvousServer(), [0.0, 0.3, 0.6])
    for n, machine in enumerate(clients):
        me = peer_endpoint(n + 1)
        assert machine.extended is True
        assert machine.public_endpoint == me
        assert [e for _, e in network.events_of(me, Registered)] == [Registered(True, me)]
        assert machine.state is ClientState.ESTABLISHED
    # A and B get the server's address cookie with a list still short of peers and echo it at
    # once (10 ms later): pushes to a proved address are never held back. Waiting, they refresh
    # 0.1 s after that, then 0.2 s after that, doubling. C's first registration is padded to pay
    # for a list of its two peers, which comes with the cookie; complete, C needs no echo.
    sent = [[(p.kind, round(p.sent, 6)) for p in network.sent(peer_endpoint(n + 1), SERVER)] for n in range(3)]
    register = MessageKind.EXT_REGISTER
    assert sent == [[(register, t) for t in (0.0, 0.01, 0.11, 0.31)], [(register, t) for t in (0.3, 0.31, 0.41)],
                    [(register, 0.6)]]


def test_pushes_finish_the_mesh_without_waiting_for_a_poll() -> None:
    network, clients = mesh(RendezvousServer(), [0.0, 0.3, 0.6])
    done = [t for t, _, e in network.events if isinstance(e, ConnectCompleted)]
    assert all(e.complete for _, _, e in network.events if isinstance(e, ConnectCompleted))  # type: ignore[attr-defined]
    assert len(done) == 3 and max(done) < 0.65  # C joined at 0.6; A's next refresh is at 0.71
    pushes = [p for p in network.sent(SERVER) if p.kind is MessageKind.EXT_PUSH]
    assert [(p.destination, p.sent) for p in pushes] == [(ME, 0.305), (ME, 0.605), (P, 0.605)]

    slow, _ = mesh(RendezvousServer(ServerConfig(push=False)), [0.0, 0.3, 0.6])
    slow_done = [t for t, _, e in slow.events if isinstance(e, ConnectCompleted)]
    assert max(slow_done) > 0.7  # without pushes A learns about C at its next refresh, at 0.71


def test_falls_back_when_the_server_answers_with_an_empty_plain_reply() -> None:
    hand = client(expected=1, config=ClientConfig())
    me = hand.machine
    out = hand.start(0.0)
    assert out == [Transmit(encode_ext(ExtRegister(SID, me.peer_id, 1)), SERVER, MessageKind.EXT_REGISTER)]
    assert me.extended is None
    # The reference takes the extension message for an unknown ID and answers 0 bytes.
    assert hand.feed(b"", SERVER, 0.02) == [Transmit(SID, SERVER, MessageKind.REGISTER)]
    assert me.extended is False
    assert me.get_timer() == pytest.approx(0.12)
    assert hand.feed(b"198.51.100.2:40002", SERVER, 0.04) == [Transmit(SYN, P, MessageKind.SYN)]
    assert [e for _, e in hand.events] == [
        Registered(False, None),
        PeerListReceived((PeerInfo(P),), False),
        PunchingStarted((PeerInfo(P),), 1),
    ]


def test_mesh_through_a_reference_server_falls_back_and_connects() -> None:
    reference = ReferenceLikeServer()
    network, clients = mesh(reference, [0.0, 0.3, 0.6])
    assert all(machine.extended is False for machine in clients)
    assert all(machine.state is ClientState.ESTABLISHED for machine in clients)
    for n in range(3):
        me = peer_endpoint(n + 1)
        kinds = [p.kind for p in network.sent(me, SERVER)]
        assert kinds[0] is MessageKind.EXT_REGISTER and set(kinds[1:]) == {MessageKind.REGISTER}
        assert [e for _, e in network.events_of(me, Registered)] == [Registered(False, None)]
    # The reference never got anything it could not handle: one opaque ID per client, then SID.
    ids = [data for _, _, data in reference.received]
    assert sum(1 for data in ids if is_extension(data)) == 3
    assert {data for data in ids if not is_extension(data)} == {SID}
    assert not any(is_extension(p.data) for p in network.sent(SERVER))


def test_falls_back_when_the_server_never_answers() -> None:
    hand = client(expected=1, config=ClientConfig(extension_attempts=3))
    hand.start(0.0)
    hand.timers(0.55)
    kinds = [(round(t, 6), x.kind) for t, x in hand.sent]
    ext, reg = MessageKind.EXT_REGISTER, MessageKind.REGISTER
    assert kinds == [(0.0, ext), (0.1, ext), (0.2, ext), (0.3, reg), (0.4, reg), (0.5, reg)]
    assert all(x.data == SID for _, x in hand.sent[3:])
    assert hand.machine.extended is False


@pytest.mark.parametrize(
    ("config", "first"),
    [
        (ClientConfig(extension=False), MessageKind.REGISTER),
        (ClientConfig(extension_attempts=0), MessageKind.REGISTER),
        (ClientConfig(extension_attempts=1), MessageKind.EXT_REGISTER),
    ],
)
def test_extension_can_be_switched_off(config: ClientConfig, first: MessageKind) -> None:
    hand = client(config=config)
    hand.start(0.0)
    hand.timers(0.35)
    assert hand.sent[0][1].kind is first
    assert all(x.kind is MessageKind.REGISTER for _, x in hand.sent[1:])


def test_the_server_refusing_an_extended_registration_ends_connect() -> None:
    hand = client(config=ClientConfig())
    hand.start(0.0)
    hand.feed(encode_ext(ExtError(3, "session-full")), SERVER, 0.01)
    assert completed(hand) == [ConnectCompleted((), (), 1, "server refused: session-full", refused=True)]
    assert hand.machine.state is ClientState.INCOMPLETE
    assert hand.machine.get_timer() is None  # polling stopped


# --- how many peers are enough --------------------------------------------------------------


def test_more_peers_than_expected_are_accepted() -> None:
    """B6 is not copied: the reference waits for exactly `expected` and never proceeds."""
    hand = client(expected=1)
    hand.start(0.0)
    out = hand.feed(encode_peer_list([P, Q]), SERVER, 0.05)
    assert out == [Transmit(SYN, P, MessageKind.SYN), Transmit(SYN, Q, MessageKind.SYN)]
    assert [e for _, e in hand.of(PunchingStarted)] == [PunchingStarted((PeerInfo(P), PeerInfo(Q)), 1)]


@pytest.mark.parametrize("config", [PLAIN, ClientConfig()], ids=["plain", "extended"])
def test_expecting_no_peers_completes_on_the_first_reply(config: ClientConfig) -> None:
    hand = client(expected=0, config=config)
    hand.start(0.0)
    reply = encode_ext(ExtPeers(SID, ME)) if config.extension else b""
    hand.feed(reply, SERVER, 0.01)
    assert completed(hand) == [ConnectCompleted((), (), 0, "")]
    assert completed(hand)[0].complete
    assert hand.machine.state is ClientState.ESTABLISHED


def test_fewer_peers_keep_it_polling() -> None:
    hand = client(expected=2)
    hand.start(0.0)
    hand.feed(encode_peer_list([P]), SERVER, 0.05)
    assert hand.machine.state is ClientState.REGISTERING
    assert [x.kind for _, x in hand.timers(0.25)] == [MessageKind.REGISTER] * 2


def test_wait_timeout_punches_the_peers_found_so_far() -> None:
    network = Network()
    network.add(SERVER, RendezvousServer())
    me = network.add(ME, PeerClient(SERVER, SID, 2, ClientConfig(wait_timeout=1.0), rng=random.Random(1)))
    other = network.add(P, PeerClient(SERVER, SID, 1, rng=random.Random(2)))
    network.at(0.0, me.start)  # type: ignore[attr-defined]
    network.at(0.2, other.start)  # type: ignore[attr-defined]
    network.run(until=3.0)
    assert [(t, e) for t, e in network.events_of(ME, PunchingStarted)] == [
        (1.0, PunchingStarted((PeerInfo(P, other.peer_id, True),), 2))  # type: ignore[attr-defined]
    ]
    ((_, mine),) = network.events_of(ME, ConnectCompleted)
    assert mine == ConnectCompleted((P,), (), 2, "")
    assert not mine.complete  # type: ignore[attr-defined]  # connected, but fewer than expected
    ((_, theirs),) = network.events_of(P, ConnectCompleted)
    assert theirs.complete  # type: ignore[attr-defined]


def test_wait_timeout_with_nobody_found() -> None:
    hand = client(expected=2, config=ClientConfig(extension=False, wait_timeout=0.5))
    hand.start(0.0)
    hand.timers(1.0)
    assert [(t, e) for t, e in hand.of(PunchingStarted)] == [(0.5, PunchingStarted((), 2))]
    assert completed(hand) == [ConnectCompleted((), (), 2, "")]
    assert not completed(hand)[0].complete


# --- deadlines ----------------------------------------------------------------------------------


def test_overall_timeout_fails_the_silent_peer_with_a_reason() -> None:
    hand = punching(P, Q, config=ClientConfig(extension=False, timeout=2.0))
    hand.feed(ACK, Q, 0.1)
    hand.feed(SYN, P, 0.3)
    hand.timers(10.0)
    assert [e for _, e in hand.of(PeerFailed)] == [PeerFailed(P, "SYN")]
    assert [(t, e) for t, e in hand.of(ConnectCompleted)] == [(2.0, ConnectCompleted((Q,), (P,), 2, "timed out"))]
    assert not completed(hand)[0].complete
    assert hand.machine.state is ClientState.INCOMPLETE
    assert hand.machine.peers[P].state is PeerState.FAILED
    assert all(x.data == b"" for t, x in hand.sent if t > 2.0)  # only keep-alives to Q after that


def test_a_peer_that_never_answers_fails_with_nothing_received() -> None:
    hand = punching(P, config=ClientConfig(extension=False, timeout=1.0))
    hand.timers(5.0)
    assert [e for _, e in hand.of(PeerFailed)] == [PeerFailed(P, "nothing received")]
    assert max(t for t, _ in hand.sent) < 1.0
    assert hand.machine.get_timer() is None


def test_timeout_while_registering() -> None:
    hand = client(expected=1, config=ClientConfig(timeout=1.0))
    hand.start(0.0)
    hand.timers(5.0)
    assert completed(hand) == [ConnectCompleted((), (), 1, "timed out waiting for peers")]
    assert hand.of(PeerFailed) == []
    assert max(t for t, _ in hand.sent) < 1.0 and hand.machine.get_timer() is None


# --- what is not ours is dropped, and never blocks --------------------------------------------


def test_strangers_and_late_server_replies_are_dropped_and_counted() -> None:
    """B1 is not copied: in the reference these hang the read loop for good."""
    hand = punching(P, Q)
    me = hand.machine
    junk = [
        (b"hello", STRANGER),
        (SYN, STRANGER),
        (encode_peer_list([P, Q]), SERVER),  # a late reply to a poll still in flight
        (encode_peer_list([P, Q]), SERVER),  # and a duplicate of it
        (encode_ext(ExtPeers(SID, ME, (PeerInfo(R),), push=True)), SERVER),
        (b"", SERVER),  # the server's keep-alive: expected, so not even counted
    ]
    for n, (data, source) in enumerate(junk):
        assert hand.feed(data, source, 0.06 + n / 1000) == []
    assert me.dropped == {"stranger": 2, "late server reply": 3}  # a plain client keeps B1's drops
    assert [e.reason for _, e in hand.of(DatagramDropped)] == ["stranger"] * 2 + ["late server reply"] * 3  # type: ignore[attr-defined]
    assert me.refresh_answers == 0
    assert set(me.peers) == {P, Q}
    hand.feed(ACK, P, 0.1)
    hand.feed(SYN, Q, 0.11)
    hand.feed(ACK, Q, 0.12)
    assert completed(hand) == [ConnectCompleted((P, Q), (), 2, "")]


def refreshing() -> Hand:
    """An extended client at ME that echoes cookie c1 and whose server listed P at t=0.01."""
    hand = client(config=ClientConfig())
    hand.start(0.0)
    (echo,) = hand.feed(encode_ext(ExtCookie(b"c1")), SERVER, 0.005)
    assert decode_ext(echo.data).cookie == b"c1"  # type: ignore[union-attr]
    hand.feed(encode_ext(ExtPeers(SID, ME, (PeerInfo(P),))), SERVER, 0.01)
    assert hand.machine.state is ClientState.PUNCHING and hand.machine.extended is True  # type: ignore[attr-defined]
    return hand


def test_answers_to_our_own_refreshes_are_counted_quietly_not_dropped() -> None:
    """An extended client keeps registering while it punches: the server's lists for our
    session and its cookies are expected, so they are no drop, no event and draw no reply."""
    hand = refreshing()
    answers = [
        encode_ext(ExtPeers(SID, ME, (PeerInfo(P),))),  # the answer to a refresh
        encode_ext(ExtPeers(SID, ME, (PeerInfo(P),))),  # and a late duplicate of it
        encode_ext(ExtPeers(SID, ME, (PeerInfo(R),), push=True)),
        encode_ext(ExtCookie(b"c1")),  # the cookie we echo
        encode_ext(ExtCookie(b"c2")),  # a fresh one we have no need to echo while punching
        b"",  # the server's keep-alive: not even counted
    ]
    for n, data in enumerate(answers):
        assert hand.feed(data, SERVER, 0.02 + n / 1000) == []
    me = hand.machine
    assert me.refresh_answers == 5 and not me.dropped and hand.of(DatagramDropped) == []  # type: ignore[attr-defined]
    assert set(me.peers) == {P}  # type: ignore[attr-defined]
    hand.feed(ACK, P, 0.1)
    assert completed(hand) == [ConnectCompleted((P,), (), 1, "")]
    assert hand.feed(encode_ext(ExtPeers(SID, ME, (PeerInfo(P),))), SERVER, 0.2) == []  # still in flight
    assert me.refresh_answers == 6 and hand.of(DatagramDropped) == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"198.51.100.2:40002", "plain reply to extended client"),
        (MAGIC + b"\x01\x02\x00\x00\x00", "malformed: "),
        (encode_ext(ExtPeers(b"other", ME, (PeerInfo(P),))), "reply for another session"),
        (encode_ext(ExtError(ErrorCode.RATE_LIMITED, "slow down")), "server error after registration: slow down"),
        (encode_ext(ExtRegister(SID, bytes(8))), "unexpected extension message"),
    ],
)
def test_odd_server_datagrams_while_punching_extended_are_still_dropped(data: bytes, reason: str) -> None:
    hand = refreshing()
    assert hand.feed(data, SERVER, 0.02) == []
    assert [e.reason[: len(reason)] for _, e in hand.of(DatagramDropped)] == [reason]  # type: ignore[attr-defined]
    assert hand.machine.refresh_answers == 0 and sum(hand.machine.dropped.values()) == 1  # type: ignore[attr-defined]
    assert hand.machine.state is ClientState.PUNCHING  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"198.51.100.2:40002", "plain reply to extended client"),
        (MAGIC + b"\x01\x02\x00\x00\x00", "malformed: "),
        (encode_ext(ExtPeers(b"other", ME, (PeerInfo(P),))), "unexpected extension message"),
        (encode_ext(ExtRegister(SID, bytes(8))), "unexpected extension message"),
    ],
)
def test_odd_server_datagrams_while_registering_extended_are_dropped(data: bytes, reason: str) -> None:
    hand = client(config=ClientConfig())
    hand.start(0.0)
    hand.feed(encode_ext(ExtPeers(SID, ME)), SERVER, 0.01)
    assert hand.machine.extended is True
    assert hand.feed(data, SERVER, 0.02) == []
    assert [e.reason[: len(reason)] for _, e in hand.of(DatagramDropped)] == [reason]  # type: ignore[attr-defined]
    assert hand.machine.state is ClientState.REGISTERING and hand.machine.extended is True


def test_an_empty_datagram_from_our_server_is_no_peer_list_for_an_extended_client() -> None:
    hand = client(config=ClientConfig())
    hand.start(0.0)
    hand.feed(encode_ext(ExtPeers(SID, ME)), SERVER, 0.01)
    assert hand.feed(b"", SERVER, 10.0) == []  # a keep-alive, not an (empty) answer
    assert hand.machine.extended is True and hand.of(DatagramDropped) == []


class Flooder:
    """A stranger that sends junk to `targets` every `period` seconds."""

    def __init__(self, targets: list[Endpoint], period: float = 0.01) -> None:
        self.targets, self.period, self.next = targets, period, 0.0
        self._out: list[Transmit] = []

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None:
        pass

    def handle_timer(self, now: float) -> None:
        self._out += [Transmit(b"junk!" if int(now * 100) % 2 else SYN, t, MessageKind.DATA) for t in self.targets]
        self.next = now + self.period

    def get_timer(self) -> float | None:
        return self.next

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> None:
        return None


class LateEcho:
    """Wraps a server and sends every reply a second time, `lag` seconds late (RTT > poll period)."""

    def __init__(self, server: RendezvousServer, lag: float = 0.25) -> None:
        self.server, self.lag = server, lag
        self.later: list[tuple[float, Transmit]] = []

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None:
        self.server.receive_datagram(data, source, now)

    def handle_timer(self, now: float) -> None:
        self.server.handle_timer(now)

    def get_timer(self) -> float | None:
        times = [t for t in [self.server.get_timer(), *(t for t, _ in self.later)] if t is not None]
        return min(times) if times else None

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out = self.server.datagrams_to_send(now)
        self.later += [(now + self.lag, t) for t in out if t.data]
        due = [t for when, t in self.later if when <= now]
        self.later = [(when, t) for when, t in self.later if when > now]
        return out + due

    def next_event(self) -> object:
        return self.server.next_event()


@pytest.mark.parametrize("server_config", [ServerConfig(), ServerConfig(push=False)], ids=["push", "poll"])
def test_junk_and_late_duplicates_never_block_the_mesh(server_config: ServerConfig) -> None:
    network = Network()
    network.add(SERVER, LateEcho(RendezvousServer(server_config)))  # type: ignore[arg-type]
    network.add(STRANGER, Flooder([ME, P, Q]))  # type: ignore[arg-type]
    clients = [network.add(ep, PeerClient(SERVER, SID, 2, rng=random.Random(n))) for n, ep in enumerate([ME, P, Q])]
    for n, machine in enumerate(clients):
        network.at(0.3 * n, machine.start)  # type: ignore[attr-defined]
    network.run(until=4.0)
    for machine in clients:
        assert machine.state is ClientState.ESTABLISHED  # type: ignore[attr-defined]
        assert machine.dropped["stranger"] > 50  # type: ignore[attr-defined]
        assert not set(machine.dropped) - {"stranger", "not running"}, machine.dropped  # type: ignore[attr-defined]
    # The late duplicates of our session's lists and cookies are answers we expect, not drops.
    assert sum(m.refresh_answers for m in clients) > 0  # type: ignore[attr-defined]


# --- completion (B3) ---------------------------------------------------------------------------


def test_connect_completes_the_moment_the_last_peer_is_confirmed() -> None:
    """B3 is not copied: no further datagram is needed after the last ACK."""
    hand = punching(P, Q)
    hand.feed(ACK, P, 0.1)
    assert completed(hand) == []
    hand.feed(ACK, Q, 0.2)
    assert [(t, e) for t, e in hand.of(ConnectCompleted)] == [(0.2, ConnectCompleted((P, Q), (), 2, ""))]
    assert [(t, e) for t, e in hand.of(PeerConnected)] == [
        (0.1, PeerConnected(P, pytest.approx(0.05))),
        (0.2, PeerConnected(Q, pytest.approx(0.15))),
    ]
    assert hand.machine.state is ClientState.ESTABLISHED


# --- the handshake rules (fact sheet §7) -----------------------------------------------------


def test_syn_every_punch_interval_until_answered() -> None:
    hand = punching(P)
    hand.timers(0.05 + 6.5 * PI)
    syns = [t for t, x in hand.sent if x.destination == P]
    assert all(x == Transmit(SYN, P, MessageKind.SYN) for t, x in hand.sent if x.destination == P)
    assert syns == pytest.approx([0.05 + k * PI for k in range(7)])
    assert PI >= 0.1  # never faster than the reference (fact sheet §7)


def test_a_silent_peer_gets_syns_ever_further_apart() -> None:
    """After `punch_backoff_after` with nothing from the peer the gap doubles, up to
    `punch_interval_max`; a peer that sent anything keeps the punch interval."""
    cfg = ClientConfig(extension=False, timeout=12.0)
    hand = punching(P, Q, config=cfg)
    hand.feed(b"junk", Q, 0.06)  # Q is not silent: junk from it is no handshake, but it is alive
    hand.timers(12.0)
    syns = {who: [t for t, x in hand.sent if x.destination == who] for who in (P, Q)}
    gaps_p = [round(g, 6) for g in gaps(syns[P])]
    slow = [g for g in gaps_p if g > PI + EPS]
    assert slow[:5] == [2 * PI, 4 * PI, 8 * PI, cfg.punch_interval_max, cfg.punch_interval_max]
    assert syns[P][len(gaps_p) - len(slow)] - 0.05 >= cfg.punch_backoff_after - EPS  # not before
    assert all(g == pytest.approx(PI) for g in gaps(syns[Q]))


def test_syn_is_answered_with_ack_at_once() -> None:
    """Not at the next tick (the reference's starving timer, B4)."""
    hand = punching(P)
    assert hand.feed(SYN, P, 0.12) == [Transmit(ACK, P, MessageKind.ACK)]
    assert hand.machine.peers[P].state is PeerState.ACKING
    later = [(t, x) for t, x in hand.timers(0.12 + 4.5 * PI) if x.destination == P]  # not the refreshes
    # Until confirmed, SYN and ACK alternate: ACK lets a reference peer finish, SYN makes a
    # peer of ours that is already connected answer.
    assert later == [
        (pytest.approx(0.12 + 1 * PI), Transmit(SYN, P, MessageKind.SYN)),
        (pytest.approx(0.12 + 2 * PI), Transmit(ACK, P, MessageKind.ACK)),
        (pytest.approx(0.12 + 3 * PI), Transmit(SYN, P, MessageKind.SYN)),
        (pytest.approx(0.12 + 4 * PI), Transmit(ACK, P, MessageKind.ACK)),
    ]


def test_each_syn_answered_restarts_the_retransmission_timer() -> None:
    hand = punching(P)
    hand.feed(SYN, P, 0.12)
    hand.feed(SYN, P, 0.12 + 0.9 * PI)
    assert hand.machine.peers[P].next_timer() == pytest.approx(0.12 + 1.9 * PI)


def test_ack_is_answered_at_once_and_once_more_later() -> None:
    hand = punching(P)
    assert hand.feed(ACK, P, 0.12) == [Transmit(ACK, P, MessageKind.ACK)]
    assert hand.machine.peers[P].state is PeerState.CONNECTED
    assert hand.machine.get_timer() == pytest.approx(0.12 + FINAL)
    assert hand.timers(10.0) == [(pytest.approx(0.12 + FINAL), Transmit(ACK, P, MessageKind.ACK))]


def extended_punching(peer: Endpoint) -> Hand:
    """An extended client whose server listed `peer`, a peer of ours (extended), at t=0.05."""
    hand = client(1, ClientConfig())
    hand.start(0.0)
    hand.feed(encode_ext(ExtPeers(SID, ME, (PeerInfo(peer, b"peer-id!", True),))), SERVER, 0.05)
    assert hand.machine.state is ClientState.PUNCHING
    return hand


def test_a_peer_of_ours_that_has_our_ack_gets_no_second_pair() -> None:
    """The ACK pair on ACK is for the reference (B3); our ACK to its SYN already confirms us."""
    hand = extended_punching(P)
    assert hand.feed(SYN, P, 0.1) == [Transmit(ACK, P, MessageKind.ACK)]
    assert hand.feed(ACK, P, 0.11) == []
    assert hand.machine.peers[P].state is PeerState.CONNECTED
    assert [x for _, x in hand.timers(0.11 + 2 * FINAL) if x.destination == P] == []
    # Had that ACK been lost, the peer's next SYN is answered from the connected state.
    assert hand.feed(SYN, P, 0.3) == [Transmit(ACK, P, MessageKind.ACK)]


def test_a_peer_of_ours_whose_syn_we_never_saw_gets_one_ack() -> None:
    hand = extended_punching(P)
    assert hand.feed(ACK, P, 0.1) == [Transmit(ACK, P, MessageKind.ACK)]
    assert hand.machine.peers[P].state is PeerState.CONNECTED
    assert [x for _, x in hand.timers(0.1 + 2 * FINAL) if x.destination == P] == []  # no final ACK


def test_a_peer_of_ours_gets_syn_only_while_we_wait_for_its_ack() -> None:
    """SYN and ACK in turn would lose every SYN on a path losing every other datagram, and a
    peer of ours that is connected answers only SYN."""
    hand = extended_punching(P)
    hand.feed(SYN, P, 0.1)
    later = [x for _, x in hand.timers(0.1 + 4.5 * PI) if x.destination == P]
    assert later == [Transmit(SYN, P, MessageKind.SYN)] * 4


def test_closing_lingers_after_our_last_ack_until_the_peer_sends_data() -> None:
    """A peer that missed our last ACK retries a SYN; `linger_until` says how long a closing
    client must still answer (TCP's TIME-WAIT), and it moves on with each ACK we send."""
    hand = extended_punching(P)
    machine = hand.machine
    assert linger_until(machine.peers.values(), machine.config) is None  # no ACK sent yet
    hand.feed(SYN, P, 0.1)
    hand.feed(ACK, P, 0.11)
    linger = machine.config.close_linger
    assert linger_until(machine.peers.values(), machine.config) == pytest.approx(0.1 + linger)
    hand.feed(SYN, P, 0.3)  # our ACK was lost: the peer asks again, and we answer
    assert linger_until(machine.peers.values(), machine.config) == pytest.approx(0.3 + linger)
    hand.feed(b"hello", P, 0.4)  # data: the peer is connected, it needs nothing more
    assert linger_until(machine.peers.values(), machine.config) is None


def test_closing_waits_for_a_reference_peers_delayed_ack() -> None:
    hand = punching(P, config=ClientConfig(extension=False, close_linger=0.0))
    hand.feed(ACK, P, 0.12)
    assert linger_until(hand.machine.peers.values(), hand.machine.config) == pytest.approx(0.12 + FINAL)


def test_final_ack_delay_is_configurable() -> None:
    hand = punching(P, config=ClientConfig(extension=False, final_ack_delay=0.25))
    hand.feed(ACK, P, 0.12)
    assert [t for t, _ in hand.timers(1.0)] == [pytest.approx(0.37)]


def test_syn_and_ack_are_handshake_until_the_peer_sends_data() -> None:
    hand = punching(P)
    hand.feed(ACK, P, 0.1)
    hand.timers(0.2)
    assert hand.feed(SYN, P, 0.6) == [Transmit(ACK, P, MessageKind.ACK)]  # they missed our ACK
    assert hand.feed(ACK, P, 1.05) == []
    # Past the linger, a peer that sent no data yet may still be punching: keep answering it.
    assert hand.feed(SYN, P, 1.5) == [Transmit(ACK, P, MessageKind.ACK)]
    assert hand.of(DataReceived) == []
    hand.feed(b"hello", P, 1.6)
    assert hand.feed(SYN, P, 1.7) == []
    assert hand.feed(ACK, P, 1.8) == []
    assert [e for _, e in hand.of(DataReceived)] == [
        DataReceived(P, b"hello"), DataReceived(P, SYN), DataReceived(P, ACK)
    ]


def test_data_while_acking_proves_the_path_and_is_delivered() -> None:
    hand = punching(P)
    hand.feed(SYN, P, 0.1)
    hand.feed(b"hello", P, 0.15)
    assert [e for _, e in hand.of(PeerConnected)] == [PeerConnected(P, pytest.approx(0.1))]
    assert [e for _, e in hand.of(DataReceived)] == [DataReceived(P, b"hello")]


def test_data_before_any_handshake_is_not_delivered() -> None:
    hand = punching(P)
    assert hand.feed(b"hello", P, 0.1) == []
    assert hand.of(DataReceived) == [] and hand.machine.peers[P].state is PeerState.PUNCHING


def test_keepalives_to_connected_peers_every_keepalive_interval() -> None:
    hand = punching(P, Q)
    hand.feed(ACK, P, 0.1)
    hand.timers(46.0)
    to_p = [(t, x) for t, x in hand.sent if x.destination == P and x.kind is MessageKind.KEEPALIVE]
    assert to_p == [(pytest.approx(t), Transmit(b"", P, MessageKind.KEEPALIVE)) for t in (15.1, 30.1, 45.1)]
    assert not any(x.destination == Q and x.data == b"" for _, x in hand.sent)  # Q never connected


def test_keepalives_can_be_switched_off() -> None:
    hand = punching(P, config=ClientConfig(extension=False, keepalive_interval=0))
    hand.feed(ACK, P, 0.1)
    hand.timers(100.0)
    assert hand.machine.get_timer() is None
    assert not any(x.kind is MessageKind.KEEPALIVE for _, x in hand.sent)


def test_empty_datagrams_from_a_punching_peer_prove_nothing() -> None:
    hand = punching(P)
    assert hand.feed(b"", P, 0.1) == []
    assert hand.machine.peers[P].state is PeerState.PUNCHING and hand.of(DataReceived) == []


def test_a_syn_flood_is_answered_at_most_twice_per_punch_interval() -> None:
    hand = punching(P)
    for n in range(100):
        hand.feed(SYN, P, 0.1 + n * 0.01)
    replies = [t for t, x in hand.sent if x.destination == P and t > 0.05]
    assert min(gaps(replies)) >= PI / 2 - EPS
    assert len(replies) <= 1 + 1.0 / (PI / 2)


def test_send_only_to_connected_peers() -> None:
    hand = punching(P, Q)
    hand.feed(ACK, P, 0.1)
    hand.machine.send(P, b"hi")
    assert hand.machine.datagrams_to_send(0.1) == [Transmit(b"hi", P, MessageKind.DATA)]
    with pytest.raises(ValueError, match="not a connected peer"):
        hand.machine.send(Q, b"hi")


# --- loss ---------------------------------------------------------------------------------------


def first_copy_lost() -> Callable[[Packet], bool]:
    """Lose the first copy of every distinct datagram on every path."""
    seen: set[tuple[Endpoint, Endpoint, bytes]] = set()

    def lose(packet: Packet) -> bool:
        key = (packet.source, packet.destination, packet.data)
        first = key not in seen
        seen.add(key)
        return first

    return lose


def every_other_lost_per_path() -> Callable[[Packet], bool]:
    """Lose every second datagram on each path (a global counter would phase-lock with polls)."""
    counts: dict[tuple[Endpoint, Endpoint], int] = {}

    def lose(packet: Packet) -> bool:
        path = (packet.source, packet.destination)
        counts[path] = counts.get(path, -1) + 1
        return counts[path] % 2 == 1

    return lose


def random_loss(seed: int, rate: float = 0.3) -> Callable[[], Callable[[Packet], bool]]:
    """Lose each datagram with probability `rate`, from a seeded generator."""

    def make() -> Callable[[Packet], bool]:
        rng = random.Random(seed)
        return lambda packet: rng.random() < rate

    make.__name__ = f"random_loss_{seed}"
    return make


@pytest.mark.parametrize(
    "lose", [first_copy_lost, every_other_lost_per_path, *(random_loss(seed) for seed in range(8))]
)
@pytest.mark.parametrize("server", [RendezvousServer, ReferenceLikeServer])
def test_loss_is_survived_by_retransmission(lose: Callable[[], Callable[[Packet], bool]], server: type) -> None:
    network, clients = mesh(server(), [0.0, 0.3, 0.6], lose=lose())
    network.run(until=20.0)
    assert sum(p.lost for p in network.packets) > 5
    for n, machine in enumerate(clients):
        me = peer_endpoint(n + 1)
        ((_, done),) = network.events_of(me, ConnectCompleted)
        assert done.complete, f"{me}: {done}"  # type: ignore[attr-defined]
    assert_no_retransmission_faster_than_the_reference(network)


def assert_no_retransmission_faster_than_the_reference(network: Network) -> None:
    """The same poll to the server is never repeated within 100 ms, nor a SYN within PI (§7).

    (Falling back sends the first plain registration right after the last extended one: that
    is a different message, not a retransmission.)
    """
    for source in (ME, P, Q):
        for destination in (SERVER, ME, P, Q):
            sent = network.sent(source, destination)
            for data in {p.data for p in sent if p.kind in (MessageKind.REGISTER, MessageKind.EXT_REGISTER, MessageKind.SYN)}:
                times = [p.sent for p in sent if p.data == data]
                least = PI if data == SYN else 0.1
                assert all(gap >= least - EPS for gap in gaps(times)), (source, destination, data, times)


def two_plain_clients(lose: Callable[[Packet], bool]) -> tuple[Network, PeerClient, PeerClient]:
    """ME and P, each told about the other by a scripted server at t=0.01 (both SYN at once)."""

    def rendezvous(data: bytes, source: Endpoint, now: float) -> list[Transmit]:
        other = P if source == ME else ME
        return [Transmit(other.text.encode(), source, MessageKind.PEER_LIST)]

    network = Network(lose=lose)
    network.add(SERVER, Recorder(rendezvous))
    me = PeerClient(SERVER, SID, 1, PLAIN, rng=random.Random(1))
    them = PeerClient(SERVER, SID, 1, PLAIN, rng=random.Random(2))
    network.add(ME, me)
    network.add(P, them)
    network.at(0.0, me.start)
    network.at(0.0, them.start)
    return network, me, them


def test_the_acking_side_asks_again_with_syn_when_both_acks_back_were_lost() -> None:
    """P got our ACK and connected; its ACK and final ACK were lost. Our next SYN gets an ACK."""
    lost: list[Packet] = []

    def lose(packet: Packet) -> bool:
        first_syn = (packet.source, packet.destination, packet.data, packet.sent) == (ME, P, SYN, 0.01)
        acks_back = (packet.source, packet.destination, packet.data) == (P, ME, ACK) and packet.sent < 0.03 + FINAL
        if first_syn or acks_back:
            lost.append(packet)
        return first_syn or acks_back

    network, me, them = two_plain_clients(lose)
    network.run(until=2.0)
    assert [(p.sent, p.data) for p in lost] == [(0.01, SYN), (0.02, ACK), (pytest.approx(0.02 + FINAL), ACK)]
    assert [t for t, _ in network.events_of(P, PeerConnected)] == [pytest.approx(0.02)]
    # Our first retransmission (a SYN) leaves at 0.015 + PI; P answers it with ACK at once.
    assert [t for t, _ in network.events_of(ME, PeerConnected)] == [pytest.approx(0.025 + PI)]
    assert network.events_of(P, DataReceived) == [] and network.events_of(ME, DataReceived) == []


def test_the_acking_side_connects_when_its_ack_got_through_but_every_ack_back_was_lost() -> None:
    """P got our ACK and is connected; its two ACKs to us were lost, and it ignores our ACKs.

    Its keep-alive then proves that it is connected, so our side connects too instead of
    failing at the deadline while P believes the pair is up.
    """

    def lose(packet: Packet) -> bool:
        return (packet.source, packet.destination, packet.data) in {(ME, P, SYN), (P, ME, ACK)}

    network, me, them = two_plain_clients(lose)
    network.run(until=30.0)
    assert [t for t, _ in network.events_of(P, PeerConnected)] == [pytest.approx(0.02)]
    ((when, _),) = network.events_of(ME, PeerConnected)
    assert when == pytest.approx(15.025)  # P's first keep-alive
    assert me.state is ClientState.ESTABLISHED
    assert network.events_of(ME, DataReceived) == []


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"expected": -1}, "expected must be 0 or more"),
        ({"peer_id": b"short"}, "peer_id must be 8 bytes"),
        ({"peer_id": b""}, "peer_id must be 8 bytes"),
    ],
)
def test_bad_arguments_are_refused_clearly(kwargs: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {"expected": 1, **kwargs}
    expected = args.pop("expected")
    with pytest.raises(ValueError, match=reason):
        PeerClient(SERVER, SID, expected, **args)  # type: ignore[arg-type]


def test_a_given_peer_id_is_announced() -> None:
    hand = Hand(PeerClient(SERVER, SID, 1, peer_id=b"12345678"))
    (register,) = hand.start(0.0)
    assert decode_ext(register.data) == ExtRegister(SID, b"12345678", 1)


def test_nothing_is_accepted_before_start_or_after_close() -> None:
    hand = client()
    assert hand.feed(b"1.2.3.4:5", SERVER, 0.0) == []
    hand.start(0.1)
    hand.machine.close(0.2)
    assert hand.feed(b"1.2.3.4:5", SERVER, 0.3) == []
    assert hand.machine.dropped == {"not running": 2}
    assert hand.machine.get_timer() is None


def test_close_while_registering_extended_tells_the_server() -> None:
    hand = client(config=ClientConfig())
    hand.start(0.0)
    hand.feed(encode_ext(ExtPeers(SID, ME)), SERVER, 0.01)
    hand.machine.close(0.5)
    (leave,) = hand.machine.datagrams_to_send(0.5)
    assert leave.kind is MessageKind.EXT_LEAVE and leave.destination == SERVER
    assert hand.machine.state is ClientState.CLOSED


datagram = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"", SYN, ACK, b"198.51.100.2:40002", b"198.51.100.2:40002,198.51.100.3:40003"]),
    st.builds(lambda peers, push: encode_ext(ExtPeers(SID, ME, tuple(PeerInfo(p) for p in peers), push)),
              st.lists(st.sampled_from([P, Q, R]), max_size=3), st.booleans()),
    st.builds(lambda code: encode_ext(ExtError(code, "no")), st.integers(0, 255)),
    st.binary(max_size=30).map(lambda b: MAGIC + b"\x01" + b),
)
inputs = st.lists(st.tuples(st.floats(0.0, 0.1), st.sampled_from([SERVER, P, Q, STRANGER]), datagram), max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), inputs)
def test_arbitrary_datagrams_never_crash_the_client(extension: bool, items: list) -> None:  # type: ignore[type-arg]
    hand = client(expected=2, config=ClientConfig(extension=extension, timeout=5.0))
    hand.start(0.0)
    now = 0.0
    for step, source, data in items:
        now += step
        hand.feed(data, source, now)
        assert hand.machine.state in set(ClientState)
    hand.timers(10.0)
    assert hand.machine.state in (ClientState.ESTABLISHED, ClientState.INCOMPLETE)
    assert len(completed(hand)) == 1


def test_a_late_extended_answer_after_fallback_switches_to_the_extension() -> None:
    hand = client(config=ClientConfig(extension_attempts=1))
    hand.start(0.0)
    hand.timers(0.15)
    assert hand.machine.extended is False  # fell back at 0.1
    hand.feed(encode_ext(ExtPeers(SID, ME)), SERVER, 0.2)  # our server, only slow
    assert hand.machine.extended is True and hand.machine.public_endpoint == ME
    assert [e for _, e in hand.of(Registered)] == [Registered(True, ME)]
