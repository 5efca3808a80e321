"""NAT discovery over real UDP sockets: `serve_discovery` (the responder) and `nat_check` (the client).

Rule: the protocol lives in `DiscoveryResponder` and `NatChecker`; this module binds sockets and
runs them with `SocketsDriver`, the usual drive loop over a fixed list of sockets where socket i
is `Transmit.via` i (the responder's alternates need fixed ports, which the rendezvous `Driver`'s
extra sockets do not have). Datagrams go out through `sock.sendto` (never a transport's sendto,
which drops 0-byte datagrams on Python 3.11).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable, Iterable
from typing import Any

from ..protocol.config import ServerConfig
from ..protocol.discovery_server import DiscoveryResponder
from ..protocol.endpoint import Endpoint
from ..protocol.nat_check import NatChecker, NatVerdict
from ..protocol.server import RendezvousServer
from .driver import (
    AddressLike,
    enlarge_buffers,
    open_udp_socket,
    parse_address,
    resolve,
)

log = logging.getLogger("holepunch.discovery")
MAX_DATAGRAM = 65535


class SocketsDriver:
    """Feeds `machine` from every socket (with its index as `via`) and sends from the socket named."""

    def __init__(self, machine: Any, socks: list[socket.socket], on_event: Callable[[Any], None] = lambda e: None,
                 after_pump: Callable[[], None] = lambda: None) -> None:
        self.machine = machine
        self.socks = socks
        self._on_event = on_event
        self._after_pump = after_pump
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Read every socket, then pump once (a checker's `start` has queued its first probe)."""
        for via, sock in enumerate(self.socks):
            self._loop.add_reader(sock.fileno(), self._on_readable, via)
        self.pump()

    def stop(self) -> None:
        """Stop reading and cancel the timer; closes the sockets."""
        for sock in self.socks:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
                sock.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_readable(self, via: int) -> None:
        now, sock = self._loop.time(), self.socks[via]
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # ICMP errors surface here on Linux: UDP shrugs them off
                log.debug("receive error on socket %d: %s", via, exc)
                break
            self.machine.receive_datagram(data, Endpoint.from_sockaddr(addr), now, via)
        self.pump()

    def _on_timer(self) -> None:
        self._timer = None
        self.machine.handle_timer(self._loop.time())
        self.pump()

    def pump(self) -> None:
        """Drain events, send datagrams, re-arm the one timer."""
        now = self._loop.time()
        event = self.machine.next_event()
        while event is not None:
            self._on_event(event)
            event = self.machine.next_event()
        for transmit in self.machine.datagrams_to_send(now):
            sock = self.socks[transmit.via] if transmit.via < len(self.socks) else None
            if sock is None or sock.fileno() < 0:
                continue
            try:
                sock.sendto(transmit.data, _sockaddr(sock, transmit.destination))
            except OSError as exc:
                log.debug("send to %s failed: %s", transmit.destination, exc)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.machine.get_timer()
        if when is not None:
            self._timer = self._loop.call_at(max(when, now), self._on_timer)
        self._after_pump()


def _sockaddr(sock: socket.socket, endpoint: Endpoint) -> tuple[str, int]:
    """An IPv4 destination on a dual-stack socket needs its v4-mapped form."""
    if sock.family == socket.AF_INET6 and ":" not in endpoint.host:
        return (f"::ffff:{endpoint.host}", endpoint.port)
    return (endpoint.host, endpoint.port)


