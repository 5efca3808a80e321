"""The relay fallback over real loopback sockets: two real clients and a real server, one client
behind a small UDP proxy that blocks the direct path.

On loopback every address is reachable, so peer B reaches the server only through `Proxy`: B's
datagrams to the proxy's inside port go to the server from its outside port (so the server, and
through it peer A, see the outside port), the server's answers come back, and anything else that
reaches the outside port is dropped. A punches the outside port and is dropped; B's punches reach
A from B's own, unlisted address, which A (without peer-reflexive learning) refuses. The punch
fails, the relay carries the data. `Proxy.open()` later lets A's datagrams through to B (from a
port of their own, as a NAT would), so the background punch can upgrade the pair to direct.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest

import holepunch
from holepunch import Endpoint
from holepunch.aio.client import Mesh
from holepunch.cli import main
from holepunch.protocol import ClientConfig

pytestmark = pytest.mark.timeout(60)
FAST = ClientConfig(register_interval=0.05, extended_refresh_interval=0.2, punch_interval=0.05,
                    final_ack_delay=0.02, techniques={"relay"}, relay_after=0.5)
Address = tuple[str, int]


class _Port:
    """One non-blocking loopback UDP socket that hands what it reads to `on(data, source)`.
    Raw sockets, not asyncio transports: these send 0-byte datagrams (keep-alives) too."""

    def __init__(self, on: Callable[[bytes, Address], None]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.address: Address = self.sock.getsockname()
        self.on = on
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                data, source = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            self.on(data, source)

    def send(self, data: bytes, destination: Address) -> None:
        self.sock.sendto(data, destination)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


class Proxy:
    """Peer B's only way to the server, and (once open) from peer A: a one-peer NAT."""

    def __init__(self, server: Endpoint) -> None:
        self.server: Address = (server.host, server.port)
        self.peer: Address | None = None  # B, learnt from its first datagram
        self.opened = False
        self.dropped = 0
        self.inside = _Port(self._to_server)
        self.outside = _Port(self._from_outside)
        self._doors: dict[Address, _Port] = {}

    @property
    def address(self) -> str:
        """Where B thinks the server is."""
        host, port = self.inside.address
        return f"{host}:{port}"

    def open(self) -> None:
        """From now on, datagrams from others reach B, each source through a port of its own."""
        self.opened = True

    def close(self) -> None:
        for port in (self.inside, self.outside, *self._doors.values()):
            port.close()

    def _back_to(self, remote: Address) -> Callable[[bytes, Address], None]:
        """What a door does with B's answers: send them out to `remote`, from the outside port."""
        return lambda data, _source: self.outside.send(data, remote)

    def _to_server(self, data: bytes, source: Address) -> None:
        self.peer = source
        self.outside.send(data, self.server)

    def _from_outside(self, data: bytes, source: Address) -> None:
        if self.peer is None:
            self.dropped += 1
        elif source == self.server:
            self.inside.send(data, self.peer)
        elif self.opened:
            door = self._doors.get(source)
            if door is None:  # B's answers to this port go back out to `source`
                door = self._doors[source] = _Port(self._back_to(source))
            door.send(data, self.peer)
        else:
            self.dropped += 1


async def _pair(config_b: ClientConfig = FAST) -> tuple[holepunch.aio.server.Server, Proxy, Mesh, Mesh]:
    server = await holepunch.serve("127.0.0.1", 0)
    proxy = Proxy(server.address)
    a, b = await asyncio.gather(
        holepunch.connect(server.address, "relay", 1, timeout=10.0, config=FAST, bind=("127.0.0.1", 0)),
        holepunch.connect(proxy.address, "relay", 1, timeout=10.0, config=config_b, bind=("127.0.0.1", 0)))
    return server, proxy, a, b


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def test_a_blocked_pair_is_relayed_and_data_flows_both_ways() -> None:
    async def scenario() -> None:
        server, proxy, a, b = await _pair()
        try:
            b_listed = Endpoint(*proxy.outside.address)  # where the server saw B
            assert a.complete and b.complete
            assert a.relayed == [b_listed] and b.relayed == [a.local] and a.connected == [b_listed]
            assert proxy.dropped > 0  # A's punches died at the proxy
            [status] = a.peers
            assert status.path == "relayed" and status.technique == "relay" and status.connected
            # The first to offer waited relay_after; the other may answer (and be relayed) sooner.
            elapsed = [p.elapsed or 0.0 for m in (a, b) for p in m.peers]
            assert min(elapsed) > 0 and max(elapsed) >= FAST.relay_after
            [result] = a.results.peers
            assert result.relayed and "peer-reflexive learning is off" in result.reason  # B's punch came unlisted
            a.send(b_listed, b"through the server")
            assert await asyncio.wait_for(b.recv(), 5) == (a.local, b"through the server")
            b.send(a.local, b"and back")
            assert await asyncio.wait_for(a.recv(), 5) == (b_listed, b"and back")
            stats = server.machine.relay_stats
            assert stats.forwarded >= 4 and not stats.refused  # offers, answers and the two messages
        finally:
            await asyncio.gather(a.close(), b.close())
            proxy.close()
            await server.close()

    asyncio.run(scenario())


