"""Stand-in for the Go reference peer client (4kills/hole-punching, pkg/client).

Mirrors fact sheet §4 with the goroutine structure kept as threads: a polling
thread, one handshake worker per listed peer fed through a 16-slot queue, and a
read loop in the caller's thread. The bugs are reproduced on purpose so tests can
show how a Python peer or server must behave towards a real Go client:

* B1: a non-empty datagram from an unlisted endpoint in phase 2 blocks the read
  loop forever (``hung`` becomes True; only ``close()`` ends it).
* B2: the 17th datagram for a finished worker blocks the read loop forever.
* B3: success is noticed only when one more datagram arrives after the last
  worker finished.
* B4: a worker's retry timer restarts on every delivery.
* B5: on success the read deadline stays on the socket (see ``recvfrom``).
* B6: phase 1 ends only on a reply with exactly ``expected`` endpoints.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from types import TracebackType

from .go_net import AddrParseError, endpoint_text, parse_endpoint, sockaddr_for

__all__ = ["GoClient", "GoConnectError", "GoClientClosed"]

SYN = b"SYN"
ACK = b"ACK"
READ_BUFFER = 65535
CHANNEL_SLOTS = 16
_SLICE = 0.05  # emulation detail: lets close() interrupt blocking waits

ERR_TIMEOUT_MEDIATOR = "timeout during attempting to get peers from the mediator server"
ERR_TIMEOUT_PEERS = "timeout during attempting to establish a peer to peer network"


class GoConnectError(Exception):
    """Connect failed the way the Go client fails (deadline or address parse error)."""


class GoClientClosed(GoConnectError):
    """``close()`` interrupted Connect (only way out of the B1/B2 hangs)."""


class _Worker:
    """Handshake goroutine for one peer: SYN at once, then retry on 100 ms of silence."""

    def __init__(self, client: GoClient, peer: str) -> None:
        self.client = client
        self.peer = peer
        self.channel: queue.Queue[bytes] = queue.Queue(maxsize=CHANNEL_SLOTS)
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"GoClient-peer-{peer}", daemon=True)

    def run(self) -> None:
        client = self.client
        message = SYN
        client._send(SYN, self.peer)
        while not client._closed.is_set():
            try:
                data = self.channel.get(timeout=client.peer_retry)
            except queue.Empty:
                client._send(message, self.peer)  # 100 ms with nothing delivered
                continue
            if data == SYN:
                message = ACK  # goes out only at the next tick
            elif data == ACK:
                client._send(ACK, self.peer)
                timer = threading.Timer(client.peer_retry, client._send, (ACK, self.peer))
                timer.daemon = True
                client._timers.append(timer)
                timer.start()
                self.finished.set()
                return
            # anything else is consumed and ignored; the timer restarts either way (B4)


class GoClient:
    """UDP peer client that behaves like the Go reference's ``Connect`` (§4)."""

    def __init__(
        self,
        server_addr: tuple[str, int] | str,
        session_id: bytes,
        expected: int,
        timeout: float = 40.0,
        mediator_retry: float = 0.1,
        peer_retry: float = 0.1,
        bind_host: str | None = None,
    ) -> None:
        """Create and bind the single socket; ``bind_host`` defaults to loopback of the
        server's family. ``server_addr`` is (host, port) or Go endpoint text."""
        if isinstance(server_addr, tuple):
            server_addr = endpoint_text(server_addr)
        self.server, server_ip, _ = parse_endpoint(server_addr)
        self.session_id = bytes(session_id)
        self.expected = expected
        self.timeout = timeout
        self.mediator_retry = mediator_retry
        self.peer_retry = peer_retry
        family = socket.AF_INET6 if ":" in server_ip else socket.AF_INET
        if bind_host is None:
            bind_host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((bind_host, 0))
        self.local_address: str = endpoint_text(self.sock.getsockname())
        self.peers: list[str] = []
        self.deadline: float | None = None
        self.hung = False
        self.sent: list[tuple[float, str, bytes]] = []
        self.received: list[tuple[float, str, bytes]] = []
        self._closed = threading.Event()
        self._phase1_done = threading.Event()
        self._workers: list[_Worker] = []
        self._timers: list[threading.Timer] = []
        self._poller: threading.Thread | None = None

    # -- public API ----------------------------------------------------------------

    def connect(self) -> list[str]:
        """Block like Go's ``Connect``; return the peer endpoint texts or raise."""
        self.deadline = time.monotonic() + self.timeout
        self.peers = self._rendezvous()
        self._connect_peers(self.peers)
        return list(self.peers)

    def recvfrom(self, bufsize: int = READ_BUFFER) -> tuple[bytes, str]:
        """Read application data; after Connect the deadline still applies (B5), so
        past it every call fails at once with ``TimeoutError``."""
        while True:
            remaining = self._remaining()
            if remaining <= 0:
                raise TimeoutError("i/o timeout")
            self.sock.settimeout(min(remaining, _SLICE))
            try:
                data, addr = self.sock.recvfrom(bufsize)
            except socket.timeout:
                if self._closed.is_set():
                    raise GoClientClosed("client closed") from None
                continue
            source = endpoint_text(addr)
            self.received.append((time.monotonic(), source, data))
            return data, source

    def sendto(self, data: bytes, peer: str) -> None:
        """Send application data to a peer given as Go endpoint text."""
        self._send(data, peer)

    def close(self) -> None:
        """Stop all threads (also ends a B1/B2 hang) and close the socket."""
        self._closed.set()
        self._phase1_done.set()
        for timer in list(self._timers):
            timer.cancel()
        threads = [w.thread for w in self._workers]
        if self._poller is not None:
            threads.append(self._poller)
        for thread in threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=1.0)
        self.sock.close()

    def __enter__(self) -> GoClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------

    def _remaining(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def _send(self, data: bytes, dest: str) -> None:
        if self._closed.is_set():
            return
        try:
            self.sock.sendto(data, sockaddr_for(dest, self.sock.family))
        except OSError:
            return  # Go logs send errors and carries on
        self.sent.append((time.monotonic(), dest, data))

    def _read(self, error: str) -> tuple[bytes, str]:
        """One read under the shared Connect deadline."""
        while True:
            if self._closed.is_set():
                raise GoClientClosed("client closed")
            remaining = self._remaining()
            if remaining <= 0:
                raise GoConnectError(error)
            self.sock.settimeout(min(remaining, _SLICE))
            try:
                data, addr = self.sock.recvfrom(READ_BUFFER)
            except socket.timeout:
                continue
            except OSError as err:
                if self._closed.is_set():
                    raise GoClientClosed("client closed") from None
                raise GoConnectError(str(err)) from err
            source = endpoint_text(addr)
            self.received.append((time.monotonic(), source, data))
            return data, source

    def _poll_server(self) -> None:
        """Send M1 at once, then after every sleep, until phase 1 ends."""
        while True:
            self._send(self.session_id, self.server)
            time.sleep(self.mediator_retry)
            if self._phase1_done.is_set():
                return

    def _rendezvous(self) -> list[str]:
        """Phase 1: poll the server until one reply lists exactly ``expected`` peers."""
        self._poller = threading.Thread(target=self._poll_server, name="GoClient-poll", daemon=True)
        self._poller.start()
        try:
            while True:
                data, source = self._read(ERR_TIMEOUT_MEDIATOR)
                if not data or source != self.server:
                    continue
                peers = []
                for entry in data.decode("utf-8", "replace").split(","):
                    try:
                        peers.append(parse_endpoint(entry)[0])
                    except AddrParseError as err:
                        raise GoConnectError(str(err)) from None
                if len(peers) == self.expected:
                    return peers
        finally:
            self._phase1_done.set()

    def _connect_peers(self, peers: list[str]) -> None:
        """Phase 2: one worker per peer; the read loop dispatches by source text."""
        channels: dict[str, _Worker] = {}
        for peer in peers:
            worker = _Worker(self, peer)
            channels[peer] = worker
            self._workers.append(worker)
            worker.thread.start()
        while True:
            data, source = self._read(ERR_TIMEOUT_PEERS)
            if all(w.finished.is_set() for w in self._workers):  # B3: only after a read
                return
            if not data:
                continue
            worker = channels.get(source)
            if worker is None:
                self._hang()  # B1: send on a nil channel
            else:
                self._deliver(worker, data)

    def _hang(self) -> None:
        """Block forever, as the Go read loop does; only ``close()`` gets out."""
        self.hung = True
        self._closed.wait()
        raise GoClientClosed("client closed while hung (B1)")

    def _deliver(self, worker: _Worker, data: bytes) -> None:
        """Blocking send on the 16-slot channel; nobody drains a finished worker (B2)."""
        while True:
            try:
                worker.channel.put(data, timeout=_SLICE)
                return
            except queue.Full:
                if worker.finished.is_set():
                    self.hung = True
                if self._closed.is_set():
                    raise GoClientClosed("client closed while hung (B2)") from None
