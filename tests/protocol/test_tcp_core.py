"""The TCP core: frames, the rendezvous server and the peer client, over an in-test network.

Rule: no sockets, no real time. `TcpNet` plays the network and the drivers: it carries out the
clients' intents (Connect, Listen, Write, Close), answers SYNs (a crossing pair of connects is a
simultaneous open, a SYN to a listener is accepted, a NAT may answer the first N SYNs with RST),
delivers writes in random chunks, and runs everything on a hand clock.
"""

from __future__ import annotations

import heapq
import itertools
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holepunch.protocol import (
    ClientState,
    ConnectCompleted,
    DatagramDropped,
    DataReceived,
    Endpoint,
    Event,
    PeerConnected,
    PeerFailed,
    PeerJoined,
    PeerLeft,
    PeerListReceived,
    PunchingStarted,
    Registered,
    RegistrationRefused,
)
from holepunch.protocol.messages import (
    ExtError,
    ExtLeave,
    ExtPeers,
    ExtRegister,
    MessageError,
    MessageKind,
    PeerInfo,
)
from holepunch.protocol.states import CLIENT_TRANSITIONS
from holepunch.protocol.tcp_client import (
    STREAM_TRANSITIONS,
    TCP_CLIENT_TRANSITIONS,
    StreamState,
    TcpClientConfig,
    TcpPeerClient,
    TcpPeerState,
)
from holepunch.protocol.tcp_messages import (
    Close,
    Connect,
    FrameDecoder,
    Hello,
    Listen,
    Select,
    StopListening,
    TcpFrame,
    TcpKind,
    Write,
    decode_frames,
    encode_frame,
    explain_errno,
    frame_kind,
    session_token,
)
from holepunch.protocol.tcp_server import TcpRendezvousServer, TcpServerConfig

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-protocol.md"
SERVER = Endpoint("192.0.2.1", 7000)
STRANGER = Endpoint("203.0.113.66", 6666)
SID = b"room1"
DELAY = 0.01
PID = bytes.fromhex("0102030405060708")
PID2 = bytes.fromhex("a1a2a3a4a5a6a7a8")
CONFIG = TcpClientConfig(timeout=10.0)


def h(text: str) -> bytes:
    """Hex with spaces and `|` separators allowed."""
    return bytes.fromhex(text.replace("|", " "))


# --- the network ------------------------------------------------------------------------------

End = tuple[str, Any]  # (node name, connection id on that node)


@dataclass
class Host:
    """A peer host behind an endpoint-independent NAT that shifts ports (public port = local + 1000)."""

    name: str
    client: TcpPeerClient
    n: int
    port: int | None = None
    listening: int | None = None
    events: list[tuple[float, Event]] = field(default_factory=list)
    intents: list[tuple[float, Any]] = field(default_factory=list)

    @property
    def local(self) -> Endpoint:
        return Endpoint(f"10.0.{self.n}.2", self.port or 0)

    @property
    def public(self) -> Endpoint:
        return Endpoint(f"198.51.100.{self.n}", (self.port or 0) + 1000)

    def of(self, kind: type) -> list[Any]:
        """Events of one class, without times."""
        return [e for _, e in self.events if isinstance(e, kind)]


