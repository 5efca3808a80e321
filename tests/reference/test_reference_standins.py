"""Check the Go stand-ins against the fact sheet (docs: /work/shared/wire-protocol.md).

Every test uses real UDP sockets on loopback and short timeouts; timing checks
use generous margins so they do not flake.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from .go_client import GoClient, GoClientClosed, GoConnectError
from .go_net import endpoint_text
from .go_server import GoServer

pytestmark = pytest.mark.timeout(10)


# -- helpers ----------------------------------------------------------------------


@pytest.fixture
def udp() -> Iterator[Callable[[], socket.socket]]:
    """Factory for raw loopback UDP sockets, closed after the test."""
    made: list[socket.socket] = []

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        made.append(sock)
        return sock

    yield make
    for sock in made:
        sock.close()


@pytest.fixture
def server() -> Iterator[GoServer]:
    with GoServer() as srv:
        yield srv


def name(sock: socket.socket) -> str:
    return endpoint_text(sock.getsockname())


def ask(sock: socket.socket, srv: GoServer, session: bytes) -> bytes:
    """Send one M1 and return the single reply."""
    sock.sendto(session, srv.address)
    data, addr = sock.recvfrom(65535)
    assert addr == srv.address
    return data


def expect_nothing(sock: socket.socket, wait: float = 0.3) -> None:
    sock.settimeout(wait)
    with pytest.raises(socket.timeout):
        sock.recvfrom(65535)
    sock.settimeout(2.0)


def wait_until(cond: Callable[[], bool], limit: float = 2.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


class Runner:
    """Runs ``GoClient.connect`` in a thread and keeps its outcome."""

    def __init__(self, client: GoClient) -> None:
        self.client = client
        self.result: list[str] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.client.connect()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            self.error = err

    def join(self, limit: float) -> bool:
        self.thread.join(limit)
        return not self.thread.is_alive()


def recv_payload(sock: socket.socket, payload: bytes, wait: float = 2.0) -> tuple[str, float]:
    """Wait for ``payload``; return (source, arrival time)."""
    end = time.monotonic() + wait
    while True:
        sock.settimeout(max(end - time.monotonic(), 0.001))
        data, addr = sock.recvfrom(65535)
        if data == payload:
            return endpoint_text(addr), time.monotonic()


def client_in_handshake(server: GoServer, udp: Callable[[], socket.socket], **kw: float) -> tuple[
    GoClient, Runner, socket.socket
]:
    """A GoClient with expected=1 whose only peer is a raw socket; returns once the
    client has sent its first SYN (so it is in phase 2)."""
    peer = udp()
    assert ask(peer, server, b"room") == b""
    client = GoClient(server.address, b"room", 1, **kw)
    runner = Runner(client)
    source, _ = recv_payload(peer, b"SYN")
    assert source == client.local_address
    return client, runner, peer


# -- GoServer (§3) ------------------------------------------------------------------


def test_reply_order_is_least_recently_registered_first(server: GoServer, udp) -> None:
    a, b, c = udp(), udp(), udp()
    A, B, C = name(a), name(b), name(c)
    assert ask(a, server, b"room1") == b""
    assert ask(b, server, b"room1") == A.encode()
    assert ask(c, server, b"room1") == f"{A},{B}".encode()
    assert ask(a, server, b"room1") == f"{B},{C}".encode()
    assert ask(b, server, b"room1") == f"{C},{A}".encode()
    assert ask(c, server, b"room1") == f"{A},{B}".encode()
    assert server.snapshot() == {b"room1": [A, B, C]}
    expect_nothing(a, 0.1)  # no pushes: A was never told about B or C


def test_empty_reply_is_a_real_zero_byte_datagram(server: GoServer, udp) -> None:
    a, b = udp(), udp()
    a.sendto(b"solo", server.address)
    data, addr = a.recvfrom(65535)
    assert (data, addr) == (b"", server.address)
    # The empty ID is an ordinary (shared, public) session (B11).
    assert ask(a, server, b"") == b""
    assert ask(b, server, b"") == name(a).encode()
    assert server.snapshot()[b""] == [name(a), name(b)]


def test_ids_are_opaque_bytes(server: GoServer, udp) -> None:
    a, b = udp(), udp()
    for sid in (b"\xff\xfe\x00ab\xc3(", b"a,b:c", b"nl\n"):
        assert ask(a, server, sid) == b""
        assert ask(b, server, sid) == name(a).encode()
    assert ask(b, server, b"nl") == b""  # "nl\n" and "nl" differ


def test_packets_over_1024_bytes_are_dropped_silently(server: GoServer, udp) -> None:
    a = udp()
    assert ask(a, server, b"x" * 1024) == b""
    assert ask(a, server, b"y" * 1023) == b""
    for size in (1025, 2049, 5000):
        a.sendto(b"z" * size, server.address)
    expect_nothing(a)
    assert set(server.snapshot()) == {b"x" * 1024, b"y" * 1023}
    drops = [line for line in server.log if "dropped" in line]
    assert len(drops) == 3 and "2048 bytes" in drops[1]  # truncated to the buffer


def test_same_endpoint_polling_is_idempotent(server: GoServer, udp) -> None:
    a, b = udp(), udp()
    for _ in range(3):
        a.sendto(b"room", server.address)
    assert [a.recvfrom(65535)[0] for _ in range(3)] == [b"", b"", b""]
    assert server.snapshot() == {b"room": [name(a)]}
    assert ask(b, server, b"room") == name(a).encode()


def test_one_endpoint_in_several_sessions(server: GoServer, udp) -> None:
    a, b = udp(), udp()
    ask(a, server, b"s1")
    ask(a, server, b"s2")
    assert ask(b, server, b"s1") == ask(b, server, b"s2") == name(a).encode()


def test_expiry_is_fixed_not_sliding(udp) -> None:
    timeout = 0.6
    with GoServer(domain_timeout=timeout) as srv:
        a = udp()
        A = name(a)
        ask(a, srv, b"room")
        time.sleep(0.3)
        ask(a, srv, b"room")  # re-registration does not extend the lifetime
        t1 = time.monotonic()
        assert wait_until(lambda: b"room" not in srv.snapshot())
        gone = time.monotonic() - t1
        assert gone < timeout - 0.1, f"removed {gone:.3f}s after re-registration"
        # The second, older-but-later timer still fires: flicker after re-adding (B8).
        ask(a, srv, b"room")
        assert srv.snapshot() == {b"room": [A]}
        assert wait_until(lambda: b"room" not in srv.snapshot(), limit=1.0)
        assert time.monotonic() - t1 < timeout + 0.25


def test_removal_swaps_last_entry_into_freed_slot(udp) -> None:
    with GoServer(domain_timeout=0.6) as srv:
        a, b, c = udp(), udp(), udp()
        ask(a, srv, b"room")
        time.sleep(0.35)
        ask(b, srv, b"room")
        ask(c, srv, b"room")
        assert wait_until(lambda: name(a) not in srv.snapshot().get(b"room", [name(a)]))
        assert srv.snapshot() == {b"room": [name(c), name(b)]}
        assert wait_until(lambda: srv.snapshot() == {})  # empty list -> ID deleted


def test_negative_domain_timeout_disables_expiry(udp) -> None:
    with GoServer(domain_timeout=-1) as srv:
        a = udp()
        ask(a, srv, b"room")
        time.sleep(0.3)
        assert srv.snapshot() == {b"room": [name(a)]}


def test_keepalive_is_zero_bytes_once_per_session_membership(udp) -> None:
    with GoServer(keepalive=0.4) as srv:
        a = udp()
        start = time.monotonic()
        ask(a, srv, b"s1")
        ask(a, srv, b"s2")
        first = a.recvfrom(65535)
        second = a.recvfrom(65535)
        at = time.monotonic() - start
        assert first == second == (b"", srv.address)
        assert 0.3 < at < 1.5
        a.settimeout(0.2)  # same tick: nothing else until the next one
        with pytest.raises(socket.timeout):
            a.recvfrom(65535)


# -- GoClient (§4) ------------------------------------------------------------------


def test_three_go_clients_form_a_full_mesh(server: GoServer) -> None:
    clients = [GoClient(server.address, b"room1", 2, timeout=5.0) for _ in range(3)]
    try:
        runners = []
        for client in clients:
            runners.append(Runner(client))
            time.sleep(0.15)
        for runner in runners:
            assert runner.join(6.0)
        time.sleep(0.25)  # let the delayed ACKs go out
        for client, runner in zip(clients, runners):
            assert runner.error is None, runner.error
            others = {c.local_address for c in clients if c is not client}
            assert runner.result is not None and set(runner.result) == others
            assert not client.hung
            for other in others:  # every worker finished: ACK at once + delayed ACK
                acks = [t for t, dest, p in client.sent if p == b"ACK" and dest == other]
                assert len(acks) >= 2 and acks[-1] - acks[-2] >= 0.07
            assert client.deadline is not None and client.deadline > time.monotonic()
    finally:
        for client in clients:
            client.close()


def test_stranger_in_phase_two_hangs_the_client(server: GoServer, udp) -> None:
    client, runner, peer = client_in_handshake(server, udp, timeout=1.0)
    try:
        udp().sendto(b"hello", ("127.0.0.1", client.sock.getsockname()[1]))
        assert wait_until(lambda: client.hung)
        time.sleep(1.2)  # past the deadline: still hung, still sending SYN (B1)
        assert runner.thread.is_alive()
        recv_payload(peer, b"SYN", wait=0.5)
    finally:
        client.close()
    assert runner.join(2.0) and isinstance(runner.error, GoClientClosed)


def test_late_duplicate_server_reply_hangs_the_client(udp) -> None:
    fake_server, peer = udp(), udp()
    srv_addr = fake_server.getsockname()
    client = GoClient(srv_addr, b"room", 1, timeout=1.0)
    runner = Runner(client)
    try:
        data, addr = fake_server.recvfrom(65535)
        assert data == b"room"
        fake_server.sendto(name(peer).encode(), addr)
        recv_payload(peer, b"SYN")
        fake_server.sendto(name(peer).encode(), addr)  # reply to a poll still in flight
        assert wait_until(lambda: client.hung)
    finally:
        client.close()
    assert runner.join(2.0) and isinstance(runner.error, GoClientClosed)


def test_phase_one_ignores_other_sources_and_empty_replies(udp) -> None:
    fake_server, peer, stranger = udp(), udp(), udp()
    client = GoClient(fake_server.getsockname(), b"room", 1, timeout=2.0)
    runner = Runner(client)
    try:
        _, addr = fake_server.recvfrom(65535)
        stranger.sendto(b"127.0.0.1:9", addr)
        fake_server.sendto(b"", addr)
        time.sleep(0.25)
        assert not any(dest == "127.0.0.1:9" for _, dest, _ in client.sent)
        polls = [t for t, dest, _ in client.sent if dest == client.server]
        assert len(polls) >= 2  # still polling every ~100 ms
        fake_server.sendto(name(peer).encode(), addr)
        assert recv_payload(peer, b"SYN")[0] == client.local_address
    finally:
        client.close()
    runner.join(2.0)


def test_unparseable_reply_aborts_connect(udp) -> None:
    fake_server = udp()
    with GoClient(fake_server.getsockname(), b"room", 1, timeout=2.0) as client:
        runner = Runner(client)
        _, addr = fake_server.recvfrom(65535)
        fake_server.sendto(b"hello", addr)
        assert runner.join(2.0)
    assert isinstance(runner.error, GoConnectError)
    assert "missing port in address" in str(runner.error)


def test_more_peers_than_expected_polls_until_deadline(server: GoServer, udp) -> None:
    a, b = udp(), udp()
    ask(a, server, b"room")
    ask(b, server, b"room")
    with GoClient(server.address, b"room", 1, timeout=0.8) as client:
        start = time.monotonic()
        with pytest.raises(GoConnectError, match="timeout"):
            client.connect()
        assert time.monotonic() - start >= 0.75
        assert len([1 for _, d, _ in client.sent if d == client.server]) >= 5
        assert not [1 for _, d, _ in client.sent if d != client.server]


def test_single_ack_peer_finishes_handshake_but_connect_times_out(server: GoServer, udp) -> None:
    client, runner, peer = client_in_handshake(server, udp, timeout=1.2)
    try:
        peer.sendto(b"ACK", ("127.0.0.1", client.sock.getsockname()[1]))
        _, t_ack1 = recv_payload(peer, b"ACK")
        _, t_ack2 = recv_payload(peer, b"ACK")
        assert t_ack2 - t_ack1 >= 0.07  # the delayed second ACK
        assert runner.join(2.0)
        assert isinstance(runner.error, GoConnectError)  # B3: nothing arrived after
        assert "peer to peer" in str(runner.error)
    finally:
        client.close()


def test_syn_turns_into_ack_only_at_next_tick_and_fast_syns_starve_it(
    server: GoServer, udp
) -> None:
    client, runner, peer = client_in_handshake(server, udp, timeout=2.0)
    port = client.sock.getsockname()[1]
    try:
        # B4: SYN every 30 ms keeps restarting the 100 ms timer, so nothing goes out.
        peer.sendto(b"SYN", ("127.0.0.1", port))
        time.sleep(0.03)
        before = len(client.sent)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            peer.sendto(b"SYN", ("127.0.0.1", port))
            t_last = time.monotonic()
            time.sleep(0.03)
        assert len(client.sent) == before
        src, t_ack = recv_payload(peer, b"ACK")
        assert src == client.local_address and t_ack - t_last >= 0.07
    finally:
        client.close()
    runner.join(2.0)


def test_seventeenth_datagram_to_finished_worker_hangs(udp) -> None:
    fake_server, p1, p2 = udp(), udp(), udp()
    client = GoClient(fake_server.getsockname(), b"room", 2, timeout=2.0)
    runner = Runner(client)
    try:
        _, addr = fake_server.recvfrom(65535)
        fake_server.sendto(f"{name(p1)},{name(p2)}".encode(), addr)
        recv_payload(p1, b"SYN")
        p1.sendto(b"ACK", addr)
        recv_payload(p1, b"ACK")
        assert wait_until(lambda: client._workers[0].finished.is_set())
        for _ in range(16):
            p1.sendto(b"ACK", addr)  # fills the 16 slots nobody drains
        time.sleep(0.2)
        assert not client.hung
        p1.sendto(b"ACK", addr)  # the 17th blocks the read loop (B2)
        assert wait_until(lambda: client.hung)
        assert runner.thread.is_alive()
    finally:
        client.close()
    assert runner.join(2.0) and isinstance(runner.error, GoClientClosed)
