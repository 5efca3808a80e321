"""The rendezvous server over a real UDP socket: `await serve(...)` returns a running `Server`.

Rule: all protocol decisions are in `holepunch.protocol.server.RendezvousServer`; this module
binds the socket, runs the driver and turns events into log lines (joins, leaves and refusals at
INFO, the refusals already rate-limited by the machine; drops at DEBUG; on the "holepunch.server"
logger). Each server gets a fresh random key for its address cookies. `serve_all` adds the TCP server
(tcp_server.py) on the same port number.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..protocol.config import ServerConfig
from ..protocol.endpoint import Endpoint
from ..protocol.events import DatagramDropped, Event, PeerJoined, PeerLeft, RegistrationRefused, RequestRefused
from ..protocol.server import RendezvousServer, ServerStats
from ..trace import Trace
from .driver import Driver, DriverStats, enlarge_buffers, open_udp_socket, session_text

if TYPE_CHECKING:  # tcp_server imports this module: import it lazily at run time
    from ..protocol.tcp_server import TcpServerConfig
    from .tcp_server import TcpServer

log = logging.getLogger("holepunch.server")


_S = TypeVar("_S", bound="Serving")


class Serving:
    """What a running server shares with the other transport's: its address, `close()`,
    `serve_forever()`, `async with`. Subclasses set `machine` and `_driver`, and may extend
    `_shutdown` (what closing stops) and `_population` (the count `repr` shows)."""

    label = "server"
    """Names the server in log lines ("server on ... stopped")."""

    def __init__(self, machine: Any, driver: Any) -> None:
        self.machine = machine
        self._driver = driver
        self._closed = asyncio.get_running_loop().create_future()

    @property
    def address(self) -> Endpoint:
        """The address actually bound (the real port when asked for port 0)."""
        return self._driver.local  # type: ignore[no-any-return]

    @property
    def trace(self) -> Trace | None:
        """The trace being recorded, if tracing was asked for."""
        return self._driver.trace  # type: ignore[no-any-return]

    @property
    def closed(self) -> bool:
        """True once `close()` has run."""
        return self._closed.done()

    async def close(self) -> None:
        """Stop serving and close the sockets; safe to call twice."""
        if self._closed.done():
            return
        self._shutdown()
        self._closed.set_result(None)
        log.info("%s on %s stopped", self.label, self.address)

    def _shutdown(self) -> None:
        self._driver.stop()

    def _population(self) -> str:
        return ""

    async def serve_forever(self) -> None:
        """Wait until the server is closed (from another task or a signal handler)."""
        await asyncio.shield(self._closed)

    async def __aenter__(self: _S) -> _S:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "serving"
        return f"<{type(self).__name__} {self.address} {state}, {self._population()}>"


class Server(Serving):
    """A running rendezvous server; stop it with `await close()` or `async with server:`."""

    machine: RendezvousServer
    _driver: Driver

    @property
    def stats(self) -> ServerStats:
        """Protocol counters: registrations, replies, pushes, refusals and drops by reason."""
        return self.machine.stats

    @property
    def io_stats(self) -> DriverStats:
        """Socket counters: datagrams received and sent, and sends the kernel refused."""
        return self._driver.stats

    def _shutdown(self) -> None:
        self._driver.stop()
        self._driver.sock.close()

    def _population(self) -> str:
        return f"{self.machine.member_count} members"


async def serve(
    host: str = "0.0.0.0",
    port: int = 5000,
    *,
    config: ServerConfig | None = None,
    trace: Trace | None = None,
    secret: str | bytes | Sequence[str | bytes] | None = None,
) -> Server:
    """Bind `host:port` (port 0 picks a free one) and start serving; returns the running server.

    `secret` (one, or a sequence: the current first, then older ones still accepted) sets
    `ServerConfig.secrets`: only clients with a secret can register (docs/wire-protocol.md, "Authentication")."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    config = with_secrets(config, secret)
    sock = open_udp_socket(host, port)
    enlarge_buffers(sock)
    loop = asyncio.get_running_loop()
    machine = RendezvousServer(config, now=loop.time(), cookie_key=os.urandom(32))  # a secret per run
    driver = Driver(machine, sock, _log_event, trace=trace, actor="server")
    server = Server(machine, driver)
    driver.start()
    log.info("server listening on %s", server.address)
    return server


