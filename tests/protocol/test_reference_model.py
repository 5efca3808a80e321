"""The reference models (holepunch.protocol.reference) driven with bytes and a hand clock.

The models reproduce the Go reference's bugs on purpose (wire-protocol.md §6). These tests pin
that they do, set each bug next to what our own machines do with the same input, and check that
our PeerClient and RendezvousServer interoperate with the models in mixed sessions.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict
from typing import Any, Callable, TypeVar

import pytest

from holepunch.protocol import (
    ClientConfig,
    ClientState,
    ConnectCompleted,
    DatagramDropped,
    Endpoint,
    Event,
    MessageKind,
    PeerClient,
    PeerConnected,
    PeerFailed,
    PeerJoined,
    PeerLeft,
    PeerListReceived,
    PeerState,
    PunchingStarted,
    Registered,
    RendezvousServer,
    Transmit,
)
from holepunch.protocol.messages import ExtRegister, encode_ext
from holepunch.protocol.reference import (
    CHANNEL_SLOTS,
    ERR_TIMEOUT_PEERS,
    ERR_TIMEOUT_SERVER,
    ReadLoopBlocked,
    ReferenceClient,
    ReferenceServer,
    parse_reference_list,
)

SERVER = Endpoint("10.0.0.1", 5000)
A = Endpoint("10.0.0.2", 40001)
B = Endpoint("10.0.0.3", 40002)
C = Endpoint("10.0.0.4", 40003)
D = Endpoint("10.0.0.5", 40004)
E = Endpoint("10.0.0.6", 40005)
W = Endpoint("10.0.0.9", 40009)  # a watcher that only polls
STRANGER = Endpoint("192.0.2.99", 9999)
ROOM = b"room1"

EventT = TypeVar("EventT", bound=Event)


def plain_list(*endpoints: Endpoint) -> bytes:
    return ",".join(e.text for e in endpoints).encode()


# --- a single machine on a hand clock ---------------------------------------------------------


class Hand:
    """One machine driven by hand: feed datagrams, advance the clock, keep what comes out."""

    def __init__(self, machine: Any, now: float = 0.0) -> None:
        self.m = machine
        self.now = now
        self.sent: list[tuple[float, Transmit]] = []
        self.events: list[tuple[float, Event]] = []

    def start(self) -> "Hand":
        self.m.start(self.now)
        self._collect()
        return self

    def advance(self, to: float) -> None:
        """Fire every timer due up to `to`, each at its own time."""
        while (due := self.m.get_timer()) is not None and due <= to:
            self.now = max(self.now, due)
            self.m.handle_timer(self.now)
            self._collect()
        self.now = max(self.now, to)

    def feed(self, data: bytes, source: Endpoint, at: float | None = None) -> None:
        if at is not None:
            self.advance(at)
        self.m.receive_datagram(data, source, self.now)
        self._collect()

    def sent_to(self, dest: Endpoint, after: float = float("-inf")) -> list[tuple[float, bytes]]:
        return [(t, x.data) for t, x in self.sent if x.destination == dest and t > after]

    def of(self, cls: type[EventT]) -> list[EventT]:
        return [e for _, e in self.events if isinstance(e, cls)]

    def when(self, cls: type[Event]) -> list[float]:
        return [t for t, e in self.events if isinstance(e, cls)]

    def _collect(self) -> None:
        self.sent += [(self.now, x) for x in self.m.datagrams_to_send(self.now)]
        while (event := self.m.next_event()) is not None:
            self.events.append((self.now, event))


def in_phase2(peers: tuple[Endpoint, ...], at: float = 0.05, **kwargs: Any) -> Hand:
    """A ReferenceClient started at 0 that got a list of exactly `peers` at `at`."""
    hand = Hand(ReferenceClient(SERVER, ROOM, len(peers), **kwargs)).start()
    hand.feed(plain_list(*peers), SERVER, at=at)
    assert hand.m.state is ClientState.PUNCHING
    return hand


# --- a loss-free in-memory network --------------------------------------------------------------


class Mesh:
    """Machines joined by loss-free links with a fixed one-way delay, on one hand clock.

    Ties matter here: a peer retransmitting every 100 ms lands exactly when the reference's
    restarted 100 ms timer is due (B4). By default a timer due at the same instant (to the
    nanosecond, so float rounding does not decide) fires before the arrival; with
    `deliveries_first` the arrival wins, the worst case for the reference.
    """

    def __init__(self, delay: float = 0.01, *, deliveries_first: bool = False) -> None:
        self.delay = delay
        self.deliveries_first = deliveries_first
        self.now = 0.0
        self.nodes: dict[Endpoint, Any] = {}
        self.events: dict[Endpoint, list[tuple[float, Event]]] = defaultdict(list)
        self.wire: list[tuple[float, Endpoint, Transmit]] = []
        self._flight: list[tuple[float, int, Endpoint, Endpoint, bytes]] = []
        self._seq = itertools.count()

    def add(self, endpoint: Endpoint, machine: Any, at: float | None = None) -> Any:
        """Place `machine` at `endpoint`; clients are started at `at` (default: now)."""
        self.run(self.now if at is None else at)
        self.nodes[endpoint] = machine
        if hasattr(machine, "start"):
            machine.start(self.now)
        self._flush(endpoint)
        return machine

    def run(self, until: float, max_steps: int = 500_000) -> None:
        """Deliver datagrams and fire timers in time order until `until`."""
        for _ in range(max_steps):
            arrival = self._flight[0][0] if self._flight else None
            timers = [(t, ep) for ep, m in self.nodes.items() if (t := m.get_timer()) is not None]
            timer = min(timers) if timers else None
            due = [t for t in (arrival, timer[0] if timer else None) if t is not None]
            if not due or min(due) > until:
                self.now = max(self.now, until)
                return
            if arrival is not None and (timer is None or self._arrival_first(arrival, timer[0])):
                self.now = max(self.now, arrival)
                _, _, src, dst, data = heapq.heappop(self._flight)
                if dst in self.nodes:
                    self.nodes[dst].receive_datagram(data, src, self.now)
                    self._flush(dst)
            else:
                assert timer is not None
                self.now = max(self.now, timer[0])
                self.nodes[timer[1]].handle_timer(self.now)
                self._flush(timer[1])
        raise AssertionError("mesh did not settle: a machine keeps asking for the same time")

    def _arrival_first(self, arrival: float, timer: float) -> bool:
        if round(arrival, 9) == round(timer, 9):
            return self.deliveries_first
        return arrival < timer

    def of(self, endpoint: Endpoint, cls: type[EventT]) -> list[EventT]:
        return [e for _, e in self.events[endpoint] if isinstance(e, cls)]

    def result(self, endpoint: Endpoint) -> ConnectCompleted:
        done = self.of(endpoint, ConnectCompleted)
        assert len(done) == 1, f"{endpoint}: {done}"
        return done[0]

    def _flush(self, endpoint: Endpoint) -> None:
        machine = self.nodes[endpoint]
        for x in machine.datagrams_to_send(self.now):
            self.wire.append((self.now, endpoint, x))
            arrival = self.now + self.delay
            heapq.heappush(self._flight, (arrival, next(self._seq), endpoint, x.destination, x.data))
        while (event := machine.next_event()) is not None:
            self.events[endpoint].append((self.now, event))


def ours(expected: int, seed: int, **config: Any) -> PeerClient:
    return PeerClient(SERVER, ROOM, expected, ClientConfig(**config), rng=random.Random(seed))


def theirs(expected: int) -> ReferenceClient:
    return ReferenceClient(SERVER, ROOM, expected)


# === the server model ==========================================================================

SERVERS: dict[str, Callable[[], Any]] = {"reference": ReferenceServer, "ours": RendezvousServer}


def ask(server: Hand, source: Endpoint, data: bytes = ROOM, at: float | None = None) -> bytes | None:
    """One registration; the server's reply to `source`, or None if it sent none."""
    if at is not None:
        server.advance(at)  # keep-alives due before the registration are not its reply
    before = len(server.sent)
    server.feed(data, source)
    replies = [x.data for _, x in server.sent[before:] if x.destination == source]
    assert len(replies) <= 1
    return replies[0] if replies else None


