"""Live statistics (holepunch/aio/stats.py and `holepunch server --stats/--stats-port`), over real
loopback sockets: UDP registrations in, HTTP GET and printed lines out.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import holepunch
from holepunch.aio.server import serve_all
from holepunch.aio.stats import StatsView, format_line, serve_stats
from holepunch.cli import main
from holepunch.protocol import ServerConfig

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[1]


def _udp_register(port: int, session: bytes, count: int) -> list[socket.socket]:
    """`count` plain clients register in `session`, each waiting for its reply."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(session, ("127.0.0.1", port))
        sock.recvfrom(2048)
        socks.append(sock)
    return socks


def _http(url: str, method: str = "GET") -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_get_stats_over_http_reports_the_servers_counters() -> None:
    async def scenario() -> None:
        config = ServerConfig(max_peers_per_session=2)
        async with await holepunch.serve("127.0.0.1", 0, config=config) as server:
            loop = asyncio.get_running_loop()
            view = StatsView.of(server, loop.time())
            http = await serve_stats(view, 0)
            port = http.sockets[0].getsockname()[1]
            assert http.sockets[0].getsockname()[0] == "127.0.0.1"  # never public
            socks = await asyncio.to_thread(_udp_register, server.address.port, b"demo", 2)
            third = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            third.sendto(b"demo", ("127.0.0.1", server.address.port))  # session full: refused
            while not server.stats.refused:
                await asyncio.sleep(0.01)
            view.sample(loop.time())
            status, doc = await asyncio.to_thread(_http, f"http://127.0.0.1:{port}/stats")
            assert status == 200
            assert doc["sessions"] == 1 and doc["peers"] == 2 and doc["registrations"] == 3
            assert doc["refusals"] == {"session-full": 1} and doc["registrations_per_second"] > 0
            assert set(doc["tracked"]) == {"sources", "hosts", "refusal_log"}  # type: ignore[arg-type]
            assert (await asyncio.to_thread(_http, f"http://127.0.0.1:{port}/other"))[0] == 404
            assert (await asyncio.to_thread(_http, f"http://127.0.0.1:{port}/stats", "POST"))[0] == 405
            http.close()
            await http.wait_closed()
            for sock in [*socks, third]:
                sock.close()

    asyncio.run(scenario())


def test_a_request_that_is_not_http_gets_400_and_the_server_goes_on() -> None:
    async def scenario() -> None:
        async with await holepunch.serve("127.0.0.1", 0) as server:
            http = await serve_stats(StatsView.of(server, 0.0), 0)
            port = http.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello there\r\n\r\n")
            assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
            writer.close()
            status, _ = await asyncio.to_thread(_http, f"http://127.0.0.1:{port}/stats")
            assert status == 200
            http.close()

    asyncio.run(scenario())


def test_the_line_and_a_tcp_only_server() -> None:
    async def scenario() -> None:
        async with await serve_all("127.0.0.1", 0, transports=("tcp",)) as servers:
            view = StatsView.of(servers, 0.0)
            doc = view.snapshot(1.0)
            assert "sessions" not in doc and doc["tcp"]["connections"] == 0
            assert format_line(doc) == "stats: tcp sessions 0, connections 0; registrations/s 0; refused: none"

    asyncio.run(scenario())
    line = format_line({"sessions": 3, "peers": 7, "registrations_per_second": 12.5,
                        "refusals": {"rate-limited": 2, "amplification": 5}})
    assert line == "stats: sessions 3, peers 7; registrations/s 12.5; refused: amplification 5, rate-limited 2"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["server", "--stats-port", "70000"], "argument --stats-port: 70000 is out of range"),
        (["server", "--stats-port", "http"], "argument --stats-port: 'http' is not a port number"),
        (["server", "--stats", "soon"], "argument --stats: 'soon' is not a number of seconds"),
        (["server", "--stats", "0"], "argument --stats: 0 must be a positive number of seconds"),
    ],
)
def test_bad_stats_options_get_one_line_and_exit_2(argv: list[str], message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_server_process_prints_stats_lines_and_serves_json() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "holepunch", "server", "--host", "127.0.0.1", "--port", "0", "--udp-only",
         "--stats", "0.2", "--stats-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        udp_port = int(proc.stdout.readline().rsplit(":", 1)[1])
        url = proc.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/stats")
        socks = _udp_register(udp_port, b"live", 2)
        lines = [proc.stdout.readline()]
        while "peers 2" not in lines[-1] and len(lines) < 50:  # lines printed before the registrations
            lines.append(proc.stdout.readline())
        status, doc = _http(url)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        for sock in socks:
            sock.close()
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert status == 200 and doc["peers"] == 2 and doc["registrations"] == 2
    assert all(line.startswith("stats: sessions ") for line in lines + out.splitlines())
    assert "peers 2" in lines[-1]
