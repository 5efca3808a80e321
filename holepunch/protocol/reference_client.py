"""Model of the Go reference client's `Connect` (4kills/hole-punching, pkg/client), bugs included.

Rule: a model for comparison and teaching; never used by our own client or server. It follows
wire-protocol.md §4 step by step and reproduces bugs B1-B6 (§6) ON PURPOSE, so the simulator and
the course can run the reference next to our `PeerClient`. Goroutines become timers: the polling
loop, one handshake worker per listed peer (fed through a 16-slot channel) and the read loop.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from .endpoint import Endpoint, parse_endpoint
from .events import (
    ConnectCompleted,
    DatagramDropped,
    Event,
    PeerConnected,
    PeerFailed,
    PeerListReceived,
    PunchingStarted,
    Registered,
)
from .messages import ACK, SYN, MessageKind, PeerInfo, Transmit
from .states import ClientState, ClientTrigger, PeerInput, PeerState, next_client_state

CHANNEL_SLOTS = 16  # per-worker channel capacity; the 17th send to a finished worker blocks (B2)
ERR_TIMEOUT_SERVER = "timeout during attempting to get peers from the mediator server"
ERR_TIMEOUT_PEERS = "timeout during attempting to establish a peer to peer network"

PS, PI = PeerState, PeerInput
WORKER_TRANSITIONS: dict[tuple[PeerState, PeerInput], PeerState] = {
    (PS.PUNCHING, PI.SYN): PS.ACKING,  # the current message becomes ACK, sent at the next tick
    (PS.PUNCHING, PI.ACK): PS.CONNECTED,  # ACK at once, one more later, worker finishes
    (PS.PUNCHING, PI.DATA): PS.PUNCHING,  # used up and ignored; the timer restarts (B4)
    (PS.ACKING, PI.SYN): PS.ACKING,
    (PS.ACKING, PI.ACK): PS.CONNECTED,
    (PS.ACKING, PI.DATA): PS.ACKING,  # unlike ours, data does not prove the path
    (PS.PUNCHING, PI.DEADLINE): PS.FAILED,
    (PS.ACKING, PI.DEADLINE): PS.FAILED,
}
"""The reference worker's moves; compare with `states.PEER_TRANSITIONS` (ours)."""


@dataclass(frozen=True, slots=True)
class ReadLoopBlocked(Event):
    """The reference's read loop blocked for good on a channel send (B1 or B2): it never reads again."""

    source: Endpoint
    size: int
    reason: str


@dataclass
class ReferenceWorker:
    """One handshake goroutine (`connectIndividual`) and its channel."""

    endpoint: Endpoint
    started: float
    state: PeerState = PeerState.PUNCHING
    next_send: float | None = None
    final_ack_at: float | None = None
    queued: int = 0  # datagrams waiting in the channel of a finished worker (nobody reads it)
    last_seen: str = "nothing received"
    sent: int = 0
    received: int = 0

    @property
    def message(self) -> bytes:
        """What the next tick sends: SYN until a SYN arrived, then ACK."""
        return ACK if self.state is PeerState.ACKING else SYN

    @property
    def finished(self) -> bool:
        """True once the worker received an ACK and returned."""
        return self.state is PeerState.CONNECTED

    @property
    def connected(self) -> bool:
        """Same as `finished`, named like `handshake.Peer.connected`."""
        return self.finished

    def next_timer(self) -> float | None:
        """The earliest send this worker has pending."""
        times = [t for t in (self.next_send, self.final_ack_at) if t is not None]
        return min(times) if times else None


def parse_reference_list(data: bytes) -> list[Endpoint]:
    """Parse M2 as the reference does: split on commas; the first bad entry is Connect's error.

    Host names are taken literally (Go would resolve them through DNS).
    """
    endpoints = []
    for entry in data.decode("utf-8", "replace").split(","):
        try:
            endpoints.append(parse_endpoint(entry))
        except ValueError as exc:
            # Go's wording: "address hello: missing port in address".
            why = str(exc).replace(f" {entry!r}", "")
            raise ValueError(f"address {entry}: {why}") from None
    return endpoints