@pytest.mark.parametrize("kind", SERVERS)
def test_reply_order_is_least_recently_registered_first(kind: str) -> None:
    """§3's observed replies; our server matches the reference byte for byte."""
    server = Hand(SERVERS[kind]())
    assert ask(server, A) == b""
    assert ask(server, B) == plain_list(A)
    assert ask(server, C) == plain_list(A, B)
    assert ask(server, A) == plain_list(B, C)
    assert ask(server, B) == plain_list(C, A)
    assert ask(server, C) == plain_list(A, B)


def test_reference_server_is_idempotent_and_drops_oversize_silently() -> None:
    server = Hand(ReferenceServer())
    assert [ask(server, A) for _ in range(3)] == [b"", b"", b""]
    assert server.m.members(ROOM) == [A]
    assert ask(server, B, b"x" * 1024) == b""
    assert ask(server, B, b"x" * 1025) is None
    assert server.of(DatagramDropped) == [DatagramDropped(B, 1025, "oversize")]
    assert ask(server, C, b"") == b""  # the empty ID is a session like any other (B11)
    assert [e.endpoint for e in server.of(PeerJoined)] == [A, B, C]


def test_reference_server_treats_our_extension_as_an_opaque_id() -> None:
    """It does not know the extension: the message is an ID and the answer is plain."""
    register = encode_ext(ExtRegister(ROOM, b"\x01" * 8, 1))
    server = Hand(ReferenceServer())
    assert ask(server, A, register) == b""
    assert ask(server, B, register) == plain_list(A)
    assert server.m.members(register) == [A, B]
    assert server.m.members(ROOM) == []
    assert not [x for _, x in server.sent if x.kind is not MessageKind.PEER_LIST]


