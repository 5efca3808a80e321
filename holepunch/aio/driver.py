"""The asyncio drive loop around one sans-IO machine (RendezvousServer or PeerClient).

Rule: the same shape as aioquic's `asyncio/protocol.py` and the simulator's driver: feed input,
drain events, send datagrams, re-arm exactly one timer at `get_timer()`. The driver owns the
socket and the clock (`loop.time()`); the machine owns every decision. Sockets are read directly
(up to `MAX_BATCH` datagrams per wakeup) and written with `sock.sendto`, because asyncio's
DatagramTransport reads one datagram per wakeup and, on Python 3.11, silently drops 0-byte sends.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Protocol

from ..protocol.endpoint import Endpoint
from ..protocol.events import Event
from ..protocol.messages import Transmit, classify
from ..protocol.server import RendezvousServer
from ..trace import Action, Trace, TraceRecord
from .extra_sockets import ExtraSockets
from .trace_text import describe_event, describe_packet, session_text

__all__ = [  # session_text and the describe_* functions are re-exported for the modules that use them
    "AddressLike", "Driver", "DriverStats", "Machine", "bind_host_for", "describe_event", "describe_packet",
    "enlarge_buffers", "open_udp_socket", "parse_address", "resolve", "session_text",
]

AddressLike = str | tuple[str, int] | Endpoint
"""How callers may give an address: "host:port" text, a (host, port) tuple or an Endpoint."""
MAX_BATCH = 256
"""Datagrams read per wakeup: enough to amortise the event loop, few enough to stay fair."""
MAX_DATAGRAM = 65535
"""Largest UDP payload we accept (the reference client reads into 65,535 bytes too)."""
SOURCES_REMEMBERED = 16384
"""IPv6 socket addresses kept with their Endpoint, so a client polling again costs a dict lookup
rather than an unmapping; emptied when full (cheaper than an LRU). IPv4 needs no memo: at 100,000
sessions one that thrashed cost a sixth of the server's throughput (docs/performance.md)."""
_BATCH = range(MAX_BATCH)
_new_tuple = tuple.__new__  # `_new_tuple(Endpoint, addr)`: Endpoint(*addr) minus a Python-level call

log = logging.getLogger("holepunch.driver")


class Machine(Protocol):
    """What the driver needs from a sans-IO machine (the aioquic `QuicConnection` shape)."""

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def get_timer(self) -> float | None: ...
    def datagrams_to_send(self, now: float) -> list[Transmit]: ...
    def next_event(self) -> Event | None: ...


@dataclass
class DriverStats:
    """Socket-level counters: what the kernel gave us and what it refused."""

    received: int = 0
    sent: int = 0
    send_errors: int = 0
    """Datagrams the kernel refused (full buffer, unreachable family...): dropped, as UDP may."""
    receive_errors: int = 0