class DiscoveryServer:
    """A running responder (with an optional rendezvous server on its primary socket)."""

    def __init__(self, responder: DiscoveryResponder, driver: SocketsDriver, transports: tuple[str, ...] = ("udp",),
                 tcp: Any = None) -> None:
        self.responder = responder
        self._driver = driver
        self.tcp = tcp
        self.transports = transports
        self.endpoints = tuple(Endpoint.from_sockaddr(s.getsockname()) for s in driver.socks)
        """Primary, then alternate port, then alternate address (as bound)."""
        self._closed = asyncio.get_running_loop().create_future()

    @property
    def address(self) -> Endpoint:
        """The primary socket's address (the real port when asked for port 0)."""
        return self.endpoints[0]

    async def close(self) -> None:
        """Stop serving and close every socket; safe to call twice."""
        if not self._closed.done():
            self._driver.stop()
            if self.tcp is not None:
                await self.tcp.close()
            self._closed.set_result(None)

    async def serve_forever(self) -> None:
        """Wait until closed."""
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> DiscoveryServer:  # noqa: PYI034 (typing.Self needs 3.11)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def serve_discovery(host: str = "0.0.0.0", port: int = 3478, alt_port: int = 0, alt_host: str | None = None, *,
                          rendezvous: bool = False, config: ServerConfig | None = None,
                          transports: Iterable[str] = ("udp",)) -> DiscoveryServer:
    """Answer probes on `host:port`, `host:alt_port` and `alt_host:port`; with `rendezvous`, the
    primary socket also serves registrations (and "tcp" in `transports` adds the TCP server)."""
    if alt_host and alt_port == 0:
        raise ValueError("an alternate address needs an alternate port too (RFC 5780 §4.1)")
    socks = [_bind(host, port)]
    try:
        port = socks[0].getsockname()[1]
        if alt_port:
            socks.append(_bind(host, alt_port))
        if alt_host:
            socks.append(_bind(alt_host, port))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    now = asyncio.get_running_loop().time()  # and a secret cookie key per run, as serve() passes
    machine = RendezvousServer(config, now=now, cookie_key=os.urandom(32)) if rendezvous else None
    responder = DiscoveryResponder(alt_port, alt_host or "", rendezvous=machine)
    from .server import (
        _log_event,  # the rendezvous server's log lines, as `serve` writes them
    )

    driver = SocketsDriver(responder, socks, _log_event)
    tcp = None
    if "tcp" in tuple(transports):
        from .tcp_server import serve_tcp

        tcp = await serve_tcp(host, port)
    server = DiscoveryServer(responder, driver, tuple(t for t in ("udp", "tcp") if t == "udp" or tcp), tcp)
    driver.start()
    log.info("discovery on %s", ", ".join(str(e) for e in server.endpoints))
    return server


def _bind(host: str, port: int) -> socket.socket:
    """A bound UDP socket with SO_REUSEADDR, so an alternate address may share a wildcard's port."""
    sock = open_udp_socket(host, port, reuse_address=True)
    enlarge_buffers(sock)
    return sock


async def nat_check(server: AddressLike, alt: str | None = None, *, timeout: float = 10.0,
                    seed: int | None = None) -> NatVerdict:
    """Run the discovery tests against `server`; `alt` overrides the alternate address it announces."""
    endpoint = await resolve(parse_address(server))
    local_ip = _local_ip_for(endpoint)
    socks = [_bind(local_ip, 0), _bind(local_ip, 0)]
    local = Endpoint.from_sockaddr(socks[0].getsockname())
    checker = NatChecker(endpoint, local=local, alt_address=alt, rng=random.Random(seed))
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()
    checker.start(loop.time())
    driver = SocketsDriver(checker, socks, after_pump=lambda: finished.set() if checker.done else None)
    driver.start()
    try:
        await asyncio.wait_for(finished.wait(), timeout)
    except asyncio.TimeoutError:
        pass  # reported below, with the server's address
    finally:
        driver.stop()
    if checker.verdict is None:
        raise TimeoutError(f"the NAT check against {endpoint} did not finish in {timeout:g} s")
    return checker.verdict


def _local_ip_for(remote: Endpoint) -> str:
    """The local address the kernel would use towards `remote` (a connected UDP socket sends nothing)."""
    family = socket.AF_INET6 if ":" in remote.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((remote.host, remote.port))
        return str(probe.getsockname()[0])