def test_reference_keepalives_tick_from_server_start() -> None:
    server = Hand(ReferenceServer(now=3.0), now=3.0)
    ask(server, A, at=5.0)
    ask(server, B, at=14.0)
    server.advance(33.5)
    keepalives = [(t, x.destination) for t, x in server.sent if x.kind is MessageKind.KEEPALIVE]
    assert keepalives == [(13.0, A), (23.0, A), (23.0, B), (33.0, A), (33.0, B)]
    assert all(x.data == b"" for _, x in server.sent if x.kind is MessageKind.KEEPALIVE)


@pytest.mark.parametrize("kind", SERVERS)
def test_expiry_is_fixed_in_the_reference_and_sliding_in_ours(kind: str) -> None:
    """A registers at 0 and again at 30: the reference drops it at 40 anyway (B8)."""
    server = Hand(SERVERS[kind](), now=0.0)
    ask(server, A, at=0.0)
    ask(server, A, at=30.0)
    server.advance(41.0)
    gone = kind == "reference"
    assert server.m.members(ROOM) == ([] if gone else [A])
    server.advance(71.0)
    assert server.m.members(ROOM) == []
    assert server.of(PeerLeft)[0] == PeerLeft(ROOM, A, "expired")
    assert server.when(PeerLeft) == [40.0 if gone else 70.0]


@pytest.mark.parametrize("kind", SERVERS)
def test_reference_removal_swaps_the_last_entry_into_the_gap(kind: str) -> None:
    server = Hand(SERVERS[kind]())
    for i, endpoint in enumerate((A, B, C, D)):
        ask(server, endpoint, at=float(i))
    server.advance(40.0)  # A's registration expires
    expected = [D, B, C] if kind == "reference" else [B, C, D]
    assert server.m.members(ROOM) == expected
    assert ask(server, E) == plain_list(*expected)


