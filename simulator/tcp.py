"""A minimal TCP endpoint per host: listeners, connects from one bound port, and the segments NATs see.

Rule: only what hole punching needs of RFC 9293, not a full TCP stack. A connection is keyed by
its 4-tuple (local port, remote endpoint), so a listener and any number of connects share one
port (SO_REUSEADDR and SO_REUSEPORT). A SYN to a port with neither is answered with RST
(RFC 9293 §3.10.7.1). A SYN that meets our own SYN_SENT socket is a simultaneous open (RFC 9293
§3.5, Figure 8): both sides answer SYN-ACK and are established when the other's arrives, with no
third ACK. Writes and FIN are numbered segments (not bytes): the receiver takes them in order,
drops duplicates and ACKs each one, the sender retransmits on its RTO (RFC 6298) and gives up
after a few tries, as an unanswered SYN does (ETIMEDOUT). No windows, no MSS.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.tcp_messages import LENGTH, TcpType

from .packet import summarize
from .scheduler import Handle

if TYPE_CHECKING:  # pragma: no cover
    from .network import Host
    from .packet import Packet
    from .tcp_nat import TcpNetwork

PORT_CLOSED = "port closed: RST sent"
NO_CONNECTION = "no connection: RST sent"
STALE = "no connection"  # a RST for a socket that is gone: never answered


class SegmentKind(str, enum.Enum):
    """The segment types NATs care about; the values are the trace kinds."""

    SYN = "tcp-syn"
    SYN_ACK = "tcp-syn-ack"
    ACK = "tcp-ack"
    RST = "tcp-rst"
    FIN = "tcp-fin"
    DATA = "tcp-data"


SEQUENCED = (SegmentKind.DATA, SegmentKind.FIN)
"""Segments that take a number, are ACKed and are retransmitted."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A TCP segment as the payload of a simulated `Packet` (its `kind` is `kind.value`)."""

    kind: SegmentKind
    seq: int = 0
    """Number of a DATA or FIN segment (1, 2, ...); for an ACK the next number expected."""
    data: bytes = b""
    label: str = ""
    """What DATA carries, for traces: frame kinds such as "ext-register" or "tcp-hello", or "data"."""


def segment_summary(segment: Segment) -> str:
    """Trace summary: numbers and sizes, and what the frames in a DATA segment say."""
    if segment.kind is SegmentKind.ACK and segment.seq:
        return f"ack {segment.seq}"
    if segment.kind is SegmentKind.FIN:
        return f"seq {segment.seq}"
    if segment.kind is not SegmentKind.DATA:
        return ""
    head = f"seq {segment.seq}, {len(segment.data)} bytes"
    said = [text for text in _frame_texts(segment.data, segment.label) if text]
    return head + (": " + "; ".join(said) if said else "")


def _frame_texts(data: bytes, label: str) -> list[str]:
    """The UDP summary of each extension frame in `data` (HELLO and SELECT say nothing more)."""
    texts, pos = [], 0
    while label != "data" and pos + LENGTH.size <= len(data):
        (size,) = LENGTH.unpack_from(data, pos)
        body = data[pos + LENGTH.size : pos + LENGTH.size + size]
        pos += LENGTH.size + size
        if len(body) > 5 and body[5] not in (TcpType.HELLO, TcpType.SELECT):
            texts.append(summarize(body, "ext"))
    return texts


class ConnState(enum.Enum):
    """Where one connection is (RFC 9293 §3.3.2, the states punching passes through)."""

    SYN_SENT = "syn-sent"
    SYN_RECEIVED = "syn-received"
    ESTABLISHED = "established"
    FIN_WAIT = "fin-wait"  # we sent FIN; the far side's FIN (or a timeout) ends it
    CLOSED = "closed"