class Driver:
    """Runs `machine` over the non-blocking UDP socket `sock` on the running event loop."""

    def __init__(
        self,
        machine: Machine,
        sock: socket.socket,
        on_event: Callable[[Event], None],
        *,
        trace: Trace | None = None,
        actor: str = "",
    ) -> None:
        self.machine = machine
        self.sock = sock
        self.stats = DriverStats()
        self.trace = trace
        self.actor = actor
        self._on_event = on_event
        self._loop = asyncio.get_running_loop()
        # On an IPv4 socket addresses need no translation either way, so the hot loops skip it.
        self._v4 = sock.family == socket.AF_INET
        self._sources: dict[tuple, Endpoint] = {}  # type: ignore[type-arg]  # socket address -> Endpoint
        self._to_sockaddr = _mapped_v6 if sock.family == socket.AF_INET6 else _plain
        self._local = Endpoint.from_sockaddr(sock.getsockname())
        self._is_server = isinstance(machine, RendezvousServer)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._running = False
        self._pumping = False
        self._extra = ExtraSockets(lambda: open_udp_socket(self._local.host, 0), self._feed_extra,
                                   on_error=self._extra_error, after=self.pump, batch=MAX_BATCH,
                                   max_datagram=MAX_DATAGRAM, name=lambda: self.actor or self._local)
        self._sockets_wanted: Callable[[], int] | None = getattr(machine, "sockets_wanted", None)

    @property
    def local(self) -> Endpoint:
        """The address the socket is bound to."""
        return self._local

    @property
    def extra_sockets(self) -> tuple[socket.socket, ...]:
        """The extra sockets the machine asked for (`sockets_wanted`); `via` i is the i-th."""
        return self._extra.sockets

    def now(self) -> float:
        """The driver's clock, which is the machine's clock."""
        return self._loop.time()

    def start(self) -> None:
        """Start reading the socket and send whatever the machine has queued."""
        self._running = True
        self._loop.add_reader(self.sock.fileno(), self._on_readable)
        self.pump(self.now())

    def stop(self) -> None:
        """Stop reading and cancel the timer; the socket stays open (see `detach`), extra ones close."""
        if self._running:
            self._running = False
            self._loop.remove_reader(self.sock.fileno())
        self._extra.resize(0)
        self._arm(None)

    # --- the drive loop -----------------------------------------------------------------------

    def _on_readable(self) -> None:
        """Drain up to MAX_BATCH datagrams into the machine, then pump once for the batch."""
        now = self._loop.time()
        recvfrom, feed, endpoint = self.sock.recvfrom, self.machine.receive_datagram, Endpoint.from_sockaddr
        sources = self._sources
        tracing, v4 = self.trace is not None, self._v4
        count = 0
        for count in _BATCH:  # count ends as the number of datagrams read
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. an ICMP error surfacing on the socket
                self.stats.receive_errors += 1
                log.debug("%s: receive error: %s", self.actor or self._local, exc)
                break
            if v4:  # already (host, port): a fresh Endpoint costs less than any memo of them
                source: Endpoint = _new_tuple(Endpoint, addr)
            else:  # IPv6: the memo spares the unmapping of v4-in-v6 addresses
                known = sources.get(addr)
                if known is None:
                    if len(sources) >= SOURCES_REMEMBERED:
                        sources.clear()
                    known = sources[addr] = endpoint(addr)
                source = known
            if tracing:
                self._record_receive(data, source, now)
            feed(data, source, now)
        else:
            count = MAX_BATCH
        self.stats.received += count
        self.pump(now)

    def _on_timer(self) -> None:
        # asyncio may fire up to one clock resolution early; never hand the machine an earlier now.
        now = max(self._timer_at or 0.0, self._loop.time())
        self._timer = self._timer_at = None
        self.machine.handle_timer(now)
        self.pump(now)

    def pump(self, now: float) -> None:
        """Drain events, send datagrams, re-arm the timer. Re-entrant calls fold into the outer one."""
        if self._pumping or not self._running:
            return
        self._pumping = True
        try:
            machine = self.machine
            event = machine.next_event()
            while event is not None:
                if self.trace is not None:
                    self._record_event(event, now)
                self._on_event(event)
                event = machine.next_event()
            if self._sockets_wanted is not None and self._sockets_wanted() != len(self._extra):
                self._extra.resize(self._sockets_wanted())  # pump runs only while running
            self._send(machine.datagrams_to_send(now), now)
            self._arm(machine.get_timer())
        finally:
            self._pumping = False

    def _send(self, transmits: list[Transmit], now: float) -> None:
        """Hand datagrams to the kernel; a refused send is counted and dropped, as UDP may."""
        sendto, to_sockaddr = self.sock.sendto, self._to_sockaddr
        tracing, v4 = self.trace is not None, self._v4
        errors = 0
        for transmit in transmits:
            if tracing:
                self._record_send(transmit, now)
            destination = transmit.destination
            send = sendto if not transmit.via else self._extra.sendto(transmit.via)
            try:
                send(transmit.data, destination if v4 else to_sockaddr(destination))
            except OSError as exc:  # BlockingIOError included
                errors += 1
                log.debug("%s: send to %s failed: %s", self.actor or self._local, destination, exc)
        self.stats.sent += len(transmits) - errors
        self.stats.send_errors += errors

    # --- extra sockets (birthday probing: `PeerClient.sockets_wanted`; extra_sockets.py) -------

    def _feed_extra(self, data: bytes, source: Endpoint, now: float, via: int) -> None:
        """Count, trace and feed one datagram that arrived on extra socket `via`."""
        self.stats.received += 1
        if self.trace is not None:
            self._record_receive(data, source, now)
        self.machine.receive_datagram(data, source, now, via)  # type: ignore[call-arg]

    def _extra_error(self, via: int, exc: OSError) -> None:
        self.stats.receive_errors += 1
        log.debug("%s: receive error on socket %d: %s", self.actor or self._local, via, exc)

    def _arm(self, when: float | None) -> None:
        """Keep exactly one timer, at `when` (aioquic's `_transmit` tail)."""
        if when == self._timer_at and (when is None or self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = None if when is None else self._loop.call_at(when, self._on_timer)

    # --- tracing ------------------------------------------------------------------------------

    def _record_send(self, transmit: Transmit, now: float) -> None:
        data, destination, kind = transmit.data, transmit.destination, transmit.kind
        summary = describe_packet(kind, data)
        self._record(TraceRecord(now, self.actor, Action.SEND, self._local, destination, kind.value, summary))

    def _record_receive(self, data: bytes, source: Endpoint, now: float) -> None:
        if self._is_server:
            kind = classify(data, to_server=True)
        else:
            kind = classify(data, from_server=source == getattr(self.machine, "server", None))
        summary = describe_packet(kind, data)
        self._record(TraceRecord(now, self.actor, Action.RECEIVE, source, self._local, kind.value, summary))

    def _record_event(self, event: Event, now: float) -> None:
        summary = describe_event(event)
        self._record(TraceRecord(now, self.actor, Action.EVENT, kind=type(event).__name__, summary=summary))

    def _record(self, record: TraceRecord) -> None:
        assert self.trace is not None
        self.trace.append(record)


# --- the socket edge ------------------------------------------------------------------------------


def _plain(endpoint: Endpoint) -> tuple[str, int]:
    return endpoint  # an Endpoint is already an (host, port) tuple


@lru_cache(maxsize=65536)
def _mapped_v6(endpoint: Endpoint) -> tuple[str, int]:
    """On a dual-stack AF_INET6 socket an IPv4 peer is reached as ::ffff:a.b.c.d (RFC 4291 §2.5.5.2)."""
    host, port = endpoint
    return (host if ":" in host else "::ffff:" + host, port)


def open_udp_socket(host: str, port: int, *, reuse_address: bool = False) -> socket.socket:
    """A bound, non-blocking UDP socket; "::" gets a dual-stack socket, as Go's ":port" does.
    `reuse_address` sets SO_REUSEADDR, so an alternate address may share a wildcard's port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def enlarge_buffers(sock: socket.socket, size: int = 4 << 20) -> None:
    """Ask for bigger kernel buffers so bursts queue instead of dropping; the kernel may cap it."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            pass

def parse_address(address: AddressLike, what: str = "server") -> Endpoint:
    """Check an address given as "host:port", (host, port) or Endpoint; the error says how to fix it."""
    if isinstance(address, str):
        try:
            endpoint = Endpoint.parse(address.strip())
        except ValueError as exc:
            raise ValueError(f"bad {what} address {address!r}: {exc}; write HOST:PORT, e.g. 192.0.2.7:5000") from None
    elif isinstance(address, tuple) and len(address) == 2:
        endpoint = Endpoint(str(address[0]), int(address[1]))
    else:
        raise TypeError(f"{what} must be 'host:port', (host, port) or an Endpoint, not {address!r}")
    if not endpoint.host:
        raise ValueError(f"bad {what} address {address!r}: the host is missing; write HOST:PORT")
    if not 1 <= endpoint.port <= 65535:
        raise ValueError(f"bad {what} address {address!r}: the port must be 1-65535")
    return endpoint


async def resolve(endpoint: Endpoint) -> Endpoint:
    """The numeric address of `endpoint` (IPv4 preferred), so that sources compare equal to it.

    Raises `socket.gaierror` when the name does not resolve.
    """
    try:
        ipaddress.ip_address(endpoint.host)
        return endpoint
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_DGRAM)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return Endpoint.from_sockaddr(infos[0][4])


def bind_host_for(host: str, remote: Endpoint) -> str:
    """Bind where `remote` can be reached: the IPv4 wildcard becomes dual-stack for an IPv6 remote."""
    remote_v6 = ":" in remote.host
    if remote_v6 and host == "0.0.0.0":
        return "::"
    if remote_v6 and ":" not in host:
        raise ValueError(f"cannot reach the IPv6 address {remote} from the IPv4 address {host}")
    return host