@pytest.mark.parametrize("kind", SERVERS)
def test_flicker_of_an_endpoint_that_keeps_polling(kind: str) -> None:
    """A polls about every 100 ms (100-101 ms gaps, as observed), W watches every 10 ms (B8)."""
    server = Hand(SERVERS[kind]())
    rng = random.Random(4)
    next_a, missing_before, seen_after = 0, 0, []
    for ms in range(0, 80_000):
        now = ms / 1000
        if ms == next_a:
            ask(server, A, at=now)
            next_a += 100 + rng.randint(0, 1)
        if ms % 10 == 5 and ms > 0:
            reply = ask(server, W, at=now) or b""
            listed = A.text.encode() in reply.split(b",")
            if now < 40.0:
                missing_before += not listed
            else:
                seen_after.append(listed)
    missing = seen_after.count(False) / len(seen_after)
    print(f"{kind}: A missing from {missing:.0%} of {len(seen_after)} replies after 40 s")
    assert missing_before == 0
    if kind == "reference":
        assert 0 < missing < 1  # flickers: gone after an old timer fires, back at the next poll
        assert len(server.of(PeerLeft)) > 100
    else:
        assert missing == 0 and not server.of(PeerLeft)



# === the client model: phase 1 ================================================================


def test_phase1_polls_skips_and_stops_polling_on_an_exact_list() -> None:
    hand = Hand(ReferenceClient(SERVER, ROOM, 2)).start()
    hand.feed(b"", SERVER, at=0.01)  # empty reply or keep-alive: skipped
    hand.feed(plain_list(A, B), STRANGER, at=0.02)  # not from the server: skipped
    hand.feed(plain_list(A), SERVER, at=0.15)  # one short: keep polling
    assert hand.m.state is ClientState.REGISTERING
    hand.feed(plain_list(A, B), SERVER, at=0.33)
    hand.advance(1.0)
    polls = [round(t, 3) for t, data in hand.sent_to(SERVER)]
    assert polls == [0.0, 0.1, 0.2, 0.3]
    assert all(data == ROOM for _, data in hand.sent_to(SERVER))
    assert hand.m.state is ClientState.PUNCHING
    assert [e.reason for e in hand.of(DatagramDropped)] == ["empty", "not from server"]
    assert hand.of(Registered) == [Registered(False, None)]
    assert [len(e.peers) for e in hand.of(PeerListReceived)] == [1, 2]
    assert [p.endpoint for p in hand.of(PunchingStarted)[0].peers] == [A, B]
    assert (0.33, b"SYN") in hand.sent_to(A) and (0.33, b"SYN") in hand.sent_to(B)


def test_a_bad_entry_aborts_connect_with_gos_error() -> None:
    hand = Hand(ReferenceClient(SERVER, ROOM, 1)).start()
    hand.feed(b"hello", SERVER, at=0.05)
    (done,) = hand.of(ConnectCompleted)
    assert done.reason == "address hello: missing port in address"
    assert not done.complete and hand.m.error == done.reason
    assert hand.m.state is ClientState.INCOMPLETE and hand.m.get_timer() is None
    with pytest.raises(ValueError, match="too many colons"):
        parse_reference_list(b"10.0.0.2:1,::1:5")


def test_b6_more_peers_than_expected_never_proceeds() -> None:
    """The reference needs exactly `expected`; ours takes at least `expected` at once."""
    hand = Hand(ReferenceClient(SERVER, ROOM, 1)).start()
    our = Hand(ours(1, seed=1, extension=False)).start()
    for i in range(1, 400):
        for h in (hand, our):
            h.feed(plain_list(A, B), SERVER, at=i * 0.1 + 0.01)
    hand.advance(41.0)
    (done,) = hand.of(ConnectCompleted)
    assert done.reason == ERR_TIMEOUT_SERVER and hand.when(ConnectCompleted) == [40.0]
    assert not done.complete and not hand.of(PunchingStarted)
    assert abs(len(hand.sent_to(SERVER)) - 400) <= 1  # every 100 ms until the deadline
    assert our.of(PunchingStarted) and our.when(PunchingStarted)[0] == pytest.approx(0.11)


def test_b6_expected_zero_never_succeeds() -> None:
    hand = Hand(ReferenceClient(SERVER, ROOM, 0)).start()
    for i in range(400):
        hand.feed(b"", SERVER, at=i * 0.1 + 0.01)  # the only honest answer: nobody else
    hand.advance(40.0)
    assert [e.reason for e in hand.of(ConnectCompleted)] == [ERR_TIMEOUT_SERVER]


# === the client model: phase 2 ================================================================


