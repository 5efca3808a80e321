"""Record what crosses each NAT of a lab, and turn it into the same trace records the simulator writes.

Rule: every record stands for frames that were seen. A packet socket (AF_PACKET, kernel
timestamps) listens on each NAT's LAN and WAN side, on each public host and on the server; the
frames of one datagram are chained across those points (a NAT rewrites addresses and ports,
never the payload), and each chain becomes SEND, TRANSLATE and RECEIVE records of
`holepunch.trace`, or a DROP where it was last seen (with what the capture tells about why),
so `simulator.viz.timeline` draws a lab run exactly as it draws a simulated one (that
conversion is capture_trace.py). The sockets
are opened from this process by entering each namespace with setns(2) in a throwaway thread,
so capturing starts no program and costs no process start-up.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..protocol.endpoint import Endpoint
from ..trace import Trace
from .capture_trace import frames_to_trace
from .errors import LabError
from .layout import names

if TYPE_CHECKING:
    from .topology import Lab

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35  # <asm-generic/socket.h>; the socket module does not export it
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
T = TypeVar("T")


# --- entering a namespace ------------------------------------------------------------------------

def in_namespace(namespace: str, make: Callable[[], T]) -> T:
    """Call `make()` inside a named network namespace and return its result (a socket made there
    stays in that namespace). setns(2) changes only the calling thread, so a throwaway thread
    enters the namespace and this process's own threads never leave theirs."""
    libc = ctypes.CDLL(None, use_errno=True)
    outcome: dict[str, object] = {}

    def enter() -> None:
        try:
            with open(os.path.join(NETNS_DIR, namespace), "rb") as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"setns into {namespace}: {os.strerror(error)}")
            outcome["value"] = make()
        except BaseException as exc:  # noqa: BLE001 (handed to the caller's thread below)
            outcome["error"] = exc

    worker = threading.Thread(target=enter, name=f"netns-{namespace}")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def packet_socket(namespace: str, interface: str) -> socket.socket:
    """A non-blocking AF_PACKET socket on `interface` of `namespace`, with kernel timestamps."""
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
            sock.bind((interface, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock
    return in_namespace(namespace, make)


# --- frames ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """Where frames are captured: a site's NAT "lan" or "wan" side, or a "host" interface."""

    site: str
    """Site name, or "server"."""
    side: str
    """"lan", "wan" or "host"."""
    namespace: str
    interface: str


@dataclass(frozen=True)
class Frame:
    """One IPv4 packet seen at one point."""

    time: float
    """Kernel receive timestamp (CLOCK_REALTIME, shared by every namespace)."""
    point: Point
    outgoing: bool
    """True when the point's own stack sent it (PACKET_OUTGOING)."""
    proto: int
    """6 TCP, 17 UDP, 1 ICMP."""
    source: Endpoint
    destination: Endpoint
    payload: bytes
    """UDP payload; TCP segment data; for ICMP its type, code and the quoted protocol and port."""
    flags: int = 0
    """TCP flags (FIN 1, SYN 2, RST 4, ACK 16)."""
    seq: int = 0

    @property
    def key(self) -> tuple[int, bytes, int, int]:
        """What no NAT changes: protocol, payload, TCP flags and sequence number."""
        return (self.proto, self.payload, self.flags, self.seq)


def parse_frame(data: bytes, when: float, point: Point, outgoing: bool) -> Frame | None:
    """An Ethernet frame as a `Frame`, or None unless it is unfragmented IPv4 UDP, TCP or ICMP."""
    if len(data) < 34 or data[12:14] != b"\x08\x00" or data[14] >> 4 != 4:
        return None
    ihl = (data[14] & 0x0F) * 4
    total, frag, proto = struct.unpack("!H2xH1xB", data[16:24])
    start, end = 14 + ihl, min(len(data), 14 + total)
    if frag & 0x3FFF or end - start < 8:
        return None
    src, dst = socket.inet_ntoa(data[26:30]), socket.inet_ntoa(data[30:34])
    if proto == 1:  # ICMP error: type, code, and the protocol and remote port it quotes
        inner = data[start + 8:end]
        quoted = inner[9:10] + inner[(inner[0] & 0x0F) * 4 + 2:][:2] if len(inner) >= 24 else b""
        return Frame(when, point, outgoing, 1, Endpoint(src, 0), Endpoint(dst, 0),
                     data[start:start + 2] + quoted)
    sport, dport = struct.unpack("!HH", data[start:start + 4])
    if proto == 17:
        payload, flags, seq = data[start + 8:end], 0, 0
    elif proto == 6 and end - start >= 20:
        seq = struct.unpack("!I", data[start + 4:start + 8])[0]
        offset = (data[start + 12] >> 4) * 4
        flags, payload = data[start + 13] & 0x3F, data[start + offset:end]
    else:
        return None
    return Frame(when, point, outgoing, proto, Endpoint(src, sport), Endpoint(dst, dport),
                 bytes(payload), flags, seq)


# --- the capture -----------------------------------------------------------------------------------

def capture_points(lab: Lab) -> list[Point]:
    """Every point of a lab: each NAT's LAN bridge and WAN, each public host, the server."""
    n = names(lab.layout)
    points = [Point("server", "host", lab.namespace("server"), n["eth"])]
    for site in lab.layout.sites:
        if site.nat_namespace is None:
            points += [Point(site.name if i == 0 else f"{site.name}:{i}", "host", ns, n["eth"])
                       for i, ns in enumerate(site.host_namespaces)]
        else:
            points += [Point(site.name, "lan", site.nat_namespace, n["lan"]),
                       Point(site.name, "wan", site.nat_namespace, n["wan"])]
    return points


class Capture:
    """Packet sockets on every point of a lab (`capture_points`), read by one background thread:
    `with Capture(lab) as cap: ...` records the block; then `cap.frames` are in time order and
    `cap.trace()` is the run as trace records."""

    def __init__(self, lab: Lab, points: Sequence[Point] | None = None) -> None:
        self.lab = lab
        self.points = list(points or capture_points(lab))
        self.frames: list[Frame] = []
        self._socks: dict[int, tuple[socket.socket, Point]] = {}
        self._wake = (-1, -1)
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Capture:
        """Open the sockets and start reading (frames before this call are not seen)."""
        try:
            for point in self.points:
                sock = packet_socket(point.namespace, point.interface)
                self._socks[sock.fileno()] = (sock, point)
        except OSError as exc:
            self._close()
            raise LabError(f"cannot capture in the lab: {exc}") from exc
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._read_loop, name="lab-capture", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Frame]:
        """Read what is queued, stop, close the sockets; returns the frames in time order."""
        if self._thread is not None:
            os.write(self._wake[1], b"x")
            self._thread.join()
            self._thread = None
            for fd in self._wake:
                os.close(fd)
        self._close()
        self.frames.sort(key=lambda f: f.time)
        return self.frames

    def _close(self) -> None:
        for sock, _ in self._socks.values():
            sock.close()
        self._socks.clear()

    def _read_loop(self) -> None:
        while True:
            ready, _, _ = select.select([self._wake[0], *self._socks], [], [])
            stopping = self._wake[0] in ready
            for fd in self._socks if stopping else ready:
                sock, point = self._socks[fd]
                self._drain(sock, point)
            if stopping:
                return

    def _drain(self, sock: socket.socket, point: Point) -> None:
        while True:
            try:
                data, ancillary, _, address = sock.recvmsg(65535, 64)
            except (BlockingIOError, InterruptedError):
                return
            frame = parse_frame(data, _timestamp(ancillary), point, address[2] == PACKET_OUTGOING)
            if frame is not None:
                self.frames.append(frame)

    def trace(self, *, since: float | None = None) -> Trace:
        """The captured run as trace records (see `frames_to_trace`)."""
        return frames_to_trace(self.frames, self.lab, since=since)


def _timestamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack("qq", data[:16])
            return seconds + nanos / 1e9
    return time.time()  # no kernel timestamp (it should not happen): reading time is close
