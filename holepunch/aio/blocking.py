"""A blocking `connect()` for scripts and notebooks: the mesh runs on a loop in a background thread.

Rule: nothing protocol-specific here; every call is forwarded to the `Mesh` on its own loop,
which also makes it work inside Jupyter, whose loop is already running.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, Callable, TypeVar

from ..protocol.config import ClientConfig
from ..protocol.endpoint import Endpoint
from ..protocol.tcp_client import TcpClientConfig
from ..trace import Trace
from .client import Mesh, _Connecting, connect
from .driver import AddressLike
from .tcp_client import TcpConnecting, TcpMesh

T = TypeVar("T")
Socket = socket.socket


class _LoopThread:
    """An event loop in a daemon thread, so blocking callers work even inside Jupyter's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="holepunch-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call `fn` on the loop thread (the machine is not thread-safe) and return its result."""
        if self.loop.is_closed():
            return fn(*args)  # nothing runs concurrently any more

        async def call() -> T:
            return fn(*args)

        return self.run(call())

    def stop(self) -> None:
        """Stop the loop and wait for the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def _mirror(name: str) -> Any:
    """A read-only property of `BlockingMesh` that reads `Mesh.<name>` on the loop thread."""
    def get(self: "BlockingMesh") -> Any:
        return self._runner.call(getattr, self._mesh, name)
    return property(get, doc=f"As `Mesh.{name}`.")


class BlockingMesh:
    """A `Mesh` for scripts and notebooks: the same operations, blocking, with timeouts."""

    def __init__(self, mesh: Mesh | TcpMesh, runner: _LoopThread) -> None:
        self._mesh = mesh
        self._runner = runner

    peers = _mirror("peers")
    connected = _mirror("connected")
    complete = _mirror("complete")
    result = _mirror("result")
    public_endpoint = _mirror("public_endpoint")
    extended = _mirror("extended")
    socket = _mirror("socket")
    local = _mirror("local")
    closed = _mirror("closed")

    def send(self, peer: AddressLike, data: bytes) -> None:
        """Send one datagram to a connected peer."""
        self._runner.call(self._mesh.send, peer, data)

    def recv(self, timeout: float | None = None) -> tuple[Endpoint, bytes]:
        """The next application datagram; `TimeoutError` after `timeout` seconds."""
        async def recv() -> tuple[Endpoint, bytes]:
            try:
                return await asyncio.wait_for(self._mesh.recv(), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"nothing received within {timeout} s") from None

        return self._runner.run(recv())

    def detach(self) -> Socket:
        """Hand the socket over (see `Mesh.detach`) and stop the background loop."""
        if not isinstance(self._mesh, Mesh):
            raise TypeError("a TCP mesh has one socket per peer: take each with socket(peer)")
        sock = self._runner.call(self._mesh.detach)
        self._runner.stop()
        return sock

    def close(self) -> None:
        """Close the mesh and stop the background loop; safe to call twice."""
        if not self._runner.loop.is_closed():
            self._runner.run(self._mesh.close())
            self._runner.stop()

    def __enter__(self) -> "BlockingMesh":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Blocking{self._mesh!r}>"


class BlockingTcpMesh(BlockingMesh):
    """A `TcpMesh` for scripts and notebooks: one connected socket per peer instead of one socket."""

    def socket(self, peer: AddressLike) -> Socket:
        """Take the connected socket of `peer` (blocking mode; see `TcpMesh.socket`)."""
        assert isinstance(self._mesh, TcpMesh)
        return self._runner.call(self._mesh.socket, peer)


def connect_blocking(
    server: AddressLike,
    session: str | bytes,
    peers: int = 1,
    *,
    timeout: float | None = 40.0,
    wait_timeout: float | None = None,
    config: ClientConfig | TcpClientConfig | None = None,
    bind: tuple[str, int] = ("0.0.0.0", 0),
    trace: Trace | None = None,
    actor: str = "peer",
    transport: str = "udp",
    secret: str | bytes | None = None,
) -> BlockingMesh:
    """`connect()` for code without an event loop, or inside Jupyter's: blocks until done.

    The mesh runs on its own event loop in a background thread until `close()`;
    `transport="tcp"` gives a `BlockingTcpMesh`.
    """
    opening = connect(  # validates the arguments here, in the caller's thread
        server, session, peers, timeout=timeout, wait_timeout=wait_timeout, config=config,
        bind=bind, trace=trace, actor=actor, transport=transport, secret=secret,
    )
    runner = _LoopThread()
    try:
        mesh = runner.run(_await(opening))
    except BaseException:
        runner.stop()
        raise
    if isinstance(mesh, TcpMesh):
        return BlockingTcpMesh(mesh, runner)
    return BlockingMesh(mesh, runner)


async def _await(opening: _Connecting | TcpConnecting) -> Mesh | TcpMesh:
    return await opening
