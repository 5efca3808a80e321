"""What each technique buys, in the simulator: one NAT x NAT grid per technique set, the birthday
figure over many seeds against the formula, and the safety of mixed sessions.

The grids run the real client with `ClientConfig.techniques`; failures give up after 5 s, and
the relay takes over after 3 s (after the probe sweeps at 0.5 and 2.5 s).
"""

from __future__ import annotations

import math

import pytest

from holepunch.protocol import ClientConfig
from holepunch.protocol.techniques import Technique
from holepunch.protocol.techniques.probability import birthday_probability
from holepunch.trace import Action
from simulator import (
    FULL_CONE,
    LINUX_MASQUERADE,
    NO_NAT,
    PORT_RESTRICTED_CONE,
    RESTRICTED_CONE,
    SYMMETRIC,
    SYMMETRIC_SEQUENTIAL,
    TECHNIQUE_PRESETS,
    TECHNIQUE_SETS,
    TechniqueGrid,
    birthday_run,
    birthday_trials,
    format_technique_grids,
    nat_grid,
    peer_results,
    run_techniques,
    technique_grid,
)
from simulator.scenarios import run_punch

SHORT = ClientConfig(timeout=5.0, relay_after=3.0)
SYMMETRICS = {SYMMETRIC.name, SYMMETRIC_SEQUENTIAL.name}
OPEN = {NO_NAT.name, FULL_CONE.name, RESTRICTED_CONE.name}  # let a new source address in
ALL = {Technique.PEER_REFLEXIVE, Technique.PREDICTION, Technique.BIRTHDAY}


@pytest.fixture(scope="module")
def grids() -> dict[str, TechniqueGrid]:
    return technique_grid(config=SHORT)


def pairs(*names: str) -> set[tuple[str, str]]:
    """Both orders of every pair of a symmetric NAT with one of `names`."""
    return {(s, n) for s in SYMMETRICS for n in names} | {(n, s) for s in SYMMETRICS for n in names}


def connected(grid: TechniqueGrid) -> set[tuple[str, str]]:
    return {pair for pair, cell in grid.cells.items() if cell.successes == cell.runs}


def test_there_is_one_grid_per_technique_set_over_every_preset(grids: dict[str, TechniqueGrid]) -> None:
    assert list(grids) == ["basic", "+peer-reflexive", "+prediction", "+birthday", "+relay"]
    names = [p.name for p in TECHNIQUE_PRESETS]
    for name, grid in grids.items():
        assert grid.techniques == TECHNIQUE_SETS[name]
        if grid.implemented:
            assert set(grid.cells) == {(a, b) for a in names for b in names}


def test_basic_is_the_textbook_grid(grids: dict[str, TechniqueGrid]) -> None:
    basic = grids["basic"]
    for (a, b), cell in basic.cells.items():
        assert (cell.successes == 1) is not ({a, b} & SYMMETRICS), (a, b)
        assert cell.technique in ("basic", "")
    old = nat_grid(config=SHORT)  # the grid of the basic punch, without the extra preset
    assert {pair for pair, o in old.items() if o.connected} == {(a, b) for a, b in connected(basic) if (a, b) in old}


def test_peer_reflexive_turns_symmetric_against_open_nats_into_successes(grids: dict[str, TechniqueGrid]) -> None:
    gained = connected(grids["+peer-reflexive"]) - connected(grids["basic"])
    assert gained == pairs(*OPEN)
    for pair in gained:
        assert grids["+peer-reflexive"].cells[pair].technique == "peer-reflexive"


def test_prediction_turns_sequential_symmetric_against_port_restricted_into_successes(
        grids: dict[str, TechniqueGrid]) -> None:
    gained = connected(grids["+prediction"]) - connected(grids["+peer-reflexive"])
    prc, seq = PORT_RESTRICTED_CONE.name, SYMMETRIC_SEQUENTIAL.name
    assert gained == {(seq, prc), (prc, seq)}
    for pair in gained:
        cell = grids["+prediction"].cells[pair]
        assert cell.technique == "prediction"
        assert cell.time is not None and cell.time > SHORT.escalation_delay  # probes wait for escalation


