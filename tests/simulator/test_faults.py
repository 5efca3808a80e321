"""Faults in the simulator (issue 8): lossy, duplicating and reordering links, a server that
restarts mid-session, a peer that vanishes mid-handshake. Fixed seeds, real protocol machines."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from holepunch.protocol import ClientConfig
from holepunch.trace import Action
from simulator import (
    FULL_CONE,
    LINUX_MASQUERADE,
    NO_NAT,
    PORT_RESTRICTED_CONE,
    RESTRICTED_CONE,
    LinkProfile,
    two_peers,
)
from simulator.faults import (
    FaultRun,
    impair,
    lossy,
    server_restart,
    shuffled,
    vanishing_peer,
)
from simulator.link import DUPLICATE, HELD_BACK, Link

CONES = (FULL_CONE, RESTRICTED_CONE, PORT_RESTRICTED_CONE)
CONE_PAIRS = [(a, b) for a in CONES for b in CONES]
PLAIN = ClientConfig(extension=False)
_DEADLINE = ClientConfig().timeout
assert _DEADLINE is not None
TIMEOUT: float = _DEADLINE
"""Seconds from a client's start to its deadline (the default config's)."""


def pair_id(pair: Any) -> str:
    return f"{pair[0].name}-{pair[1].name}"


# --- links ----------------------------------------------------------------------------------------


def fates(seed: str, **profile: float) -> list[list[tuple[float, str]]]:
    link = Link("l", "a", "b", LinkProfile(**profile), random.Random(seed))
    return [link.transit() for _ in range(2000)]


def test_duplication_and_reordering_follow_their_probabilities_and_the_seed() -> None:
    runs = fates("s", latency=0.02, duplicate=0.3, reorder=0.2, reorder_delay=0.05)
    assert runs == fates("s", latency=0.02, duplicate=0.3, reorder=0.2, reorder_delay=0.05)
    assert runs != fates("t", latency=0.02, duplicate=0.3, reorder=0.2, reorder_delay=0.05)
    copies = [copy for run in runs for copy in run]
    duplicated = sum(1 for run in runs if len(run) == 2)
    held = [delay for delay, note in copies if HELD_BACK in note]
    assert all(len(run) in (1, 2) for run in runs) and 0.27 < duplicated / 2000 < 0.33
    assert 0.17 < len(held) / len(copies) < 0.23 and set(held) == {0.07}
    assert all(note.startswith(DUPLICATE) for run in runs for _, note in run[1:])
    assert any(HELD_BACK in note for run in runs for _, note in run[1:])  # a copy can lag too


def test_impair_reaches_every_link_the_lans_included() -> None:
    sc = impair(two_peers(PORT_RESTRICTED_CONE, FULL_CONE), loss=0.2, duplicate=0.1)
    profiles = {name: link.profile for name, link in sc.network.links.items()}
    assert {"lan A", "lan B", "wan A", "wan B", "wan server"} <= set(profiles)
    assert all(p.loss == 0.2 and p.duplicate == 0.1 for p in profiles.values())
    assert profiles["lan A"].latency == 0.001  # the rest of each profile is kept


# --- loss -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", CONE_PAIRS, ids=pair_id)
def test_with_20_percent_loss_on_every_link_every_cone_pair_connects(pair: Any) -> None:
    a, b = pair
    for seed in range(5):
        run = lossy(a, b, 0.2, seed=seed)
        assert run.connected, run.explain()
        assert run.outcome.time_to_connect is not None and run.outcome.time_to_connect < TIMEOUT
        lost = Counter(r.actor for r in run.trace if r.action is Action.DROP and r.detail == "lost on link")
        assert lost, "the loss was real"
    assert any(actor.startswith("lan") for actor in lost)  # on the LANs too, not only the uplinks


def test_with_40_percent_loss_on_every_link_most_cone_pairs_connect_and_every_peer_reports() -> None:
    """What holds at 40 % on every link (a peer-to-peer datagram crosses four lossy links, so
    87 % of them die): most cone pairs still connect in time, the others end at the deadline
    with each unconfirmed peer given up and a reason; nobody hangs."""
    runs = [lossy(a, b, 0.4, seed=seed) for a, b in CONE_PAIRS for seed in range(4)]
    connected = [run for run in runs if run.connected]
    assert len(connected) >= 0.75 * len(runs), f"{len(connected)} of {len(runs)} connected"
    for run in runs:
        for letter, peer in run.peers.items():
            start = run.outcome.scenario.starts[letter]  # type: ignore[union-attr]
            assert peer.completed_at is not None and peer.completed_at <= start + TIMEOUT + 1e-9
            other = "B" if letter == "A" else "A"
            if other not in peer.connected:
                assert peer.reason.startswith("timed out"), peer.to_text()
                assert other in peer.failed or peer.reason == "timed out waiting for peers"


def test_loss_widens_the_linux_conntrack_race_and_the_explanation_names_it() -> None:
    runs = [lossy(PORT_RESTRICTED_CONE, LINUX_MASQUERADE, 0.2, seed=seed) for seed in range(8)]
    failed = [run for run in runs if not run.connected]
    assert failed and len(failed) < len(runs)
    assert all("conntrack race" in run.explain() for run in failed)


# --- duplication and reordering -------------------------------------------------------------------


@pytest.mark.parametrize("pair", CONE_PAIRS + [(NO_NAT, PORT_RESTRICTED_CONE)], ids=pair_id)
def test_duplicated_and_reordered_runs_connect(pair: Any) -> None:
    a, b = pair
    for seed in range(4):
        run = shuffled(a, b, seed=seed)
        assert run.connected, run.explain()
        details = [r.detail for r in run.trace if r.action is Action.LINK]
        assert any("duplicate of #" in d for d in details) and any(HELD_BACK in d for d in details)
        assert all(not p.failed and p.reason == "" for p in run.peers.values())


def test_duplicated_server_replies_hang_the_reference_client_but_not_ours() -> None:
    """The Go client's read loop blocks for good on a second peer list in phase 2 (B1)."""
    reference = shuffled(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, reorder=0.0, kinds=["reference"] * 2)
    ours = shuffled(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, reorder=0.0)
    assert ours.connected and not reference.connected
    blocked = reference.trace.filter(action=Action.EVENT, kind="ReadLoopBlocked")
    assert blocked and "B1" in blocked[0].summary


