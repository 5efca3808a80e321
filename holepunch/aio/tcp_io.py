"""The socket edge of the TCP drivers: bound sockets with SO_REUSEADDR and SO_REUSEPORT, errno names.

Rule: every socket of a peer (the server connection, the listener, each connect) sets
SO_REUSEADDR and SO_REUSEPORT before `bind()`, so all of them share the one local port P
(docs/wire-protocol.md §8); a platform without SO_REUSEPORT gets ENOPROTOOPT, which the core
explains. Failures reach the machines as errno names (`errno.errorcode`), never as exceptions.
"""

from __future__ import annotations

import errno
import os
import socket
from collections import Counter
from dataclasses import dataclass, field

from ..protocol.endpoint import Endpoint
from ..protocol.messages import MessageError, MessageKind
from ..protocol.tcp_messages import ConnId, Hello, TcpKind, decode_body
from .driver import describe_packet

RECV_SIZE = 65536
"""Bytes asked of the kernel per read."""
READS_PER_WAKEUP = 16
"""Reads per readable socket before the next pump: fair to the other sockets."""
BACKLOG = 128
"""Listen backlog: the connections the kernel queues before we accept them."""
MAX_QUEUED = 8 << 20
"""Bytes queued for one connection the kernel will not take; beyond that it is given up as stuck."""


def errno_name(code: int | None) -> str:
    """The symbolic name of an errno value ("ECONNREFUSED"), as the machines and ERRNO_HELP expect."""
    if not code:
        return "EIO"
    return errno.errorcode.get(code, f"errno {code}")


def tcp_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A non-blocking TCP socket bound to host:port with SO_REUSEADDR, and SO_REUSEPORT if asked.

    Raises `OSError(ENOPROTOOPT)` when the platform has no SO_REUSEPORT; "::" is dual-stack.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if os.name != "nt":  # on Windows SO_REUSEADDR lets another program steal the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            option = getattr(socket, "SO_REUSEPORT", None)
            if option is None:
                raise OSError(errno.ENOPROTOOPT, "this platform has no SO_REUSEPORT")
            sock.setsockopt(socket.SOL_SOCKET, option, 1)
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class Conn:
    """One watched TCP socket: connecting, open, or closing once its queued bytes are written."""

    __slots__ = ("closing", "conn_id", "connecting", "out", "remote", "sock")

    def __init__(self, conn_id: ConnId, sock: socket.socket, remote: Endpoint, *, connecting: bool) -> None:
        self.conn_id = conn_id
        self.sock = sock
        self.remote = remote
        self.connecting = connecting
        self.closing = False
        self.out = bytearray()


@dataclass
class TcpDriverStats:
    """Socket-level counters of one TCP driver."""

    connects: int = 0
    connected: int = 0
    connect_errors: Counter[str] = field(default_factory=Counter)
    """Failed connects by errno name (ECONNREFUSED is an RST, or nothing listening)."""
    accepted: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    lost: int = 0
    """Connections the far side closed or reset, or the network broke."""


def describe_write(kind: str, data: bytes) -> str:
    """What a written frame (or application data) says, in a few words, for traces."""
    if kind == MessageKind.DATA.value:
        return describe_packet(MessageKind.DATA, data)
    if kind == TcpKind.SELECT.value:
        return "keep this stream"
    try:
        frame = decode_body(data[4:])
    except MessageError as exc:
        return f"malformed: {exc}"
    if isinstance(frame, Hello):
        return f"I am {frame.peer_id.hex()}, for {frame.target.hex()}"
    return describe_packet(MessageKind(kind), data[4:])