def test_birthday_adds_random_symmetric_against_port_restricted_and_nothing_is_lost(
        grids: dict[str, TechniqueGrid]) -> None:
    order = ["basic", "+peer-reflexive", "+prediction", "+birthday"]
    for before, after in zip(order, order[1:]):
        assert connected(grids[before]) <= connected(grids[after])  # each technique only adds
    prc, sym, linux = PORT_RESTRICTED_CONE.name, SYMMETRIC.name, LINUX_MASQUERADE.name
    birthday = grids["+birthday"]
    gained = connected(birthday) - connected(grids["+prediction"])
    assert (sym, prc) in gained and gained <= {(sym, prc), (prc, sym), (sym, linux), (linux, sym)}
    for pair in gained:
        assert "birthday" in birthday.cells[pair].technique
    # Two symmetric NATs stay out of reach of every direct technique (the relay's job).
    for a in SYMMETRICS:
        for b in SYMMETRICS:
            assert birthday.cells[a, b].successes == 0


def test_birthday_cells_report_the_fraction_over_seeds() -> None:
    quick = ClientConfig(timeout=3.0, sweep_interval=1.0, max_sweeps=2)
    grid = technique_grid({"+birthday": TECHNIQUE_SETS["+birthday"]}, (SYMMETRIC, PORT_RESTRICTED_CONE),
                          seeds=range(6), config=quick)["+birthday"]
    cell = grid.cells[SYMMETRIC.name, PORT_RESTRICTED_CONE.name]
    assert cell.runs == 6 and 0 < cell.successes < 6
    assert cell.text() == f"{100 * cell.successes / 6:.0f}%" and cell.technique == "birthday"
    assert len(cell.reasons) == 6 - cell.successes and all("timed out" in r for r in cell.reasons)
    assert grid.cells[PORT_RESTRICTED_CONE.name, PORT_RESTRICTED_CONE.name].text().startswith("yes ")


def test_with_the_relay_every_cell_connects_relayed_where_punching_fails(grids: dict[str, TechniqueGrid]) -> None:
    relay, birthday = grids["+relay"], grids["+birthday"]
    assert relay.implemented and set(relay.cells) == set(birthday.cells)
    assert connected(relay) == set(relay.cells)  # every cell
    for pair, cell in relay.cells.items():
        before = birthday.cells[pair]
        if before.successes and before.time is not None and before.time < SHORT.relay_after:
            # Punched before the relay's deadline: the same run, the same direct path.
            assert (cell.relayed, cell.technique, cell.time) == (0, before.technique, before.time), pair
        else:
            assert relay.relayed(*pair) and cell.technique == "relay", pair
            assert cell.time is not None and cell.time > SHORT.relay_after
            assert cell.text().startswith("relayed ")
    for a in SYMMETRICS:  # what no direct technique can do
        for b in SYMMETRICS:
            assert relay.relayed(a, b)
    text = format_technique_grids(grids)
    assert "+prediction: peer-reflexive, prediction" in text and "yes 0." in text and "relayed 3." in text
    assert "peer-reflexive" in grids["+peer-reflexive"].to_text("technique")
    assert " relay" in relay.to_text("technique")


def test_a_relayed_pair_is_classified_and_explained_as_relayed() -> None:
    outcome = run_techniques(SYMMETRIC, SYMMETRIC, TECHNIQUE_SETS["+relay"], config=SHORT)
    [pair] = outcome.pairs
    assert pair.connected and pair.relayed and pair.path == "relayed"
    assert pair.time_to_connect is not None and pair.time_to_connect > SHORT.relay_after
    text = outcome.explain()
    assert text.startswith("Peers A (SYMMETRIC) and B (SYMMETRIC) connected through the server's relay at ")
    assert "The first fatal drop:" in text  # why the direct punch failed
    results = peer_results(outcome)
    assert all(r.peers[0].relayed and r.peers[0].technique == "relay" for r in results.values())
    sends = outcome.trace.filter(action=Action.SEND, kind="relay")
    assert sends and {r.destination for r in sends if r.actor.startswith("peer")} == {outcome.scenario.server.endpoint}  # type: ignore[union-attr]
    direct = run_techniques(FULL_CONE, FULL_CONE, TECHNIQUE_SETS["+relay"], config=SHORT)
    assert direct.pairs[0].path == "direct" and not direct.pairs[0].relayed
    assert not direct.trace.filter(action=Action.SEND, kind="relay")  # the relay is never offered


def test_a_reference_peer_is_never_relayed() -> None:
    cfg = ClientConfig(techniques=TECHNIQUE_SETS["+relay"], timeout=5.0, relay_after=1.0)
    outcome = run_punch(SYMMETRIC, SYMMETRIC, config=cfg, kinds=["ours", "reference"])
    assert not outcome.connected  # fails as before
    assert not outcome.trace.filter(action=Action.SEND, kind="relay")


# --- the birthday figure ---------------------------------------------------------------------------


