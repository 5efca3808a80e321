"""The command line through `main(argv)`: argument errors, connect, chat, demo, and a real server process."""

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
from holepunch.cli import main
from holepunch.protocol.config import ClientConfig

pytestmark = pytest.mark.timeout(60)
FAST = ClientConfig(register_interval=0.05, extended_refresh_interval=0.2, punch_interval=0.05, final_ack_delay=0.02)
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["connect", "nohost", "s", "--peers", "1"], "argument SERVER: bad server address 'nohost': missing port"),
        (["connect", "1.2.3.4:5000", "s", "--peers", "-1"], "argument --peers: -1 is negative"),
        (["connect", "1.2.3.4:5000", "s", "--peers", "two"], "'two' is not a whole number"),
        (["connect", "1.2.3.4:5000", "s", "--peers", "1", "--timeout", "-3"], "--timeout: -3 must be a positive"),
        (["chat", "1.2.3.4:5000", "s", "--peers", "1", "--wait-timeout", "0"], "--wait-timeout: 0 must be a positive"),
        (["server", "--port", "70000"], "argument --port: 70000 is out of range; use 0-65535"),
        (["connect", "1.2.3.4:5000", "s"], "required: --peers"),
        (["demo", "--peers", "1"], "the demo needs 2 to 26"),
        (["launch"], "invalid choice: 'launch'"),
        ([], "required: COMMAND"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert complaint in err and "--help" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connect", "--help"]) == 0
    assert "--wait-timeout" in capsys.readouterr().out


def _start_server_and_peer(background: Any, session: str) -> tuple[Any, Any]:
    """A server and one waiting peer on the background loop (the CLI is the other peer)."""
    server = background.run(holepunch.serve("127.0.0.1", 0))

    async def other() -> Any:
        return await holepunch.connect(server.address, session, 1, timeout=10, config=FAST, bind=("127.0.0.1", 0))

    return server, background.submit(other())


def test_connect_json_against_an_in_test_server_and_peer(background: Any, capsys: pytest.CaptureFixture[str]) -> None:
    server, other = _start_server_and_peer(background, "cli-json")
    code = main(["connect", str(server.address), "cli-json", "--peers", "1", "--timeout", "10", "--json"])
    out, _ = capsys.readouterr()
    report = json.loads(out)
    peer = other.result(10)
    assert code == 0 and report["complete"] and report["extended"] and report["expected"] == 1
    assert report["peers"] == [
        {"endpoint": str(peer.local), "state": "connected", "connected": True,
         "elapsed_ms": report["peers"][0]["elapsed_ms"], "reason": "", "path": "direct", "technique": "basic"}
    ]
    assert report["public_endpoint"] == str(peer.connected[0])
    background.run(peer.close())
    background.run(server.close())


def test_connect_prints_one_line_per_peer(background: Any, capsys: pytest.CaptureFixture[str]) -> None:
    server, other = _start_server_and_peer(background, "cli-lines")
    assert main(["connect", f"localhost:{server.address.port}", "cli-lines", "--peers", "1", "-v"]) == 0
    out, err = capsys.readouterr()
    peer = other.result(10)
    assert out.startswith(f"connected {peer.local} direct by basic in ") and out.endswith(" ms\n") and out.count("\n") == 1
    assert "INFO holepunch.client: connected to" in err
    background.run(peer.close())
    background.run(server.close())


def test_connect_exits_1_when_peers_are_missing(background: Any, capsys: pytest.CaptureFixture[str]) -> None:
    server = background.run(holepunch.serve("127.0.0.1", 0))
    async def other_peer() -> Any:
        return await holepunch.connect(server.address, "few", 2, timeout=1, config=FAST, bind=("127.0.0.1", 0))

    other = background.submit(other_peer())

    async def registered() -> None:
        while not server.machine.members(b"few"):
            await asyncio.sleep(0.01)

    background.run(registered())
    assert main(["connect", str(server.address), "few", "--peers", "2", "--timeout", "0.3"]) == 1
    assert capsys.readouterr().out == "missing 2 of 2 expected peers: the server listed 1 (timed out waiting for peers)\n"
    background.run(other.result(5).close())
    background.run(server.close())


def test_connect_exits_1_with_an_error_when_the_server_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        address = "127.0.0.1:%d" % silent.getsockname()[1]
        assert main(["connect", address, "x", "--peers", "1", "--timeout", "0.3"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"holepunch connect: error: no answer from the rendezvous server {address}")


def test_chat_sends_stdin_lines_and_prints_what_arrives(
    background: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, other = _start_server_and_peer(background, "cli-chat")
    read_end, write_end = os.pipe()
    stdin = os.fdopen(read_end, "r", encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)

    async def other_side() -> bytes:
        peer = await asyncio.wrap_future(other)
        peer.send(peer.connected[0], "héllo from the other side".encode())
        os.write(write_end, b"first line\n")
        _, data = await peer.recv()
        os.close(write_end)  # EOF ends the chat
        await peer.close()
        return data

    got = background.submit(other_side())
    assert main(["chat", str(server.address), "cli-chat", "--peers", "1", "--timeout", "10"]) == 0
    assert got.result(10) == b"first line"
    out, err = capsys.readouterr()
    assert "> héllo from the other side\n" in out and out.startswith("<127.0.0.1:")
    assert "chatting with 1 peer(s)" in err
    background.run(server.close())
    stdin.close()


def test_demo_exits_0_and_reports_connections(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--peers", "3"]) == 0
    out = capsys.readouterr().out
    assert "connected to peer B in" in out and "every peer connected to every other" in out


def test_server_process_serves_and_stops_cleanly_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "holepunch", "server", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("holepunch server listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"proc", ("127.0.0.1", port))
            assert client.recvfrom(100) == (b"", ("127.0.0.1", port))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "joined 'proc' (plain, 1 member)" in err


def test_connect_with_a_technique_reports_which_one_found_the_path(
    background: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from holepunch.protocol.config import ClientConfig

    server = background.run(holepunch.serve("127.0.0.1", 0))

    async def other() -> Any:  # no technique of its own: it answers PUNCH only if the CLI sends it
        return await holepunch.connect(server.address, "cli-tech", 1, timeout=10, config=ClientConfig(),
                                       bind=("127.0.0.1", 0))

    waiting = background.submit(other())
    code = main(["connect", str(server.address), "cli-tech", "--peers", "1", "--timeout", "10", "--json",
                 "--technique", "peer-reflexive"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["peers"][0]["path"] == "direct"
    assert report["peers"][0]["technique"] == "basic"  # the listed address worked: nothing else needed
    other = waiting.result(10)
    (peer,) = other.machine.peers.values()
    assert peer.messages is not None, "with a technique on, the CLI client punches with PUNCH, not SYN"
    background.run(other.close())
    background.run(server.close())


def test_technique_names_are_the_implemented_ones() -> None:
    from holepunch.cli import TECHNIQUE_NAMES
    from holepunch.protocol.techniques import IMPLEMENTED

    assert set(TECHNIQUE_NAMES) == {t.value for t in IMPLEMENTED}


def test_unknown_technique_or_technique_with_tcp_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connect", "127.0.0.1:9", "s", "--peers", "1", "--technique", "magic"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["connect", "127.0.0.1:9", "s", "--peers", "1", "--tcp", "--technique", "birthday"]) != 0
    assert "UDP only" in capsys.readouterr().err