# --- server restart -------------------------------------------------------------------------------


def assert_restart_survived(run: FaultRun) -> None:
    assert run.connected, run.explain()
    assert run.at is not None and set(run.rejoined) == {"A", "B"}
    for letter, peer in run.peers.items():
        assert peer.connected == (("B",) if letter == "A" else ("A",)) and peer.reason == ""
    assert run.peers["A"].completed_at is not None and run.peers["A"].completed_at > run.at


@pytest.mark.parametrize("clients", ["ours", "ours plain", "reference"])
def test_after_a_server_restart_clients_register_again_and_finish(clients: str) -> None:
    """A registered before the crash, B only after it: B meets A because A registered again."""
    choices: dict[str, dict[str, Any]] = {"ours": {}, "ours plain": {"config": PLAIN},
                                          "reference": {"kinds": ["reference"] * 2}}
    options = choices[clients]
    run = server_restart(restart_at=1.5, start_gap=3.0, **options)
    assert_restart_survived(run)
    before = run.trace.filter(actor="server", action=Action.EVENT, kind="PeerJoined")
    assert [r.time < run.at for r in before].count(True) == 1  # type: ignore[operator]


def test_a_restart_with_downtime_refuses_datagrams_then_serves_again() -> None:
    run = server_restart(restart_at=1.5, downtime=1.0, start_gap=3.0)
    assert_restart_survived(run)
    refused = [r for r in run.trace if r.action is Action.DROP and r.actor == "server"]
    assert refused and all(r.detail == "port unreachable" and 1.5 <= r.time < 2.5 for r in refused)
    # A server with address cookies (issue 8's guard) forgot A's proof too: it asked A again.
    to_a = [r for r in run.trace.filter(actor="server", action=Action.SEND, kind="ext-cookie")
            if r.destination == run.outcome.listed["A"]]
    if to_a and to_a[0].time < 1.5:
        assert any(r.time >= 2.5 for r in to_a), "A's old cookie was accepted after the restart"