def test_the_background_punch_upgrades_the_relayed_pair_to_direct() -> None:
    # B adopts the proxy's door for A's PUNCH (peer-reflexive); A keeps SYN/PUNCH at the listed port.
    b_config = ClientConfig(register_interval=0.05, extended_refresh_interval=0.2, punch_interval=0.05,
                            final_ack_delay=0.02, techniques={"relay", "peer-reflexive"}, relay_after=0.5)

    async def scenario() -> None:
        server, proxy, a, b = await _pair(b_config)
        try:
            b_listed = Endpoint(*proxy.outside.address)
            assert a.relayed == [b_listed] and b.relayed == [a.local]
            proxy.open()
            await _until(lambda: not a.relayed and not b.relayed)
            [status] = a.peers
            assert status.path == "direct" and status.state.value == "connected"
            [result] = b.results.peers
            assert result.path == "direct" and result.technique == "peer-reflexive" and result.time_to_relay is not None
            forwarded = server.machine.relay_stats.forwarded
            a.send(b_listed, b"direct now")
            assert await asyncio.wait_for(b.recv(), 5) == (a.local, b"direct now")
            b.send(a.local, b"direct too")
            assert await asyncio.wait_for(a.recv(), 5) == (b_listed, b"direct too")
            assert server.machine.relay_stats.forwarded == forwarded  # neither went through the relay
        finally:
            await asyncio.gather(a.close(), b.close())
            proxy.close()
            await server.close()

    asyncio.run(scenario())


# --- the command line: `holepunch connect ... --relay` says direct or relayed per peer -------------


async def _proxy(server: Endpoint) -> Proxy:
    return Proxy(server)


async def _close(proxy: Proxy) -> None:
    proxy.close()


async def _other(server: Endpoint, session: str) -> Mesh:
    """The peer the CLI meets: an API client with the relay on."""
    return await holepunch.connect(server, session, 1, timeout=10, config=FAST, bind=("127.0.0.1", 0))


@pytest.mark.parametrize("as_json", [False, True])
def test_connect_relay_reports_relayed_per_peer(background: Any, capsys: pytest.CaptureFixture[str],
                                                as_json: bool) -> None:
    session = f"cli-relay-{as_json}"
    server = background.run(holepunch.serve("127.0.0.1", 0))
    proxy = background.run(_proxy(server.address))  # the CLI peer sits behind it
    other = background.submit(_other(server.address, session))
    argv = ["connect", proxy.address, session, "--peers", "1", "--timeout", "10", "--relay", "--relay-after", "0.5"]
    code = main(argv + (["--json"] if as_json else []))
    out = capsys.readouterr().out
    a = other.result(10)
    try:
        assert code == 0
        if as_json:
            report = json.loads(out)
            assert report["complete"]
            [peer] = report["peers"]
            assert (peer["endpoint"], peer["path"], peer["technique"]) == (str(a.local), "relayed", "relay")
            assert peer["connected"] and peer["elapsed_ms"] > 0
        else:
            assert re.fullmatch(rf"connected {re.escape(str(a.local))} relayed by relay in \d+\.\d ms\n", out), out
        assert a.relayed == [Endpoint(*proxy.outside.address)]
    finally:
        background.run(a.close())
        background.run(_close(proxy))
        background.run(server.close())


def test_connect_without_a_blocked_path_says_direct(background: Any, capsys: pytest.CaptureFixture[str]) -> None:
    server = background.run(holepunch.serve("127.0.0.1", 0))
    other = background.submit(_other(server.address, "cli-direct"))
    code = main(["connect", str(server.address), "cli-direct", "--peers", "1", "--timeout", "10", "--relay"])
    out = capsys.readouterr().out
    a = other.result(10)
    try:
        assert code == 0 and re.fullmatch(rf"connected {re.escape(str(a.local))} direct by basic in \S+ ms\n", out), out
        assert not server.machine.relay_stats.forwarded  # the relay was never needed
    finally:
        background.run(a.close())
        background.run(server.close())


def test_relay_with_tcp_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connect", "127.0.0.1:9", "s", "--peers", "1", "--tcp", "--relay"]) == 1
    assert "--relay applies to UDP only" in capsys.readouterr().err