class ReferenceClient:
    """The reference's `Connect` as a sans-IO machine (same interface as `PeerClient`)."""

    def __init__(
        self,
        server: Endpoint,
        session: bytes,
        expected: int,
        *,
        timeout: float | None = 40.0,
        mediator_retry: float = 0.1,
        peer_retry: float = 0.1,
    ) -> None:
        if expected < 0:
            raise ValueError(f"expected must be 0 or more other peers, got {expected}")
        if mediator_retry <= 0 or peer_retry <= 0:
            raise ValueError("mediator_retry and peer_retry must be positive")
        self.server = server
        self.session = bytes(session)
        self.expected = expected
        self.timeout = None if timeout is None or timeout < 0 else timeout  # Go: negative = never
        self.mediator_retry = mediator_retry
        self.peer_retry = peer_retry
        self.state = ClientState.IDLE
        self.extended = False  # the reference knows nothing but the plain protocol
        self.public_endpoint: Endpoint | None = None  # and never learns its own address
        self.hung = False
        self.hang_reason = ""
        self.error: str | None = None  # Connect's error text once it returned one
        self.peers: dict[Endpoint, ReferenceWorker] = {}
        self.listed: tuple[Endpoint, ...] = ()
        self.started_at: float | None = None
        self.read_deadline: float | None = None  # set once, never cleared: B5
        self.returned_at: float | None = None
        self.dropped: Counter[str] = Counter()
        self._workers: list[ReferenceWorker] = []
        self._channels: dict[str, ReferenceWorker] = {}
        self._registered = False
        self._next_poll: float | None = None
        self._out: list[Transmit] = []
        self._events: deque[Event] = deque()

    # --- requests -----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Call `Connect`: set the one read deadline and send M1 at once."""
        self._move(ClientTrigger.START)
        self.started_at = now
        self.read_deadline = None if self.timeout is None else now + self.timeout
        self._poll(now)

    def close(self, now: float) -> None:
        """Close the socket: the only way out of a hang. Every timer stops."""
        if self.state is ClientState.CLOSED:
            return
        self._move(ClientTrigger.CLOSE)
        self._next_poll = None
        for worker in self._workers:
            worker.next_send = worker.final_ack_at = None

    # --- inputs -------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None:
        """One datagram reaches the socket; the read loop handles it if it is still reading."""
        data = bytes(data)
        if self.state in (ClientState.IDLE, ClientState.CLOSED):
            self._drop(source, data, "not running")
        elif self.hung:
            self._drop(source, data, "unread: read loop blocked")
        elif self.state is ClientState.REGISTERING:
            self._phase1(data, source, now)
        elif self.state is ClientState.PUNCHING:
            self._phase2(data, source, now)
        elif self.state is ClientState.ESTABLISHED and self._past_deadline(now):
            self._drop(source, data, "read deadline passed (B5)")
        else:
            self._drop(source, data, "after Connect returned (application not modelled)")

    def handle_timer(self, now: float) -> None:
        """Fire the poller, the read deadline and the workers' sends that are due."""
        if self.state in (ClientState.IDLE, ClientState.CLOSED):
            return
        if self._next_poll is not None and now >= self._next_poll:
            self._poll(now)
        if self._deadline_armed() and self._past_deadline(now):
            self._on_deadline(now)
        for worker in self._workers:
            self._worker_timer(worker, now)

    # --- outputs ------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The absolute time `handle_timer` wants to run next, or None."""
        times = [self._next_poll] + [w.next_timer() for w in self._workers]
        if self._deadline_armed():
            times.append(self.read_deadline)
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        """Datagrams produced since the last call."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        """The oldest undrained event, or None."""
        return self._events.popleft() if self._events else None

    # --- phase 1: rendezvous ------------------------------------------------------------------

    def _poll(self, now: float) -> None:
        self._out.append(Transmit(self.session, self.server, MessageKind.REGISTER))
        self._next_poll = now + self.mediator_retry

    def _phase1(self, data: bytes, source: Endpoint, now: float) -> None:
        if not data:
            self._drop(source, data, "empty")  # an empty M2 and an M3 look the same
            return
        if source.text != self.server.text:
            self._drop(source, data, "not from server")
            return
        try:
            endpoints = parse_reference_list(data)
        except ValueError as exc:
            self._return(now, ClientTrigger.REFUSED, str(exc), ())  # Connect aborts
            return
        if not self._registered:
            self._registered = True
            self._events.append(Registered(False, None))
        infos = tuple(PeerInfo(e) for e in endpoints)
        self._events.append(PeerListReceived(infos, False))
        if len(endpoints) == self.expected:  # exactly, never "at least" (B6)
            self._start_phase2(endpoints, now)

    # --- phase 2: handshake -------------------------------------------------------------------

    def _start_phase2(self, endpoints: list[Endpoint], now: float) -> None:
        self._move(ClientTrigger.PEERS_FOUND)
        self._next_poll = None  # polling stops; a poll in flight may still be answered (B1)
        self.listed = tuple(endpoints)
        self._events.append(PunchingStarted(tuple(PeerInfo(e) for e in endpoints), self.expected))
        for endpoint in endpoints:
            worker = ReferenceWorker(endpoint, now)
            self._workers.append(worker)
            self.peers[endpoint] = worker
            self._channels[endpoint.text] = worker  # keyed by text; a duplicate orphans a worker
            self._send(worker, SYN, MessageKind.SYN)  # retry period 0 on the first round
            worker.next_send = now + self.peer_retry

    def _phase2(self, data: bytes, source: Endpoint, now: float) -> None:
        # Completion is checked only before a read, so it needs one more datagram (B3).
        ready = all(w.finished for w in self._workers)
        if not data:
            self._drop(source, data, "empty")
        else:
            worker = self._channels.get(source.text)
            if worker is None:
                self._hang(source, data, "B1: send on a nil channel (endpoint not in the peer list)")
                return
            if not self._dispatch(worker, data, source, now):
                return
        if ready:
            connected = tuple(w.endpoint for w in self._workers)
            self._return(now, ClientTrigger.ALL_CONNECTED, "", connected)

    def _dispatch(self, worker: ReferenceWorker, data: bytes, source: Endpoint, now: float) -> bool:
        """Hand a datagram to its worker; False if the read loop blocked (B2)."""
        if not worker.finished:
            self._deliver(worker, data, now)
            return True
        if worker.queued >= CHANNEL_SLOTS:
            self._hang(source, data, f"B2: channel of finished peer {worker.endpoint} full")
            return False
        worker.queued += 1
        return True

    def _deliver(self, worker: ReferenceWorker, data: bytes, now: float) -> None:
        worker.received += 1
        kind = PeerInput.SYN if data == SYN else PeerInput.ACK if data == ACK else PeerInput.DATA
        worker.last_seen = data.decode() if kind is not PeerInput.DATA else "data"
        worker.state = WORKER_TRANSITIONS[(worker.state, kind)]
        worker.next_send = now + self.peer_retry  # any delivery restarts the timer (B4)
        if kind is PeerInput.ACK:
            self._send(worker, ACK, MessageKind.ACK)
            worker.final_ack_at = now + self.peer_retry
            worker.next_send = None  # the worker returns
            self._events.append(PeerConnected(worker.endpoint, now - worker.started))

    def _worker_timer(self, worker: ReferenceWorker, now: float) -> None:
        if worker.next_send is not None and now >= worker.next_send:
            kind = MessageKind.ACK if worker.message == ACK else MessageKind.SYN
            self._send(worker, worker.message, kind)
            worker.next_send = now + self.peer_retry
        if worker.final_ack_at is not None and now >= worker.final_ack_at:
            worker.final_ack_at = None
            self._send(worker, ACK, MessageKind.ACK)

    # --- endings ------------------------------------------------------------------------------

    def _hang(self, source: Endpoint, data: bytes, reason: str) -> None:
        """The read loop blocks for good: no more reads, no deadline; workers keep sending."""
        self.hung = True
        self.hang_reason = reason
        self._events.append(ReadLoopBlocked(source, len(data), reason))

    def _on_deadline(self, now: float) -> None:
        if self.state is ClientState.REGISTERING:
            self._return(now, ClientTrigger.DEADLINE, ERR_TIMEOUT_SERVER, ())
            return
        for worker in self._workers:
            if not worker.finished:
                reason = worker.last_seen
                worker.state = WORKER_TRANSITIONS[(worker.state, PeerInput.DEADLINE)]
                self._events.append(PeerFailed(worker.endpoint, reason))
        self._return(now, ClientTrigger.DEADLINE, ERR_TIMEOUT_PEERS, ())

    def _return(
        self, now: float, trigger: ClientTrigger, error: str, connected: tuple[Endpoint, ...]
    ) -> None:
        """Connect returns. On an error the caller gets nothing usable, so every peer is failed."""
        self._move(trigger)
        self.returned_at = now
        self.error = error or None
        self._next_poll = None
        for worker in self._workers:
            worker.next_send = None  # the context is cancelled; delayed ACKs still go out
        failed = () if not error else self.listed
        self._events.append(ConnectCompleted(connected, failed, self.expected, error))

    # --- helpers ------------------------------------------------------------------------------

    def _deadline_armed(self) -> bool:
        running = self.state in (ClientState.REGISTERING, ClientState.PUNCHING)
        return running and not self.hung and self.read_deadline is not None

    def _past_deadline(self, now: float) -> bool:
        return self.read_deadline is not None and now >= self.read_deadline

    def _send(self, worker: ReferenceWorker, data: bytes, kind: MessageKind) -> None:
        worker.sent += 1
        self._out.append(Transmit(data, worker.endpoint, kind))

    def _move(self, trigger: ClientTrigger) -> None:
        self.state = next_client_state(self.state, trigger)

    def _drop(self, source: Endpoint, data: bytes, reason: str) -> None:
        self.dropped[reason] += 1
        self._events.append(DatagramDropped(source, len(data), reason))
