"""Checks for lesson 6 (real sockets): replies collected from every peer, and handshake counts.

Rule: these checks judge a REAL run, so the right answer is read off the learner's own mesh and
trace (its connected peers, the records the driver wrote), never computed in advance. A check
never raises and never touches the network; it imports no asyncio or socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action, TraceRecord

from . import UNANSWERED, Feedback, not_yet, right

HANDSHAKE = ("syn", "ack")


def as_endpoint(peer: Any) -> Endpoint | None:
    """A peer given as Endpoint, (host, port) or "host:port" text; None if it is none of those."""
    if isinstance(peer, Endpoint):
        return peer
    try:
        if isinstance(peer, str):
            return Endpoint.parse(peer)
        host, port = peer
        return Endpoint(str(host), int(port))
    except (TypeError, ValueError):
        return None


def data_sources(trace: Iterable[TraceRecord] | None, local: Endpoint) -> set[Endpoint]:
    """Endpoints from which application data reached the socket bound to `local`."""
    return {r.source for r in trace or () if r.action is Action.RECEIVE and r.kind == "data"
            and r.destination == local and r.source is not None}


def _replies(answer: Mapping[Any, Any]) -> dict[Endpoint, Any] | str:
    """The answer keyed by Endpoint, or a hint saying what is wrong with it."""
    out: dict[Endpoint, Any] = {}
    for key, value in answer.items():
        endpoint = as_endpoint(key)
        if endpoint is None:
            return f"{key!r} is not a peer: use the endpoints recv() gave you."
        if not isinstance(value, (bytes, bytearray)) or not value:
            return f"the reply from {endpoint} should be the bytes it sent, not {value!r}."
        out[endpoint] = value
    return out


def check_replies(answer: Any, mesh: Any) -> Feedback:
    """Exercise 1: {peer: reply bytes} with one reply from every peer `mesh` is connected to,
    each of which the trace (if the mesh records one) shows arriving over the socket."""
    if answer is ... or answer is None:
        return UNANSWERED
    if not isinstance(answer, Mapping):
        return not_yet(f"Give a dict {{peer: reply bytes}}, not a {type(answer).__name__}.")
    try:
        expected = set(mesh.connected)
        local = mesh.local
    except Exception as exc:  # a closed blocking mesh, or not a mesh at all  # noqa: BLE001
        return not_yet(f"Pass the mesh of peer A as the second argument ({type(exc).__name__}: {exc}).")
    if not expected:
        return not_yet("This mesh is connected to nobody: run the lesson's connect cells first.")
    replies = _replies(answer)
    if isinstance(replies, str):
        return not_yet("Not yet: " + replies)
    missing, extra = expected - set(replies), set(replies) - expected
    if missing:
        return not_yet(f"No reply from {', '.join(sorted(map(str, missing)))} yet: send to every "
                       "connected peer and wait for each answer.")
    if extra:
        return not_yet(f"{', '.join(sorted(map(str, extra)))} is not a peer of this mesh.")
    trace = getattr(mesh, "trace", None)
    if trace is not None:
        unseen = set(replies) - data_sources(trace, local)
        if unseen:
            return not_yet(f"The trace shows no data from {', '.join(sorted(map(str, unseen)))} arriving "
                           "at this mesh: the replies must come over the network, from recv().")
    return right(f"Correct: {len(replies)} replies, one from every peer, each carried by a real UDP datagram.")


def handshake_sends(trace: Iterable[TraceRecord], actor: str) -> int:
    """How many SYN and ACK datagrams `actor` sent in `trace`."""
    return sum(1 for r in trace if r.actor == actor and r.action is Action.SEND and r.kind in HANDSHAKE)


def check_handshake_packets(answer: Any, trace: Any, actor: str = "peer A") -> Feedback:
    """Exercise 2: the number of SYN and ACK datagrams `actor` sent in the real run's `trace`."""
    if answer is ... or answer is None:
        return UNANSWERED
    if isinstance(answer, bool) or not isinstance(answer, int):
        return not_yet(f"Give a number of datagrams (an int), not a {type(answer).__name__}.")
    try:
        records = [r for r in trace if isinstance(r, TraceRecord)]
    except TypeError:
        return not_yet("Pass the run's Trace as the second argument.")
    count = handshake_sends(records, actor)
    if count == 0:
        return not_yet(f"The trace has no SYN or ACK sent by {actor!r}: pass the trace given to connect().")
    if answer == count:
        syns = sum(1 for r in records if r.actor == actor and r.action is Action.SEND and r.kind == "syn")
        return right(f"Correct: {actor} sent {count} ({syns} SYN, {count - syns} ACK). On loopback nothing "
                     "is lost, so every SYN is answered at once.")
    received = sum(1 for r in records if r.actor == actor and r.action is Action.RECEIVE and r.kind in HANDSHAKE)
    if answer == received:
        return not_yet("That counts the SYN and ACK it received; count the ones it sent.")
    return not_yet(f"Not {answer}. Count the records of {actor} whose action is SEND and kind is syn or ack.")