def test_birthday_probing_reproduces_the_analytic_figure_over_200_seeds() -> None:
    figure = birthday_trials(256, 256, range(200))
    expected = birthday_probability(256, 256, figure.space, exact=True)
    assert figure.space == 64512 and figure.expected == pytest.approx(expected)
    sigma = math.sqrt(expected * (1 - expected) / figure.runs)  # binomial spread over 200 seeds
    assert abs(figure.fraction - expected) < 3 * sigma, figure.to_text()
    assert abs(figure.fraction - (1 - math.exp(-1))) < 3 * sigma  # the 1 - exp(-k*m/65536) figure too
    print(figure.to_text())


def test_a_birthday_run_connects_exactly_when_a_probed_port_is_a_mapped_one() -> None:
    seen = set()
    for seed in range(30):
        outcome = birthday_run(128, 128, seed)
        listed_a, listed_b = outcome.listed["A"], outcome.listed["B"]
        probed = {r.destination for r in outcome.trace.filter(actor="peer B", action=Action.SEND, kind="punch")
                  if r.destination != listed_a}
        rows = outcome.scenario.nat("A").rows(outcome.end_time, include_expired=True)  # type: ignore[union-attr]
        mapped = {row.external for row in rows if row.remote == str(listed_b)}
        assert outcome.connected or (len(probed), len(mapped)) == (128, 128)  # all tried, all open
        assert outcome.connected is bool(probed & mapped), seed
        seen.add(outcome.connected)
    assert seen == {True, False}  # both happen at 128 x 128 (22 %)


def test_the_hard_side_sends_from_its_extra_ports_and_keeps_only_the_one_in_use() -> None:
    cfg = ClientConfig(techniques=ALL, timeout=5.0, birthday_sockets=64, birthday_probes=64)
    for seed in range(40):
        outcome = run_techniques(SYMMETRIC, PORT_RESTRICTED_CONE, ALL, config=cfg, seed=seed)
        if outcome.connected:
            break
    else:
        pytest.fail("no seed of 40 connected at 64 x 64")
    a = outcome.scenario.peer("A")  # type: ignore[union-attr]
    result = peer_results(outcome)["A"].peers[0]
    assert result.technique == "birthday" and result.via > 0
    assert len(a.extra_ports) == result.via  # the sockets above the one in use were released
    ports = {r.source.port for r in outcome.trace.filter(actor="peer A", action=Action.SEND) if r.source}
    assert len(ports) == 64 and a.extra_ports[-1] in ports  # the registered port and 63 more


def test_the_same_seed_gives_the_same_technique_run() -> None:
    cfg = ClientConfig(techniques=ALL, timeout=3.0, birthday_sockets=32, birthday_probes=32)
    first = run_techniques(SYMMETRIC, PORT_RESTRICTED_CONE, ALL, config=cfg, seed=3).trace.to_text()
    assert first == run_techniques(SYMMETRIC, PORT_RESTRICTED_CONE, ALL, config=cfg, seed=3).trace.to_text()


# --- mixed sessions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("nats", [(FULL_CONE, FULL_CONE), (SYMMETRIC, FULL_CONE), (FULL_CONE, SYMMETRIC)])
def test_a_reference_peer_never_receives_an_extension_message(nats: tuple) -> None:  # type: ignore[type-arg]
    cfg = ClientConfig(techniques=ALL, timeout=5.0)
    outcome = run_punch(*nats, config=cfg, kinds=["ours", "reference"])
    received = outcome.trace.filter(actor="peer B", action=Action.RECEIVE)
    assert received and not [r for r in received if r.kind in ("punch", "punch-ack")]
    sends_to_b = [r for r in outcome.trace.filter(actor="peer A", action=Action.SEND)
                  if r.destination == outcome.listed["B"]]
    assert sends_to_b and {r.kind for r in sends_to_b} <= {"syn", "ack", "keepalive"}
    a_sources = {r.source for r in outcome.trace.filter(actor="peer A", action=Action.SEND)}
    assert len(a_sources) == 1  # one socket only: a reference peer hangs on a second address (B1)
    assert outcome.connected is (nats == (FULL_CONE, FULL_CONE))


def test_against_the_reference_server_the_techniques_stay_off() -> None:
    cfg = ClientConfig(techniques=ALL, timeout=5.0)
    outcome = run_punch(SYMMETRIC, FULL_CONE, config=cfg, server_kind="reference")
    assert not outcome.connected  # the basic result: nobody is listed as extended
    payloads = [r for r in outcome.trace.filter(action=Action.SEND) if r.actor.startswith("peer")
                and r.destination != outcome.scenario.server.endpoint]  # type: ignore[union-attr]
    assert payloads and {r.kind for r in payloads} <= {"syn", "ack"}