class TcpNet:
    """Hosts, the server and strangers joined by links with a fixed one-way delay."""

    def __init__(self, seed: int = 1, *, simultaneous: bool = True, max_chunk: int = 7,
                 server: TcpServerConfig | None = None) -> None:
        self.rng = random.Random(seed)
        self.simultaneous, self.max_chunk = simultaneous, max_chunk
        self.now = 0.0
        self.server = TcpRendezvousServer(server)
        self.server_events: list[tuple[float, Event]] = []
        self.hosts: dict[str, Host] = {}
        self.links: dict[End, End] = {}  # open ends: each maps to the far end
        self.pending: dict[End, Endpoint] = {}  # connects in flight
        self.rst: Counter[tuple[str, str]] = Counter()  # (from, to): SYNs still answered with RST
        self.drop: Counter[tuple[str, str]] = Counter()  # (from, to): SYNs still dropped silently
        self.received: dict[Any, bytes] = {}  # what raw (stranger or fake peer) ends received
        self.latency: dict[str, float] = {}  # one-way delay from a node to the core of the net
        self.pair_delay: dict[frozenset[str], float] = {}  # overrides for one pair of nodes
        self.accepts: Counter[str] = Counter()
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)

    def add(self, name: str, expected: int, config: TcpClientConfig = CONFIG, *, n: int | None = None,
            peer_id: bytes | None = None) -> Host:
        n = n if n is not None else len(self.hosts) + 1
        pid = peer_id or bytes([n]) * 8  # lower n: controlling
        client = TcpPeerClient(SERVER, SID, expected, config, rng=random.Random(n), peer_id=pid)
        host = self.hosts[name] = Host(name, client, n)
        return host

    def start(self, name: str, at: float) -> None:
        self.later(at - self.now, lambda: self.hosts[name].client.start(self.now))

    # --- scheduling ---------------------------------------------------------------------------

    def later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._queue, (self.now + delay, next(self._seq), fn, args))

    def delay(self, a: str, b: str) -> float:
        """One-way delay between two nodes: fixed per pair, so every stream stays in order."""
        pair = self.pair_delay.get(frozenset((a, b)))
        return pair if pair is not None else self.latency.get(a, DELAY / 2) + self.latency.get(b, DELAY / 2)

    def _node_at(self, remote: Endpoint) -> str:
        if remote == SERVER:
            return "server"
        return next((t.name for t in self.hosts.values() if t.port and t.public == remote), "nobody")

    def _machines(self) -> list[Any]:
        return [self.server] + [h.client for h in self.hosts.values()]

    def step(self, until: float) -> bool:
        times = [t for m in self._machines() if (t := m.get_timer()) is not None]
        if self._queue:
            times.append(self._queue[0][0])
        if not times or min(times) > until:
            return False
        self.now = max(self.now, min(times))
        if self._queue and self._queue[0][0] <= self.now:
            _, _, fn, args = heapq.heappop(self._queue)
            fn(*args)
        else:
            for machine in self._machines():
                if (t := machine.get_timer()) is not None and t <= self.now:
                    machine.handle_timer(self.now)
        self.flush()
        return True

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        for _ in range(200_000):
            if (stop is not None and stop()) or not self.step(until):
                self.now = max(self.now, until) if stop is None or not stop() else self.now
                return
        raise AssertionError(f"no progress at t={self.now}")

    def flush(self) -> None:
        """Carry out every intent and server output; collect events."""
        for host in self.hosts.values():
            for intent in host.client.intents_to_run():
                host.intents.append((self.now, intent))
                self._run(host, intent)
            while (event := host.client.next_event()) is not None:
                host.events.append((self.now, event))
        for sid, data in self.server.data_to_send():
            self._write(("server", sid), data)
        for sid in self.server.connections_to_close():
            self._close(("server", sid))
        while (event := self.server.next_event()) is not None:
            self.server_events.append((self.now, event))

    # --- intents ------------------------------------------------------------------------------

    def _run(self, host: Host, intent: Any) -> None:
        end = (host.name, getattr(intent, "conn_id", None))
        if isinstance(intent, Listen):
            assert intent.port == host.port, "listen on the port of the server connection"
            host.listening = intent.port
        elif isinstance(intent, StopListening):
            host.listening = None
        elif isinstance(intent, Connect):
            if host.port is None:
                host.port = intent.local_port or 40000 + host.n
            assert intent.local_port in (0, host.port), "every connect leaves from port P"
            self.pending[end] = intent.remote
            self.later(self.delay(host.name, self._node_at(intent.remote)), self._syn, host, intent.conn_id)
        elif isinstance(intent, Write):
            self._write(end, intent.data)
        elif isinstance(intent, Close):
            self.pending.pop(end, None)
            self._close(end)

    def _write(self, end: End, data: bytes) -> None:
        far = self.links.get(end)
        if far is None:
            return
        pos = 0
        while pos < len(data):  # same time, increasing sequence: order kept, chunking random
            size = self.rng.randint(1, self.max_chunk)
            self.later(self.delay(end[0], far[0]), self._deliver, far, data[pos : pos + size])
            pos += size

    def _close(self, end: End) -> None:
        far = self.links.pop(end, None)
        if far is not None:
            self.later(self.delay(end[0], far[0]), self._lost, far)

    def _deliver(self, end: End, chunk: bytes) -> None:
        if end not in self.links:
            return  # that end closed already
        node, cid = end
        if node == "server":
            self.server.data_received(cid, chunk, self.now)
        elif node == "raw":
            self.received[cid] = self.received.get(cid, b"") + chunk
        else:
            self.hosts[node].client.data_received(cid, chunk, self.now)

    def _lost(self, end: End) -> None:
        if self.links.pop(end, None) is None:
            return
        node, cid = end
        if node == "server":
            self.server.connection_lost(cid, self.now)
        elif node != "raw":
            self.hosts[node].client.connection_lost(cid, self.now)

    # --- SYNs ---------------------------------------------------------------------------------

    def _link(self, a: End, b: End) -> None:
        self.links[a], self.links[b] = b, a

    def _connected(self, host: Host, cid: Any, remote: Endpoint) -> None:
        if (host.name, cid) in self.links:
            host.client.connected(cid, host.local, remote, self.now)

    def _syn(self, host: Host, cid: Any) -> None:
        end = (host.name, cid)
        remote = self.pending.get(end)
        if remote is None:
            return  # the connect was abandoned
        if remote == SERVER:
            del self.pending[end]
            sid = next(self._ids)
            self._link(end, ("server", sid))
            self.server.connection_made(sid, host.public, self.now)
            self.later(self.delay(host.name, "server"), self._connected, host, cid, remote)
            return
        target = next((t for t in self.hosts.values() if t.port and t.public == remote), None)
        if target is None:
            return  # nobody there: the SYN is dropped and the connect hangs
        if self.drop[(host.name, target.name)] > 0:  # a NAT that drops early SYNs: the connect hangs,
            self.drop[(host.name, target.name)] -= 1  # though the far side's SYN may still cross it
            return
        del self.pending[end]
        back = self.delay(host.name, target.name)
        if self.rst[(host.name, target.name)] > 0:  # the target's NAT resets an early SYN
            self.rst[(host.name, target.name)] -= 1
            self.later(back, lambda: host.client.connect_failed(cid, "ECONNREFUSED", self.now))
            return
        crossing = next((e for e, r in self.pending.items() if e[0] == target.name and r == host.public), None)
        if self.simultaneous and crossing is not None:
            del self.pending[crossing]
            self._link(end, crossing)
            self.later(back, self._connected, host, cid, remote)
            self.later(0.0, self._connected, target, crossing[1], host.public)
        elif target.listening is not None:
            aid = -next(self._ids)  # drivers name accepted connections; negative never collides
            self._link(end, (target.name, aid))
            self.accepts[target.name] += 1
            target.client.accepted(aid, host.public, self.now)
            self.later(back, self._connected, host, cid, remote)
        else:
            self.later(back, lambda: host.client.connect_failed(cid, "ECONNREFUSED", self.now))

    # --- raw ends: strangers and fake peers ---------------------------------------------------

    def raw_to_host(self, name: str, source: Endpoint = STRANGER) -> Any:
        """A stranger connects to `name`'s listener; returns its raw end's id."""
        host = self.hosts[name]
        assert host.listening is not None
        rid, aid = f"raw{next(self._ids)}", -next(self._ids)
        self._link(("raw", rid), (name, aid))
        host.client.accepted(aid, source, self.now)
        self.flush()
        return rid

    def raw_to_server(self, public: Endpoint, *frames: TcpFrame) -> Any:
        """A raw client (no peer client behind it) connects to the server and sends `frames`."""
        rid, sid = f"raw{next(self._ids)}", next(self._ids)
        self._link(("raw", rid), ("server", sid))
        self.server.connection_made(sid, public, self.now)
        self.raw_send(rid, b"".join(encode_frame(f) for f in frames))
        return rid

    def raw_send(self, rid: Any, data: bytes) -> None:
        self._write(("raw", rid), data)

    # --- checks -------------------------------------------------------------------------------

    def is_open(self, host: Host, cid: Any) -> bool:
        return (host.name, cid) in self.links

    def assert_mesh(self, *names: str) -> None:
        """Every pair holds exactly one stream, the same one on both sides, and data flows on it."""
        hosts = [self.hosts[n] for n in names]
        for a, b in itertools.combinations(hosts, 2):
            cid_a, cid_b = a.client.stream_of(b.public), b.client.stream_of(a.public)
            assert cid_a is not None and cid_b is not None, (a.name, b.name)
            assert self.links[(a.name, cid_a)] == (b.name, cid_b), "both sides keep the same stream"
            a.client.send(b.public, f"{a.name}->{b.name}".encode())
            b.client.send(a.public, f"{b.name}->{a.name}".encode())
        self.flush()
        self.run(self.now + 1.0)
        for a in hosts:
            got: dict[Endpoint, bytes] = {}
            for event in a.of(DataReceived):  # a stream has no message boundaries: join the chunks
                got[event.peer] = got.get(event.peer, b"") + event.data
            assert got == {b.public: f"{b.name}->{a.name}".encode() for b in hosts if b is not a}, a.name
            peer_links = [e for e in self.links if e[0] == a.name and self.links[e][0] in names]
            assert len(peer_links) == len(hosts) - 1, "duplicates are closed"