def test_handshake_syn_becomes_ack_at_the_next_tick_and_ack_finishes() -> None:
    hand = in_phase2((A,))
    hand.feed(b"SYN", A, at=0.12)
    hand.advance(0.2)
    assert hand.sent_to(A) == [(0.05, b"SYN")]  # the tick due at 0.15 was restarted (B4)
    hand.advance(0.24)
    assert hand.sent_to(A)[-1] == (pytest.approx(0.22), b"ACK")  # 100 ms after the SYN
    hand.feed(b"ACK", A, at=0.25)
    hand.advance(1.0)
    assert hand.sent_to(A, after=0.24) == [(0.25, b"ACK"), (pytest.approx(0.35), b"ACK")]
    assert hand.of(PeerConnected) == [PeerConnected(A, pytest.approx(0.2))]
    assert hand.m.peers[A].state is PeerState.CONNECTED
    assert not hand.of(ConnectCompleted)  # B3: needs one more datagram
    hand.feed(b"ACK", A, at=1.0)
    (done,) = hand.of(ConnectCompleted)
    assert done.complete and done.connected == (A,) and done.reason == ""
    assert hand.m.state is ClientState.ESTABLISHED


def test_b3_single_ack_then_silence_times_out_despite_finished_workers() -> None:
    hand = in_phase2((A,))
    hand.feed(b"ACK", A, at=0.1)
    hand.advance(41.0)
    assert hand.of(PeerConnected) and not hand.of(PeerFailed)
    (done,) = hand.of(ConnectCompleted)
    assert hand.when(ConnectCompleted) == [40.0]
    assert done.reason == ERR_TIMEOUT_PEERS and not done.complete and done.failed == (A,)
    assert hand.m.state is ClientState.INCOMPLETE
    assert hand.sent_to(A) == [(0.05, b"SYN"), (0.1, b"ACK"), (pytest.approx(0.2), b"ACK")]


def test_b3_any_later_datagram_completes_even_a_server_keepalive() -> None:
    hand = in_phase2((A,))
    hand.feed(b"ACK", A, at=0.1)
    hand.feed(b"", SERVER, at=10.0)  # the reference server's keep-alive tick
    assert hand.when(ConnectCompleted) == [10.0]
    assert hand.of(ConnectCompleted)[0].complete


def test_b4_a_peer_sending_every_50ms_starves_the_reference() -> None:
    """The reference sends nothing until 100 ms after the last SYN; ours answers at once."""
    hand = in_phase2((A,), at=0.0)
    our = Hand(ours(1, seed=2, extension=False)).start()
    our.feed(plain_list(A), SERVER, at=0.0)
    for i in range(1, 21):
        for h in (hand, our):
            h.feed(b"SYN", A, at=i * 0.05)
    hand.advance(1.15)
    assert hand.sent_to(A) == [(0.0, b"SYN"), (pytest.approx(1.1), b"ACK")]
    our_acks = [t for t, data in our.sent_to(A) if data == b"ACK"]
    assert our_acks[0] == 0.05 and len(our_acks) >= 10


def test_b1_stranger_in_phase2_hangs_forever_while_workers_keep_sending() -> None:
    hand = in_phase2((A,))
    our = Hand(ours(1, seed=3, extension=False)).start()
    our.feed(plain_list(A), SERVER, at=0.05)
    for h in (hand, our):
        h.feed(b"hello", STRANGER, at=1.0)
    assert hand.m.hung and hand.m.hang_reason.startswith("B1")
    assert hand.of(ReadLoopBlocked) == [ReadLoopBlocked(STRANGER, 5, hand.m.hang_reason)]
    hand.feed(b"ACK", A, at=2.0)  # too late: nobody reads any more
    hand.advance(60.0)
    assert not hand.of(ConnectCompleted) and hand.m.state is ClientState.PUNCHING
    syns = [t for t, data in hand.sent_to(A, after=40.0) if data == b"SYN"]
    assert len(syns) >= 199 and hand.m.get_timer() is not None
    assert hand.m.dropped["unread: read loop blocked"] == 1
    assert [e.reason for e in our.of(DatagramDropped)] == ["stranger"]  # ours shrugs it off


