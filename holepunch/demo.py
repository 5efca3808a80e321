"""The terminal demo: a rendezvous server and N peers on one machine, told as a timeline.

Rule: real sockets, real protocol, tracing on; this module only starts things, waits, and turns
the trace into text. Addresses are replaced by actor names ("server", "peer A") so the story
reads like the sequence diagrams of the course.
"""

from __future__ import annotations

import asyncio
import re
import string
from dataclasses import dataclass

from .aio.client import Mesh, PeerStatus, connect
from .aio.server import serve
from .protocol.config import ClientConfig
from .protocol.endpoint import Endpoint
from .trace import Action, Trace, TraceRecord

MAX_PEERS = len(string.ascii_uppercase)
"""One letter per peer keeps the timeline readable."""

_ENDPOINT_TEXT = re.compile(r"\[[0-9A-Fa-f:.%\w]+\]:\d+|\b\d{1,3}(?:\.\d{1,3}){3}:\d+")


@dataclass(frozen=True)
class DemoResult:
    """What happened: the trace, who is who, each peer's view, and the greetings delivered."""

    trace: Trace
    names: dict[Endpoint, str]
    session: str
    peers: dict[str, list[PeerStatus]]
    greetings_sent: int
    greetings_received: int

    @property
    def ok(self) -> bool:
        """Every peer connected to every other, and every greeting arrived."""
        expected = len(self.peers) - 1
        all_connected = all(sum(p.connected for p in v) == expected for v in self.peers.values())
        return all_connected and self.greetings_received == self.greetings_sent


def peer_names(count: int) -> list[str]:
    """ "peer A", "peer B", ... for `count` peers (at most MAX_PEERS)."""
    if not 1 <= count <= MAX_PEERS:
        raise ValueError(f"the demo runs 1 to {MAX_PEERS} peers, got {count}")
    return [f"peer {letter}" for letter in string.ascii_uppercase[:count]]


async def run_demo(
    peers: int = 3,
    host: str = "127.0.0.1",
    *,
    session: str = "demo",
    timeout: float = 10.0,
    config: ClientConfig | None = None,
) -> DemoResult:
    """Start a server and `peers` peers on `host`, connect them all, and greet every pair."""
    names = peer_names(peers)
    trace = Trace()
    server = await serve(host, 0, trace=trace)
    try:
        openings = [
            connect(server.address, session, peers - 1, timeout=timeout, config=config,
                    bind=(host, 0), trace=trace, actor=name)
            for name in names
        ]
        meshes = list(await asyncio.gather(*openings))
        try:
            sent, received = await _greet(meshes, names)
            who = {server.address: "server", **{m.local: n for m, n in zip(meshes, names)}}
            views = {name: mesh.peers for name, mesh in zip(names, meshes)}
        finally:
            await asyncio.gather(*(mesh.close() for mesh in meshes))
    finally:
        await server.close()
    return DemoResult(trace, who, session, views, sent, received)


async def _greet(meshes: list[Mesh], names: list[str], wait: float = 2.0) -> tuple[int, int]:
    """Each peer says hello to every connected peer; count what was sent and what arrived."""
    sent = 0
    for mesh, name in zip(meshes, names):
        for peer in mesh.connected:
            mesh.send(peer, f"hello from {name}".encode())
            sent += 1

    async def collect(mesh: Mesh) -> int:
        got = 0
        try:
            while got < len(mesh.connected):
                await asyncio.wait_for(mesh.recv(), wait)
                got += 1
        except asyncio.TimeoutError:
            pass
        return got

    counts = await asyncio.gather(*(collect(mesh) for mesh in meshes))
    return sent, sum(counts)


# --- the story as text ----------------------------------------------------------------------------


def rename(text: str, names: dict[Endpoint, str]) -> str:
    """Replace every endpoint text that belongs to an actor with the actor's name."""
    by_text = {endpoint.text: name for endpoint, name in names.items()}
    return _ENDPOINT_TEXT.sub(lambda m: by_text.get(m.group(0), m.group(0)), text)


def format_record(record: TraceRecord, names: dict[Endpoint, str], start: float, width: int = 8) -> str:
    """One timeline line: milliseconds since `start`, actor, what happened, in names."""
    ms = (record.time - start) * 1000
    head = f"{ms:8.1f} ms  {record.actor:<{width}}"
    summary = rename(record.summary, names)
    if record.action is Action.EVENT:
        return f"{head}  * {summary}"
    if record.action is Action.SEND:
        arrow, other = "->", record.destination
    else:
        arrow, other = "<-", record.source
    other_name = names.get(other, str(other)) if other is not None else "-"
    return f"{head}  {arrow} {other_name:<{width}}  {record.kind:<12} {summary}".rstrip()


def format_timeline(trace: Trace, names: dict[Endpoint, str], *, receives: bool = False) -> list[str]:
    """The trace as lines: every send and protocol event (and receive, if asked), in order."""
    records = [r for r in trace if receives or r.action is not Action.RECEIVE]
    if not records:
        return []
    width = max(len(r.actor) for r in records)
    start = records[0].time
    return [format_record(r, names, start, width) for r in records]


def format_summary(result: DemoResult) -> list[str]:
    """Closing lines: who connected to whom and how long it took."""
    lines = []
    for name, statuses in result.peers.items():
        parts = [
            f"{result.names.get(s.endpoint, str(s.endpoint))} in {s.elapsed * 1000:.1f} ms"
            if s.connected and s.elapsed is not None
            else f"{result.names.get(s.endpoint, str(s.endpoint))} failed ({s.reason})"
            for s in statuses
        ]
        lines.append(f"  {name}: connected to {', '.join(parts) or 'nobody'}")
    verdict = "every peer connected to every other" if result.ok else "NOT every peer connected"
    lines.append(f"Result: {verdict}; {result.greetings_received} of {result.greetings_sent} greetings delivered.")
    return lines


def format_report(result: DemoResult, *, receives: bool = False) -> list[str]:
    """The whole demo output: cast, timeline and summary."""
    count = len(result.peers)
    lines = [f"holepunch demo: a rendezvous server and {count} peers, session {result.session!r}"]
    lines += [f"  {name:<8} = {endpoint}" for endpoint, name in result.names.items()]
    what = "sends, receives and protocol events" if receives else "sends and protocol events (*)"
    lines += ["", f"Timeline (ms since the first packet; {what}):"]
    lines += format_timeline(result.trace, result.names, receives=receives)
    lines += [""] + format_summary(result)
    return lines