def mesh(names: str, starts: list[float] | None = None, **kw: Any) -> TcpNet:
    """Peers named by the letters of `names`, each expecting all others, started at `starts`."""
    net = TcpNet(**kw)
    for i, name in enumerate(names):
        net.add(name, len(names) - 1)
        net.start(name, (starts or [0.0] * len(names))[i])
    return net


def done(net: TcpNet) -> Callable[[], bool]:
    return lambda: all(h.of(ConnectCompleted) for h in net.hosts.values())


# --- frames: golden bytes ---------------------------------------------------------------------

TCP_GOLDEN = [
    pytest.param(
        ExtRegister(b"room1", PID, 2),
        "0000001e | fa687078 01 01 | 01 0005 726f6f6d31 | 02 0008 0102030405060708 | 03 0002 0002",
        id="register",
    ),
    pytest.param(
        ExtPeers(b"room1", Endpoint("203.0.113.7", 41001), (PeerInfo(Endpoint("198.51.100.2", 41002), PID2, True),)),
        "00000040 | fa687078 01 02 | 01 0005 726f6f6d31 | 04 0011 3230332e302e3131332e373a3431303031"
        " | 05 001b a1a2a3a4a5a6a7a8 01 3139382e35312e3130302e323a3431303032",
        id="peers-reply",
    ),
    pytest.param(
        ExtPeers(b"room1", Endpoint("203.0.113.7", 41001), (PeerInfo(Endpoint("198.51.100.9", 41009), PID2, True),), True),
        "00000044 | fa687078 01 02 | 01 0005 726f6f6d31 | 04 0011 3230332e302e3131332e373a3431303031"
        " | 06 0001 01 | 05 001b a1a2a3a4a5a6a7a8 01 3139382e35312e3130302e393a3431303039",
        id="peers-push",
    ),
    pytest.param(
        ExtLeave(b"room1", PID),
        "00000019 | fa687078 01 03 | 01 0005 726f6f6d31 | 02 0008 0102030405060708",
        id="leave",
    ),
    pytest.param(
        ExtError(3, "session-full"),
        "00000019 | fa687078 01 04 | 07 0001 03 | 08 000c 73657373696f6e2d66756c6c",
        id="error",
    ),
    pytest.param(
        Hello(session_token(b"room1"), PID, PID2),
        "0000002f | fa687078 01 05 | 09 0010 TOKEN | 02 0008 0102030405060708 | 0a 0008 a1a2a3a4a5a6a7a8",
        id="hello",
    ),
    pytest.param(Select(), "00000006 | fa687078 01 06", id="select"),
]


def golden_bytes(golden: str) -> bytes:
    return h(golden.replace("TOKEN", session_token(b"room1").hex()))


@pytest.mark.parametrize(("frame", "golden"), TCP_GOLDEN)
def test_tcp_frame_golden(frame: TcpFrame, golden: str) -> None:
    assert encode_frame(frame).hex() == golden_bytes(golden).hex()
    assert decode_frames(golden_bytes(golden)) == [frame]


@pytest.mark.parametrize(("frame", "golden"), TCP_GOLDEN)
def test_docs_quote_the_tcp_golden_hex(frame: TcpFrame, golden: str) -> None:
    assert golden_bytes(golden).hex() in DOC.read_text(encoding="utf-8"), "regenerate docs/wire-protocol.md"


def test_session_token_is_pinned() -> None:
    assert session_token(b"room1").hex() == "384c158e86fcf589bc1f41ac0cae254c"
    assert session_token(b"room2") != session_token(b"room1")


def test_frame_kinds_label_traces() -> None:
    assert frame_kind(ExtRegister(b"r", PID)) is MessageKind.EXT_REGISTER
    assert frame_kind(ExtPeers(b"r", SERVER, push=True)) is MessageKind.EXT_PUSH
    assert frame_kind(Hello(bytes(16), PID, PID2)) is TcpKind.HELLO
    assert frame_kind(Select()) is TcpKind.SELECT


BAD_STREAMS = [
    pytest.param(b"GET / HTTP/1.1\r\n", "exceeds the limit", id="http"),
    pytest.param(h("00000005 fa68707801"), "shorter than the 6-byte header", id="too-short"),
    pytest.param(h("00100001"), "exceeds the limit of 65536", id="oversize"),
    pytest.param(h("00000006 fa68"), None, id="partial-is-fine"),
    pytest.param(h("00000006 fa69"), "magic", id="early-bad-magic"),
    pytest.param(h("00000006 fa687078 02"), "version 2", id="early-bad-version"),
    pytest.param(h("00000006 fa687078 01 09"), "unknown extension type 9", id="unknown-type"),
    pytest.param(h("00000008 fa687078 01 05 | 09 00"), "truncated field header", id="hello-truncated"),
    pytest.param(h("00000009 fa687078 01 05 | 7f 0000"), "missing field TOKEN", id="hello-no-token"),
    pytest.param(h("0000000a fa687078 01 05 | 09 0001 00"), "TOKEN must be 16 bytes", id="hello-short-token"),
    pytest.param(h("00000008 fa687078 01 06 | 09 00"), "truncated field header", id="select-bad-field"),
]


