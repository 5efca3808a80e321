"""The rendezvous server, bytes in and bytes out, with a hand-advanced clock.

Plain behaviour is checked against the fact sheet's observations (wire-protocol.md §3); the
extension, limits and pushes against our own rules (docs/wire-protocol.md).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holepunch.protocol import (
    DatagramDropped,
    Endpoint,
    MessageKind,
    PeerJoined,
    PeerLeft,
    RendezvousServer,
    RequestRefused,
    ServerConfig,
    Transmit,
)
from holepunch.protocol.messages import (
    MAGIC,
    ErrorCode,
    ExtError,
    ExtLeave,
    ExtPeers,
    ExtRegister,
    PeerInfo,
    decode_ext,
    encode_ext,
)

from holepunch.protocol.cookie import DEFAULT_COOKIE_KEY, CookieJar

from .helpers import peer_endpoint

A, B, C, D = (peer_endpoint(n) for n in (1, 2, 3, 4))
SID = b"room1"
PIDS = {ep: bytes([n]) * 8 for n, ep in enumerate((A, B, C, D), start=1)}
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def send(server: RendezvousServer, data: bytes, source: Endpoint, now: float) -> list[Transmit]:
    """Fire the timers due by `now`, deliver one datagram, return what the server sends."""
    tick(server, now)
    server.receive_datagram(data, source, now)
    return server.datagrams_to_send(now)


def ext(server: RendezvousServer, source: Endpoint, now: float, session: bytes = SID) -> list[Transmit]:
    """An extended registration from `source` (peer id from PIDS) that echoes a valid address
    cookie, as our client does after the first answer: the server serves it in full (the cookie
    round trip itself is tested in test_cookie.py)."""
    cookie = CookieJar(DEFAULT_COOKIE_KEY, server.config.cookie_interval).make(source, now)
    return send(server, encode_ext(ExtRegister(session, PIDS[source], 0, cookie)), source, now)


def tick(server: RendezvousServer, until: float) -> list[Transmit]:
    """Fire every timer due by `until`, each at its own time, as a driver would."""
    return [transmit for _, transmit in timed_tick(server, until)]


def timed_tick(server: RendezvousServer, until: float) -> list[tuple[float, Transmit]]:
    """Like `tick`, with the time each datagram left."""
    out: list[tuple[float, Transmit]] = []
    while (due := server.get_timer()) is not None and due <= until:
        server.handle_timer(due)
        out += [(due, transmit) for transmit in server.datagrams_to_send(due)]
    return out


def plain(data: bytes, to: Endpoint) -> Transmit:
    return Transmit(data, to, MessageKind.PEER_LIST)


def events(server: RendezvousServer) -> list[object]:
    """Drain the server's events (the helpers above leave them queued)."""
    found = []
    while (event := server.next_event()) is not None:
        found.append(event)
    return found


# --- plain replies (fact sheet §3) -------------------------------------------------------------


def test_reply_order_is_least_recently_registered_first() -> None:
    server = RendezvousServer()
    assert send(server, SID, A, 0.0) == [plain(b"", A)]
    assert send(server, SID, B, 0.1) == [plain(b"198.51.100.1:40001", B)]
    assert send(server, SID, C, 0.2) == [plain(b"198.51.100.1:40001,198.51.100.2:40002", C)]
    assert send(server, SID, A, 0.3) == [plain(b"198.51.100.2:40002,198.51.100.3:40003", A)]  # B,C
    assert send(server, SID, B, 0.4) == [plain(b"198.51.100.3:40003,198.51.100.1:40001", B)]  # C,A
    assert send(server, SID, C, 0.5) == [plain(b"198.51.100.1:40001,198.51.100.2:40002", C)]  # A,B
    assert server.members(SID) == [A, B, C]


def test_ipv6_members_are_listed_in_go_text() -> None:
    server = RendezvousServer()
    send(server, SID, Endpoint("::1", 15401), 0.0)
    send(server, SID, Endpoint("::ffff:127.0.0.1", 15403), 0.0)
    assert send(server, SID, A, 0.0) == [plain(b"[::1]:15401,127.0.0.1:15403", A)]


