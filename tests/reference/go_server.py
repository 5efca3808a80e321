"""Stand-in for the Go reference rendezvous server (4kills/hole-punching, pkg/server).

Mirrors fact sheet §3 including its quirks: silent drop of >1024-byte payloads,
least-recently-(re)registered reply order, fixed (non-sliding) expiry that swaps
the last entry into the freed slot (B8), an empty ID as a shared session (B11),
and a 0-byte keep-alive to every stored entry on a fixed period from start.
Used by tests to prove interoperability without the Go binaries.

Deviations, on purpose: datagrams are handled inline by the reader thread (one
legal goroutine schedule, so replies never leave out of order), the B7 data race
is left out, and removals run on one scheduler thread instead of one sleeping
goroutine per registration (B10).
"""

from __future__ import annotations

import heapq
import socket
import threading
import time
from types import TracebackType

from .go_net import endpoint_text, sockaddr_for

__all__ = ["GoServer"]

READ_BUFFER = 2048  # Go server's read buffer; longer datagrams are truncated to this.


class GoServer:
    """UDP rendezvous server that behaves like the Go reference (§3)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        domain_timeout: float = 40.0,
        keepalive: float = 10.0,
        max_packet: int = 1024,
    ) -> None:
        """Configure only; ``start()`` binds. ``domain_timeout < 0`` disables expiry,
        ``keepalive <= 0`` disables keep-alives. ``host`` "" or "::" is dual-stack."""
        self.host = host
        self.port = port
        self.domain_timeout = domain_timeout
        self.keepalive = keepalive
        self.max_packet = max_packet
        self.log: list[str] = []
        self.sessions: dict[bytes, list[str]] = {}
        self.sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sched_cv = threading.Condition()
        self._removals: list[tuple[float, int, bytes, str]] = []
        self._seq = 0
        self._threads: list[threading.Thread] = []
        self._started_at = 0.0

    # -- lifecycle -----------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server socket is bound to."""
        if self.sock is None:
            raise RuntimeError("GoServer not started")
        name = self.sock.getsockname()
        return (str(name[0]), int(name[1]))

    @property
    def endpoint(self) -> str:
        """The server address as Go endpoint text (what clients compare against)."""
        return endpoint_text(self.address)

    def start(self) -> GoServer:
        """Bind the socket and start the reader, removal and keep-alive threads."""
        if self.sock is not None:
            raise RuntimeError("GoServer already started")
        dual_stack = self.host in ("", "::")
        family = socket.AF_INET6 if dual_stack or ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((self.host or "::", self.port))
        sock.settimeout(0.05)  # only so stop() is noticed; not protocol behaviour
        self.sock = sock
        self._started_at = time.monotonic()
        self._log(f"listening on {self.endpoint}")
        for target, name in (
            (self._read_loop, "reader"),
            (self._removal_loop, "removals"),
            (self._keepalive_loop, "keepalive"),
        ):
            thread = threading.Thread(target=target, name=f"GoServer-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop all threads and close the socket. Safe to call twice."""
        self._stop.set()
        with self._sched_cv:
            self._sched_cv.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)
        self._threads.clear()
        if self.sock is not None:
            self.sock.close()

    def __enter__(self) -> GoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inspection ----------------------------------------------------------------

    def snapshot(self) -> dict[bytes, list[str]]:
        """Copy of the session store: ID -> endpoint texts in list order."""
        with self._lock:
            return {sid: list(entries) for sid, entries in self.sessions.items()}

    def _log(self, line: str) -> None:
        self.log.append(f"{time.monotonic() - self._started_at:9.3f} {line}")

    # -- datagram handling ---------------------------------------------------------

    def _read_loop(self) -> None:
        """Read into a 2048-byte buffer; drop oversize payloads silently (§3 step 1)."""
        assert self.sock is not None
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(READ_BUFFER)
            except socket.timeout:
                continue
            except OSError as err:
                if self._stop.is_set():
                    return
                self._log(f"read error: {err}")
                continue
            sender = endpoint_text(addr)
            if len(data) > self.max_packet:
                self._log(f"dropped packet of {len(data)} bytes from {sender}")
                continue
            self._handle(data, addr, sender)

    def _handle(self, session_id: bytes, addr: tuple[object, ...], sender: str) -> None:
        """Update the store, send exactly one reply, schedule one fixed removal."""
        with self._lock:
            entries = self.sessions.get(session_id)
            if entries is None:
                self.sessions[session_id] = [sender]
                reply = b""
            else:
                entries[:] = [e for e in entries if e != sender]
                reply = ",".join(entries).encode("ascii")
                entries.append(sender)
        assert self.sock is not None
        try:
            self.sock.sendto(reply, addr)  # raw socket: b"" is a real 0-byte datagram
            self._log(f"sent reply to {sender} for {session_id!r}: {reply.decode()!r}")
        except OSError as err:
            self._log(f"failed to send reply to {sender}: {err}")
        if self.domain_timeout >= 0:
            self._schedule_removal(session_id, sender)

    # -- expiry (B8: fixed, unconditional, swap-remove) -----------------------------

    def _schedule_removal(self, session_id: bytes, sender: str) -> None:
        due = time.monotonic() + self.domain_timeout
        with self._sched_cv:
            self._seq += 1
            heapq.heappush(self._removals, (due, self._seq, session_id, sender))
            self._sched_cv.notify()

    def _removal_loop(self) -> None:
        """Single scheduler thread standing in for one sleeping goroutine per registration."""
        while True:
            with self._sched_cv:
                while not self._stop.is_set():
                    now = time.monotonic()
                    if self._removals and self._removals[0][0] <= now:
                        break
                    wait = self._removals[0][0] - now if self._removals else None
                    self._sched_cv.wait(wait)
                if self._stop.is_set():
                    return
                _, _, session_id, sender = heapq.heappop(self._removals)
            self._remove(session_id, sender)

    def _remove(self, session_id: bytes, sender: str) -> None:
        """Remove ``sender`` no matter when it last registered; last entry fills the slot."""
        with self._lock:
            entries = self.sessions.get(session_id)
            if entries is None:
                return
            for index, entry in enumerate(entries):
                if entry == sender:
                    entries[index] = entries[-1]
                    entries.pop()
                    break
            if not entries:
                del self.sessions[session_id]
        self._log(f"removed {sender} from {session_id!r}")

    # -- keep-alive (M3) -------------------------------------------------------------

    def _keepalive_loop(self) -> None:
        """Sleep loop from server start; each tick sends b"" to every stored entry."""
        if self.keepalive <= 0:
            return
        assert self.sock is not None
        family = self.sock.family
        while not self._stop.wait(self.keepalive):
            with self._lock:
                targets = [e for entries in self.sessions.values() for e in entries]
            for target in targets:
                try:
                    self.sock.sendto(b"", sockaddr_for(target, family))
                except OSError as err:
                    self._log(f"failed to send keep-alive to {target}: {err}")
            self._log(f"keep-alive sent to {len(targets)} entries")