@pytest.mark.parametrize(("data", "reason"), BAD_STREAMS)
def test_the_decoder_rejects_garbage_as_early_as_it_can(data: bytes, reason: str | None) -> None:
    decoder = FrameDecoder(max_size=65536)
    decoder.feed(data)
    if reason is None:
        assert decoder.next_frame() is None
        return
    with pytest.raises(MessageError, match=reason):
        decoder.next_frame()
    with pytest.raises(MessageError, match=reason):  # and it stays broken
        decoder.next_frame()


def test_unknown_hello_tags_are_skipped_and_first_wins() -> None:
    token = session_token(SID)
    body = h("fa687078 01 05 | 7f 0001 00") + bytes([9, 0, 16]) + token + h("02 0008") + PID
    body += h("02 0008") + PID2 + h("0a 0008") + PID2
    assert decode_frames(len(body).to_bytes(4, "big") + body) == [Hello(token, PID, PID2)]


def test_data_after_a_frame_is_handed_over() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(Select()) + b"app data")
    assert decoder.next_frame() == Select()
    assert decoder.take_rest() == b"app data" and decoder.buffered == 0


# --- frames: properties -----------------------------------------------------------------------

ids = st.binary(min_size=8, max_size=8)
endpoints = st.builds(  # v4-mapped IPv6 is shown as IPv4 on the wire (endpoint.py), so not round-trip
    Endpoint, st.ip_addresses().map(str).filter(lambda a: not a.startswith("::ffff:")), st.integers(0, 65535)
)
frames = st.one_of(
    st.builds(ExtRegister, st.binary(max_size=40), ids, st.integers(0, 0xFFFF)),
    st.builds(ExtPeers, st.binary(max_size=40), endpoints,
              st.lists(st.builds(PeerInfo, endpoints, ids, st.booleans()), max_size=4).map(tuple), st.booleans()),
    st.builds(ExtLeave, st.binary(max_size=40), ids),
    st.builds(ExtError, st.integers(0, 255), st.text(max_size=20)),
    st.builds(Hello, st.binary(min_size=16, max_size=16), ids, ids),
    st.just(Select()),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def drain_frames(decoder: FrameDecoder, chunks: list[bytes]) -> tuple[list[TcpFrame], str | None]:
    out: list[TcpFrame] = []
    for chunk in chunks:
        decoder.feed(chunk)
        try:
            while (frame := decoder.next_frame()) is not None:
                out.append(frame)
        except MessageError as exc:
            return out, str(exc)
    return out, None


@FAST
@given(st.lists(frames, max_size=6), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_chunking_yields_the_same_frames(msgs: list[TcpFrame], cuts: list[int]) -> None:
    data = b"".join(encode_frame(m) for m in msgs)
    assert drain_frames(FrameDecoder(), chunked(data, cuts)) == (msgs, None)


@FAST
@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=8), st.lists(frames, max_size=2))
def test_arbitrary_bytes_raise_only_message_error(junk: bytes, cuts: list[int], msgs: list[TcpFrame]) -> None:
    data = b"".join(encode_frame(m) for m in msgs) + junk
    whole = drain_frames(FrameDecoder(max_size=256), [data])  # raises nothing but MessageError
    assert drain_frames(FrameDecoder(max_size=256), chunked(data, cuts)) == whole


@FAST
@given(st.binary(max_size=200), st.lists(st.integers(0, 300), max_size=6))
def test_arbitrary_bytes_never_crash_server_or_client(junk: bytes, cuts: list[int]) -> None:
    server = TcpRendezvousServer()
    server.connection_made(1, STRANGER, 0.0)
    client = TcpPeerClient(SERVER, SID, 1, CONFIG, peer_id=PID)
    client.start(0.0)
    client.connected(1, Endpoint("10.0.0.2", 40000), SERVER, 0.01)
    client.accepted(-1, STRANGER, 0.02)
    for chunk in chunked(junk, cuts):
        server.data_received(1, chunk, 0.1)
        client.data_received(1, chunk, 0.1)
        client.data_received(-1, chunk, 0.1)
    server.handle_timer(100.0)
    client.handle_timer(100.0)


# --- the server -------------------------------------------------------------------------------


def server_frames(net: TcpNet, rid: Any) -> list[TcpFrame]:
    return decode_frames(net.received.get(rid, b""))


def test_the_server_replies_and_pushes_newcomers_to_earlier_members() -> None:
    net = TcpNet()
    eps = [Endpoint(f"198.51.100.{n}", 41000 + n) for n in (1, 2, 3)]
    pids = [bytes([n]) * 8 for n in (1, 2, 3)]
    rids = []
    for n, (ep, pid) in enumerate(zip(eps, pids)):
        rids.append(net.raw_to_server(ep, ExtRegister(SID, pid, 2)))
        net.run(net.now + 0.1)
    info = [PeerInfo(ep, pid, True) for ep, pid in zip(eps, pids)]
    assert server_frames(net, rids[0]) == [
        ExtPeers(SID, eps[0], ()),
        ExtPeers(SID, eps[0], (info[1],), push=True),
        ExtPeers(SID, eps[0], (info[2],), push=True),
    ]
    assert server_frames(net, rids[1]) == [ExtPeers(SID, eps[1], (info[0],)), ExtPeers(SID, eps[1], (info[2],), True)]
    assert server_frames(net, rids[2]) == [ExtPeers(SID, eps[2], (info[0], info[1]))]
    assert net.server.members(SID) == eps
    assert (net.server.stats.replies, net.server.stats.pushes) == (3, 3)
    assert [e.members for _, e in net.server_events if isinstance(e, PeerJoined)] == [1, 2, 3]


def test_members_leave_on_leave_close_and_silence() -> None:
    net = TcpNet(server=TcpServerConfig(session_timeout=5.0))
    a = net.raw_to_server(Endpoint("198.51.100.1", 1), ExtRegister(SID, PID))
    b = net.raw_to_server(Endpoint("198.51.100.2", 2), ExtRegister(SID, PID2))
    c = net.raw_to_server(Endpoint("198.51.100.3", 3), ExtRegister(SID, bytes(8)))
    net.run(1.0)
    net.raw_send(a, encode_frame(ExtLeave(SID, PID)))
    net._close(("raw", b))
    net.run(4.0)
    net.raw_send(c, encode_frame(ExtRegister(SID, bytes(8))))  # a refresh slides the expiry
    net.run(8.0)
    assert net.server.members(SID) == [Endpoint("198.51.100.3", 3)]
    net.run(20.0)
    reasons = [e.reason for _, e in net.server_events if isinstance(e, PeerLeft)]
    assert reasons == ["left", "closed", "expired"]
    assert net.server.connection_count == 0 and net.server.session_count == 0
    assert ("raw", c) not in net.links, "the server closed the silent member's connection"