def with_secrets(
    config: ServerConfig | None, secret: str | bytes | Sequence[str | bytes] | None
) -> ServerConfig | None:
    """`config` with `secret` as its `secrets` (validated there); `ValueError` if both set them."""
    if secret is None:
        return config
    if config is not None and config.secrets:
        raise ValueError("give the secrets either as secret= or in config.secrets, not both")
    secrets = (secret,) if isinstance(secret, (str, bytes)) else tuple(secret)
    return dataclasses.replace(config or ServerConfig(), secrets=secrets)


def _log_event(event: Event) -> None:
    """Joins, leaves and refusals at INFO; drops at DEBUG (they can come by the thousand)."""
    if not log.isEnabledFor(logging.INFO):  # cached check: nearly free at 80k events a second
        return
    match event:
        case PeerJoined(session, endpoint, extended, members):
            how = "extension" if extended else "plain"
            log.info("%s joined %s (%s, %d member%s)", endpoint, session_text(session), how, members, "s"[members == 1:])
        case PeerLeft(session, endpoint, reason):
            log.info("%s left %s (%s)", endpoint, session_text(session), reason)
        case RegistrationRefused(session, source, reason):
            log.info("refused %s in %s: %s", source, session_text(session), reason)
        case RequestRefused(source, reason, suppressed, session):  # at most once per source, reason
            where = f" in {session_text(session)}" if session else ""  # and refusal_log_interval
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            log.info("refused %s%s: %s%s", source, where, reason, more)
        case DatagramDropped(source, size, reason):
            log.debug("dropped %d bytes from %s: %s", size, source, reason)


# --- UDP and TCP on one port number ---------------------------------------------------------------

TRANSPORTS = ("udp", "tcp")
PORT_TRIES = 20
"""Ports tried when asked for port 0: the OS picks a free UDP port, which may be taken for TCP."""


class Servers:
    """The UDP and TCP rendezvous servers of one port number (either may be None)."""

    def __init__(self, udp: Server | None, tcp: TcpServer | None) -> None:
        self.udp = udp
        self.tcp = tcp

    @property
    def address(self) -> Endpoint:
        """The address both serve on (the real port when asked for port 0)."""
        server = self.udp or self.tcp
        assert server is not None
        return server.address

    @property
    def transports(self) -> tuple[str, ...]:
        """"udp", "tcp" or both, in that order."""
        return tuple(name for name, server in (("udp", self.udp), ("tcp", self.tcp)) if server is not None)

    async def close(self) -> None:
        """Stop both servers; safe to call twice."""
        for server in (self.udp, self.tcp):
            if server is not None:
                await server.close()

    async def serve_forever(self) -> None:
        """Wait until either server is closed."""
        waits = [asyncio.ensure_future(s.serve_forever()) for s in (self.udp, self.tcp) if s is not None]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def __aenter__(self) -> Servers:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Servers {'+'.join(self.transports)} on {self.address}>"


async def serve_all(
    host: str = "0.0.0.0",
    port: int = 5000,
    *,
    transports: Iterable[str] = TRANSPORTS,
    config: ServerConfig | None = None,
    tcp_config: TcpServerConfig | None = None,
    trace: Trace | None = None,
) -> Servers:
    """Serve each of `transports` ("udp", "tcp") on `host:port`; port 0 picks one free for both."""
    from .tcp_server import serve_tcp

    wanted = tuple(transports)
    if not wanted or any(t not in TRANSPORTS for t in wanted):
        raise ValueError(f"transports must be some of {TRANSPORTS}, got {wanted!r}")
    if config is not None and config.secrets and "tcp" in wanted:  # TCP would let anyone in
        raise ValueError("secrets authenticate UDP sessions only; serve transports=('udp',)")
    for _ in range(PORT_TRIES if port == 0 else 1):
        udp = await serve(host, port, config=config, trace=trace) if "udp" in wanted else None
        number = port if udp is None else udp.address.port
        try:
            tcp = await serve_tcp(host, number, tcp_config, trace) if "tcp" in wanted else None
        except OSError as exc:
            if udp is not None:
                await udp.close()
            if port == 0 and udp is not None and exc.errno == errno.EADDRINUSE:
                continue  # that UDP port is taken for TCP: let the OS pick another
            raise OSError(exc.errno, f"TCP port {number} is not available ({exc.strerror}); stop the program "
                                     f"holding it, or serve UDP only") from exc
        return Servers(udp, tcp)
    raise OSError(errno.EADDRINUSE, f"no port number free for both UDP and TCP after {PORT_TRIES} tries")
