"""Checks for lesson 7 (TCP hole punching): which segments cross in a simultaneous open, how many
connects an RST-answering NAT costs, which grid cells only TCP connects, and an echo over a real
stream.

Rule: right answers are read off simulator runs of the lesson's own scenarios (their traces and
grids), or, for the echo, off the learner's socket and mesh. A check never raises, whatever it is
given, and never touches the network: it imports no asyncio or socket (a socket is only asked for
its type and addresses).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action, TraceRecord

from ..nat import NatBehavior
from ..presets import PORT_RESTRICTED_CONE
from ..scenarios import nat_grid
from ..tcp import SegmentKind
from ..tcp_scenarios import TcpOutcome, run_tcp_punch, tcp_nat_grid
from . import UNANSWERED, Feedback, Pair, name_pairs, not_yet, right
from .lesson05 import GRID_PRESETS

__all__ = [
    "GRID_PRESETS", "SLOW_B", "check_crossing_segments", "check_echo", "check_rst_attempts",
    "check_tcp_only_cells", "connect_attempts", "crossing_kinds", "crossing_run", "rst_run",
    "segment_kind", "tcp_only_cells",
]

SLOW_B: tuple[float, float] = (0.001, 0.3)
"""LAN latencies (A, B) of the lesson's RST runs: B learns of A late, so A's first SYN reaches
NAT B before B's own SYN to A has left, and NAT B has no session for it."""
DATA = SegmentKind.DATA.value


# --- the lesson's runs and what their traces say ------------------------------------------------


@lru_cache(maxsize=1)
def crossing_run() -> TcpOutcome:
    """The lesson's simultaneous open: A and B behind port-restricted cones, pushed at once (cached)."""
    return run_tcp_punch(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE)


@lru_cache(maxsize=2)
def rst_run(rst: bool = True) -> TcpOutcome:
    """The lesson's late-B run, with NATs that answer unsolicited SYNs with RST (or drop them)."""
    return run_tcp_punch(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, rst=rst, lan_latency=SLOW_B)


def _peer_segments(records: list[TraceRecord]) -> list[tuple[int, int, TraceRecord]]:
    """(send index, receive index, send record) of every segment one peer sent and another received."""
    sends = {r.packet: (i, r) for i, r in enumerate(records)
             if r.action is Action.SEND and r.actor.startswith("peer ") and r.packet is not None}
    out = []
    for j, r in enumerate(records):
        if r.action is not Action.RECEIVE or not r.actor.startswith("peer ") or r.packet is None:
            continue
        sent = sends.get(r.packet)
        if sent is not None and sent[1].actor != r.actor:
            out.append((sent[0], j, sent[1]))
    return out


def crossing_kinds(outcome: TcpOutcome) -> frozenset[str]:
    """Kinds of the peer-to-peer segments that crossed while the connection opened: each sent by
    one side before the other side's segment arrived, and before any data went between them."""
    records = list(outcome.trace)
    segments = _peer_segments(records)
    opened = min((i for i, _, r in segments if r.kind == DATA), default=len(records))
    early = [s for s in segments if s[0] < opened]
    return frozenset(
        s[2].kind for s in early for t in early
        if s[2].actor != t[2].actor and s[0] < t[1] and t[0] < s[1]
    )


def connect_attempts(outcome: TcpOutcome, sender: str = "A", receiver: str = "B") -> int:
    """How many SYNs peer `sender` sent to the endpoint the server listed for `receiver`: its connects,
    in runs where no SYN was retransmitted (the lesson's runs; the tests check it)."""
    return len(outcome.syns(sender, receiver))


@lru_cache(maxsize=4)
def tcp_only_cells(presets: tuple[NatBehavior, ...] = GRID_PRESETS) -> frozenset[Pair]:
    """The (A's NAT, B's NAT) cells that connect over TCP but fail over UDP (cached: runs are deterministic)."""
    tcp, udp = tcp_nat_grid(presets), nat_grid(presets)
    return frozenset(pair for pair, outcome in tcp.items() if outcome.connected and not udp[pair].connected)


# --- reading answers ----------------------------------------------------------------------------

_KINDS = {k.value.removeprefix("tcp-"): k.value for k in SegmentKind}
_ALIASES = {"synack": "syn-ack", "syn+ack": "syn-ack"}


def segment_kind(item: Any) -> str | None:
    """A segment kind given as "tcp-syn", "SYN", "SYN-ACK", "syn/ack" or a SegmentKind, as the
    trace names it ("tcp-syn-ack"); None if it names no kind."""
    text = getattr(item, "value", item)
    if not isinstance(text, str):
        return None
    key = "-".join(text.strip().lower().replace("_", " ").replace("/", " ").split())
    key = key.removeprefix("tcp-")
    return _KINDS.get(_ALIASES.get(key, key))


def _kinds(answer: Any) -> set[str] | str:
    """The answer as a set of trace kinds, or a hint saying what is wrong with it."""
    items = [answer] if isinstance(answer, (str, SegmentKind)) else answer
    if not isinstance(items, Iterable) or isinstance(items, (bytes, dict)):
        return 'Give a set of segment kinds as the trace names them, e.g. {"tcp-fin"}.'
    kinds = set()
    for item in items:
        kind = segment_kind(item)
        if kind is None:
            return f"{item!r} is not a kind of segment: the trace knows {', '.join(_KINDS.values())}."
        kinds.add(kind)
    return kinds


def _pairs(answer: Any) -> set[Pair] | None:
    """As `name_pairs`, but a dict is refused rather than read by its keys."""
    return None if isinstance(answer, dict) else name_pairs(answer)


# --- the checks ---------------------------------------------------------------------------------