@pytest.mark.parametrize(
    ("config", "first", "reason"),
    [
        (TcpServerConfig(max_peers_per_session=1), ExtRegister(b"abc", PID2), "session-full"),
        (TcpServerConfig(max_id_length=3), ExtRegister(SID, PID2), "id-too-long"),
        (TcpServerConfig(max_sessions=1), ExtRegister(b"other", PID2), "too-many-sessions"),
        (TcpServerConfig(max_connections=1), ExtRegister(SID, PID2), "too-many-connections"),
    ],
)
def test_refusals_are_explained_then_closed(config: TcpServerConfig, first: ExtRegister, reason: str) -> None:
    net = TcpNet(server=config)
    ok = net.raw_to_server(Endpoint("198.51.100.1", 1), ExtRegister(b"abc", PID))
    net.run(0.1)
    refused = net.raw_to_server(Endpoint("198.51.100.2", 2), first)
    net.run(0.2)
    (error,) = server_frames(net, refused)
    assert isinstance(error, ExtError) and error.text == reason
    assert ("raw", refused) not in net.links and ("raw", ok) in net.links
    assert net.server.stats.refused == Counter({reason: 1})
    assert any(isinstance(e, RegistrationRefused) and e.reason == reason for _, e in net.server_events)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "malformed: frame length"),
        (encode_frame(Select()), "unexpected"),
        (b"", "no registration"),
    ],
)
def test_the_server_drops_garbage_and_silence(data: bytes, reason: str) -> None:
    net = TcpNet()
    rid = net.raw_to_server(STRANGER)
    net.raw_send(rid, data)
    net.run(30.0)
    assert any(reason in r for r in net.server.stats.dropped), net.server.stats.dropped
    if reason != "unexpected":
        assert ("raw", rid) not in net.links and net.server.connection_count == 0


def test_a_reconnecting_peer_replaces_its_stale_membership() -> None:
    net = TcpNet()
    net.raw_to_server(Endpoint("198.51.100.1", 1), ExtRegister(SID, PID))
    net.raw_to_server(Endpoint("198.51.100.1", 2), ExtRegister(SID, PID))
    net.run(0.5)
    assert net.server.members(SID) == [Endpoint("198.51.100.1", 2)]
    assert [e.reason for _, e in net.server_events if isinstance(e, PeerLeft)] == ["replaced"]


# --- the client: meshes -----------------------------------------------------------------------


def test_two_peers_connect_through_the_server() -> None:
    net = mesh("AB")
    net.run(10.0, stop=done(net))
    a, b = net.hosts["A"], net.hosts["B"]
    for host, other in ((a, b), (b, a)):
        (completed,) = host.of(ConnectCompleted)
        assert completed.complete and completed.connected == (other.public,)
        assert host.client.state is ClientState.ESTABLISHED
        assert host.of(Registered) == [Registered(True, host.public)]
        assert host.client.public_endpoint == host.public != host.local  # the server's view is used
    assert isinstance(a.intents[0][1], Connect) and a.intents[0][1].remote == SERVER
    assert isinstance(a.intents[1][1], Listen)
    net.assert_mesh("A", "B")
    assert net.server.sessions() == {}, "clients leave the server once connect completes"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_four_peers_joining_one_by_one_all_connect(seed: int) -> None:
    net = mesh("ABCD", starts=[0.0, 0.3, 0.6, 0.9], seed=seed)
    net.run(20.0, stop=done(net))
    for name, host in net.hosts.items():
        (completed,) = host.of(ConnectCompleted)
        assert completed.complete and len(completed.connected) == 3, name
        assert [e.push for e in host.of(PeerListReceived)] == [False] + [True] * (3 - "ABCD".index(name))
    assert net.server.stats.pushes == 6
    net.assert_mesh("A", "B", "C", "D")


def test_duplicate_streams_collapse_to_the_one_the_controlling_peer_selects() -> None:
    net = mesh("ABC", simultaneous=False)  # every SYN lands on a listener: two streams per pair
    net.run(10.0, stop=done(net))
    for host in net.hosts.values():
        assert host.of(ConnectCompleted)[0].complete
        connects = [i for _, i in host.intents if isinstance(i, Connect) and i.remote != SERVER]
        assert len(connects) == 2 and net.accepts[host.name] == 2, "an accept and a connect per pair"
        assert host.client.duplicates >= 1
    net.assert_mesh("A", "B", "C")
    a = net.hosts["A"]
    for other in ("B", "C"):
        kept = a.client.stream_of(net.hosts[other].public)
        assert all(s.state is StreamState.SELECTED for s in a.client.streams.values() if s.conn_id == kept)


@pytest.mark.parametrize("seed", range(24))
def test_meshes_survive_random_timing_ids_resets_and_duplicates(seed: int) -> None:
    rng = random.Random(seed)
    names = "ABCD"[: rng.randint(2, 4)]
    net = TcpNet(seed, simultaneous=rng.random() < 0.5, max_chunk=rng.choice([1, 3, 50]))
    for n, name in enumerate(names, 1):
        net.add(name, len(names) - 1, n=n, peer_id=rng.randbytes(8))
        net.start(name, rng.uniform(0.0, 1.0))
        net.latency[name] = rng.uniform(0.001, 0.05)
    for a, b in itertools.permutations(names, 2):
        net.rst[(a, b)] = rng.choice([0, 0, 1, 3])
        net.drop[(a, b)] = rng.choice([0, 0, 0, 1, 2])
    net.run(20.0, stop=done(net))
    for host in net.hosts.values():
        assert host.of(ConnectCompleted)[0].complete, (host.name, host.of(ConnectCompleted))
        assert not host.client.dropped, host.client.dropped
    net.assert_mesh(*names)


