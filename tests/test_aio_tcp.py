"""TCP punching over real loopback sockets: the real TCP server, real peers, raw sockets, errors, CLI.

Every test runs a real `serve_tcp()` (or the `holepunch server` process) and real `connect(...,
transport="tcp")` calls on 127.0.0.1 with a short `TcpClientConfig`. On loopback there is no NAT,
so a pair meets by simultaneous open or by accept + connect (then the second connect on the same
address pair fails with EADDRNOTAVAIL, which the core expects); the protocol is the same.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import holepunch
from holepunch import Endpoint
from holepunch.aio import BlockingTcpMesh, ConnectError, MeshClosed, TcpMesh, serve_all, serve_tcp
from holepunch.cli import main
from holepunch.protocol.messages import ExtRegister
from holepunch.protocol.tcp_client import TcpClientConfig
from holepunch.protocol.tcp_messages import encode_frame
from holepunch.protocol.tcp_states import TcpPeerState
from holepunch.trace import Action, Trace

pytestmark = pytest.mark.timeout(60)
LOCAL = ("127.0.0.1", 0)
FAST = TcpClientConfig(refresh_interval=1.0, retry_interval=0.05, max_retry_interval=0.2, attempt_timeout=0.5,
                       hello_timeout=1.0)
"""Quick retries for loopback; the protocol is the same."""
ROOT = Path(__file__).resolve().parent.parent


def tcp_connect(server: Endpoint | str, session: str, peers: int, **kwargs: Any) -> Any:
    """`holepunch.connect(..., transport="tcp")` with the loopback defaults of these tests."""
    options: dict[str, Any] = {"timeout": 10.0, "config": FAST, "bind": LOCAL, "transport": "tcp"}
    options.update(kwargs)
    return holepunch.connect(server, session, peers, **options)


async def receive_all(mesh: TcpMesh, expected: dict[Endpoint, bytes]) -> dict[Endpoint, bytes]:
    """Read chunks until every peer in `expected` sent as many bytes as expected (TCP may split)."""
    got = {peer: b"" for peer in expected}
    while any(len(got[p]) < len(data) for p, data in expected.items()):
        peer, data = await asyncio.wait_for(mesh.recv(), 5)
        got[peer] += data
    return got


async def exchange_all_pairs(meshes: list[TcpMesh]) -> None:
    """Every mesh writes to every connected peer; every peer must read exactly that, in order."""
    by_address = {mesh.local: mesh for mesh in meshes}
    for mesh in meshes:
        for peer in mesh.connected:
            mesh.send(peer, f"{mesh.local} -> {peer}: ".encode() + bytes(range(256)) * 20)
    for mesh in meshes:
        expected = {p: f"{p} -> {mesh.local}: ".encode() + bytes(range(256)) * 20 for p in by_address if p != mesh.local}
        assert await receive_all(mesh, expected) == expected


async def opened(connecting: Any) -> TcpMesh:
    """Await a `connect(...)` (a coroutine, for the background loop's `submit`)."""
    mesh: TcpMesh = await connecting
    return mesh


def free_tcp_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- whole sessions -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 4])
def test_every_peer_connects_over_tcp_and_every_pair_carries_data(count: int) -> None:
    async def scenario() -> None:
        async with await serve_tcp("127.0.0.1", 0) as server:
            meshes = await asyncio.gather(*(tcp_connect(server.address, "room", count - 1) for _ in range(count)))
            try:
                for mesh in meshes:
                    assert isinstance(mesh, TcpMesh) and mesh.complete and mesh.extended
                    assert mesh.public_endpoint == mesh.local
                    assert sorted(mesh.connected) == sorted(m.local for m in meshes if m is not mesh)
                    assert all(p.state is TcpPeerState.CONNECTED and p.elapsed is not None for p in mesh.peers)
                await exchange_all_pairs(meshes)
            finally:
                await asyncio.gather(*(mesh.close() for mesh in meshes))
            assert server.stats.joined == count
            assert server.stats.refused == {} and server.stats.dropped == {}
            while server.machine.connection_count:  # each peer left: LEAVE, then its connection closed
                await asyncio.sleep(0.01)

    asyncio.run(scenario())