def test_unknown_id_gets_exactly_one_empty_reply() -> None:
    server = RendezvousServer()
    out = send(server, b"never-seen", A, 0.0)
    assert out == [Transmit(b"", A, MessageKind.PEER_LIST)]
    assert len(out[0].data) == 0
    assert events(server) == [PeerJoined(b"never-seen", A, False, 1)]


def test_same_endpoint_registering_again_is_idempotent() -> None:
    server = RendezvousServer()
    replies = [send(server, SID, A, t) for t in (0.0, 0.01, 0.02)]
    assert replies == [[plain(b"", A)]] * 3
    assert server.members(SID) == [A]
    assert server.stats.joined == 1 and server.stats.registrations == 3
    assert [type(e) for e in events(server)] == [PeerJoined]


def test_one_endpoint_in_two_sessions_gets_one_keepalive_per_session() -> None:
    server = RendezvousServer()
    send(server, b"x", A, 0.0)
    send(server, b"y", A, 0.0)
    send(server, b"x", B, 0.0)
    assert send(server, b"y", C, 1.0) == [plain(b"198.51.100.1:40001", C)]
    out = tick(server, 11.0)  # each 10 s after its own join
    assert sorted(out) == sorted(
        [Transmit(b"", ep, MessageKind.KEEPALIVE) for ep in (A, A, B, C)]
    )


@pytest.mark.parametrize("size", [0, 1, 1023, 1024])
def test_ids_up_to_1024_bytes_are_accepted(size: int) -> None:
    server = RendezvousServer()
    sid = b"i" * size
    assert send(server, sid, A, 0.0) == [plain(b"", A)]
    assert send(server, sid, B, 0.0) == [plain(b"198.51.100.1:40001", B)]
    assert server.members(sid) == [A, B]


@pytest.mark.parametrize("size", [1025, 2048, 2049, 65000])
def test_longer_ids_are_dropped_silently_and_counted(size: int) -> None:
    server = RendezvousServer()
    assert send(server, b"i" * size, A, 0.0) == []
    assert server.session_count == 0
    assert server.stats.dropped == {"oversize": 1}
    assert events(server) == [DatagramDropped(A, size, "oversize")]


def test_the_empty_id_is_an_ordinary_session() -> None:
    server = RendezvousServer()
    send(server, b"", A, 0.0)
    assert send(server, b"", B, 0.0) == [plain(b"198.51.100.1:40001", B)]
    assert server.sessions() == {b"": [A, B]}


# --- expiry and keep-alives ----------------------------------------------------------------


def test_expiry_slides_with_every_registration() -> None:
    server = RendezvousServer()
    send(server, SID, A, 0.0)
    send(server, SID, A, 30.0)
    assert server.get_timer() == 40.0  # the next keep-alive; the expiry is now at 70
    tick(server, 41.0)
    assert server.members(SID) == [A]  # the reference drops it here (B8)
    assert send(server, SID, B, 41.0) == [plain(b"198.51.100.1:40001", B)]
    tick(server, 70.1)
    assert server.members(SID) == [B]
    assert PeerLeft(SID, A, "expired") in events(server)
    assert server.stats.expired == 1


def test_expiry_happens_exactly_session_timeout_after_the_last_registration() -> None:
    server = RendezvousServer(ServerConfig(session_timeout=5.0, keepalive_interval=0))
    send(server, SID, A, 1.0)
    assert server.get_timer() == 6.0
    tick(server, 5.999)
    assert server.members(SID) == [A]
    tick(server, 6.0)
    assert server.session_count == 0  # an emptied session is deleted
    assert server.get_timer() is None


def test_a_member_that_keeps_polling_never_flickers() -> None:
    """B8 is not copied: a watcher sees A in every reply, also long after 40 s."""
    server = RendezvousServer()
    send(server, SID, B, 0.0)
    missing = 0
    for step in range(1000):  # A polls every 100 ms for 100 s, the watcher in between
        send(server, SID, A, step * 0.1)
        reply = send(server, SID, B, step * 0.1 + 0.05)
        missing += reply != [plain(b"198.51.100.1:40001", B)]
    assert missing == 0
    assert server.stats.expired == 0