def test_simultaneous_open_yields_one_stream_without_duplicates() -> None:
    net = mesh("AB")
    net.run(10.0, stop=done(net))
    assert all(h.client.duplicates == 0 for h in net.hosts.values())
    a, b = net.hosts["A"], net.hosts["B"]
    assert a.client.stream_of(b.public) == 2 and b.client.stream_of(a.public) == 2  # both connects


def test_rst_answers_are_retried_every_retry_interval_until_success() -> None:
    net = mesh("AB")
    net.rst[("A", "B")] = net.rst[("B", "A")] = 3
    net.run(10.0, stop=done(net))
    a = net.hosts["A"]
    assert a.of(ConnectCompleted)[0].complete
    record = next(iter(a.client.peers.values()))
    assert record.errors == Counter({"ECONNREFUSED": 3}) and record.attempts == 4
    times = [t for t, i in a.intents if isinstance(i, Connect) and i.remote != SERVER]
    gaps = [round(y - x, 6) for x, y in itertools.pairwise(times)]
    assert gaps == [round(2 * DELAY + CONFIG.retry_interval, 6)] * 3  # RST after a round trip, then wait
    net.assert_mesh("A", "B")


def test_a_peer_that_never_answers_fails_at_the_deadline_with_a_reason() -> None:
    net = TcpNet()
    ghost = Endpoint("198.51.100.99", 41099)
    net.raw_to_server(ghost, ExtRegister(SID, PID2, 1))  # registered, but nothing answers SYNs
    net.add("A", 1, n=1)
    net.start("A", 0.1)
    net.run(30.0)
    a = net.hosts["A"]
    (failed,) = a.of(PeerFailed)
    assert failed.peer == ghost
    assert "no TCP connection to 198.51.100.99:41099" in failed.reason and "NO_ANSWER" in failed.reason
    assert "try:" in failed.reason
    (completed,) = a.of(ConnectCompleted)
    assert completed.failed == (ghost,) and completed.reason == "timed out" and not completed.complete
    when = next(t for t, e in a.events if isinstance(e, PeerFailed))
    assert when == pytest.approx(0.1 + CONFIG.timeout)  # type: ignore[operator]
    connects = [i for _, i in a.intents if isinstance(i, Connect) and i.remote == ghost]
    closes = {i.conn_id for _, i in a.intents if isinstance(i, Close)}
    assert len(connects) >= 3 and {c.conn_id for c in connects} <= closes, "every hung connect is abandoned"
    assert not any(e[0] == "A" for e in net.pending), "nothing left in flight"


def test_hello_before_the_peer_list_is_held_until_punching() -> None:
    net = TcpNet()
    a = net.add("A", 2)  # waits for two peers
    b = net.add("B", 1)  # punches A as soon as it registers
    c = net.add("C", 2)
    net.start("A", 0.0)
    net.start("B", 0.2)
    net.start("C", 1.0)
    net.run(10.0, stop=lambda: bool(a.of(ConnectCompleted) and b.of(ConnectCompleted)))
    assert a.of(ConnectCompleted)[0].complete and b.of(ConnectCompleted)[0].complete
    assert set(a.of(ConnectCompleted)[0].connected) == {b.public, c.public}
    assert not a.client.dropped, "B's early HELLO was held, not dropped"
    first_connected = next(t for t, e in a.events if isinstance(e, PeerConnected))
    assert first_connected > 1.0
    assert net.hosts["B"].client.peers[a.client.peer_id].attempts == 1, "B's first stream waited, held"
    assert net.accepts["A"] >= 1
    net.assert_mesh("A", "B")


@pytest.mark.parametrize("a_controls", [True, False])
def test_a_hello_faster_than_the_push_is_held_then_completes_connect(a_controls: bool) -> None:
    net = TcpNet()
    net.pair_delay[frozenset(("server", "A"))] = 0.5  # the push to A is slow, B's SYN and HELLO fast
    a = net.add("A", 1, n=1, peer_id=bytes([1 if a_controls else 3]) * 8)
    b = net.add("B", 1, n=2)
    net.start("A", 0.0)
    net.start("B", 1.0)
    net.run(10.0, stop=done(net))
    assert a.of(ConnectCompleted)[0].complete and b.of(ConnectCompleted)[0].complete
    pushed = next(t for t, e in a.events if isinstance(e, PunchingStarted))
    hello = min(t for t, i in b.intents if isinstance(i, Write) and i.kind is TcpKind.HELLO)
    assert hello + DELAY < pushed, "B's HELLO reached A before A knew B"
    assert b.client.peers[a.client.peer_id].attempts == 1 and not a.client.dropped
    net.assert_mesh("A", "B")


def test_peers_beyond_our_set_are_strangers() -> None:
    net = TcpNet()
    a, b, c = net.add("A", 1), net.add("B", 1), net.add("C", 2)
    for name in "ABC":  # C registers while A and B still punch, so the server lists them
        net.start(name, 0.0)
    net.run(20.0)
    assert a.of(ConnectCompleted)[0].complete and b.of(ConnectCompleted)[0].complete
    completed = c.of(ConnectCompleted)[0]
    assert set(completed.failed) == {a.public, b.public} and completed.reason == "timed out"
    assert a.client.dropped["stranger: HELLO from a peer we do not punch"] >= 1
    # C's push reached A after A began punching: our session's list, counted, not dropped
    assert a.client.refresh_answers >= 1 and "late server reply" not in a.client.dropped


def test_server_frames_after_registration_are_counted_or_dropped_with_their_reason() -> None:
    client = started()
    client.connected(1, Endpoint("10.0.0.2", 40000), SERVER, 0.01)
    peer = PeerInfo(Endpoint("198.51.100.7", 4000), PID2)
    client.data_received(1, encode_frame(ExtPeers(SID, STRANGER, (peer,))), 0.02)
    assert client.state is ClientState.PUNCHING
    for frame in (ExtPeers(SID, STRANGER, (peer,), push=True), ExtPeers(b"other", STRANGER),
                  ExtError(3, "session-full"), Select()):
        client.data_received(1, encode_frame(frame), 0.03)
    assert client.refresh_answers == 1
    assert client.dropped == {"unexpected server frame": 2, "server error after registration: session-full": 1}
    assert client.state is ClientState.PUNCHING  # none of them ends the punching


