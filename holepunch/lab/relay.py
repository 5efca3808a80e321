"""A userspace Ethernet switch with delay, jitter, reordering, duplication and loss.

Rule: standalone (stdlib only, run by file path inside the lab's "internet" namespace, where it
replaces the bridge) because this kernel has no `sch_netem`. One AF_PACKET socket per port;
MAC learning; ARP and other non-IPv4 frames pass at once, IPv4 frames are impaired (netem's
semantics: each frame waits delay +/- jitter, except a `reorder` fraction sent at once).
IPv4 UDP/TCP checksums are recomputed, since a veth hands frames over with the checksum left to
an offload that a packet socket never performs.
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
BROADCAST = b"\xff" * 6


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fix_l4_checksum(frame: bytes) -> bytes:
    """Recompute the UDP or TCP checksum of an unfragmented IPv4 frame; others unchanged."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    ihl = (frame[14] & 0x0F) * 4
    total_len, frag, proto = struct.unpack("!H2xH1xB", frame[16:24])
    if frag & 0x3FFF or proto not in (6, 17):  # a fragment, or no port header
        return frame
    start, end = 14 + ihl, 14 + total_len
    offset = start + (6 if proto == 17 else 16)
    if end > len(frame) or offset + 2 > end:
        return frame
    segment = bytearray(frame[start:end])
    segment[offset - start:offset - start + 2] = b"\0\0"
    pseudo = frame[26:34] + struct.pack("!BBH", 0, proto, len(segment))
    value = checksum(pseudo + bytes(segment))
    if proto == 17 and value == 0:
        value = 0xFFFF  # RFC 768: a computed 0 is sent as all ones
    return frame[:offset] + struct.pack("!H", value) + frame[offset + 2:]


class Relay:
    """The switch: ports by interface name, a MAC table, and a heap of frames waiting to go."""

    def __init__(self, ports: Sequence[str], *, delay: float, jitter: float, loss: float,
                 duplicate: float, reorder: float, rng: random.Random) -> None:
        self.socks = {}
        for name in ports:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((name, 0))
            sock.setblocking(False)
            self.socks[name] = sock
        self.by_fd = {s.fileno(): n for n, s in self.socks.items()}
        self.macs: dict[bytes, str] = {}
        self.delay, self.jitter, self.loss = delay, jitter, loss
        self.duplicate, self.reorder, self.rng = duplicate, reorder, rng
        self.queue: list[tuple[float, int, tuple[str, ...], bytes]] = []
        self.seq = 0
        self.paused = False
        """SIGUSR1 pauses the impairment (frames pass at once, as through a bridge), SIGUSR2
        resumes it: the lab verifies its NATs on a clean network."""
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "paused", True))
        signal.signal(signal.SIGUSR2, lambda *_: setattr(self, "paused", False))

    def outputs(self, frame: bytes, port: str) -> tuple[str, ...]:
        """Learn the source MAC; the port of the destination MAC, or every other port."""
        self.macs[frame[6:12]] = port
        known = self.macs.get(frame[:6])
        if known is not None and frame[:6] != BROADCAST:
            return () if known == port else (known,)
        return tuple(p for p in self.socks if p != port)

    def receive(self, frame: bytes, port: str, now: float) -> None:
        """Queue a frame, impaired if it is IPv4."""
        outs = self.outputs(frame, port)
        if not outs:
            return
        if frame[12:14] != b"\x08\x00":
            self.push(now, outs, frame)
            return
        frame = fix_l4_checksum(frame)
        if self.paused:
            self.push(now, outs, frame)
            return
        if self.rng.random() < self.loss:
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            wait = 0.0
            if self.rng.random() >= self.reorder:
                wait = max(0.0, self.delay + self.rng.uniform(-self.jitter, self.jitter))
            self.push(now + wait, outs, frame)

    def push(self, due: float, outs: tuple[str, ...], frame: bytes) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (due, self.seq, outs, frame))

    def flush(self, now: float) -> None:
        """Send every frame that is due."""
        while self.queue and self.queue[0][0] <= now:
            _, _, outs, frame = heapq.heappop(self.queue)
            for name in outs:
                try:
                    self.socks[name].send(frame)
                except OSError:
                    pass  # a full queue or a frame over the MTU: lost, as on a wire

    def run(self) -> None:
        """Forever: wait for a frame or the next deadline, then receive and send."""
        while True:
            timeout = max(0.0, self.queue[0][0] - time.monotonic()) if self.queue else None
            readable, _, _ = select.select(list(self.socks.values()), [], [], timeout)
            now = time.monotonic()
            for sock in readable:
                port = self.by_fd[sock.fileno()]
                for _ in range(64):
                    try:
                        frame, addr = sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    if addr[2] != PACKET_OUTGOING:
                        self.receive(frame, port, now)
            self.flush(time.monotonic())


def main(argv: Sequence[str] | None = None) -> int:
    """relay --ports a,b,c [--delay S] [--jitter S] [--loss F] [--duplicate F] [--reorder F]"""
    parser = argparse.ArgumentParser(prog="relay")
    parser.add_argument("--ports", required=True)
    for name in ("delay", "jitter", "loss", "duplicate", "reorder"):
        parser.add_argument(f"--{name}", type=float, default=0.0)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    relay = Relay(args.ports.split(","), delay=args.delay, jitter=args.jitter, loss=args.loss,
                  duplicate=args.duplicate, reorder=args.reorder, rng=random.Random(args.seed))
    print("ready", flush=True)
    sys.stdout.close()
    relay.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