def test_each_membership_gets_a_keepalive_10_s_after_its_own_previous_one() -> None:
    """Spread over the interval, not one burst for everyone (the reference's way, which stalls
    a large server's reads); no budget here, which test_server_guard.py covers."""
    server = RendezvousServer(ServerConfig(amplification_factor=None), now=3.0)
    send(server, b"x", A, 3.0)
    send(server, b"y", B, 8.0)
    ticks = timed_tick(server, 15.0)
    send(server, b"x", C, 15.0)
    ticks += timed_tick(server, 35.0)
    keepalive = MessageKind.KEEPALIVE
    assert ticks == [
        (t, Transmit(b"", ep, keepalive))
        for t, ep in ((13.0, A), (18.0, B), (23.0, A), (25.0, C), (28.0, B), (33.0, A), (35.0, C))
    ]
    assert server.stats.keepalives == 7


def test_a_member_that_registered_lately_gets_no_keepalive() -> None:
    """Its own poll refreshed its NAT's mapping (RFC 4787 REQ-6): a member polling every second
    gets no keep-alive; once it falls silent, the next one comes when it is due."""
    server = RendezvousServer(ServerConfig(amplification_factor=None, session_timeout=1000.0))
    sent: list[tuple[float, Transmit]] = []
    for second in range(31):
        sent += timed_tick(server, float(second))
        send(server, SID, A, float(second))
    sent += timed_tick(server, 60.0)
    assert sent == [(40.0, Transmit(b"", A, MessageKind.KEEPALIVE)), (50.0, Transmit(b"", A, MessageKind.KEEPALIVE)),
                    (60.0, Transmit(b"", A, MessageKind.KEEPALIVE))]


def test_a_late_keepalive_makes_the_next_one_due_an_interval_after_it() -> None:
    server = RendezvousServer()
    send(server, SID, A, 0.0)
    server.handle_timer(10.7)  # a busy driver fires late
    assert server.datagrams_to_send(10.7) == [Transmit(b"", A, MessageKind.KEEPALIVE)]
    assert server.get_timer() == pytest.approx(20.7)


def test_keepalives_can_be_disabled() -> None:
    server = RendezvousServer(ServerConfig(keepalive_interval=0))
    send(server, SID, A, 0.0)
    assert server.get_timer() == 40.0  # only the expiry is left
    assert tick(server, 100.0) == []


# --- limits ----------------------------------------------------------------------------------


def test_max_sessions_refuses_and_counts() -> None:
    server = RendezvousServer(ServerConfig(max_sessions=2))
    send(server, b"a", A, 0.0)
    send(server, b"b", A, 0.0)
    events(server)
    assert send(server, b"c", B, 0.0) == []  # a plain client could not parse a refusal
    assert ext(server, C, 0.0, session=b"c") == [
        Transmit(encode_ext(ExtError(ErrorCode.TOO_MANY_SESSIONS, "too-many-sessions")), C, MessageKind.EXT_ERROR)
    ]
    assert server.stats.refused == {"too-many-sessions": 2}
    assert events(server) == [
        RequestRefused(B, "too-many-sessions", 0, b"c"),
        RequestRefused(C, "too-many-sessions", 0, b"c"),
    ]
    assert send(server, b"a", B, 0.0) == [plain(b"198.51.100.1:40001", B)]  # old sessions still work


def test_max_peers_per_session_refuses_and_counts() -> None:
    server = RendezvousServer(ServerConfig(max_peers_per_session=2))
    send(server, SID, A, 0.0)
    send(server, SID, B, 0.0)
    assert send(server, SID, C, 0.0) == []
    assert ext(server, D, 0.0) == [
        Transmit(encode_ext(ExtError(ErrorCode.SESSION_FULL, "session-full")), D, MessageKind.EXT_ERROR)
    ]
    assert server.stats.refused == {"session-full": 2}
    assert server.members(SID) == [A, B]
    assert send(server, SID, A, 1.0) == [plain(b"198.51.100.2:40002", A)]  # members may refresh