# --- the client: strangers and errors ----------------------------------------------------------


def established(*names: str) -> TcpNet:
    net = mesh("".join(names))
    net.run(10.0, stop=done(net))
    return net


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "stranger: malformed stream: frame length"),
        (encode_frame(Hello(session_token(b"other"), PID2, bytes([1]) * 8)), "stranger: HELLO for another session"),
        (encode_frame(Hello(session_token(SID), bytes([2]) * 8, PID2)), "stranger: HELLO for another peer"),
        (encode_frame(Hello(session_token(SID), PID2, bytes([1]) * 8)), "stranger: HELLO from a peer we do not punch"),
        (encode_frame(Select()), "stranger: unexpected Select frame"),
        (encode_frame(ExtRegister(SID, PID2)), "stranger: unexpected ExtRegister frame"),
        (b"", "stranger: no valid HELLO in time"),
    ],
)
def test_strangers_are_closed_and_counted(payload: bytes, reason: str) -> None:
    net = established("A", "B")
    a = net.hosts["A"]
    rid = net.raw_to_host("A")
    net.raw_send(rid, payload)
    net.run(net.now + 10.0)
    assert ("raw", rid) not in net.links, "A closed the stranger's stream"
    (counted,) = a.client.dropped.elements()
    assert counted.startswith(reason)
    (dropped,) = a.of(DatagramDropped)
    assert dropped.source == STRANGER and dropped.reason == counted
    assert net.received.get(rid, b"") == b"", "a stranger learns nothing, not even our HELLO"
    net.assert_mesh("A", "B")  # and the mesh is untouched


def test_a_controlled_peer_gets_hello_select_and_data_in_one_chunk() -> None:
    client = TcpPeerClient(SERVER, SID, 1, CONFIG, peer_id=PID2)  # higher id: controlled
    client.start(0.0)
    client.connected(1, Endpoint("10.0.0.2", 40000), SERVER, 0.01)
    client.data_received(1, encode_frame(ExtPeers(SID, STRANGER, (PeerInfo(Endpoint("198.51.100.1", 5), PID, True),))), 0.02)
    intents = client.intents_to_run()
    connect = next(i for i in intents if isinstance(i, Connect) and i.remote != SERVER)
    client.accepted("in", Endpoint("198.51.100.1", 5), 0.03)
    stream = encode_frame(Hello(client.token, PID, PID2)) + encode_frame(Select()) + b"hi there"
    client.data_received("in", stream, 0.04)
    assert [e for e in iter(client.next_event, None) if isinstance(e, (PeerConnected, DataReceived))] == [
        PeerConnected(Endpoint("198.51.100.1", 5), pytest.approx(0.02)),  # type: ignore[arg-type]
        DataReceived(Endpoint("198.51.100.1", 5), b"hi there"),
    ]
    after = client.intents_to_run()
    assert Write("in", encode_frame(Hello(client.token, PID2, PID)), TcpKind.HELLO) in after
    assert Close(connect.conn_id) in after, "the pending connect is abandoned"
    assert client.state is ClientState.ESTABLISHED


def started(**kw: Any) -> TcpPeerClient:
    client = TcpPeerClient(SERVER, SID, 1, TcpClientConfig(**{"timeout": 10.0, **kw}), peer_id=PID)
    client.start(0.0)
    return client


def completion(client: TcpPeerClient) -> ConnectCompleted:
    (completed,) = [e for e in iter(client.next_event, None) if isinstance(e, ConnectCompleted)]
    return completed


@pytest.mark.parametrize(
    ("errno", "words"),
    [
        ("EADDRINUSE", ["cannot listen on port 40000", "EADDRINUSE", "SO_REUSEPORT", "local_port=0"]),
        ("ENOPROTOOPT", ["cannot listen on port 40000", "no SO_REUSEPORT", "UDP hole punching"]),
    ],
)
def test_listen_errors_end_connect_with_what_to_try(errno: str, words: list[str]) -> None:
    client = started()
    client.connected(1, Endpoint("10.0.0.2", 40000), SERVER, 0.01)
    assert Listen(40000) in client.intents_to_run()
    client.listen_failed(40000, errno, 0.02)
    completed = completion(client)
    assert not completed.complete and all(w in completed.reason for w in words), completed.reason
    assert client.state is ClientState.INCOMPLETE
    assert Close(1) in client.intents_to_run(), "the server connection is closed too"


def test_a_local_port_in_use_fails_the_peers_with_advice() -> None:
    client = started(local_port=40000)
    client.connected(1, Endpoint("10.0.0.2", 40000), SERVER, 0.01)
    peers = (PeerInfo(Endpoint("198.51.100.2", 5), PID2, True),)
    client.data_received(1, encode_frame(ExtPeers(SID, STRANGER, peers)), 0.02)
    connect = next(i for i in client.intents_to_run() if isinstance(i, Connect) and i.remote != SERVER)
    assert connect.local_port == 40000
    client.connect_failed(connect.conn_id, "EADDRINUSE", 0.03)
    events = list(iter(client.next_event, None))
    (failed,) = [e for e in events if isinstance(e, PeerFailed)]
    assert "EADDRINUSE" in failed.reason and "SO_REUSEADDR" in failed.reason
    assert next(e for e in events if isinstance(e, ConnectCompleted)).failed == (Endpoint("198.51.100.2", 5),)


def test_an_unreachable_server_is_retried_then_explained_at_the_deadline() -> None:
    client = started()
    t = 0.0
    attempts = 0
    while client.state is ClientState.REGISTERING:
        for intent in client.intents_to_run():
            if isinstance(intent, Connect):
                attempts += 1
                client.connect_failed(intent.conn_id, "ECONNREFUSED", t + 0.01)
        t = client.get_timer()  # type: ignore[assignment]
        client.handle_timer(t)
    completed = completion(client)
    assert completed.reason.startswith("timed out waiting for peers: could not register with the server")
    assert "ECONNREFUSED" in completed.reason and "192.0.2.1:7000" in completed.reason
    assert attempts == pytest.approx(10.0 / (0.01 + CONFIG.retry_interval), abs=1)


