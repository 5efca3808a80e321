"""Scenarios run the real protocol machines: the NAT grid, loss, expiry, NAT behind NAT, races."""

from __future__ import annotations

import dataclasses
import random

import pytest

from holepunch.protocol import ClientConfig, PeerClient
from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action
from simulator import (
    FULL_CONE,
    LINUX_MASQUERADE,
    NO_NAT,
    PORT_RESTRICTED_CONE,
    PRESETS,
    RESTRICTED_CONE,
    SYMMETRIC,
    Outcome,
    format_grid,
    mesh,
    nat_grid,
    quiet_period,
    run_punch,
    two_peers,
)

APDF = "filtered (address-and-port dependent)"


@pytest.fixture(scope="module")
def grid() -> dict[tuple[str, str], Outcome]:
    return nat_grid()


def test_the_grid_shows_the_textbook_results_for_the_basic_punch(grid: dict[tuple[str, str], Outcome]) -> None:
    names = [p.name for p in PRESETS]
    assert set(grid) == {(a, b) for a in names for b in names}
    for (a, b), outcome in grid.items():
        # Every cone-like NAT (and no NAT) connects with every other; a symmetric NAT on either
        # side defeats the basic technique, whatever is on the other side.
        assert outcome.connected is ("SYMMETRIC" not in (a, b)), (a, b, outcome.explain())
    assert "yes" in format_grid(grid) and "no" in format_grid(grid)


def test_symmetric_vs_full_cone_fails_because_the_client_drops_strangers(grid: dict[tuple[str, str], Outcome]) -> None:
    outcome = grid["SYMMETRIC", "FULL_CONE"]
    listed_a = outcome.listed["A"]
    # B's full cone lets A's SYNs in, but they come from a port the server never listed...
    refused = [r for r in outcome.trace.filter(actor="peer B", action=Action.EVENT, kind="DatagramDropped")
               if "reason=stranger" in r.summary]
    assert refused
    arrivals = {r.source for r in outcome.trace.filter(actor="peer B", action=Action.RECEIVE, kind="syn")}
    assert arrivals and listed_a not in arrivals
    # ...and B's SYNs to the listed endpoint die at A's symmetric NAT.
    drops = outcome.trace.filter(actor="NAT A", action=Action.DROP, kind="syn")
    assert drops and {r.detail for r in drops} <= {APDF, "mapping expired"}
    text = outcome.explain()
    assert "stranger" in text and "new mapping" in text and APDF in text


def test_symmetric_vs_port_restricted_fails_at_both_filters(grid: dict[tuple[str, str], Outcome]) -> None:
    outcome = grid["SYMMETRIC", "PORT_RESTRICTED_CONE"]
    assert outcome.trace.filter(actor="NAT B", action=Action.DROP, kind="syn")  # A's SYNs, unknown port
    assert outcome.trace.filter(actor="NAT A", action=Action.DROP, kind="syn")
    assert "did not connect" in outcome.explain() and "The first fatal drop" in outcome.explain()


def test_cone_pairs_connect_fast_and_the_explanation_says_so(grid: dict[tuple[str, str], Outcome]) -> None:
    outcome = grid["PORT_RESTRICTED_CONE", "RESTRICTED_CONE"]
    assert outcome.connected and outcome.time_to_connect is not None and outcome.time_to_connect < 1.0
    assert outcome.pair("A", "B").connected and outcome.pair("B", "A") is outcome.pair("A", "B")
    assert outcome.packets_by_kind()["syn"] >= 2
    assert "connected" in outcome.explain() and "first to get through" in outcome.explain()


def test_the_same_seed_gives_a_byte_identical_trace() -> None:
    options = dict(seed=11, jitter=0.01, loss=0.1, duplicate=0.05, reorder=0.1)
    first = run_punch(PORT_RESTRICTED_CONE, SYMMETRIC, **options).trace.to_text()
    assert first == run_punch(PORT_RESTRICTED_CONE, SYMMETRIC, **options).trace.to_text()
    other = run_punch(PORT_RESTRICTED_CONE, SYMMETRIC, **{**options, "seed": 12}).trace.to_text()
    assert other != first


@pytest.mark.parametrize("seed", range(8))
def test_a_lossy_internet_still_connects_thanks_to_retransmission(seed: int) -> None:
    outcome = run_punch(PORT_RESTRICTED_CONE, RESTRICTED_CONE, seed=seed, loss=0.2)
    lost = outcome.trace.filter(action=Action.DROP)
    assert any(r.detail == "lost on link" for r in lost)  # the loss was real
    assert outcome.connected, outcome.explain()
    assert outcome.time_to_connect is not None and outcome.time_to_connect < 40.0


def test_a_quiet_hole_closes_without_keepalives() -> None:
    result = quiet_period(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, quiet=45.0, keepalive=False)
    assert result.connected_at is not None and not result.delivered
    drop = next(r for r in result.trace if r.packet == result.packet and r.action is Action.DROP)
    assert (drop.actor, drop.detail) == ("NAT B", "mapping expired")
    assert "mapping expired" in result.explain()


def test_keepalives_keep_the_hole_open() -> None:
    result = quiet_period(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, quiet=45.0, keepalive=True)
    assert result.delivered
    keepalives = [r for r in result.trace if r.action is Action.SEND and r.kind == "keepalive"
                  and r.actor.startswith("peer")]
    assert len(keepalives) >= 4  # both peers, every 15 s
    assert "received it" in result.explain()


