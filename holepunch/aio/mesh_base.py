"""What the UDP `Mesh` and the TCP `TcpMesh` share: the inbox behind `recv()`, the connect result,
`async with` / `async for`, the last steps of `close()`, and the awaitable that `connect()` returns.

Rule: no protocol decision and no socket here. A subclass owns its machine and driver, and decides
how data is sent, how the inbox is filled (datagram count or byte backpressure) and how it closes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any, Callable, Generic, Protocol, TypeVar

from ..protocol.endpoint import Endpoint
from ..protocol.events import ConnectCompleted, DatagramDropped, Event
from ..protocol.states import ClientState
from ..trace import Trace
from .driver import resolve

log = logging.getLogger("holepunch.client")


class ConnectError(OSError):
    """Connect could not even start: the server refused, could not be resolved, or never answered."""


class MeshClosed(ConnectionError):
    """The mesh was closed or detached: nothing more can be sent or received through it."""


class _Machine(Protocol):
    """What the base needs of a peer machine (`PeerClient`, `TcpPeerClient`)."""

    @property
    def state(self) -> ClientState: ...
    def start(self, now: float) -> None: ...
    def close(self, now: float) -> None: ...


class _Driver(Protocol):
    """What the base needs of a driver (`Driver`, `TcpDriver`)."""

    @property
    def trace(self) -> Trace | None: ...
    def now(self) -> float: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def pump(self, now: float) -> None: ...


MachineT = TypeVar("MachineT", bound=_Machine)
DriverT = TypeVar("DriverT", bound=_Driver)
M = TypeVar("M", bound="MeshBase[Any, Any]")


class MeshBase(Generic[MachineT, DriverT]):
    """The peers of one session, reached through `machine` as run by a driver."""

    def __init__(self, machine: MachineT, driver: DriverT) -> None:
        self.machine = machine
        self._driver = driver
        self._completed: asyncio.Future[ConnectCompleted] = asyncio.get_running_loop().create_future()
        self._inbox: asyncio.Queue[tuple[Endpoint, bytes] | None] = asyncio.Queue()
        self._closed = False

    # --- inspection (each transport says what these mean for it) -------------------------------

    @property
    def registered(self) -> bool:
        """True once the server answered a registration."""
        raise NotImplementedError

    @property
    def connected(self) -> list[Endpoint]:
        """The peers data flows to and from."""
        raise NotImplementedError

    @property
    def local(self) -> Endpoint:
        """Our local address."""
        raise NotImplementedError

    @property
    def result(self) -> ConnectCompleted:
        """How connect ended: connected and failed peers, expected count, reason."""
        return self._completed.result()

    @property
    def complete(self) -> bool:
        """True when at least the expected number of peers connected, none failed, nothing went wrong."""
        return self.result.complete

    @property
    def trace(self) -> Trace | None:
        """The trace being recorded, if tracing was asked for."""
        return self._driver.trace

    @property
    def closed(self) -> bool:
        """True after `close()` (or, over UDP, `detach()`)."""
        return self._closed

    # --- data ---------------------------------------------------------------------------------

    async def _next(self) -> tuple[Endpoint, bytes]:
        """The next inbox item; `MeshClosed` once the mesh is closed (every waiter is woken)."""
        item = await self._inbox.get()
        if item is None:
            self._inbox.put_nowait(None)  # wake the next waiter too
            raise MeshClosed("the mesh is closed")
        return item

    async def recv(self) -> tuple[Endpoint, bytes]:
        """The next application data as (peer, data)."""
        return await self._next()

    def __aiter__(self: M) -> M:
        return self

    async def __anext__(self) -> tuple[Endpoint, bytes]:
        try:
            return await self.recv()
        except MeshClosed:
            raise StopAsyncIteration from None

    # --- life cycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave the session and release the sockets."""
        raise NotImplementedError

    async def __aenter__(self: M) -> M:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        done = self._completed.done() and not self._completed.cancelled()
        state = "closed" if self._closed else self.machine.state.value
        return (f"<{type(self).__name__} {self.local} {state}, {len(self.connected)} connected"
                f"{'' if done else ', connecting'}>")

    # --- internals ----------------------------------------------------------------------------

    def _leave(self) -> None:
        """Have the machine close (LEAVE, last ACKs) and send what that queued."""
        self.machine.close(self._driver.now())
        self._driver.pump(self._driver.now())

    def _finish(self) -> None:
        """Mark the mesh closed: wake every `recv()` waiter, cancel a connect still waiting."""
        self._closed = True
        self._inbox.put_nowait(None)
        if not self._completed.done():
            self._completed.cancel()

    def _on_event(self, event: Event) -> None:
        """The events every transport handles alike; subclasses handle theirs and pass the rest here."""
        match event:
            case ConnectCompleted():
                if not self._completed.done():
                    self._completed.set_result(event)
            case DatagramDropped(source, size, reason):
                log.debug("dropped %d bytes from %s: %s", size, source, reason)

    def _unanswered(self, server: Endpoint, reason: str) -> str:
        """The `ConnectError` text when the server never registered us."""
        return f"no answer from the rendezvous server {server} ({reason})"

    async def _connect(self: M, server: Endpoint) -> M:
        """Start the machine and wait for ConnectCompleted; close and raise if it is no use at all."""
        try:
            self.machine.start(self._driver.now())
            self._driver.start()
            result = await self._completed
        except BaseException:
            await self.close()
            raise
        if result.refused:
            await self.close()
            raise ConnectError(f"{server} {result.reason[len('server '):]}")
        if not self.registered:
            await self.close()
            raise ConnectError(self._unanswered(server, result.reason))
        return self


class Connecting(Generic[M]):
    """What a connect function returns: await it for a mesh, or use it as `async with`."""

    def __init__(self, opener: Callable[[], Coroutine[Any, Any, M]]) -> None:
        self._opener = opener
        self._mesh: M | None = None

    def __await__(self) -> Generator[Any, None, M]:
        return self._opener().__await__()

    async def __aenter__(self) -> M:
        self._mesh = await self._opener()
        return self._mesh

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._mesh is not None:
            await self._mesh.close()


async def resolve_server(target: Endpoint) -> Endpoint:
    """`target` with its host resolved; `ConnectError` (not a bare gaierror) if it cannot be."""
    try:
        return await resolve(target)
    except socket.gaierror as exc:
        raise ConnectError(f"cannot resolve the server host {target.host!r}: {exc.strerror}") from exc