def test_a_server_that_speaks_something_else_is_named() -> None:
    client = started()
    client.connected(1, Endpoint("10.0.0.2", 40000), SERVER, 0.01)
    client.data_received(1, b"SSH-2.0-OpenSSH_9.6\r\n", 0.02)
    assert "does not speak holepunch TCP" in completion(client).reason


def test_the_server_connection_is_reopened_from_the_same_port_while_registering() -> None:
    client = started()
    client.connected(1, Endpoint("10.0.0.2", 40000), SERVER, 0.01)
    client.intents_to_run()
    client.connection_lost(1, 0.5)
    client.handle_timer(client.get_timer())  # type: ignore[arg-type]
    (again,) = [i for i in client.intents_to_run() if isinstance(i, Connect)]
    assert again == Connect(again.conn_id, 40000, SERVER)
    client.connected(again.conn_id, Endpoint("10.0.0.2", 40000), SERVER, 1.1)
    writes = [i for i in client.intents_to_run() if isinstance(i, (Write, Listen))]
    assert [type(w) for w in writes] == [Write], "register again, but listen only once"


def test_a_server_refusal_ends_connect() -> None:
    client = started()
    client.connected(1, Endpoint("10.0.0.2", 40000), SERVER, 0.01)
    client.data_received(1, encode_frame(ExtError(3, "session-full")), 0.02)
    completed = completion(client)
    assert completed.reason == "server refused: session-full" and completed.refused


def test_expecting_nobody_completes_on_the_first_reply_and_wait_timeout_punches_what_is_there() -> None:
    client = TcpPeerClient(SERVER, SID, 0, CONFIG, peer_id=PID)
    client.start(0.0)
    client.connected(1, Endpoint("10.0.0.2", 40000), SERVER, 0.01)
    client.data_received(1, encode_frame(ExtPeers(SID, STRANGER)), 0.02)
    assert completion(client).complete
    waiting = started(wait_timeout=1.0)
    waiting.connected(1, Endpoint("10.0.0.2", 40000), SERVER, 0.01)
    waiting.handle_timer(1.0)
    assert waiting.state is ClientState.ESTABLISHED  # nobody found: nothing to punch


def test_refreshes_keep_the_membership_while_waiting() -> None:
    net = TcpNet(server=TcpServerConfig(session_timeout=15.0))
    net.add("A", 1, TcpClientConfig(timeout=None))
    net.start("A", 0.0)
    net.run(60.0)
    assert net.server.members(SID) == [net.hosts["A"].public]
    registers = [t for t, i in net.hosts["A"].intents if isinstance(i, Write) and i.kind is MessageKind.EXT_REGISTER]
    assert [round(b - a, 9) for a, b in itertools.pairwise(registers)] == [CONFIG.refresh_interval] * 5


def test_close_tells_the_server_and_closes_everything() -> None:
    net = TcpNet()
    net.add("A", 1)
    net.start("A", 0.0)
    net.run(1.0)
    a = net.hosts["A"]
    a.client.close(net.now)
    net.flush()
    net.run(2.0)
    assert a.listening is None and not any(e[0] == "A" for e in net.links)
    assert [e.reason for _, e in net.server_events if isinstance(e, PeerLeft)] == ["left"]
    assert a.client.state is ClientState.CLOSED


def test_a_lost_stream_after_connect_is_reported() -> None:
    from holepunch.protocol.tcp_client import PeerDisconnected

    net = established("A", "B")
    a, b = net.hosts["A"], net.hosts["B"]
    net._close(("B", b.client.stream_of(a.public)))
    net.run(net.now + 1.0)
    assert a.of(PeerDisconnected) == [PeerDisconnected(b.public, "connection closed by the peer or the network")]
    assert next(iter(a.client.peers.values())).state is TcpPeerState.DISCONNECTED


def test_same_seed_same_run() -> None:
    def run() -> list[tuple[float, str, Any]]:
        net = mesh("ABC", starts=[0.0, 0.1, 0.2], seed=7, simultaneous=False)
        net.rst[("B", "C")] = 2
        net.run(10.0, stop=done(net))
        return [(t, name, i) for name, host in net.hosts.items() for t, i in host.intents]

    assert run() == run()


def test_the_tables_extend_the_udp_client_and_are_closed() -> None:
    assert CLIENT_TRANSITIONS.items() <= TCP_CLIENT_TRANSITIONS.items()
    assert {s for s, _ in STREAM_TRANSITIONS} == set(StreamState) - {StreamState.CLOSED}
    assert explain_errno("EWHATEVER").retry.name == "BACKOFF"


def test_bad_arguments_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="peer_id must be 8 bytes"):
        TcpPeerClient(SERVER, SID, 1, peer_id=b"short")
    with pytest.raises(ValueError, match="expected must be 0 or more"):
        TcpPeerClient(SERVER, SID, -1)
    with pytest.raises(ValueError, match="retry_interval must be positive"):
        TcpClientConfig(retry_interval=0)
    client = started()
    client.accepted(-1, STRANGER, 0.1)
    with pytest.raises(ValueError, match="already in use"):
        client.accepted(-1, STRANGER, 0.2)
    with pytest.raises(ValueError, match="not a connected peer"):
        client.send(STRANGER, b"x")
    server = TcpRendezvousServer()
    server.connection_made(1, STRANGER, 0.0)
    with pytest.raises(ValueError, match="already open"):
        server.connection_made(1, STRANGER, 0.0)
    assert re.search("max_connections", repr(TcpServerConfig()))


@pytest.mark.parametrize(
    "name", ["punch", "punch-ack", "cookie", "relay"]
)
def test_udp_only_messages_are_not_tcp_frames(name: str) -> None:
    from holepunch.protocol.messages import ExtCookie, ExtPunch, ExtPunchAck, ExtRelay, encode_ext
    from holepunch.protocol.tcp_messages import decode_body

    message = {
        "punch": ExtPunch(b"\x01" * 16, b"\x02" * 8, b"\x03" * 8),
        "punch-ack": ExtPunchAck(b"\x01" * 16, b"\x02" * 8, b"\x03" * 8),
        "cookie": ExtCookie(b"\x04" * 16),
        "relay": ExtRelay(b"s", b"\x02" * 8, b"\x03" * 8, b"data"),
    }[name]
    with pytest.raises(MessageError, match="UDP-only"):
        decode_body(encode_ext(message))