def test_a_restart_mid_session_of_three_loses_nobody() -> None:
    run = server_restart(n=3, restart_at=1.5, start_gap=1.0)
    assert run.connected and set(run.rejoined) == {"A", "B", "C"}


def joined_at(options: dict[str, Any], letter_index: int) -> float:
    """When the server saw the `letter_index`-th join in a run without a restart."""
    calm = server_restart(restart_at=100.0, start_gap=0.55, **options)
    joins = calm.trace.filter(actor="server", action=Action.EVENT, kind="PeerJoined")
    return joins[letter_index].time


def test_a_restart_right_after_a_join_strands_reference_clients() -> None:
    """Found by this test: the Go client stops registering once it has its list. If the server
    restarts after B joined but before A's next poll (100 ms), the new server never hears of B
    again, A waits for peers until its deadline and B punches an A that never learns of it."""
    options: dict[str, Any] = {"kinds": ["reference"] * 2}
    restart = joined_at(options, 1) + 0.01
    run = server_restart(restart_at=restart, start_gap=0.55, **options)
    assert not run.connected and run.rejoined == ("A",)
    a, b = run.peers["A"], run.peers["B"]
    assert a.connected == () and not a.failed and a.completed_at == pytest.approx(TIMEOUT)
    assert b.connected == () and "A" in b.failed and b.completed_at == pytest.approx(0.55 + TIMEOUT)


def test_the_same_restart_does_not_strand_our_plain_clients() -> None:
    """Ours keep registering while a listed peer is unconnected: B's next poll (100 ms) teaches
    the restarted server about B, A's next poll lists B, and the pair connects at once."""
    options: dict[str, Any] = {"config": PLAIN}
    restart = joined_at(options, 1) + 0.01
    run = server_restart(restart_at=restart, start_gap=0.55, **options)
    assert_restart_survived(run)
    assert run.peers["A"].completed_at < restart + 1.0  # type: ignore[operator]
    joins = run.trace.filter(actor="server", action=Action.EVENT, kind="PeerJoined")
    assert [r.time > restart for r in joins].count(True) == 2  # both relearned by the new server


def test_the_same_restart_does_not_strand_extended_clients() -> None:
    """Our extended A was pushed B at the moment B joined, before the crash."""
    restart = joined_at({}, 1) + 0.01
    run = server_restart(restart_at=restart, start_gap=0.55)
    assert run.connected, run.explain()
    push = run.trace.filter(actor="server", action=Action.SEND, kind="ext-push")
    assert push and push[0].time < restart


# --- a peer that vanishes -------------------------------------------------------------------------


def test_a_peer_that_vanishes_mid_handshake_is_reported_failed_while_the_others_complete() -> None:
    run = vanishing_peer(3)
    assert run.at is not None and not run.connected
    a, b, c = (run.peers[x] for x in "ABC")
    assert a.connected == ("B",) and b.connected == ("A",)
    for peer, start in ((a, 0.0), (b, 0.1)):
        assert list(peer.failed) == ["C"] and peer.failed["C"] in ("SYN", "nothing received")
        assert peer.reason == "timed out" and peer.completed_at == pytest.approx(start + TIMEOUT)
    assert c.completed_at is None  # it never came back to say anything
    pair = run.outcome.pair("A", "B")
    assert pair.connected and pair.connected_at is not None and pair.connected_at < run.at + 1.0
    # Its first SYNs got out; what came after died at its closed port.
    c_sent = run.trace.filter(actor="peer C", action=Action.SEND, kind="syn")
    assert c_sent and all(r.time <= run.at for r in c_sent)
    gone = [r for r in run.trace if r.action is Action.DROP and r.actor == "peer C"]
    assert gone and {r.detail for r in gone} == {"port unreachable"}
    assert "C (last seen:" in run.explain() and "vanished" in run.explain()


def test_a_vanished_peer_fails_the_reference_clients_whole_connect() -> None:
    """The Go client returns one error for the whole mesh: it names no peer as connected."""
    run = vanishing_peer(3, kinds=["reference"] * 3)
    a = run.peers["A"]
    assert run.outcome.pair("A", "B").connected and a.connected == ()
    assert "C" in a.failed and "establish a peer to peer network" in a.reason
