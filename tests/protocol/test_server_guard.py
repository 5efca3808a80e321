"""The server's guards (guard.py): request rate, amplification budget, refusal log, bounded state,
and the spread keep-alives. Bytes in, bytes out, a hand-advanced clock.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holepunch.protocol import (
    Endpoint,
    MessageKind,
    RendezvousServer,
    RequestRefused,
    ServerConfig,
    Transmit,
)
from holepunch.protocol.cookie import DEFAULT_COOKIE_KEY, CookieJar
from holepunch.protocol.messages import MAGIC, ExtLeave, ExtRegister, encode_ext

from .helpers import peer_endpoint

A, B = peer_endpoint(1), peer_endpoint(2)
SID = b"room1"
NO_BUDGET = {"amplification_factor": None}


def feed(server: RendezvousServer, data: bytes, source: Endpoint, now: float) -> list[Transmit]:
    server.receive_datagram(data, source, now)
    return server.datagrams_to_send(now)


def refusals(server: RendezvousServer) -> list[RequestRefused]:
    found = []
    while (event := server.next_event()) is not None:
        if isinstance(event, RequestRefused):
            found.append(event)
    return found


def cookie_for(source: Endpoint, now: float) -> bytes:
    return CookieJar(DEFAULT_COOKIE_KEY, ServerConfig().cookie_interval).make(source, now)


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate_limit", 0.0, "rate_limit must be positive or None"),
        ("rate_burst", 0, "rate_burst must be positive"),
        ("rate_limit_key", "ip", "rate_limit_key must be 'endpoint' or 'host'"),
        ("max_tracked_sources", 0, "max_tracked_sources must be positive"),
        ("refusal_log_interval", -1.0, "refusal_log_interval must not be negative"),
        ("amplification_factor", 0.5, "amplification_factor must be at least 1 or None"),
        ("datagram_overhead", -1, "datagram_overhead must not be negative"),
        ("cookie_interval", 0.0, "cookie_interval must be positive"),
        ("keepalive_batch", 0, "keepalive_batch must be positive"),
    ],
)
def test_every_guard_setting_is_validated(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig(**{field: value})  # type: ignore[arg-type]


def test_none_disables_the_rate_limit_and_the_budget() -> None:
    server = RendezvousServer(ServerConfig(rate_limit=None, amplification_factor=None))
    out = [feed(server, SID, A, 0.0) for _ in range(1000)]
    assert all(len(o) == 1 for o in out) and not server.stats.refused


# --- request rate --------------------------------------------------------------------------------

RATE = ServerConfig(rate_limit=10.0, rate_burst=3, **NO_BUDGET)  # type: ignore[arg-type]


def test_a_member_may_burst_then_poll_at_the_rate() -> None:
    server = RendezvousServer(RATE)
    answered = [bool(feed(server, SID, A, 0.0)) for _ in range(5)]
    assert answered == [True, True, True, False, False]  # the burst of 3, then refused
    assert feed(server, SID, A, 0.05) == []  # half an interval later: still empty
    assert feed(server, SID, A, 0.1) != []  # one interval: one token back
    assert server.stats.refused == {"rate-limited": 3} and server.stats.registrations == 4


def test_the_reference_poll_rate_is_never_limited_by_default() -> None:
    server = RendezvousServer()
    feed(server, SID, B, 0.0)
    for step in range(600):  # 60 s of a reference client polling every 100 ms
        assert feed(server, SID, A, step * 0.1)
    assert not server.stats.refused


def test_the_bucket_is_per_endpoint_by_default_and_per_host_when_asked() -> None:
    same_host = Endpoint(A.host, A.port + 1)
    server = RendezvousServer(RATE)
    for _ in range(3):
        feed(server, SID, A, 0.0)
    assert feed(server, SID, same_host, 0.0)  # another pupil behind the same school NAT
    shared = RendezvousServer(ServerConfig(rate_limit=10.0, rate_burst=3, rate_limit_key="host", **NO_BUDGET))  # type: ignore[arg-type]
    for _ in range(3):
        feed(shared, SID, A, 0.0)
    assert feed(shared, SID, same_host, 0.0) == [] and shared.stats.refused == {"rate-limited": 1}


def test_joining_session_after_session_is_limited_too() -> None:
    server = RendezvousServer(RATE)
    answered = [bool(feed(server, b"s%d" % n, A, 0.0)) for n in range(5)]
    assert answered == [True, True, True, False, False] and server.session_count == 3


def test_leaving_and_joining_again_buys_no_fresh_bucket() -> None:
    server = RendezvousServer(RATE)
    pid = b"\x01" * 8
    register = encode_ext(ExtRegister(SID, pid, 0))
    leave = encode_ext(ExtLeave(SID, pid))
    answered = []
    for _ in range(6):
        answered.append(bool(feed(server, register, A, 0.0)))
        feed(server, leave, A, 0.0)
    assert answered.count(True) == 3 and server.stats.refused["rate-limited"] == 3


def test_an_extended_client_is_not_told_it_was_rate_limited() -> None:
    """An ExtError would end its connect; a silent drop is retried like a lost datagram."""
    server = RendezvousServer(RATE)
    register = encode_ext(ExtRegister(SID, b"\x01" * 8, 0))
    kinds = [t.kind for _ in range(6) for t in feed(server, register, A, 0.0)]
    assert MessageKind.EXT_ERROR not in kinds and server.stats.refused["rate-limited"] == 3


# --- the refusal log -----------------------------------------------------------------------------


def test_refusals_are_reported_once_per_source_and_reason_per_interval_with_the_count() -> None:
    config = ServerConfig(rate_limit=10.0, rate_burst=1, refusal_log_interval=10.0, **NO_BUDGET)  # type: ignore[arg-type]
    server = RendezvousServer(config)
    for step in range(100):  # 1000 a second for 0.1 s: 99 refused
        feed(server, SID, A, step * 0.001)
    feed(server, SID, B, 0.05)
    feed(server, SID, B, 0.05)  # B refused once: its own report
    assert refusals(server) == [RequestRefused(A, "rate-limited", 0), RequestRefused(B, "rate-limited", 0)]
    for step in range(50):
        feed(server, SID, A, 5.0 + step * 0.001)  # within the interval: counted, not reported
    assert refusals(server) == [] and server.stats.refused["rate-limited"] == 99 + 1 + 49
    feed(server, SID, A, 10.01)  # 10 s after the first report (at 0.001 s)
    feed(server, SID, A, 10.01)
    assert refusals(server) == [RequestRefused(A, "rate-limited", 98 + 49)]  # all since the first report


def test_limit_refusals_name_the_session() -> None:
    server = RendezvousServer(ServerConfig(max_peers_per_session=1))
    feed(server, SID, A, 0.0)
    feed(server, SID, B, 0.0)
    assert refusals(server) == [RequestRefused(B, "session-full", 0, SID)]


def test_a_zero_interval_reports_every_refusal() -> None:
    server = RendezvousServer(ServerConfig(max_peers_per_session=1, refusal_log_interval=0.0))
    feed(server, SID, A, 0.0)
    for n in range(3):
        feed(server, SID, B, n * 0.2)
    assert len(refusals(server)) == 3


# --- the amplification budget --------------------------------------------------------------------

OVERHEAD = ServerConfig().datagram_overhead


def test_a_plain_poller_in_a_large_session_gets_full_replies_now_and_then() -> None:
    """A reference client cannot prove its address, so replies wait until its polls paid for them."""
    server = RendezvousServer()
    for n in range(10, 30):  # 20 others
        feed(server, SID, peer_endpoint(n), 0.0)
    replies = [feed(server, SID, A, step * 0.1) for step in range(50)]
    full = [r for r in replies if r and r[0].data.count(b",") == 19]
    assert 5 <= len(full) < 50 and server.stats.refused["amplification"] > 0
    sent = sum(len(t.data) + OVERHEAD for r in replies for t in r)
    assert sent <= 3 * 50 * (len(SID) + OVERHEAD)


def test_keepalives_count_against_the_budget() -> None:
    server = RendezvousServer(ServerConfig(keepalive_interval=10.0, session_timeout=1000.0))
    feed(server, SID, A, 0.0)  # earns 3 x 33 bytes, the empty reply costs 28
    out = []
    for t in range(10, 100, 10):
        server.handle_timer(float(t))
        out += server.datagrams_to_send(float(t))
    assert len(out) == 2  # 2 x 28 of the 71 left; the third would exceed the budget
    assert server.stats.refused["amplification"] == 7


ATTACKERS = [Endpoint(f"203.0.113.{n}", 40000 + n) for n in range(12)]
VICTIM_SESSION = b"big"
flood_item = st.tuples(
    st.floats(0.0, 120.0),
    st.sampled_from(ATTACKERS),
    st.one_of(
        st.sampled_from([VICTIM_SESSION, b"", b"x", b"other"]),  # plain registrations
        st.builds(lambda s, p, c: encode_ext(ExtRegister(s, p, 3, c)),  # extended, with junk cookies
                  st.sampled_from([VICTIM_SESSION, b"x"]), st.binary(min_size=8, max_size=8),
                  st.sampled_from([b"", b"\x00" * 16, b"\x01" * 15])),
        st.builds(lambda p: encode_ext(ExtLeave(VICTIM_SESSION, p)), st.binary(min_size=8, max_size=8)),
        st.binary(max_size=30).map(lambda b: MAGIC + b),
    ),
)


def _flood(items: list[tuple[float, Endpoint, bytes]], overhead: int) -> tuple[Counter[Endpoint], Counter[Endpoint]]:
    """Bytes in per spoofed source and bytes out to it, headers counted as the server does."""
    server = RendezvousServer(ServerConfig(datagram_overhead=overhead, keepalive_interval=5.0))
    for n in range(60):  # the session that makes replies large: proved extended members
        member = peer_endpoint(100 + n)
        server.receive_datagram(encode_ext(ExtRegister(VICTIM_SESSION, bytes([n]) * 8, 0, cookie_for(member, 0.0))),
                                member, 0.0)
    server.datagrams_to_send(0.0)
    bytes_in: Counter[Endpoint] = Counter()
    bytes_out: Counter[Endpoint] = Counter()
    for now, source, data in sorted(items, key=lambda item: item[0]):
        while (due := server.get_timer()) is not None and due <= now:
            server.handle_timer(due)
            for t in server.datagrams_to_send(due):
                bytes_out[t.destination] += len(t.data) + overhead
        server.receive_datagram(data, source, now)
        bytes_in[source] += len(data) + overhead
        for t in server.datagrams_to_send(now):
            bytes_out[t.destination] += len(t.data) + overhead
    server.handle_timer(500.0)
    for t in server.datagrams_to_send(500.0):
        bytes_out[t.destination] += len(t.data) + overhead
    return bytes_in, bytes_out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(flood_item, max_size=150), st.sampled_from([OVERHEAD, 0]))
def test_an_unproved_address_never_gets_more_than_three_times_what_came_from_it(
    items: list[tuple[float, Endpoint, bytes]], overhead: int
) -> None:
    """Spoofed-looking registrations from many sources, into a session of 60: per source,
    bytes out / bytes in <= 3, with IP+UDP headers counted (the default) or payloads only (RFC 9000)."""
    bytes_in, bytes_out = _flood(items, overhead)
    for source in ATTACKERS:
        assert bytes_out[source] <= 3 * bytes_in[source], (source, bytes_in[source], bytes_out[source])


def test_the_flood_is_not_trivial() -> None:
    """The property above is not met by sending nothing: the budget is used, and large replies wait."""
    items = [(t * 0.05, ATTACKERS[t % 3], VICTIM_SESSION) for t in range(300)]
    bytes_in, bytes_out = _flood(items, OVERHEAD)
    for source in ATTACKERS[:3]:
        assert 2 * bytes_in[source] < bytes_out[source] <= 3 * bytes_in[source]


# --- bounded state ---------------------------------------------------------------------------------


def test_state_stays_bounded_under_a_flood_of_sources() -> None:
    config = ServerConfig(max_tracked_sources=500, max_peers_per_session=10, max_sessions=50,
                          rate_limit=1.0, rate_burst=1)
    server = RendezvousServer(config)
    for n in range(20_000):
        source = Endpoint(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 1000 + n % 7)
        now = n * 0.0001
        server.receive_datagram(b"s%d" % (n % 100), source, now)  # joins, then session-full / too-many
        server.receive_datagram(encode_ext(ExtRegister(SID, b"\x09" * 8, 0, b"\x00" * 16)), source, now)
        server.datagrams_to_send(now)
        while server.next_event() is not None:
            pass
    assert all(size <= 500 for size in server.tracked().values()), server.tracked()
    assert server.member_count <= 50 * 10 and server.session_count <= 50
    assert server.stats.refused["session-full"] + server.stats.refused["too-many-sessions"] > 10_000


# --- keep-alives -----------------------------------------------------------------------------------


def test_keepalives_due_together_leave_in_batches_and_reads_go_on_between() -> None:
    config = ServerConfig(keepalive_batch=64, **NO_BUDGET)  # type: ignore[arg-type]
    server = RendezvousServer(config)
    members = [peer_endpoint(n) for n in range(1000)]
    for member in members:  # all join at once: all due at 10.0
        feed(server, b"s%d" % (member.port % 50), member, 0.0)
    batches = []
    while (due := server.get_timer()) is not None and due <= 10.0:
        server.handle_timer(10.0)
        batches.append(len(server.datagrams_to_send(10.0)))
        assert feed(server, SID, A, 10.0)  # a request between two batches is answered at once
    assert batches == [64] * 15 + [40]
    assert server.get_timer() == 20.0  # each member 10 s after its own keep-alive


def test_a_removed_member_gets_no_more_keepalives() -> None:
    server = RendezvousServer(ServerConfig(session_timeout=15.0, **NO_BUDGET))  # type: ignore[arg-type]
    feed(server, SID, A, 0.0)
    feed(server, SID, B, 5.0)
    out = []
    for t in (10.0, 15.0, 20.0, 25.0, 30.0):
        server.handle_timer(t)
        out += [(t, x.destination) for x in server.datagrams_to_send(t)]
    assert out == [(10.0, A), (15.0, B)]  # A expired at 15, B at 20