def check_crossing_segments(answer: Any) -> Feedback:
    """Exercise 1: the set of segment kinds that cross between A and B in the lesson's simultaneous open."""
    if answer is ... or answer is None:
        return UNANSWERED
    kinds = _kinds(answer)
    if isinstance(kinds, str):
        return not_yet(kinds)
    expected = crossing_kinds(crossing_run())
    if kinds == expected:
        return right("Correct: the two SYNs cross, and so do the two SYN-ACKs: each side answers the "
                     "other's SYN with a SYN-ACK at once, before the other's SYN-ACK arrives. After "
                     "them both sides are ESTABLISHED; no third ACK is needed.")
    if DATA in kinds:
        return not_yet("Data (HELLO, SELECT) comes after the opening: which segments cross before any data?")
    missing, extra = sorted(expected - kinds), sorted(kinds - expected)
    if missing and not extra:
        return not_yet(f"Yes, those cross, but there is more: what does each side answer to the SYN "
                       f"it receives, and does that cross too? ({len(missing)} more kind{'s' if len(missing) > 1 else ''})")
    return not_yet(f"{', '.join(extra)} does not cross in this run. Step through `out` with only "
                   "tcp-syn and tcp-syn-ack chosen: which segments are on the wire both ways at once?")


def check_rst_attempts(answer: Any) -> Feedback:
    """Exercise 2: how many connects (SYNs) A sent to B behind NATs that answer with RST (`rst_run()`)."""
    if answer is ... or answer is None:
        return UNANSWERED
    if isinstance(answer, bool) or not isinstance(answer, int):
        return not_yet(f"Give a number of connect attempts (an int), not a {type(answer).__name__}.")
    run = rst_run(True)
    expected, silent = connect_attempts(run), connect_attempts(rst_run(False))
    if answer == expected:
        return right(f"Correct: {expected}. NAT B answered the first SYN with RST (B had not sent to A "
                     f"yet), A's connect failed with ECONNREFUSED, and A connected again after "
                     f"retry_interval. By then B's own SYN had opened NAT B's session: the SYNs crossed.")
    if answer == silent:
        return not_yet(f"{silent} is what the silent NAT costs: its drop leaves A's connect waiting. "
                       "Count the SYNs A sent to B in the RST run, `reset`.")
    if answer == expected + 1:
        return not_yet("That counts A's connect to the rendezvous server too: count only the SYNs to B.")
    return not_yet(f"Not {answer}. Count the records of peer A that SEND a tcp-syn to B's listed endpoint.")


def check_tcp_only_cells(answer: Any) -> Feedback:
    """Exercise 3: the cells of the GRID_PRESETS grid that connect over TCP but fail over UDP."""
    if answer is ... or answer is None:
        return UNANSWERED
    pairs = _pairs(answer)
    if pairs is None:
        return not_yet('Give a set of pairs of NAT names, e.g. {("FULL_CONE", "SYMMETRIC"), ...}.')
    expected = tcp_only_cells()
    if pairs == expected:
        return right(f"Correct: {len(expected)} cells, a symmetric NAT against a full or restricted cone, "
                     "either way round. The cone side's filter admits the symmetric side's new port, "
                     "its listener accepts the SYN, and HELLO proves who it is.")
    missing, extra = sorted(expected - pairs), sorted(pairs - expected)
    if extra:
        return not_yet(f"{extra[0]} is not one of them: it connects over UDP already, or fails over TCP "
                       "too. Compare the two heatmaps cell by cell.")
    return not_yet(f"{len(missing)} cell{'s are' if len(missing) > 1 else ' is'} missing, e.g. {missing[0]}: "
                   "remember that A can be on either side of the grid.")


def _stream_of(sock: Any) -> tuple[Endpoint, Endpoint] | str:
    """(local, remote) of a connected TCP socket, or a hint saying what is wrong with it."""
    try:
        kind = getattr(sock.type, "name", "")
        local = Endpoint.from_sockaddr(sock.getsockname())
        remote = Endpoint.from_sockaddr(sock.getpeername())
    except Exception as exc:  # closed, not connected, or not a socket at all  # noqa: BLE001
        return (f"Pass the open socket you took with `a.socket(c.local)` as the second argument "
                f"({type(exc).__name__}: {exc}).")
    return (local, remote) if kind == "SOCK_STREAM" else f"That is a {kind or 'strange'} socket, not a TCP stream."


def check_echo(answer: Any, sock: Any, mesh: Any) -> Feedback:
    """Exercise 4: the line `mesh`'s socket `sock` read back after the peer echoed it."""
    if answer is ... or answer is None:
        return UNANSWERED
    if not isinstance(answer, (bytes, bytearray)) or not answer:
        return not_yet(f"Give the bytes A read back from the socket, not {answer!r}.")
    if not answer.endswith(b"\n"):
        return not_yet("That is not a whole line: TCP is a byte stream, so read up to the newline, "
                       "e.g. with `sock.makefile(\"rb\").readline()`.")
    stream = _stream_of(sock)
    if isinstance(stream, str):
        return not_yet(stream)
    local, remote = stream
    try:
        port, peers = mesh.local.port, {p.endpoint for p in mesh.peers}
    except Exception as exc:  # noqa: BLE001
        return not_yet(f"Pass A's mesh as the third argument ({type(exc).__name__}: {exc}).")
    if remote not in peers:
        return not_yet(f"This socket is connected to {remote}, which is not a peer of this mesh.")
    if local.port != port:
        return not_yet(f"This socket is bound to port {local.port}, not to this mesh's port P ({port}): "
                       "pass the mesh the socket came from.")
    return right(f"Correct: {bytes(answer)!r} went out and came back on an ordinary TCP socket, from "
                 f"port P = {port} to {remote}: the very connection the punch opened.")
