"""`holepunch connect --tcp` when the other peer closes the moment it has connected (issue 6).

Rule: real loopback sockets and the real CLI process. The other peer is played by hand over a
real TCP stream so that its SELECT and its FIN arrive together, in one segment (TCP_CORK): the
CLI learns that it connected and that the stream closed in the same read, which is what the
faster `holepunch connect` does to the slower one when it exits. The slower one connected all
the same: its report must say so (and say that the stream has closed since), and exit 0.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from holepunch.aio import serve_tcp
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.messages import ExtPeers, ExtRegister
from holepunch.protocol.tcp_messages import (
    FrameDecoder,
    Hello,
    Select,
    TcpFrame,
    encode_frame,
    session_token,
)

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent
OUR_ID = bytes(8)  # the lowest peer id: we are the controlling peer, the one that sends SELECT


def frames(sock: socket.socket) -> Iterator[TcpFrame]:
    """The frames arriving on a blocking stream socket, until it closes."""
    decoder = FrameDecoder()
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            yield frame
            continue
        data = sock.recv(4096)
        if not data:
            return
        decoder.feed(data)


def connect_when_listening(endpoint: Endpoint, patience: float = 5.0) -> socket.socket:
    """Connect to `endpoint`, retrying while nothing listens there yet (ECONNREFUSED)."""
    give_up = time.monotonic() + patience
    while True:
        try:
            return socket.create_connection(endpoint, timeout=5.0)
        except ConnectionRefusedError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.02)


def test_the_slower_cli_peer_reports_connected_when_the_other_closes_at_once(background: Any) -> None:
    server = background.run(serve_tcp("127.0.0.1", 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "holepunch", "connect", str(server.address), "race", "--peers", "1", "--tcp",
            "--json", "--timeout", "5"]
    cli: subprocess.Popen[str] | None = None
    try:
        with socket.create_connection(server.address, timeout=5.0) as to_server:
            to_server.sendall(encode_frame(ExtRegister(b"race", OUR_ID, 1)))
            from_server = frames(to_server)
            assert isinstance(next(from_server), ExtPeers)  # registered, nobody else yet
            cli = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            pushed = next(from_server)
            assert isinstance(pushed, ExtPeers) and len(pushed.peers) == 1
            them = pushed.peers[0]
            with connect_when_listening(them.endpoint) as stream:
                stream.sendall(encode_frame(Hello(session_token(b"race"), OUR_ID, them.peer_id)))
                assert next(frames(stream)) == Hello(session_token(b"race"), them.peer_id, OUR_ID)
                stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)  # SELECT and FIN: one segment
                stream.sendall(encode_frame(Select()))
                stream.shutdown(socket.SHUT_WR)
                stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
                out, err = cli.communicate(timeout=30)
    finally:
        if cli is not None:
            cli.kill()
            cli.wait()
        background.run(server.close())
    assert cli.returncode == 0, f"stdout: {out}\nstderr: {err}"
    report = json.loads(out)
    assert report["complete"] is True and report["reason"] == ""
    (peer,) = report["peers"]
    assert peer["connected"] is True and peer["elapsed_ms"] is not None
    assert peer["state"] == "disconnected" and peer["reason"] == "connection closed by the peer or the network"