def test_b1_a_late_server_reply_in_phase2_hangs_too() -> None:
    hand = in_phase2((A,))
    hand.feed(plain_list(A), SERVER, at=0.17)
    assert hand.m.hung
    hand.feed(b"", SERVER, at=0.2)  # unread as well
    hand.advance(50.0)
    assert not hand.of(ConnectCompleted)


def test_b2_the_17th_datagram_from_a_finished_peer_blocks_the_read_loop() -> None:
    hand = in_phase2((A, B))
    hand.feed(b"ACK", A, at=0.1)  # A's worker finishes; B never answers
    for i in range(CHANNEL_SLOTS):
        hand.feed(b"ACK", A, at=0.12 + 0.02 * i)
    assert not hand.m.hung and hand.m.peers[A].queued == CHANNEL_SLOTS
    hand.feed(b"ACK", A, at=0.5)
    assert hand.m.hung and hand.m.hang_reason.startswith("B2")
    hand.advance(50.0)
    assert not hand.of(ConnectCompleted)
    assert len(hand.sent_to(B, after=40.0)) >= 99  # B's worker still sends SYN every 100 ms


def test_deadline_fails_silent_peers_and_stops_the_workers() -> None:
    hand = in_phase2((A, B))
    hand.feed(b"ACK", A, at=0.1)
    hand.feed(b"SYN", B, at=0.2)
    hand.advance(60.0)
    assert [(e.peer, e.reason) for e in hand.of(PeerFailed)] == [(B, "SYN")]
    (done,) = hand.of(ConnectCompleted)
    assert done.failed == (A, B) and done.connected == () and done.reason == ERR_TIMEOUT_PEERS
    assert not hand.sent_to(B, after=40.0) and hand.m.get_timer() is None


def test_b5_read_deadline_stays_after_success() -> None:
    hand = in_phase2((A,))
    hand.feed(b"ACK", A, at=0.1)
    hand.feed(b"ACK", A, at=0.2)
    assert hand.m.state is ClientState.ESTABLISHED and hand.m.read_deadline == 40.0
    hand.feed(b"hi", A, at=45.0)
    assert hand.of(DatagramDropped)[-1].reason == "read deadline passed (B5)"


def test_close_ends_a_hang() -> None:
    hand = in_phase2((A,))
    hand.feed(b"x", STRANGER, at=0.1)
    hand.m.close(1.0)
    assert hand.m.state is ClientState.CLOSED and hand.m.get_timer() is None


# === sessions on the in-memory network ========================================================


def test_go_to_go_mesh_of_three_completes() -> None:
    """The observed three-peer run (§4), with the observed join times."""
    mesh = Mesh(delay=0.001)
    mesh.add(SERVER, ReferenceServer())
    peers = {A: 0.0, B: 0.348, C: 0.7}
    for endpoint, at in peers.items():
        mesh.add(endpoint, theirs(2), at=at)
    mesh.run(45.0)
    for endpoint in peers:
        done = mesh.result(endpoint)
        assert done.complete and done.reason == "", endpoint
        assert not mesh.nodes[endpoint].hung
        assert sorted(done.connected) == sorted(set(peers) - {endpoint})
    done_at = max(t for ep in peers for t, e in mesh.events[ep] if isinstance(e, ConnectCompleted))
    print(f"Go-to-Go mesh: all connected {done_at - 0.7:.2f} s after the last registration")


MIXES = [
    ("ours", "theirs"),
    ("theirs", "ours"),
    ("theirs", "ours", "theirs"),
    ("ours", "theirs", "ours"),
]


def _mixed_session(
    server: Any, mix: tuple[str, ...], delay: float = 0.01
) -> tuple[Mesh, list[Endpoint]]:
    """Peers join 250 ms apart in the order of `mix`; run past every deadline."""
    mesh = Mesh(delay=delay)
    mesh.add(SERVER, server)
    endpoints = [A, B, C][: len(mix)]
    for i, (who, endpoint) in enumerate(zip(mix, endpoints)):
        machine = ours(len(mix) - 1, seed=i) if who == "ours" else theirs(len(mix) - 1)
        mesh.add(endpoint, machine, at=0.25 * i)
    mesh.run(45.0)
    return mesh, endpoints