@pytest.mark.parametrize("nat", [FULL_CONE, PORT_RESTRICTED_CONE, LINUX_MASQUERADE])
def test_cone_behind_a_carrier_grade_nat_still_connects(nat) -> None:  # type: ignore[no-untyped-def]
    outcome = run_punch(nat, nat, cgnat=PORT_RESTRICTED_CONE)
    assert outcome.connected, outcome.explain()
    assert outcome.nats["A"] == f"PORT_RESTRICTED_CONE > {nat.name}"
    assert outcome.trace.filter(actor="CGNAT", action=Action.TRANSLATE)
    assert outcome.listed["A"].host == outcome.scenario.nat("CGNAT").ip


def test_a_symmetric_carrier_grade_nat_breaks_the_punch_even_behind_a_full_cone() -> None:
    assert not run_punch(FULL_CONE, FULL_CONE, cgnat=SYMMETRIC).connected


@pytest.mark.parametrize("carrier, connects", [(FULL_CONE, True), (LINUX_MASQUERADE, False)])
def test_two_customers_of_one_carrier_need_it_to_hairpin(carrier, connects: bool) -> None:  # type: ignore[no-untyped-def]
    outcome = run_punch(FULL_CONE, FULL_CONE, cgnat=carrier, cgnat_peers="AB")
    assert outcome.connected is connects
    hairpin = [r for r in outcome.trace if r.actor == "CGNAT" and r.kind == "syn"
               and (r.summary == "hairpin" or r.detail == "hairpin not supported")]
    assert hairpin
    if not connects:
        assert "hairpin not supported" in outcome.explain()


def test_the_linux_early_punch_race_turns_masquerade_into_a_symmetric_nat() -> None:
    # Plain clients learn about each other only by polling, so B's first SYN reaches NAT A
    # before A has sent anything to B (nat-lab-notes, "The early-punch race").
    plain = ClientConfig(extension=False)
    race = run_punch(LINUX_MASQUERADE, LINUX_MASQUERADE, config=plain, start_gap=0.15)
    assert not race.connected
    claims = [row for row in race.scenario.nat("A").rows(race.end_time, include_expired=True)
              if row.internal is None and row.remote == str(race.listed["B"])]
    assert claims and claims[0].external == race.listed["A"]
    assert "conntrack race" in race.explain()
    # The same timing through NATs that do not confirm an entry for the unsolicited SYN works.
    assert run_punch(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, config=plain, start_gap=0.15).connected
    # And our extension's push (A hears of B as soon as B registers) avoids the race.
    assert run_punch(LINUX_MASQUERADE, LINUX_MASQUERADE, start_gap=0.15).connected


def test_a_mesh_connects_every_pair_that_the_nats_allow() -> None:
    outcome = run_punch(mesh(4, [FULL_CONE, PORT_RESTRICTED_CONE, SYMMETRIC, NO_NAT]))
    assert len(outcome.pairs) == 6
    for pair in outcome.pairs:
        assert pair.connected is ("C" not in (pair.a, pair.b)), pair
    assert not outcome.connected
    assert run_punch(mesh(3, RESTRICTED_CONE)).connected


def test_mixed_runs_put_a_model_of_the_go_reference_client_on_a_host() -> None:
    pytest.importorskip("holepunch.protocol.reference")
    outcome = run_punch(PORT_RESTRICTED_CONE, FULL_CONE, kinds=("ours", "reference"))
    assert outcome.connected, outcome.explain()
    assert type(outcome.scenario.peer("B").machine).__name__ == "ReferenceClient"
    reference_server = run_punch(FULL_CONE, FULL_CONE, kinds=("reference", "reference"), server_kind="reference")
    assert reference_server.connected


def test_a_client_factory_decides_what_runs_on_each_peer() -> None:
    made: list[tuple[str, int]] = []

    def factory(letter: str, server: Endpoint, session: bytes, expected: int, rng: random.Random) -> PeerClient:
        made.append((letter, expected))
        return PeerClient(server, session, expected, ClientConfig(punch_interval=0.5), rng=rng)

    outcome = run_punch(two_peers(FULL_CONE, FULL_CONE, client_factory=factory))
    assert made == [("A", 1), ("B", 1)] and outcome.connected


def test_scenarios_expose_tables_and_endpoints_and_refuse_bad_arguments() -> None:
    sc = two_peers(FULL_CONE, SYMMETRIC)
    sc.run(0.5)
    tables = sc.tables()
    assert set(tables) == {"NAT A", "NAT B"} and tables["NAT A"] and tables["NAT B"]
    assert sc.public_endpoint("A") == Endpoint("198.51.100.10", 4000)
    assert sc.nat("B") is sc.network.nat("NAT B")
    with pytest.raises(TypeError):
        run_punch(FULL_CONE)
    with pytest.raises(TypeError):
        run_punch(sc, FULL_CONE)
    with pytest.raises(ValueError, match="kind"):
        two_peers(FULL_CONE, FULL_CONE, kinds=("ours", "go"))
    with pytest.raises(ValueError, match="at least 2"):
        mesh(1, FULL_CONE)


def test_time_to_connect_grows_with_latency() -> None:
    fast = run_punch(FULL_CONE, FULL_CONE, latency=0.01).time_to_connect
    slow = run_punch(FULL_CONE, FULL_CONE, latency=0.05).time_to_connect
    assert fast is not None and slow is not None and slow > fast


def test_a_preset_variant_is_one_replace_away() -> None:
    open_symmetric = dataclasses.replace(SYMMETRIC, name="SYMMETRIC_EIF", filtering="EIF")
    # Still APDM, so the peer behind it sends from an unlisted port: our client refuses it.
    assert not run_punch(open_symmetric, PORT_RESTRICTED_CONE).connected
