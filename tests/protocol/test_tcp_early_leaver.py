"""The TCP client when a connected peer leaves before connect is over (the peer finished first).

Rule: no sockets, no clock: the machine is fed the driver's results by hand. A peer whose kept
stream closed after SELECT was reached: it counts as connected in `ConnectCompleted`, and
connect finishes as soon as the other peers are connected instead of waiting for the deadline.
"""

from __future__ import annotations

from holepunch.protocol import ConnectCompleted, Endpoint, PeerConnected
from holepunch.protocol.messages import ExtPeers, PeerInfo
from holepunch.protocol.tcp_client import TcpClientConfig, TcpPeerClient, TcpPeerState
from holepunch.protocol.tcp_messages import (
    Hello,
    Select,
    Write,
    decode_frames,
    encode_frame,
    session_token,
)
from holepunch.protocol.tcp_streams import PeerDisconnected

SERVER = Endpoint("192.0.2.1", 7000)
ME = Endpoint("198.51.100.1", 4000)
X, Y = Endpoint("198.51.100.2", 4000), Endpoint("198.51.100.3", 4000)
MY_ID, X_ID, Y_ID = bytes([0x80]) * 8, bytes([0x10]) * 8, bytes([0xF0]) * 8  # X controls, we control Y
TOKEN = session_token(b"room")


def _punching() -> TcpPeerClient:
    """A client expecting 2 peers, registered and punching X and Y."""
    client = TcpPeerClient(SERVER, b"room", 2, TcpClientConfig(timeout=10.0), peer_id=MY_ID)
    client.start(0.0)
    client.connected(1, ME, SERVER, 0.01)  # conn 1: the server connection (the first Connect)
    peers = (PeerInfo(X, X_ID, True), PeerInfo(Y, Y_ID, True))
    client.data_received(1, encode_frame(ExtPeers(b"room", ME, peers)), 0.02)
    client.intents_to_run()
    return client


def _events(client: TcpPeerClient) -> list[object]:
    out = []
    while (event := client.next_event()) is not None:
        out.append(event)
    return out


def test_a_peer_that_connected_and_left_counts_and_does_not_hold_connect() -> None:
    client = _punching()
    _events(client)
    client.accepted("from X", X, 0.1)
    client.data_received("from X", encode_frame(Hello(TOKEN, X_ID, MY_ID)), 0.1)
    client.data_received("from X", encode_frame(Select()), 0.11)  # X keeps this stream...
    client.connection_lost("from X", 0.12)  # ...connects, and leaves at once
    assert [type(e) for e in _events(client)] == [PeerConnected, PeerDisconnected]
    assert client.peers[X_ID].state is TcpPeerState.DISCONNECTED
    client.accepted("from Y", Y, 0.2)
    client.data_received("from Y", encode_frame(Hello(TOKEN, Y_ID, MY_ID)), 0.2)  # we control Y: SELECT
    written = [frame for i in client.intents_to_run() if isinstance(i, Write) and i.conn_id == "from Y"
               for frame in decode_frames(i.data)]
    assert Select() in written
    done = [e for e in _events(client) if isinstance(e, ConnectCompleted)]
    assert done == [ConnectCompleted((X, Y), (), 2, "")] and done[0].complete