def test_max_id_length_drops_plain_and_refuses_extended() -> None:
    server = RendezvousServer(ServerConfig(max_id_length=8))
    assert send(server, b"12345678", A, 0.0) == [plain(b"", A)]
    assert send(server, b"123456789", B, 0.0) == []
    assert ext(server, C, 0.0, session=b"123456789") == [
        Transmit(encode_ext(ExtError(ErrorCode.ID_TOO_LONG, "id-too-long")), C, MessageKind.EXT_ERROR)
    ]
    assert server.stats.dropped == {"oversize": 1}
    assert server.stats.refused == {"id-too-long": 1}
    assert server.sessions() == {b"12345678": [A]}


# --- the extension ---------------------------------------------------------------------------


def test_extended_reply_lists_members_with_their_ids_and_your_address() -> None:
    server = RendezvousServer()
    assert ext(server, A, 0.0) == [Transmit(encode_ext(ExtPeers(SID, A)), A, MessageKind.EXT_PEERS)]
    send(server, SID, B, 0.1)
    reply = ext(server, C, 0.2)
    assert [t.destination for t in reply] == [A, C]  # the push to A, then C's reply
    assert decode_ext(reply[1].data) == ExtPeers(
        SID, C, (PeerInfo(A, PIDS[A], True), PeerInfo(B, bytes(8), False))
    )


def test_pushes_go_only_to_extended_members() -> None:
    server = RendezvousServer()
    ext(server, A, 0.0)
    assert send(server, SID, B, 0.1) == [  # plain B joins: extended A is told, with B's plain flag
        Transmit(encode_ext(ExtPeers(SID, A, (PeerInfo(B),), push=True)), A, MessageKind.EXT_PUSH),
        plain(b"198.51.100.1:40001", B),
    ]
    out = ext(server, C, 0.2)
    assert [(t.destination, t.kind) for t in out] == [(A, MessageKind.EXT_PUSH), (C, MessageKind.EXT_PEERS)]
    assert decode_ext(out[0].data) == ExtPeers(SID, A, (PeerInfo(C, PIDS[C], True),), push=True)
    out = send(server, SID, D, 0.3)
    assert [(t.destination, t.kind) for t in out] == [
        (A, MessageKind.EXT_PUSH), (C, MessageKind.EXT_PUSH), (D, MessageKind.PEER_LIST)
    ]
    assert server.stats.pushes == 4


def test_members_joining_in_one_batch_cost_one_push_per_member() -> None:
    """A, B, C and D join in one batch (one driver wakeup): each reply lists those before, and
    one push per member lists those after, sent ahead of the replies; a newcomer gone before
    then is left out."""
    server = RendezvousServer()
    cookies = CookieJar(DEFAULT_COOKIE_KEY, server.config.cookie_interval)
    for who in (A, B, C, D):
        server.receive_datagram(encode_ext(ExtRegister(SID, PIDS[who], 3, cookies.make(who, 0.0))), who, 0.0)
    server.receive_datagram(encode_ext(ExtLeave(SID, PIDS[D])), D, 0.0)
    out = [(t.destination, decode_ext(t.data)) for t in server.datagrams_to_send(0.0)]
    replies = [(to, [p.endpoint for p in m.peers]) for to, m in out if not m.push]  # type: ignore[union-attr]
    assert replies == [(A, []), (B, [A]), (C, [A, B]), (D, [A, B, C])]
    pushes = [(to, [p.endpoint for p in m.peers]) for to, m in out if m.push]  # type: ignore[union-attr]
    assert pushes == [(A, [B, C]), (B, [C])]
    assert server.stats.pushes == 2 and server.datagrams_to_send(0.0) == []
    # A's reply; A's push ahead of the newcomers' replies; B's push after B's reply, which it adds to.
    assert [(to, m.push) for to, m in out] == [(A, False), (A, True), (B, False), (C, False), (D, False),  # type: ignore[union-attr]
                                               (B, True)]