@pytest.mark.parametrize("mix", MIXES, ids="-".join)
def test_mixed_session_via_our_server(mix: tuple[str, ...]) -> None:
    mesh, endpoints = _mixed_session(RendezvousServer(), mix)
    for who, endpoint in zip(mix, endpoints):
        done = mesh.result(endpoint)
        assert done.complete and done.reason == "", (who, done)
        assert sorted(done.connected) == sorted(set(endpoints) - {endpoint})
        if who == "ours":
            assert mesh.nodes[endpoint].extended is True
        else:
            assert not mesh.nodes[endpoint].hung


@pytest.mark.parametrize("mix", MIXES, ids="-".join)
def test_mixed_session_via_the_reference_server_falls_back_to_plain(mix: tuple[str, ...]) -> None:
    mesh, endpoints = _mixed_session(ReferenceServer(), mix)
    for who, endpoint in zip(mix, endpoints):
        done = mesh.result(endpoint)
        assert done.complete and done.reason == "", (who, done)
        if who == "ours":
            assert mesh.nodes[endpoint].extended is False
            assert mesh.of(endpoint, Registered) == [Registered(False, None)]


def test_a_slow_server_path_hangs_the_reference_but_not_ours() -> None:
    """RTT 120 ms > the 100 ms poll: the reply to the poll in flight arrives in phase 2 (B1)."""
    mesh, (a, b) = _mixed_session(RendezvousServer(), ("ours", "theirs"), delay=0.06)
    reference = mesh.nodes[b]
    assert reference.hung and reference.hang_reason.startswith("B1")
    assert not mesh.of(b, ConnectCompleted)
    assert mesh.nodes[b].peers[a].sent > 400  # still sending ACK every 100 ms at 45 s
    (done,) = mesh.of(a, ConnectCompleted)  # ours saw the reference's ACK: both ways work
    assert done.complete and done.connected == (b,)


# === exact ties: B4 when retransmissions land as the restarted timer expires ===================


@pytest.mark.parametrize("deliveries_first", [False, True], ids=["timer-wins", "arrival-wins"])
def test_b4_exact_ties_decide_whether_two_reference_peers_connect(deliveries_first: bool) -> None:
    """Two reference peers at the same 100 ms period restart each other's timers (B4).

    On real paths jitter breaks the tie after a few periods (the observed 4-5 SYN periods);
    on a jitter-free path where each arrival beats the timer, neither ever sends again.
    """
    mesh = Mesh(delay=0.01, deliveries_first=deliveries_first)
    mesh.add(SERVER, ReferenceServer())
    mesh.add(A, theirs(1), at=0.0)
    mesh.add(B, theirs(1), at=0.25)
    mesh.run(45.0)
    for endpoint in (A, B):
        done = mesh.result(endpoint)
        assert done.complete is not deliveries_first
        assert done.reason == (ERR_TIMEOUT_PEERS if deliveries_first else "")


@pytest.mark.parametrize(("punch_interval", "rescued_by_backoff"), [(0.1, True), (0.15, False)])
def test_our_client_does_not_starve_a_reference_peer_on_exact_ties(punch_interval: float,
                                                                  rescued_by_backoff: bool) -> None:
    """Via the reference server we learn of a newcomer only at our next poll, so its first SYN
    finds us not yet punching and is lost (as a NAT would drop it); after that only a gap of more
    than 100 ms between our SYNs lets the reference send again. At 150 ms that comes at once; at
    the reference's own 100 ms our SYNs restart its timer (B4) until the peer, silent for
    `punch_backoff_after`, is sent SYNs ever further apart."""
    mesh = Mesh(delay=0.01, deliveries_first=True)
    mesh.add(SERVER, ReferenceServer())
    mesh.add(A, ours(1, seed=0, punch_interval=punch_interval), at=0.0)
    mesh.add(B, theirs(1), at=0.25)
    mesh.run(45.0)
    assert mesh.result(A).complete and mesh.result(B).complete
    (peer,) = mesh.nodes[A].peers.values()
    backoff_after = ClientConfig().punch_backoff_after
    assert (peer.connected_at - peer.started > backoff_after) is rescued_by_backoff