def test_a_peer_socket_handed_over_works_as_an_ordinary_stream() -> None:
    async def scenario() -> None:
        trace = Trace()
        async with await serve_tcp("127.0.0.1", 0) as server:
            a, b = await asyncio.gather(tcp_connect(server.address, "raw", 1, trace=trace, actor="A"),
                                        tcp_connect(server.address, "raw", 1))
            sa, sb = a.socket(b.local), b.socket(a.local)
            try:
                for sock, mine, theirs in ((sa, a, b), (sb, b, a)):
                    assert sock.type == socket.SOCK_STREAM and sock.getblocking()
                    assert Endpoint.from_sockaddr(sock.getpeername()) == theirs.local
                    assert Endpoint.from_sockaddr(sock.getsockname()).port == mine.local.port  # port P
                with pytest.raises(ValueError, match="was taken"):
                    a.send(b.local, b"through the mesh")
                with pytest.raises(ValueError, match="not a connected peer"):
                    a.socket(b.local)
                await asyncio.to_thread(sa.sendall, b"ping" * 10000)
                assert await asyncio.to_thread(_read_exactly, sb, 40000) == b"ping" * 10000
                await asyncio.to_thread(sb.sendall, b"pong")
                sb.shutdown(socket.SHUT_WR)
                assert await asyncio.to_thread(_read_to_eof, sa) == b"pong"
            finally:
                sa.close()
                sb.close()
                await asyncio.gather(a.close(), b.close())
        kinds = {r.kind for r in trace if r.actor == "A"}
        assert {"tcp-connect", "tcp-connected", "ext-register", "tcp-hello", "ext-leave", "PeerConnected"} <= kinds
        assert ("tcp-select" in kinds) == (a.machine.peer_id < b.machine.peer_id)  # the controlling peer selects
        assert trace.filter(action=Action.EVENT, kind="ConnectCompleted")[0].summary.startswith("connect finished: 1 of 1")

    asyncio.run(scenario())


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the stream ended early"
        data += chunk
    return data


def _read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_open_streams_give_asyncio_streams_per_peer() -> None:
    async def scenario() -> None:
        async with await serve_tcp("127.0.0.1", 0) as server:
            meshes = await asyncio.gather(*(tcp_connect(server.address, "streams", 2) for _ in range(3)))
            try:
                streams = [await mesh.open_streams() for mesh in meshes]
                for mesh, mine in zip(meshes, streams):
                    assert sorted(mine) == sorted(mesh.connected)
                    for peer, (_, writer) in mine.items():
                        writer.write(f"hello {peer} from {mesh.local}\n".encode())
                        await writer.drain()
                for mesh, mine in zip(meshes, streams):
                    for peer, (reader, _) in mine.items():
                        line = await asyncio.wait_for(reader.readline(), 5)
                        assert line == f"hello {mesh.local} from {peer}\n".encode()
            finally:
                for mine in streams:
                    for _, writer in mine.values():
                        writer.close()
                await asyncio.gather(*(mesh.close() for mesh in meshes))

    asyncio.run(scenario())


# --- clear errors ---------------------------------------------------------------------------------


def test_no_server_listening_raises_connect_error_saying_what_to_try() -> None:
    port = free_tcp_port()

    async def scenario() -> None:
        with pytest.raises(ConnectError) as caught:
            await tcp_connect(f"127.0.0.1:{port}", "nobody", 1, timeout=0.4)
        text = str(caught.value)
        assert text.startswith(f"no answer from the rendezvous server 127.0.0.1:{port} over TCP")
        assert "ECONNREFUSED" in text and "try: check the address" in text and "--udp-only" in text

    asyncio.run(scenario())


def test_local_port_held_without_reuseport_is_a_clear_eaddrinuse_error() -> None:
    async def scenario() -> None:
        async with await serve_tcp("127.0.0.1", 0) as server:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:  # no SO_REUSEADDR/SO_REUSEPORT
                holder.bind(("127.0.0.1", 0))
                holder.listen()
                port = holder.getsockname()[1]
                with pytest.raises(ConnectError) as caught:
                    await tcp_connect(server.address, "taken", 1, bind=("127.0.0.1", port), timeout=30)
            text = str(caught.value)
            assert text.startswith(f"cannot connect to the server from port {port}: EADDRINUSE: the local port is held")
            assert "try: stop the program holding the port" in text
            assert server.stats.connections == 0

    asyncio.run(scenario())