def test_in_a_batch_no_member_is_left_with_a_list_short_of_a_newcomer() -> None:
    """Found by bench_mesh: X1 joins, member A refreshes (its reply lists X1), X2 and X3 join, all
    in one batch. A's push must come after its reply, which replaces A's list: else A loses X2
    and X3 until its next refresh, a second later."""
    server = RendezvousServer()
    cookies = CookieJar(DEFAULT_COOKIE_KEY, server.config.cookie_interval)

    def register(who: Endpoint) -> None:
        server.receive_datagram(encode_ext(ExtRegister(SID, PIDS[who], 4, cookies.make(who, 0.0))), who, 0.0)

    register(A)
    server.datagrams_to_send(0.0)
    for who in (B, A, C, D):  # B joins, A refreshes, C and D join: one batch
        register(who)
    lists: dict[Endpoint, set[Endpoint]] = {}
    for t in server.datagrams_to_send(0.0):
        msg = decode_ext(t.data)
        assert isinstance(msg, ExtPeers)
        known = lists.setdefault(t.destination, set()) if msg.push else lists.__setitem__(t.destination, set()) or lists[t.destination]
        known.update(p.endpoint for p in msg.peers)
    assert lists == {who: {A, B, C, D} - {who} for who in (A, B, C, D)}



def test_a_plain_member_only_ever_receives_its_own_replies_and_empty_keepalives() -> None:
    server = RendezvousServer()
    to_b: list[Transmit] = []
    script = [(0.0, A, True), (0.5, B, False), (1.0, C, True), (1.5, D, False), (2.0, A, True)]
    for second in range(60):
        for offset, who, extended in script:
            now = second + offset / 10
            out = ext(server, who, now) if extended else send(server, SID, who, now)
            mine = [t for t in out if t.destination == B]
            if who == B:
                assert len(mine) == 1 and mine[0].kind is MessageKind.PEER_LIST
            else:
                assert mine == []  # no push, no copy of somebody else's reply
            to_b += mine
    to_b += [t for t in tick(server, 200.0) if t.destination == B]
    assert all(t.kind is MessageKind.KEEPALIVE and t.data == b"" for t in to_b if t.kind is not MessageKind.PEER_LIST)
    assert any(t.kind is MessageKind.KEEPALIVE for t in to_b)


def test_pushes_can_be_disabled() -> None:
    server = RendezvousServer(ServerConfig(push=False))
    ext(server, A, 0.0)
    assert [t.destination for t in ext(server, B, 0.1)] == [B]


def test_refresh_is_no_push() -> None:
    server = RendezvousServer()
    ext(server, A, 0.0)
    ext(server, B, 0.1)
    assert [t.destination for t in ext(server, B, 1.1)] == [B]


def test_leave_removes_the_member() -> None:
    server = RendezvousServer()
    ext(server, A, 0.0)
    ext(server, B, 0.0)
    events(server)
    assert send(server, encode_ext(ExtLeave(SID, PIDS[A])), A, 1.0) == []
    assert server.members(SID) == [B]
    assert events(server) == [PeerLeft(SID, A, "left")]
    assert server.stats.left == 1
    assert decode_ext(ext(server, B, 2.0)[0].data) == ExtPeers(SID, B)


