"""The client's scan-free bookkeeping gives what visiting every peer would give.

`PeerClient.get_timer`, `sockets_wanted` and the all-connected check keep heaps, cursors and
flags instead of visiting every peer on every pump (docs/performance.md, "Time to full mesh").
These tests drive real machines through a lossy in-memory link and compare, after every step,
with the definitions those structures replace; and the fast IPv4 path of the peer-list decoder
with the `ipaddress` path it stands in front of.
"""

from __future__ import annotations

import ipaddress
import random

from hypothesis import given
from hypothesis import strategies as st

from holepunch.protocol import ClientConfig, Endpoint, PeerClient, RendezvousServer
from holepunch.protocol.endpoint import parse_endpoint
from holepunch.protocol.events import ConnectCompleted, PeerConnected
from holepunch.protocol.messages import MessageError, _wire_endpoint, decode_peer_list
from holepunch.protocol.states import ClientState

from .helpers import SERVER, Network, Packet, peer_endpoint


def scanned_timer(client: PeerClient) -> float | None:
    """What `get_timer` is defined as: the earliest of every timer, each peer visited."""
    times = [client._registration.next_at, client._wait_deadline, client._deadline]
    times += [peer.next_timer() for peer in client.peers.values()]
    plans = client._tech._plans.values()
    times += [plan.next_sweep for plan in plans] + [client._tech._pacer.next_timer()]
    times.append(client._relay.next_timer())
    present = [t for t in times if t is not None]
    return min(present) if present else None


def scanned_sockets(client: PeerClient) -> int:
    """What `sockets_wanted` is defined as, for clients without birthday probing."""
    return max((p.via for p in client.peers.values() if p.connected), default=0)


def mesh(count: int, loss: float, seed: int, config: ClientConfig) -> tuple[Network, list[PeerClient]]:
    """A server and `count` clients on a link that loses `loss` of the datagrams between peers."""
    rng = random.Random(seed)

    def lose(packet: Packet) -> bool:
        return SERVER not in (packet.source, packet.destination) and rng.random() < loss

    net = Network(delay=0.002, lose=lose)
    net.add(SERVER, RendezvousServer())
    clients = [PeerClient(SERVER, b"scans", count - 1, config, rng=random.Random(seed * 100 + n))
               for n in range(count)]
    for n, client in enumerate(clients):
        net.add(peer_endpoint(n + 1), client)
        net.at(0.001 * n, client.start)
    return net, clients


def run_checked(net: Network, clients: list[PeerClient], until: float) -> None:
    """Step the network, checking every client's bookkeeping against the scans after each step."""
    while net.step(until):
        for client in clients:
            assert client.get_timer() == scanned_timer(client)
            assert client.sockets_wanted() == scanned_sockets(client)


def test_timers_match_a_full_scan_through_loss_retransmission_and_keepalives() -> None:
    config = ClientConfig(timeout=3.0, keepalive_interval=0.5, final_ack_delay=0.05)
    net, clients = mesh(10, loss=0.3, seed=7, config=config)
    run_checked(net, clients, until=4.0)
    assert all(client.state in (ClientState.ESTABLISHED, ClientState.INCOMPLETE) for client in clients)
    resent = [p for p in net.packets if p.kind.value == "syn"]
    assert len(resent) > 10 * 9  # some SYNs were retransmitted after losses
    assert any(p.kind.value == "keepalive" and p.source != SERVER for p in net.packets)


def test_timers_match_a_full_scan_when_the_deadline_gives_peers_up() -> None:
    config = ClientConfig(timeout=1.0, keepalive_interval=0.3)
    net, clients = mesh(6, loss=0.7, seed=3, config=config)
    run_checked(net, clients, until=2.0)
    assert any(client.state is ClientState.INCOMPLETE for client in clients)
    net.at(2.0, clients[0].close)
    run_checked(net, clients, until=3.0)
    assert clients[0].get_timer() is None


def test_connect_completes_at_the_last_peer_whatever_order_peers_connect_in() -> None:
    net, clients = mesh(8, loss=0.2, seed=11, config=ClientConfig(timeout=5.0))
    run_checked(net, clients, until=6.0)
    for n, client in enumerate(clients):
        endpoint = peer_endpoint(n + 1)
        connected = [t for t, _ in net.events_of(endpoint, PeerConnected)]
        (done_at, done), = net.events_of(endpoint, ConnectCompleted)
        assert isinstance(done, ConnectCompleted) and done.complete
        assert len(connected) == 7 and done_at == max(connected)


OCTETS = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", "", "1a", "٣", " 1"]))
PORTS = st.one_of(st.integers(0, 70000).map(str), st.sampled_from(["", "080", "0000065535", "8x", "²"]))


@given(st.lists(OCTETS, min_size=3, max_size=5), PORTS, st.sampled_from(["", "\n", " ", "%eth0"]))
def test_the_ipv4_fast_path_gives_what_ipaddress_gives(octets: list[str], port: str, tail: str) -> None:
    text = ".".join(octets) + tail + ":" + port
    try:
        expected: Endpoint | str = parse_endpoint(text)
        assert isinstance(expected, Endpoint)
        ipaddress.ip_address(expected.host)
    except ValueError as exc:
        expected = type(exc).__name__
    try:
        got: Endpoint | str = _wire_endpoint(text)
    except ValueError as exc:
        got = type(exc).__name__
    assert got == expected
    assert not isinstance(got, Endpoint) or type(got.port) is int


def test_peer_lists_keep_their_errors() -> None:
    assert decode_peer_list(b"10.0.0.1:5,[::1]:6") == [Endpoint("10.0.0.1", 5), Endpoint("::1", 6)]
    for bad in (b"10.0.0.01:5", b"10.0.0.1:65536", b"256.0.0.1:5", b"host:5"):
        try:
            decode_peer_list(bad)
        except MessageError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