def test_a_platform_without_so_reuseport_is_told_to_use_udp(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with await serve_tcp("127.0.0.1", 0) as server:  # the server needs no SO_REUSEPORT
            monkeypatch.delattr(socket, "SO_REUSEPORT")  # as on Windows
            with pytest.raises(ConnectError) as caught:
                await tcp_connect(server.address, "old", 1, timeout=30)
        text = str(caught.value)
        assert "ENOPROTOOPT: this platform has no SO_REUSEPORT" in text
        assert "try: use UDP hole punching, or Linux 3.9+, macOS or a BSD" in text

    asyncio.run(scenario())


def test_a_registered_peer_that_never_punches_fails_with_a_reason() -> None:
    async def scenario() -> None:
        async with await serve_tcp("127.0.0.1", 0) as server:
            silent = socket.create_connection(server.address)  # registers, then never listens nor connects
            try:
                silent.sendall(encode_frame(ExtRegister(b"quiet", bytes(8), 2)))
                fake = Endpoint.from_sockaddr(silent.getsockname())
                a, b = await asyncio.gather(*(tcp_connect(server.address, "quiet", 2, timeout=1.5) for _ in range(2)))
            finally:
                silent.close()
            try:
                for mesh, other in ((a, b), (b, a)):
                    assert not mesh.complete and mesh.result.failed == (fake,)
                    assert mesh.connected == [other.local]
                    status = {p.endpoint: p for p in mesh.peers}[fake]
                    assert status.state is TcpPeerState.FAILED and not status.connected
                    assert status.reason.startswith(f"no TCP connection to {fake} after {status.attempts} connect attempts")
                    assert "ECONNREFUSED" in status.reason and "try: check that the peer is running" in status.reason
                    assert status.attempts >= 2 and status.errors["ECONNREFUSED"] >= 2  # retried after each RST
                a.send(b.local, b"still fine")
                assert await receive_all(b, {a.local: b"still fine"}) == {a.local: b"still fine"}
            finally:
                await asyncio.gather(a.close(), b.close())

    asyncio.run(scenario())


def test_wrong_config_type_and_transport_are_refused_at_once() -> None:
    with pytest.raises(TypeError, match="TcpClientConfig"):
        holepunch.connect("127.0.0.1:5000", "s", 1, transport="tcp", config=holepunch.ClientConfig())
    with pytest.raises(TypeError, match="ClientConfig"):
        holepunch.connect("127.0.0.1:5000", "s", 1, config=FAST)
    with pytest.raises(ValueError, match="'udp' or 'tcp'"):
        holepunch.connect("127.0.0.1:5000", "s", 1, transport="sctp")


def test_closed_mesh_refuses_sends_and_ends_recv() -> None:
    async def scenario() -> None:
        async with await serve_tcp("127.0.0.1", 0) as server:
            async with tcp_connect(server.address, "alone", 0) as mesh:
                assert mesh.complete and mesh.connected == []
            assert mesh.closed and mesh.machine.listed == {}
            with pytest.raises(MeshClosed):
                await mesh.recv()
            with pytest.raises(MeshClosed):
                mesh.send(Endpoint("127.0.0.1", 9), b"x")

    asyncio.run(scenario())


# --- blocking, serve_all and the CLI ---------------------------------------------------------------


def test_connect_blocking_over_tcp(background: Any) -> None:
    server = background.run(serve_tcp("127.0.0.1", 0))
    other = background.submit(opened(tcp_connect(server.address, "blocking", 1)))
    mesh = holepunch.connect_blocking(server.address, "blocking", 1, timeout=10, config=FAST, bind=LOCAL, transport="tcp")
    peer = other.result(10)
    try:
        assert isinstance(mesh, BlockingTcpMesh) and mesh.complete and mesh.connected == [peer.local]
        mesh.send(peer.local, b"from a thread")
        assert background.run(receive_all(peer, {mesh.local: b"from a thread"})) == {mesh.local: b"from a thread"}
        sock = mesh.socket(peer.local)
        sock.sendall(b" and raw")
        assert background.run(receive_all(peer, {mesh.local: b" and raw"})) == {mesh.local: b" and raw"}
        sock.close()
    finally:
        mesh.close()
        background.run(peer.close())
        background.run(server.close())


def test_serve_all_serves_udp_and_tcp_on_one_port_number() -> None:
    async def scenario() -> None:
        async with await serve_all("127.0.0.1", 0) as servers:
            assert servers.transports == ("udp", "tcp") and servers.udp is not None and servers.tcp is not None
            assert servers.udp.address == servers.tcp.address == servers.address
            meshes = await asyncio.gather(*(tcp_connect(servers.address, "both", 1) for _ in range(2)))
            assert all(mesh.complete for mesh in meshes)
            await asyncio.gather(*(mesh.close() for mesh in meshes))
        assert servers.udp.closed and servers.tcp.closed
        with pytest.raises(ValueError, match="transports"):
            await serve_all("127.0.0.1", 0, transports=("quic",))

    asyncio.run(scenario())


def test_cli_server_serves_both_transports_and_connect_tcp_json_works(background: Any,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "holepunch", "server", "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("holepunch server listening on 127.0.0.1:")
        address = line.split()[-1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # UDP on that port: a plain registration
            udp.settimeout(5)
            udp.sendto(b"udp-too", Endpoint.parse(address))
            assert udp.recvfrom(100)[0] == b""
        other = background.submit(opened(tcp_connect(address, "cli-tcp", 1)))
        code = main(["connect", address, "cli-tcp", "--peers", "1", "--timeout", "10", "--tcp", "--json"])
        report = json.loads(capsys.readouterr().out)
        peer = other.result(10)
        assert code == 0 and report["complete"] and report["transport"] == "tcp" and report["extended"]
        assert report["peers"] == [{"endpoint": str(peer.local), "state": "connected", "connected": True,
                                    "elapsed_ms": report["peers"][0]["elapsed_ms"], "reason": ""}]
        assert report["public_endpoint"] == str(peer.result.connected[0])  # the CLI closed: TCP tells the peer
        background.run(peer.close())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "serving UDP and TCP on port" in err and "joined 'cli-tcp' (extension, 2 members)" in err


def test_cli_connect_tcp_exits_1_with_the_reason_when_no_server_listens(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_tcp_port()
    assert main(["connect", f"127.0.0.1:{port}", "x", "--peers", "1", "--timeout", "0.3", "--tcp"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"holepunch connect: error: no answer from the rendezvous server 127.0.0.1:{port} over TCP")


def test_cli_server_transport_flags_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--udp-only", "--tcp-only"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
