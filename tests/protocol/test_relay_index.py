"""The relay's lookups without scans: the server's target index and the client's lane timers.

relay.py finds a relay's target through `TargetIndex` (peer id -> member) instead of scanning
the session per datagram; the server adds and removes members without telling it, so these
tests change the session behind its back (leave, expiry, a new id, a plain poll, an endpoint
taken over) and check that no relay reaches a member that is gone. relay_path.py keeps its
lanes' timers in a heap; the tests compare it, after every step of a relayed mesh, with the
scan over every lane it replaces.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from holepunch.protocol import (
    ClientConfig,
    ClientState,
    Endpoint,
    MessageKind,
    PeerClient,
    PeerLeft,
    PeerRelayed,
    PeerUpgraded,
    RendezvousServer,
    ServerConfig,
)
from holepunch.protocol.messages import ExtLeave, ExtRegister, decode_ext, encode_ext
from holepunch.protocol.relay import SWEEP_INTERVAL
from holepunch.protocol.relay_path import RelayPath

from .helpers import SERVER, Network, Packet, drain, peer_endpoint
from .test_relay import ID_A, ID_B, ID_C, SID, A, B, C, errors, relay, server_with

# --- the server: a target found in O(1), never one that is gone ---------------------------------


def register(server: RendezvousServer, endpoint: Endpoint, peer_id: bytes, now: float) -> None:
    """An extended registration of `endpoint` as `peer_id`, its cookie echoed if one is asked for."""
    server.receive_datagram(encode_ext(ExtRegister(SID, peer_id, 1)), endpoint, now)
    for reply in server.datagrams_to_send(now):
        if reply.kind is MessageKind.EXT_COOKIE:
            cookie = decode_ext(reply.data).cookie  # type: ignore[union-attr]
            server.receive_datagram(encode_ext(ExtRegister(SID, peer_id, 1, cookie)), endpoint, now)
    server.datagrams_to_send(now)


def forwarded_to(server: RendezvousServer, sender: bytes, source: Endpoint, target: bytes,
                 now: float) -> list[Endpoint]:
    """Where one relay from `source` (speaking as `sender`) to `target` went: [] if refused."""
    server.receive_datagram(relay(sender, target), source, now)
    out = server.datagrams_to_send(now)
    return [t.destination for t in out if t.kind is MessageKind.RELAY]


# Each of these tests changes the session before the index's first sweep (SWEEP_INTERVAL after
# the start), so that the check on every lookup, not a sweep, is what keeps the gone member out.
assert SWEEP_INTERVAL >= 1.0


def test_a_member_that_left_is_not_relayed_to_when_another_peer_id_took_its_endpoint() -> None:
    server = server_with((A, ID_A), (B, ID_B))
    assert forwarded_to(server, ID_A, A, ID_B, 0.1) == [B]  # B is in the index now
    server.receive_datagram(encode_ext(ExtLeave(SID, ID_B)), B, 0.2)
    register(server, B, ID_C, 0.3)  # the same endpoint, another member with another id
    server.receive_datagram(relay(ID_A, ID_B), A, 0.4)
    assert errors(server, 0.4) == [(A, "no-such-target")]  # the index's B is not the member at B
    assert forwarded_to(server, ID_A, A, ID_C, 0.5) == [B]  # the newcomer at B, under its own id


def test_a_member_that_left_and_came_back_under_its_id_is_relayed_to_again() -> None:
    server = server_with((A, ID_A), (B, ID_B), config=ServerConfig(relay_error_interval=0.0))
    assert forwarded_to(server, ID_A, A, ID_B, 0.1) == [B]
    server.receive_datagram(encode_ext(ExtLeave(SID, ID_B)), B, 0.2)
    server.receive_datagram(relay(ID_A, ID_B), A, 0.3)
    assert errors(server, 0.3) == [(A, "no-such-target")]
    register(server, C, ID_B, 0.4)  # back from another address (a new NAT mapping)
    assert forwarded_to(server, ID_A, A, ID_B, 0.5) == [C]


def test_an_expired_target_is_refused() -> None:
    server = server_with((A, ID_A), (B, ID_B), config=ServerConfig(session_timeout=0.5, keepalive_interval=0))
    assert forwarded_to(server, ID_A, A, ID_B, 0.1) == [B]
    assert forwarded_to(server, ID_A, A, ID_B, 0.4) == [B]  # keeps A registered until 0.9 s
    server.handle_timer(0.55)
    assert [e for e in drain(server, 0.55)[1] if isinstance(e, PeerLeft)] == [PeerLeft(SID, B, "expired")]
    server.receive_datagram(relay(ID_A, ID_B), A, 0.6)
    assert errors(server, 0.6) == [(A, "no-such-target")]
    assert server.members(SID) == [A]


def test_a_member_that_registers_again_under_a_new_id_is_found_by_the_new_one_only() -> None:
    server = server_with((A, ID_A), (B, ID_B))
    assert forwarded_to(server, ID_A, A, ID_B, 0.1) == [B]
    register(server, B, ID_C, 0.2)  # the same member (same endpoint) takes a new id
    server.receive_datagram(relay(ID_A, ID_B), A, 0.3)
    assert errors(server, 0.3) == [(A, "no-such-target")]
    assert forwarded_to(server, ID_A, A, ID_C, 0.4) == [B]


def test_a_member_that_polls_as_a_plain_client_is_no_target_any_more() -> None:
    server = server_with((A, ID_A), (B, ID_B))
    assert forwarded_to(server, ID_A, A, ID_B, 0.1) == [B]
    server.receive_datagram(SID, B, 0.2)  # a plain registration: B has no peer id from now on
    server.datagrams_to_send(0.2)
    server.receive_datagram(relay(ID_A, ID_B), A, 0.3)
    assert errors(server, 0.3) == [(A, "no-such-target")]


def test_a_member_that_joined_after_the_index_was_built_is_found() -> None:
    server = server_with((A, ID_A), (B, ID_B))
    assert forwarded_to(server, ID_A, A, ID_B, 0.1) == [B]
    register(server, C, ID_C, 0.2)
    assert forwarded_to(server, ID_A, A, ID_C, 0.3) == [C]
    assert forwarded_to(server, ID_C, C, ID_B, 0.4) == [B]


def test_two_members_under_one_id_get_its_relays_one_at_a_time() -> None:
    """Ids are meant to be unique; if two members share one, the relays go to the least recently
    registered of them as found, and stay with it while it is a member (a scan per relay switched
    to the other at every registration of this one)."""
    server = server_with((A, ID_A), (B, ID_B), (C, ID_B), config=ServerConfig(relay_error_interval=0.0))
    assert forwarded_to(server, ID_A, A, ID_B, 0.1) == [B]
    register(server, B, ID_B, 0.2)  # B is now the most recently registered of the two
    assert forwarded_to(server, ID_A, A, ID_B, 0.3) == [B]
    server.receive_datagram(encode_ext(ExtLeave(SID, ID_B)), B, 0.4)
    assert forwarded_to(server, ID_A, A, ID_B, 0.5) == [C]


def test_relays_to_a_known_member_of_a_large_session_scan_it_once() -> None:
    """The work per relay, counted rather than timed: member 1,000 of 1,024 is found by one scan,
    and every later relay to it by the index; an id nobody holds costs one scan per relay (as
    every relay did before the index)."""
    cfg = ServerConfig(amplification_factor=None, relay_member_rate=1e9, relay_member_burst=10**9,
                       relay_total_rate=1e9, relay_error_interval=0.0)
    server = RendezvousServer(cfg)
    ids: dict[int, bytes] = {}
    for n in range(1024):  # plain members are cheap to add; every 100th is extended
        endpoint = Endpoint(f"10.0.{n // 250}.{n % 250}", 5000 + n)
        if n % 100 == 0 or n == 999:
            ids[n] = (n + 1).to_bytes(8, "big")
            register(server, endpoint, ids[n], 0.0)
        else:
            server.receive_datagram(SID, endpoint, 0.0)
    server.datagrams_to_send(0.0)
    assert len(server.members(SID)) == 1024
    sender = Endpoint("10.0.0.100", 5100)
    target = Endpoint("10.0.3.249", 5999)
    for step in range(100):
        assert forwarded_to(server, ids[100], sender, ids[999], 1.0 + step / 1000) == [target]
    assert server.relay_stats.scans == 1 and server.relay_stats.forwarded == 100
    for step in range(5):
        server.receive_datagram(relay(ids[100], b"\xee" * 8), sender, 2.0)
    assert errors(server, 2.0) == [(sender, "no-such-target")] * 5
    assert server.relay_stats.scans == 6
    assert forwarded_to(server, ids[100], sender, ids[0], 2.5) == [Endpoint("10.0.0.0", 5000)]
    assert server.relay_stats.scans == 6  # indexed by the first scan that found a target


def test_the_index_forgets_members_that_left_and_sessions_that_ended() -> None:
    server = server_with((A, ID_A), (B, ID_B), (C, ID_C), config=ServerConfig(relay_error_interval=0.0))
    assert forwarded_to(server, ID_A, A, ID_B, 1.0) == [B]
    assert server.relay.tracked()["targets"] == 3  # every extended member of the session
    server.receive_datagram(encode_ext(ExtLeave(SID, ID_C)), C, 1.5)
    assert forwarded_to(server, ID_A, A, ID_B, 1.5 + SWEEP_INTERVAL) == [B]  # a sweep is due
    assert server.relay.tracked()["targets"] == 2
    other = peer_endpoint(9)
    for endpoint, peer_id in ((A, ID_A), (B, ID_B)):
        server.receive_datagram(encode_ext(ExtLeave(SID, peer_id)), endpoint, 3.0)
    assert server.session_count == 0
    server.receive_datagram(encode_ext(ExtRegister(b"other", ID_C, 1)), other, 3.0)
    server.datagrams_to_send(3.0)
    server.receive_datagram(relay(ID_C, ID_A, session=b"other"), other, 3.0 + 2 * SWEEP_INTERVAL)
    server.datagrams_to_send(3.0 + 2 * SWEEP_INTERVAL)
    assert server.relay.tracked()["targets"] == 0  # the ended session is gone from the index


IDS = [bytes([n, v]) * 4 for n in range(3) for v in range(2)]
"""Peer ids by (endpoint n, version v): unique in the session, as clients make them."""
OPS = st.lists(st.tuples(st.sampled_from(["register"] * 2 + ["relay"] * 5 + ["plain", "leave", "wait"]),
                         st.integers(0, 2), st.integers(0, 2), st.integers(0, 1),
                         st.integers(0, 3).map(bool), st.integers(0, 3).map(bool)),
               min_size=10, max_size=50)
"""(operation, endpoint, target endpoint, id version, sender speaks as itself, target by its last id)"""


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_the_index_sends_every_relay_where_a_scan_of_the_session_would(
        ops: list[tuple[str, int, int, int, bool, bool]]) -> None:
    """Joins, new ids, plain polls, leaves and expiries in any order: each relay goes to the member
    that holds the target id now, or is refused, exactly as a scan of the members would decide."""
    cfg = ServerConfig(session_timeout=0.7, keepalive_interval=0, amplification_factor=None, rate_limit=None,
                       relay_member_rate=1e9, relay_member_burst=10**9, relay_total_rate=1e9,
                       relay_error_interval=0.0)
    server = RendezvousServer(cfg)
    endpoints = [peer_endpoint(n + 1) for n in range(3)]
    ids: dict[Endpoint, bytes | None] = {}  # the model: each member's id as last registered
    last: dict[Endpoint, bytes] = {}  # each endpoint's last id, kept after it left: stale targets
    now = 0.0
    for op, n, m, version, honest, known in ops:
        source = endpoints[n]
        if op == "register":
            ids[source] = last[source] = IDS[n * 2 + version]
            register(server, source, IDS[n * 2 + version], now)
        elif op == "plain":
            server.receive_datagram(SID, source, now)
            ids[source] = None
        elif op == "leave" and ids.get(source) is not None:
            server.receive_datagram(encode_ext(ExtLeave(SID, ids[source])), source, now)  # type: ignore[arg-type]
        elif op == "wait":  # sometimes past a sweep, mostly not: the per-lookup check must hold alone
            now += 0.2 * (1 + version)
            server.handle_timer(now)
        elif op == "relay":
            members = set(server.members(SID))
            claimed = ids.get(source) if honest else IDS[n * 2 + version]
            target_id = last.get(endpoints[m], IDS[m * 2]) if known else IDS[m * 2 + version]
            server.receive_datagram(relay(claimed or b"\x00" * 8, target_id), source, now)
            out = [(t.kind, t.destination) for t in server.datagrams_to_send(now)]
            if source not in members or claimed is None or ids.get(source) != claimed:
                assert out == []  # not a member speaking as itself: no answer at all
            else:
                holders = [e for e in members if ids.get(e) == target_id and e != source]
                assert out == ([(MessageKind.RELAY, holders[0])] if holders else [(MessageKind.EXT_ERROR, source)])
        server.datagrams_to_send(now)
        drain(server, now)
        for gone in set(ids) - set(server.members(SID)):
            del ids[gone]


# --- the client: lane timers from a heap, the same as a scan of every lane -----------------------


def scanned_lanes(path: RelayPath) -> float | None:
    """What `RelayPath.next_timer` is defined as: the earliest timer of any lane, each visited."""
    if not path._lanes or path.client.state is ClientState.CLOSED:
        return None
    times = [t for lane in path._lanes.values() if (t := lane.next_timer()) is not None]
    return min(times) if times else None


def relayed_mesh(count: int, seed: int) -> tuple[Network, list[PeerClient]]:
    """`count` relay-enabled clients; half the pairs never reach each other directly, the others
    only after 2 to 5 s (so some upgrade, some stay relayed), and 10% of the relays are lost."""
    rng = random.Random(seed)
    endpoints = [peer_endpoint(n + 1) for n in range(count)]
    opens = {frozenset((a, b)): rng.choice([float("inf"), 2.0, 3.5, 5.0])
             for i, a in enumerate(endpoints) for b in endpoints[i + 1:]}

    def lose(packet: Packet) -> bool:
        if SERVER in (packet.source, packet.destination):
            return rng.random() < 0.1
        return packet.sent < opens[frozenset((packet.source, packet.destination))]

    config = ClientConfig(techniques={"relay"}, relay_after=1.0, relay_upgrade_window=2.5, timeout=8.0,
                          keepalive_interval=0.7)
    net = Network(lose=lose)
    net.add(SERVER, RendezvousServer())
    clients = []
    for n, endpoint in enumerate(endpoints):
        client = PeerClient(SERVER, SID, count - 1, config, rng=random.Random(seed * 100 + n),
                            peer_id=bytes([n + 1]) * 8)
        net.add(endpoint, client)
        net.at(0.01 * n, client.start)
        clients.append(client)
    return net, clients


def test_lane_timers_match_a_scan_of_every_lane_through_offers_upgrades_and_keepalives() -> None:
    net, clients = relayed_mesh(7, seed=5)
    checks = 0
    while net.step(12.0):
        for client in clients:
            assert client._relay.next_timer() == scanned_lanes(client._relay)
            checks += 1
        if net.now > 9.0 and clients[0].state is not ClientState.CLOSED:
            net.at(net.now, clients[0].close)
    assert checks > 1000
    relayed = [e for _, _, e in net.events if isinstance(e, PeerRelayed)]
    upgraded = [e for _, _, e in net.events if isinstance(e, PeerUpgraded)]
    assert relayed and upgraded and len(upgraded) < len(relayed)  # some upgraded, some stayed relayed
    assert clients[0]._relay.next_timer() is None  # closed: no lane wakes it
    keepalives = [p for p in net.packets if p.kind is MessageKind.RELAY and p.sent > 9.5 and p.source != SERVER]
    assert keepalives  # the lanes that stayed relayed keep going after the upgrade windows
