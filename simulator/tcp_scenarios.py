"""TCP punching scenarios: two peers behind NATs, the TCP rendezvous server, runs and the NAT grid.

Rule: as `scenarios.py`, only wiring: a `TcpNetwork`, the real `TcpPeerClient` and
`TcpRendezvousServer` machines under TCP drivers, and a `Scenario` to run them; outcomes come
from what the run recorded. `TcpOutcome.explain()` reads the trace: which SYNs each peer sent to
the endpoint the server listed, where they died and why, who answered with RST, and whether the
connection came from crossing SYNs (simultaneous open) or one side's listener.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.tcp_client import TcpClientConfig, TcpPeerClient
from holepunch.protocol.tcp_server import TcpRendezvousServer, TcpServerConfig
from holepunch.trace import Action, Trace, TraceRecord

from .link import LinkProfile
from .nat import NatBehavior
from .outcome import GLOSS, Outcome, PairResult
from .presets import PRESETS
from .scenarios import PEER_PORT, SERVER_IP, SERVER_PORT, Scenario, peer_letters
from .tcp import SegmentKind, TcpStackConfig
from .tcp_driver import TcpClientDriver, TcpServerDriver
from .tcp_nat import RST_SENT, TcpNatPolicy, TcpNetwork

SYN, SYN_ACK, RST = SegmentKind.SYN.value, SegmentKind.SYN_ACK.value, SegmentKind.RST.value
TCP_GLOSS = {
    **GLOSS,
    "no TCP session (not a SYN)": "only a SYN may open a TCP session; conntrack drops anything else as INVALID",
    RST_SENT: "that NAT's own stack answered the SYN it had no session for",
}


def tcp_two_peers(nat_a: NatBehavior, nat_b: NatBehavior, *, rst: bool = False, policy: TcpNatPolicy | None = None,
                  seed: int = 0, latency: float = 0.02, jitter: float = 0.0, loss: float = 0.0,
                  duplicate: float = 0.0, reorder: float = 0.0, lan_latency: float | Sequence[float] = 0.001,
                  config: TcpClientConfig | None = None, server_config: TcpServerConfig | None = None,
                  stack: TcpStackConfig | None = None, start_gap: float = 0.1,
                  session: bytes = b"demo") -> Scenario:
    """Peers A and B behind `nat_a` and `nat_b` (NO_NAT: on the internet) and a TCP rendezvous server.

    `rst` makes both NATs answer unsolicited SYNs with RST (else they drop them silently);
    `policy` sets every TCP knob of both NATs instead (then leave `rst` alone). `lan_latency` is
    one value for both LANs or one per peer (A, B): a slow LAN makes that peer learn of the other
    late, so the other's SYN reaches its NAT before its own SYN has left. Links beyond the LANs get
    latency, jitter, loss, duplicate and reorder. Each peer's TCP client uses local port 4000 unless
    `config` says otherwise; B starts `start_gap` seconds after A.
    """
    if policy is not None and rst:
        raise ValueError("pass rst=True or a TcpNatPolicy, not both")
    lans = [lan_latency] * 2 if isinstance(lan_latency, (int, float)) else list(lan_latency)
    if len(lans) != 2:
        raise ValueError(f"lan_latency needs one value or two (A, B), got {lan_latency!r}")
    wan = LinkProfile(latency=latency, jitter=jitter, loss=loss, duplicate=duplicate, reorder=reorder)
    net = TcpNetwork(seed=seed, profile=wan, policy=policy or TcpNatPolicy(rst_unsolicited=rst), stack=stack)
    server_host = net.add_host("server", ip=SERVER_IP, role="server")
    server = TcpServerDriver(server_host, SERVER_PORT, TcpRendezvousServer(server_config))
    cfg = config or TcpClientConfig(local_port=PEER_PORT)
    peers: dict[str, TcpClientDriver] = {}
    starts: dict[str, float] = {}
    for i, (letter, behavior) in enumerate(zip(peer_letters(2), (nat_a, nat_b))):
        lan = LinkProfile(latency=lans[i])
        if behavior.translates:
            box = net.add_nat(f"NAT {letter}", behavior)
            host = net.add_host(f"peer {letter}", behind=box, profile=lan, role="peer")
        else:
            host = net.add_host(f"peer {letter}", profile=wan, role="peer")
        machine = TcpPeerClient(server.endpoint, session, 1, cfg, rng=random.Random(f"{seed}:peer:{letter}"))
        peers[letter] = TcpClientDriver(host, machine)
        starts[letter] = i * start_gap
    return Scenario(net, server, peers, starts, session)  # type: ignore[arg-type]


def run_tcp_punch(scenario: Scenario | NatBehavior, nat_b: NatBehavior | None = None, /, *,
                  until: float = 60.0, settle: float = 0.25, **options: Any) -> TcpOutcome:
    """Run a TCP scenario (or `tcp_two_peers(nat_a, nat_b, **options)`) until both peers completed,
    then `settle` seconds more so the segments in flight land in the trace (never past `until`)."""
    if isinstance(scenario, Scenario):
        if nat_b is not None or options:
            raise TypeError("pass either a Scenario, or two NAT behaviours and options")
        sc = scenario
    else:
        if nat_b is None:
            raise TypeError("run_tcp_punch(nat_a, nat_b, ...) needs both NAT behaviours")
        sc = tcp_two_peers(scenario, nat_b, **options)
    sc.run(until, until_completed=True)
    if sc.all_completed() and settle > 0:
        sc.run(min(sc.now + settle, until))
    outcome = TcpOutcome.from_scenario(sc)
    assert isinstance(outcome, TcpOutcome)  # from_scenario builds `cls`
    return outcome


def tcp_nat_grid(presets: Sequence[NatBehavior] = PRESETS, **options: Any) -> dict[tuple[str, str], TcpOutcome]:
    """TCP punching across every ordered pair of behaviours; print it with `format_grid`."""
    return {(a.name, b.name): run_tcp_punch(a, b, **options) for a in presets for b in presets}


# --- outcomes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TcpOutcome(Outcome):
    """An `Outcome` of a TCP run: the same results, explained in segments."""

    def explain(self) -> str:
        """For each pair: how it connected, or where each side's SYNs died and why."""
        sends = {r.packet: r for r in self.trace if r.action is Action.SEND and r.packet is not None}
        fates = {r.packet: r for r in self.trace if r.action in (Action.DROP, Action.RECEIVE)}
        return " ".join(_explain(self, pair, sends, fates) for pair in self.pairs)

    def syns(self, sender: str, receiver: str) -> list[TraceRecord]:
        """The SYN sends of peer `sender` to the endpoint the server listed for `receiver`."""
        return _syns(self.trace, f"peer {sender}", self.listed.get(receiver))

    def rsts(self, to: str) -> list[TraceRecord]:
        """RST segments sent towards peer `to` (by NATs or hosts), in order."""
        return [r for r in self.trace if r.action is Action.SEND and r.kind == RST
                and r.destination == self.listed.get(to)]


