"""The extra UDP sockets a driver holds for birthday probing (`PeerClient.sockets_wanted`).

Rule: extra socket i (1-based, the `via` of `Transmit` and of `receive_datagram`) is bound to the
driver's address on a port the OS picks. The set grows and shrinks at its end only, so a socket
keeps its index for as long as it lives (the machine ties a punched peer to that index). What
arrives is handed to the driver with its index; the driver keeps counting, tracing and pumping.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from ..protocol.endpoint import Endpoint

log = logging.getLogger("holepunch.driver")

Feed = Callable[[bytes, Endpoint, float, int], None]
"""Called per datagram with (data, source, now, via)."""


class ExtraSockets:
    """Extra sockets `via` 1..N on the running event loop: opened by `open_socket`, read until closed."""

    def __init__(self, open_socket: Callable[[], socket.socket], feed: Feed, *,
                 on_error: Callable[[int, OSError], None], after: Callable[[float], None],
                 batch: int, max_datagram: int, name: Callable[[], object]) -> None:
        self._open = open_socket
        self._feed = feed
        self._on_error = on_error
        self._after = after
        self._batch = range(batch)
        self._max_datagram = max_datagram
        self._name = name  # for log lines: the driver's actor or address
        self._loop = asyncio.get_running_loop()
        self._socks: list[socket.socket] = []  # `via` i is _socks[i - 1]

    def __len__(self) -> int:
        return len(self._socks)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The open extra sockets; `via` i is the i-th."""
        return tuple(self._socks)

    def resize(self, wanted: int) -> None:
        """Close the sockets beyond `wanted`, or open sockets up to `wanted`."""
        while len(self._socks) > wanted:
            sock = self._socks.pop()
            self._loop.remove_reader(sock.fileno())  # a no-op if it was never added
            sock.close()
        while len(self._socks) < wanted:
            try:
                sock = self._open()
            except OSError as exc:  # EMFILE and the like: punch with the sockets we have
                log.warning("%s: cannot open extra socket %d: %s", self._name(), len(self._socks) + 1, exc)
                break
            self._socks.append(sock)
            self._loop.add_reader(sock.fileno(), self._on_readable, len(self._socks))

    def sendto(self, via: int) -> Callable[..., int]:
        """The `sendto` of socket `via`; one that raises OSError if the machine never asked for it."""
        if via <= len(self._socks):
            return self._socks[via - 1].sendto
        return _no_socket

    def _on_readable(self, via: int) -> None:
        """Feed what arrived on socket `via` (up to one batch), then let the driver pump once."""
        if via > len(self._socks):
            return  # closed since the loop saw it readable
        now, sock = self._loop.time(), self._socks[via - 1]
        for _ in self._batch:
            try:
                data, addr = sock.recvfrom(self._max_datagram)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._on_error(via, exc)
                break
            self._feed(data, Endpoint.from_sockaddr(addr), now, via)
        self._after(now)


def _no_socket(data: bytes, address: object) -> int:
    raise OSError("no such extra socket (the machine sent via a socket it did not ask for)")