@pytest.mark.parametrize(
    ("leave", "source"),
    [
        pytest.param(ExtLeave(SID, PIDS[B]), A, id="wrong-peer-id"),
        pytest.param(ExtLeave(SID, PIDS[A]), C, id="not-a-member"),
        pytest.param(ExtLeave(b"other", PIDS[A]), A, id="wrong-session"),
    ],
)
def test_leave_that_does_not_match_is_dropped(leave: ExtLeave, source: Endpoint) -> None:
    server = RendezvousServer()
    ext(server, A, 0.0)
    assert send(server, encode_ext(leave), source, 1.0) == []
    assert server.members(SID) == [A]
    assert server.stats.dropped == {"unknown-leave": 1}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(MAGIC + b"\x01", "malformed", id="reserved-prefix-too-short"),
        pytest.param(MAGIC + b"hello world", "malformed", id="reserved-prefix-text"),
        pytest.param(encode_ext(ExtPeers(SID, A)), "unexpected", id="server-message-to-server"),
        pytest.param(encode_ext(ExtError(1, "x")), "unexpected", id="error-to-server"),
    ],
)
def test_extension_datagrams_that_are_not_requests_are_dropped(data: bytes, reason: str) -> None:
    server = RendezvousServer()
    assert send(server, data, A, 0.0) == []
    assert server.session_count == 0
    assert server.stats.dropped == {reason: 1}


def test_an_extended_member_that_polls_plain_becomes_plain() -> None:
    server = RendezvousServer()
    ext(server, A, 0.0)
    send(server, SID, A, 0.1)
    assert [t.kind for t in send(server, SID, B, 0.2)] == [MessageKind.PEER_LIST]  # no push to A


# --- robustness ------------------------------------------------------------------------------

ATTACKERS = [Endpoint(f"203.0.113.{n}", 7000 + n) for n in range(5)] + [Endpoint("::1", 9)]
noise_data = st.one_of(
    st.binary(max_size=80),
    st.binary(min_size=1020, max_size=1030),
    st.binary(max_size=40).map(lambda b: MAGIC + b),
    st.builds(ExtRegister, st.sampled_from([b"", b"x", b"room2"]), st.binary(min_size=8, max_size=8)).map(encode_ext),
    st.builds(ExtLeave, st.just(SID), st.sampled_from(list(PIDS.values()))).map(encode_ext),
    st.builds(ExtPeers, st.just(SID), st.sampled_from([A, B])).map(encode_ext),
    st.sampled_from([b"", b"room2", b"SYN", b"ACK", b"x" * 1024]),
).filter(lambda data: data != SID)
noise = st.lists(
    st.tuples(st.floats(0.0, 60.0), st.sampled_from(ATTACKERS), noise_data), max_size=40
)
LEGIT = [(0.0, A, True), (0.3, B, False), (0.6, C, True), (5.0, A, True), (12.5, B, False), (30.0, C, True),
         (45.0, A, True), (71.0, B, False)]


def _legit_view(noise_items: list[tuple[float, Endpoint, bytes]]) -> list[tuple[float, Transmit]]:
    server = RendezvousServer()
    script = sorted([(t, 0, who, ext_) for t, who, ext_ in LEGIT] + [(t, 1, who, d) for t, who, d in noise_items],
                    key=lambda item: (item[0], item[1]))
    seen: list[tuple[float, Transmit]] = []
    for now, is_noise, who, what in script:
        out = timed_tick(server, now)
        if is_noise:
            server.receive_datagram(what, who, now)
        elif what:  # with a valid cookie, as our client sends after its first answer
            cookie = CookieJar(DEFAULT_COOKIE_KEY, server.config.cookie_interval).make(who, now)
            server.receive_datagram(encode_ext(ExtRegister(SID, PIDS[who], 2, cookie)), who, now)
        else:
            server.receive_datagram(SID, who, now)
        out += [(now, t) for t in server.datagrams_to_send(now)]
        seen += [(t, x) for t, x in out if x.destination in PIDS]
    return seen + [(t, x) for t, x in timed_tick(server, 100.0) if x.destination in PIDS]


@FAST
@given(noise)
def test_arbitrary_datagrams_never_disturb_a_legitimate_session(noise_items: list) -> None:  # type: ignore[type-arg]
    assert _legit_view(noise_items) == _legit_view([])


def test_the_legitimate_view_is_not_trivial() -> None:
    view = _legit_view([])
    kinds = {t.kind for _, t in view}
    assert kinds == {MessageKind.EXT_PEERS, MessageKind.EXT_PUSH, MessageKind.PEER_LIST, MessageKind.KEEPALIVE}