def _syns(trace: Trace, actor: str, dest: Endpoint | None) -> list[TraceRecord]:
    return [r for r in trace if r.action is Action.SEND and r.kind == SYN and r.actor == actor
            and r.destination == dest]


def _explain(outcome: TcpOutcome, pair: PairResult, sends: dict[Any, TraceRecord],
             fates: dict[Any, TraceRecord]) -> str:
    a, b = pair.a, pair.b
    head = f"Peers {a} ({outcome.nats[a]}) and {b} ({outcome.nats[b]})"
    ab, ba = outcome.syns(a, b), outcome.syns(b, a)
    if not ab and not ba:
        return f"{head} did not connect: neither sent the other a SYN, so the server never listed them to each other."
    parts = [_how(outcome, pair, head, a, b) if pair.connected else f"{head} did not connect."]
    parts += [_direction(outcome, x, y, syns, fates) for x, y, syns in ((a, b, ab), (b, a, ba))]
    return " ".join(p for p in parts if p)


def _how(outcome: TcpOutcome, pair: PairResult, head: str, a: str, b: str) -> str:
    """How the kept stream came about: who answered whose SYN with SYN-ACK, and from which socket."""
    origin = _origins(outcome.trace)
    answered = {x: [r for r in outcome.trace if r.action is Action.SEND and r.kind == SYN_ACK
                    and r.actor == f"peer {x}" and origin.get((r.actor, r.destination)) == f"peer {y}"]
                for x, y in ((a, b), (b, a))}
    crossed = {r.actor for r in outcome.trace if r.action is Action.RECEIVE and "simultaneous open" in r.summary}
    if answered[a] and answered[b]:
        how = "the SYNs crossed and both sides answered SYN-ACK (TCP simultaneous open)"
    else:
        x, y = (a, b) if answered[a] else (b, a)
        if f"peer {x}" in crossed:
            how = (f"{y}'s SYN reached {x} while {x}'s own connect was still pending, so that socket "
                   f"answered SYN-ACK (one side of a simultaneous open)")
        else:
            how = f"{x}'s listener accepted {y}'s SYN"
    return f"{head} connected at {pair.connected_at:.3f} s, {pair.time_to_connect:.3f} s after both had started: {how}."


def _origins(trace: Trace) -> dict[tuple[str, Endpoint | None], str]:
    """(receiving actor, source endpoint it saw) -> actor that sent it, from packet ids."""
    senders = {r.packet: r.actor for r in trace if r.action is Action.SEND}
    return {(r.actor, r.source): senders[r.packet] for r in trace
            if r.action is Action.RECEIVE and r.packet in senders}


def _direction(outcome: TcpOutcome, x: str, y: str, syns: list[TraceRecord], fates: dict[Any, TraceRecord]) -> str:
    if not syns:
        return f"Peer {x} sent no SYN to {y}."
    counts: Counter[str] = Counter()
    arrived: set[str] = set()
    for send in syns:
        fate = fates.get(send.packet)
        if fate is None:
            counts["still in flight"] += 1
        elif fate.action is Action.RECEIVE:
            counts["delivered"] += 1
            arrived.add(str(fate.source))
        else:
            reason, *rest = fate.detail.split("; ")
            gloss = TCP_GLOSS.get(reason, "")
            said = "; ".join([reason + (f": {gloss}" if gloss else ""), *rest])
            counts[f"dropped at {fate.actor} ({said})"] += 1
    text = f"Of the {len(syns)} SYNs {x} sent to {y} ({outcome.listed.get(y)}): "
    text += ", ".join(f"{n} {what}" for what, n in counts.most_common()) + "."
    resets = [r for r in outcome.rsts(x) if r.actor != f"peer {y}"]
    if resets:
        later = sum(1 for s in syns if s.time > resets[0].time)
        text += (f" {len(resets)} RST came back to {x} from {resets[0].actor}; {x} sent {later} more "
                 f"SYN{'s' if later != 1 else ''} after the first RST.")
    listed = str(outcome.listed.get(x))
    odd = sorted(arrived - {listed})
    if odd:
        text += (f" They arrived from {', '.join(odd)}, not from {listed} where the server saw {x}: "
                 f"{x}'s NAT gave the new destination a new mapping.")
    return text