CS, SK = ConnState, SegmentKind
CONN_TRANSITIONS: dict[tuple[ConnState, SegmentKind], ConnState] = {
    (CS.SYN_SENT, SK.SYN_ACK): CS.ESTABLISHED,  # the three-way handshake, active side
    (CS.SYN_SENT, SK.SYN): CS.SYN_RECEIVED,  # the SYNs crossed: simultaneous open
    (CS.SYN_RECEIVED, SK.SYN): CS.SYN_RECEIVED,  # a retransmitted SYN: answer again
    (CS.SYN_RECEIVED, SK.SYN_ACK): CS.ESTABLISHED,  # simultaneous open completes
    (CS.SYN_RECEIVED, SK.ACK): CS.ESTABLISHED,  # passive open completes
    (CS.SYN_RECEIVED, SK.DATA): CS.ESTABLISHED,  # ... or its ACK was lost and data came first
    (CS.ESTABLISHED, SK.SYN_ACK): CS.ESTABLISHED,  # a retransmitted SYN-ACK: ACK again
    **{(CS.ESTABLISHED, kind): CS.ESTABLISHED for kind in (SK.ACK, SK.DATA)},
    (CS.ESTABLISHED, SK.FIN): CS.CLOSED,  # the far side closed: we close too
    **{(CS.FIN_WAIT, kind): CS.FIN_WAIT for kind in (SK.ACK, SK.DATA)},  # data: ACKed, not delivered
    (CS.FIN_WAIT, SK.FIN): CS.CLOSED,
    **{(state, SK.RST): CS.CLOSED for state in CS if state is not CS.CLOSED},
}
"""Incoming segment -> next state; a segment not listed here is ignored."""
NOTES: dict[tuple[ConnState, ConnState | None, SegmentKind], str] = {
    (CS.SYN_SENT, CS.SYN_RECEIVED, SK.SYN): "the SYNs crossed: simultaneous open",
    (CS.SYN_SENT, CS.CLOSED, SK.RST): "connection refused",
}
"""What a RECEIVE record adds for the segments that decide a connect."""


