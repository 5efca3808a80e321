"""The command line with a session secret: --secret-file, $HOLEPUNCH_SECRET, their errors, and a real
server process that only lets peers with the secret in."""

from __future__ import annotations

import asyncio
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
from holepunch.commands.secret import SECRET_ENV
from holepunch.protocol.config import ClientConfig

pytestmark = pytest.mark.timeout(60)
FAST = ClientConfig(register_interval=0.05, extended_refresh_interval=0.2, punch_interval=0.05, final_ack_delay=0.02)
ROOT = Path(__file__).resolve().parent.parent
SECRET = "cli secret"


@pytest.fixture(autouse=True)
def no_secret_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text(f"{SECRET}\n\nthe old one\n", encoding="utf-8")
    return path


def test_secret_file_and_environment_errors_exit_2(
    tmp_path: Path, secret_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n  \n")
    cases = [
        (["connect", "1.2.3.4:5000", "s", "--peers", "1", "--secret-file", str(tmp_path / "nope")],
         "cannot read secret file"),
        (["chat", "1.2.3.4:5000", "s", "--peers", "1", "--secret-file", str(empty)], "is empty; put the secret"),
        (["server", "--secret-file", str(tmp_path)], "cannot read secret file"),  # a directory
        (["server", "--tcp-only", "--secret-file", str(secret_file)], "authenticates UDP only; drop --tcp-only"),
        (["connect", "1.2.3.4:5000", "s", "--peers", "1", "--tcp", "--secret-file", str(secret_file)],
         "authenticates UDP only; drop --tcp"),
    ]
    for argv, complaint in cases:
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and complaint in err and "--help" in err
    monkeypatch.setenv(SECRET_ENV, " ")
    assert main(["connect", "1.2.3.4:5000", "s", "--peers", "1"]) == 2
    assert f"{SECRET_ENV} is set but empty" in capsys.readouterr().err


def test_connect_with_a_secret_file_or_the_environment(
    background: Any, secret_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = background.run(holepunch.serve("127.0.0.1", 0, secret=SECRET))

    async def other() -> Any:
        return await holepunch.connect(server.address, "cli-auth", 1, timeout=10, config=FAST,
                                       bind=("127.0.0.1", 0), secret=SECRET)

    for how in ("file", "environment"):
        peer = background.submit(other())
        argv = ["connect", str(server.address), "cli-auth", "--peers", "1", "--timeout", "10"]
        if how == "file":
            argv += ["--secret-file", str(secret_file)]  # its first line
        else:
            monkeypatch.setenv(SECRET_ENV, SECRET)
        assert main(argv) == 0, how
        assert capsys.readouterr().out.startswith("connected ")
        background.run(peer.result(10).close())
    monkeypatch.setenv(SECRET_ENV, "wrong")
    assert main(["connect", str(server.address), "cli-auth", "--peers", "1", "--timeout", "5"]) == 1
    assert "refused: bad-auth (wrong or missing secret)" in capsys.readouterr().err
    background.run(server.close())


def test_server_process_with_a_secret_file_serves_only_peers_with_the_secret(secret_file: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "holepunch", "server", "--host", "127.0.0.1", "--port", "0",
         "--secret-file", str(secret_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("holepunch server listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
            plain.settimeout(0.3)
            plain.sendto(b"proc", ("127.0.0.1", port))
            with pytest.raises(socket.timeout):
                plain.recvfrom(100)  # a plain registration is never answered

        async def pair() -> list[bool]:
            async def one(secret: str) -> bool:
                async with await holepunch.connect(("127.0.0.1", port), "proc", 1, timeout=1, config=FAST,
                                                   bind=("127.0.0.1", 0), secret=secret) as mesh:
                    await asyncio.sleep(0.05)  # let the other side's final ACK land
                    return mesh.complete
            return list(await asyncio.gather(one(SECRET), one("the old one")))  # both lines are accepted

        # Peers on different secrets register but never connect to each other (rotation, docs).
        assert asyncio.run(pair()) == [False, False]

        async def same() -> list[bool]:
            async def one() -> bool:
                async with await holepunch.connect(("127.0.0.1", port), "proc2", 1, timeout=10, config=FAST,
                                                   bind=("127.0.0.1", 0), secret=SECRET) as mesh:
                    await asyncio.sleep(0.05)
                    return mesh.complete
            return list(await asyncio.gather(one(), one()))

        assert asyncio.run(same()) == [True, True]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "authentication on (2 secrets)" in err and "joined 'proc2' (extension, 2 members)" in err
