"""NAT discovery over real loopback sockets: the responder, `nat_check` and the CLI commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from holepunch.aio.discovery import nat_check, serve_discovery
from holepunch.cli import main
from holepunch.protocol.nat_check import FilteringBehavior, MappingBehavior

ROOT = Path(__file__).resolve().parents[1]


def _free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _second_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


def test_loopback_is_no_nat_with_an_alternate_port() -> None:
    async def run() -> tuple:
        async with await serve_discovery("127.0.0.1", 0, _free_udp_port()) as server:
            verdict = await nat_check(server.address, timeout=10)
            return verdict, server.responder.probes

    verdict, probes = asyncio.run(run())
    assert verdict.classic_name == "no NAT" and verdict.nat is False and verdict.observed == verdict.local
    assert verdict.mapping is MappingBehavior.EIM and verdict.filtering is FilteringBehavior.ADF
    assert verdict.alt_port_tested and not verdict.alt_address_tested and probes >= 4


@pytest.mark.skipif(not _second_loopback_works(), reason="127.0.0.2 is not a local address here")
def test_loopback_with_an_alternate_address_tests_filtering_fully() -> None:
    async def run() -> object:
        async with await serve_discovery("127.0.0.1", 0, _free_udp_port(), "127.0.0.2") as server:
            assert [e.host for e in server.endpoints] == ["127.0.0.1", "127.0.0.1", "127.0.0.2"]
            return await nat_check(server.address, timeout=10)

    verdict = asyncio.run(run())
    assert verdict.classic_name == "no NAT" and verdict.filtering is FilteringBehavior.EIF  # type: ignore[attr-defined]
    assert verdict.alt_address_tested  # type: ignore[attr-defined]


def test_the_primary_socket_still_serves_registrations() -> None:
    async def run() -> tuple[bytes, tuple]:
        async with await serve_discovery("127.0.0.1", 0, _free_udp_port(), rendezvous=True) as server:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.setblocking(False)
                client.connect(tuple(server.address))
                await loop.sock_sendall(client, b"sess")
                reply = await asyncio.wait_for(loop.sock_recv(client, 100), 5)
            return reply, tuple(server.responder.rendezvous.members(b"sess"))

    reply, members = asyncio.run(run())
    assert reply == b"" and len(members) == 1


def test_cli_server_with_alt_port_and_nat_check(capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    alt = _free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "holepunch", "server", "--host", "127.0.0.1", "--port", "0", "--udp-only",
         "--alt-port", str(alt)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("holepunch server listening on 127.0.0.1:"), line
        server = line.rsplit(" ", 1)[1].strip()
        assert main(["nat-check", server]) == 0
        text = capsys.readouterr().out
        assert "verdict:     no NAT" in text and "mapping:     EIM" in text
        assert main(["nat-check", server, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["classic_name"] == "no NAT" and report["nat"] is False and report["alt_port_tested"]
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0


def test_nat_check_against_a_silent_server_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        assert main(["nat-check", f"127.0.0.1:{port}", "--timeout", "5"]) == 1
    assert "did not answer" in capsys.readouterr().err


@pytest.mark.parametrize("argv, complaint", [
    (["server", "--alt-host", "example.org", "--alt-port", "5001"], "not an IP address"),
    (["nat-check"], "required"),
    (["nat-check", "127.0.0.1:5000", "--alt", "nowhere"], "not an IP address"),
])
def test_bad_arguments_exit_2(argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert complaint in capsys.readouterr().err


def test_alt_host_without_alt_port_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--host", "127.0.0.1", "--port", "0", "--alt-host", "127.0.0.2"]) == 1
    assert "--alt-host needs --alt-port" in capsys.readouterr().err