@dataclass(frozen=True)
class TcpStackConfig:
    """Timers of the simulated TCP endpoints."""

    initial_rto: float = 1.0
    """Seconds before the first SYN or SYN-ACK retransmission (RFC 6298 §2.1); it doubles."""
    min_rto: float = 0.2
    """Floor of the data RTO, which is 3 x the handshake's RTT (RFC 6298 §2.2; Linux's floor)."""
    max_rto: float = 60.0
    """Ceiling of the doubling (RFC 6298 §2.5)."""
    syn_retries: int = 6
    """SYN retransmissions before ETIMEDOUT (Linux `tcp_syn_retries`: about 127 s)."""
    synack_retries: int = 5
    """SYN-ACK retransmissions before a half-open connection is dropped (`tcp_synack_retries`)."""
    data_retries: int = 8
    """Retransmissions of unACKed data or FIN before the connection is declared lost."""
    fin_timeout: float = 60.0
    """Seconds a closed socket waits for the far side's FIN (Linux `tcp_fin_timeout`)."""
    ephemeral_ports: tuple[int, int] = (49152, 65535)
    """Ports for a connect from port 0 (RFC 6335 §6: the dynamic range)."""

    def __post_init__(self) -> None:
        for name in ("initial_rto", "min_rto", "max_rto", "fin_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("syn_retries", "synack_retries", "data_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")


class TcpOwner(Protocol):
    """Who a socket reports to: a driver (for a listener, also of the connections it accepts)."""
    def tcp_connected(self, conn: Conn) -> None: ...
    def tcp_failed(self, conn: Conn, errno_name: str) -> None: ...
    def tcp_accepted(self, conn: Conn) -> None: ...
    def tcp_data(self, conn: Conn, data: bytes) -> None: ...
    def tcp_lost(self, conn: Conn) -> None: ...


@dataclass(eq=False)
class Conn:
    """One connection's socket: its 4-tuple, state, and the numbered segments in flight."""

    local: Endpoint
    remote: Endpoint
    state: ConnState
    owner: TcpOwner
    passive: bool
    """Made by a listener from an incoming SYN (its owner gets `tcp_accepted`)."""
    opened: str = ""
    """How it got established: "active", "passive" or "simultaneous"."""
    next_seq: int = 1
    expected: int = 1
    unacked: dict[int, Segment] = field(default_factory=dict)
    held: dict[int, Segment] = field(default_factory=dict)
    retries: int = 0
    rto: float = 1.0
    sent_at: float = 0.0
    timer: Handle | None = None


class TcpStack:
    """The TCP sockets of one host; the network hands it every segment addressed to the host."""

    def __init__(self, host: Host, network: TcpNetwork, config: TcpStackConfig | None = None) -> None:
        self.host = host
        self.network = network
        self.config = config or TcpStackConfig()
        self.listeners: dict[int, TcpOwner] = {}
        self.conns: dict[tuple[int, Endpoint], Conn] = {}
        self._next_port = self.config.ephemeral_ports[0]

    # --- requests from drivers ----------------------------------------------------------------

    def listen(self, port: int, owner: TcpOwner) -> str | None:
        """Accept connections on `port`; returns an errno name if another owner listens there."""
        if self.listeners.get(port, owner) is not owner:
            return "EADDRINUSE"
        self.listeners[port] = owner
        return None

    def stop_listening(self, port: int) -> None:
        """Close the listener on `port`; its accepted connections stay open."""
        self.listeners.pop(port, None)

    def connect(self, local_port: int, remote: Endpoint, owner: TcpOwner) -> Conn | str:
        """Send a SYN from `local_port` (0: an ephemeral one); an errno name if the 4-tuple is taken."""
        port = local_port or self._ephemeral()
        if (port, remote) in self.conns:
            return "EADDRNOTAVAIL"  # connect() on a taken 4-tuple, e.g. one the listener accepted
        conn = Conn(self.host.endpoint(port), remote, CS.SYN_SENT, owner, passive=False,
                    rto=self.config.initial_rto, sent_at=self.network.now)
        self.conns[(port, remote)] = conn
        self._emit(conn, Segment(SK.SYN))
        self._arm(conn, conn.rto)
        return conn

    def write(self, conn: Conn, data: bytes, label: str) -> None:
        """Send `data` as one numbered DATA segment (dropped if the connection is not open)."""
        if conn.state is CS.ESTABLISHED:
            self._send_sequenced(conn, Segment(SK.DATA, conn.next_seq, data, label))

    def close(self, conn: Conn) -> None:
        """Close: abandon a connect in flight, else send FIN after the data queued before it."""
        if conn.state is CS.SYN_SENT:
            self._forget(conn)  # Linux sends nothing when a connecting socket is closed
        elif conn.state in (CS.SYN_RECEIVED, CS.ESTABLISHED):
            conn.state = CS.FIN_WAIT
            self._send_sequenced(conn, Segment(SK.FIN, conn.next_seq))
            self.network.scheduler.call_later(self.config.fin_timeout, self._fin_timeout, conn)

    # --- segments from the network ------------------------------------------------------------

    def on_segment(self, pkt: Packet) -> None:
        """A segment for this host arrived: record it, then act on it."""
        segment: Segment = pkt.data  # type: ignore[assignment]
        port, remote = pkt.destination.port, pkt.source
        conn = self.conns.get((port, remote))
        if conn is None:
            self._no_connection(pkt, segment, port, remote)
            return
        new = CONN_TRANSITIONS.get((conn.state, segment.kind))
        self.network.record_receive(self.host, pkt, NOTES.get((conn.state, new, segment.kind), ""))
        if new is not None:
            self._step(conn, segment, new)

    def _no_connection(self, pkt: Packet, segment: Segment, port: int, remote: Endpoint) -> None:
        owner = self.listeners.get(port)
        if segment.kind is SK.SYN and owner is not None:
            self.network.record_receive(self.host, pkt, "to the listener")
            conn = Conn(self.host.endpoint(port), remote, CS.SYN_RECEIVED, owner, passive=True,
                        rto=self.config.initial_rto, sent_at=self.network.now)
            self.conns[(port, remote)] = conn
            self._emit(conn, Segment(SK.SYN_ACK))
            self._arm(conn, conn.rto)
        elif segment.kind is SK.RST:
            self.network.record_drop(self.host.name, pkt, STALE)
        else:  # RFC 9293 §3.10.7.1: anything but RST to a closed socket is answered with RST
            self.network.record_drop(self.host.name, pkt, PORT_CLOSED if segment.kind is SK.SYN else NO_CONNECTION)
            self.network.send_segment(self.host.name, pkt.destination, Segment(SK.RST), remote)

    def _step(self, conn: Conn, segment: Segment, new: ConnState) -> None:
        old, kind = conn.state, segment.kind
        if kind is not SK.FIN:  # a FIN takes effect in order, after the data numbered before it
            conn.state = new
        if kind is SK.RST:
            self._ended(conn, old, "ECONNREFUSED")
        elif old is CS.SYN_SENT and new is CS.SYN_RECEIVED:
            conn.opened = "simultaneous"
            self._emit(conn, Segment(SK.SYN_ACK))
        elif kind is SK.SYN and old is CS.SYN_RECEIVED:
            self._emit(conn, Segment(SK.SYN_ACK))
        elif old in (CS.SYN_SENT, CS.SYN_RECEIVED) and new is CS.ESTABLISHED:
            self._established(conn, old, segment)
        elif kind is SK.SYN_ACK:
            self._emit(conn, Segment(SK.ACK))  # our ACK was lost: the far side sent SYN-ACK again
        elif kind is SK.ACK:
            self._acked(conn, segment.seq)
        elif kind in SEQUENCED:
            self._sequenced(conn, segment)

    def _established(self, conn: Conn, old: ConnState, segment: Segment) -> None:
        self._measure(conn)
        conn.opened = conn.opened or ("active" if old is CS.SYN_SENT else "passive")
        if segment.kind is SK.SYN_ACK and old is CS.SYN_SENT:
            self._emit(conn, Segment(SK.ACK))
        if conn.passive:
            conn.owner.tcp_accepted(conn)
        else:
            conn.owner.tcp_connected(conn)
        if segment.kind is SK.DATA and conn.state is CS.ESTABLISHED:
            self._sequenced(conn, segment)

    # --- numbered segments --------------------------------------------------------------------

    def _send_sequenced(self, conn: Conn, segment: Segment) -> None:
        conn.next_seq += 1
        conn.unacked[segment.seq] = segment
        self._emit(conn, segment)
        if conn.timer is None:
            conn.retries = 0
            self._arm(conn, conn.rto)

    def _sequenced(self, conn: Conn, segment: Segment) -> None:
        """Take segments in order, hold what came early, ACK every arrival (duplicates too)."""
        if segment.seq >= conn.expected:
            conn.held.setdefault(segment.seq, segment)
        ready = []
        while conn.expected in conn.held:
            ready.append(conn.held.pop(conn.expected))
            conn.expected += 1
        if conn.state is not CS.FIN_WAIT or all(r.kind is not SK.FIN for r in ready):
            self._emit(conn, Segment(SK.ACK, conn.expected))  # (the closer's last FIN needs none)
        for item in ready:
            if item.kind is SK.FIN:
                self._peer_closed(conn)
                return
            if conn.state is CS.ESTABLISHED:  # the owner may close the stream between chunks
                conn.owner.tcp_data(conn, item.data)

    def _peer_closed(self, conn: Conn) -> None:
        """The far side's FIN, in order: answer with ours (or finish our own close)."""
        was_open = conn.state is not CS.FIN_WAIT
        conn.state = CS.CLOSED
        self._forget(conn)
        if was_open:
            self._emit(conn, Segment(SK.FIN, conn.next_seq))  # the application closes at once
            conn.owner.tcp_lost(conn)

    def _acked(self, conn: Conn, upto: int) -> None:
        done = [s for s in conn.unacked if s < upto]
        if not done:
            return  # a duplicate ACK restarts nothing (RFC 6298 §5.3 counts new data only)
        for seq in done:
            del conn.unacked[seq]
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn.unacked:
            conn.retries = 0
            self._arm(conn, conn.rto)

    # --- timers -------------------------------------------------------------------------------

    def _arm(self, conn: Conn, delay: float) -> None:
        conn.timer = self.network.scheduler.call_later(delay, self._retransmit, conn)

    def _retransmit(self, conn: Conn) -> None:
        """RFC 6298 §5.4-5.6: resend, double the RTO; give up after the configured retries."""
        conn.timer = None
        cfg = self.config
        limit = {CS.SYN_SENT: cfg.syn_retries, CS.SYN_RECEIVED: cfg.synack_retries}.get(conn.state, cfg.data_retries)
        if conn.retries >= limit:
            old, conn.state = conn.state, CS.CLOSED
            self._ended(conn, old, "ETIMEDOUT")
            return
        conn.retries += 1
        if conn.state in (CS.SYN_SENT, CS.SYN_RECEIVED):
            self._emit(conn, Segment(SK.SYN if conn.state is CS.SYN_SENT else SK.SYN_ACK))
        for segment in conn.unacked.values():
            self._emit(conn, segment)
        self._arm(conn, min(conn.rto * 2.0 ** conn.retries, cfg.max_rto))

    def _fin_timeout(self, conn: Conn) -> None:
        if conn.state is CS.FIN_WAIT:
            conn.state = CS.CLOSED
            self._forget(conn)

    def _measure(self, conn: Conn) -> None:
        """RFC 6298 §2.2 with one sample R: RTO = R + 4 * R/2; Karn: no sample after a retry."""
        if conn.retries == 0:
            conn.rto = max(self.config.min_rto, 3.0 * (self.network.now - conn.sent_at))
        conn.retries = 0
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None

    # --- helpers ------------------------------------------------------------------------------

    def _ended(self, conn: Conn, old: ConnState, errno_name: str) -> None:
        """A reset or timeout: a connect fails, an open connection is lost, a half-open one vanishes."""
        self._forget(conn)
        if old is CS.SYN_SENT or (old is CS.SYN_RECEIVED and not conn.passive):
            conn.owner.tcp_failed(conn, errno_name)
        elif old is CS.ESTABLISHED:
            conn.owner.tcp_lost(conn)

    def _forget(self, conn: Conn) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if self.conns.get((conn.local.port, conn.remote)) is conn:
            del self.conns[(conn.local.port, conn.remote)]

    def _emit(self, conn: Conn, segment: Segment) -> None:
        self.network.send_segment(self.host.name, conn.local, segment, conn.remote)

    def _ephemeral(self) -> int:
        low, high = self.config.ephemeral_ports
        for _ in range(high - low + 1):
            port, self._next_port = self._next_port, self._next_port + 1 if self._next_port < high else low
            if port not in self.listeners and not any(p == port for p, _ in self.conns):
                return port
        raise RuntimeError(f"{self.host.name}: no free ephemeral port")
