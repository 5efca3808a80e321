"""The course's plots, checked through the artists they produce (Agg backend, see conftest)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace

import networkx as nx
import pytest
from matplotlib.colors import to_rgba
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.messages import MessageKind
from holepunch.protocol.states import CLIENT_TRANSITIONS, PEER_TRANSITIONS, ClientState
from holepunch.trace import Action, Trace
from simulator import viz
from .traces import (A_PRIV, A_PUB, B_PUB, FILTERED, LANES, LO_A, LO_B, LO_SERVER, SERVER, R,
                              real_run, simulated_punch)


def arrows(ax, gid: str = "hop") -> list[FancyArrowPatch]:
    return [p for p in ax.patches if isinstance(p, FancyArrowPatch) and p.get_gid() == gid]


def texts(ax, gid: str | None = None) -> list[str]:
    return [t.get_text() for t in ax.texts if gid is None or t.get_gid() == gid]


def drops(ax) -> list:
    return [line for line in ax.lines if line.get_gid() == "drop"]


def colour_counts(ax) -> Counter:
    names = {to_rgba(c): k for k, c in viz.KIND_COLOURS.items()}
    return Counter(names[tuple(a.get_edgecolor())] for a in arrows(ax))


# --- timeline: simulated run ------------------------------------------------------------------


def test_lanes_put_each_nat_beside_its_peer_and_the_server_in_the_middle() -> None:
    ax = viz.timeline(simulated_punch())
    assert [t.get_text() for t in ax.get_xticklabels()] == LANES
    assert viz.timeline_lanes(simulated_punch()) == LANES  # "link A"/"link B" (LINK only) get no lane


def test_mesh_lanes_split_the_pairs_around_the_server() -> None:
    actors = ["server", "peer C", "NAT A", "peer B", "NAT C", "peer A", "NAT B", "peer D", "NAT D", "relay"]
    assert viz.order_lanes(actors) == [
        "peer A", "NAT A", "peer B", "NAT B", "server", "NAT C", "peer C", "NAT D", "peer D", "relay"]
    assert viz.order_lanes(["peer 10", "peer 2", "server"]) == ["peer 2", "server", "peer 10"]


def test_one_arrow_per_packet_hop_coloured_by_kind() -> None:
    ax = viz.timeline(simulated_punch())
    assert len(arrows(ax)) == 19
    assert colour_counts(ax) == {"register": 4, "peer-list": 4, "syn": 5, "ack": 6}
    assert all(a.get_linestyle() == "-" for a in arrows(ax))  # every packet reached a lane


def test_drop_is_a_red_x_at_the_nat_with_its_reason() -> None:
    ax = viz.timeline(simulated_punch())
    (mark,) = drops(ax)
    assert mark.get_marker() == "x"
    assert to_rgba(mark.get_color()) == to_rgba("#d62728")
    assert (mark.get_xdata()[0], mark.get_ydata()[0]) == (LANES.index("NAT B"), pytest.approx(0.091))
    assert texts(ax, "drop-reason") == [FILTERED]


def test_nat_rewrites_are_written_on_the_nat_lanes() -> None:
    ax = viz.timeline(simulated_punch())
    notes = [t for t in ax.texts if t.get_gid() == "nat-note"]
    assert len(notes) == 11  # one per TRANSLATE record
    assert "10.0.1.2:4000 ->\n198.51.100.10:4000" in [t.get_text() for t in notes]
    lanes_used = {round(t.get_position()[0]) for t in notes}
    assert lanes_used == {LANES.index("NAT A"), LANES.index("NAT B")}


def test_each_connection_gets_a_band_naming_the_peer() -> None:
    ax = viz.timeline(simulated_punch())
    bands = [line for line in ax.lines if line.get_gid() == "connected"]
    assert sorted(b.get_ydata()[0] for b in bands) == [pytest.approx(0.122), pytest.approx(0.147)]
    connected = texts(ax, "connected")
    assert "peer B connected: peer A at 198.51.100.10:4000" in connected
    assert "peer A connected: peer B at 198.51.100.20:4000" in connected


def test_time_runs_down_and_legend_lists_the_kinds() -> None:
    ax = viz.timeline(simulated_punch(), title="punch")
    bottom, top = ax.get_ylim()
    assert bottom > top  # inverted: later is lower
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["register", "peer-list", "syn", "ack", "dropped", "connected"]
    assert ax.get_title() == "punch"


def test_upto_draws_a_prefix_and_highlights_its_last_record() -> None:
    trace = simulated_punch()
    index = next(i for i, r in enumerate(trace) if r.action is Action.RECEIVE and r.packet == 1)
    ax = viz.timeline(trace, upto=index)
    # packet 1: peer A -> NAT A -> server; packet 2: peer B -> NAT B, then in flight toward the server
    assert len(arrows(ax)) == 4
    assert Counter(a.get_linestyle() for a in arrows(ax)) == {"-": 3, "--": 1}
    assert max(arrows(ax), key=lambda a: a.get_linewidth()).get_edgecolor() == to_rgba(viz.KIND_COLOURS["register"])
    (ring,) = [line for line in ax.lines if line.get_gid() == "highlight"]
    assert ring.get_xdata()[0] == LANES.index("server")
    assert not drops(ax) and not texts(ax, "connected")
    assert [t.get_text() for t in ax.get_xticklabels()] == LANES  # lanes do not jump while stepping
    assert ax.get_ylim() == viz.timeline(trace).get_ylim()


def test_upto_zero_shows_the_first_send_in_flight_and_bad_upto_is_refused() -> None:
    trace = simulated_punch()
    assert [a.get_linestyle() for a in arrows(viz.timeline(trace, upto=0))] == ["--"]
    assert len(arrows(viz.timeline(trace, upto=-1))) == 19
    with pytest.raises(IndexError, match="outside"):
        viz.timeline(trace, upto=len(trace))


def test_kinds_filter_keeps_only_those_messages() -> None:
    syn = viz.timeline(simulated_punch(), kinds={"syn"})
    assert colour_counts(syn) == {"syn": 5}
    assert len(drops(syn)) == 1
    assert Counter(texts(syn, "nat-note")) == {"10.0.1.2:4000 ->\n198.51.100.10:4000": 1,
                                               "10.0.2.2:4000 ->\n198.51.100.20:4000": 1,
                                               "198.51.100.10:4000 ->\n10.0.1.2:4000": 1}
    register = viz.timeline(simulated_punch(), kinds=[MessageKind.REGISTER])
    assert colour_counts(register) == {"register": 4}
    assert not drops(register)


def test_without_labels_each_drop_reason_is_written_once_per_lane() -> None:
    trace = Trace([r for k in range(3) for r in (
        R(k, "peer A", Action.SEND, A_PRIV, B_PUB, "syn", packet=k),
        R(k + 0.001, "NAT A", Action.TRANSLATE, A_PUB, B_PUB, "syn", detail=f"{A_PRIV} -> {A_PUB}", packet=k),
        R(k + 0.02, "NAT B", Action.DROP, A_PUB, B_PUB, "syn", detail=FILTERED, packet=k))])
    quiet = viz.timeline(trace, labels=False)
    assert len(drops(quiet)) == 3 and texts(quiet, "drop-reason") == [FILTERED]
    assert texts(viz.timeline(trace, labels=True), "drop-reason") == [FILTERED] * 3


def test_labels_can_be_turned_off_and_spacing_by_order() -> None:
    ax = viz.timeline(simulated_punch(), labels=False, spacing="order")
    assert not texts(ax, "nat-note")
    assert len(arrows(ax)) == 19
    with pytest.raises(ValueError, match="spacing"):
        viz.timeline(simulated_punch(), spacing="log")


def test_a_packet_lost_on_the_wire_points_toward_its_destination() -> None:
    trace = Trace([
        R(0.0, "peer A", Action.SEND, A_PRIV, SERVER, "register", packet=1),
        R(0.001, "NAT A", Action.TRANSLATE, A_PUB, SERVER, "register", detail=f"{A_PRIV} -> {A_PUB}", packet=1),
        R(0.011, "link A", Action.DROP, A_PUB, SERVER, "register", detail="lost", packet=1),
        R(0.5, "peer A", Action.SEND, A_PRIV, SERVER, "register", packet=2),
        R(0.501, "NAT A", Action.TRANSLATE, A_PUB, SERVER, "register", detail=f"{A_PRIV} -> {A_PUB}", packet=2),
        R(0.52, "server", Action.RECEIVE, A_PUB, SERVER, "register", packet=2),
    ])
    assert viz.timeline_lanes(trace) == ["peer A", "NAT A", "server"]
    ax = viz.timeline(trace)
    assert Counter(a.get_linestyle() for a in arrows(ax)) == {"-": 3, "--": 1}
    (mark,) = drops(ax)
    assert 1.0 < mark.get_xdata()[0] < 2.0  # on the way from NAT A to the server
    assert texts(ax, "drop-reason") == ["lost"]


def test_lanes_can_be_chosen_by_hand() -> None:
    ax = viz.timeline(simulated_punch(), lanes=["peer A", "server", "peer B"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["peer A", "server", "peer B"]
    # without NAT lanes each packet becomes one arrow; A's first SYN still dies (at no lane): a stub
    assert len(arrows(ax)) == 8
    assert [a.get_linestyle() for a in arrows(ax)].count("--") == 1


def test_packets_from_actors_without_a_lane_start_at_the_first_lane_they_reach() -> None:
    ax = viz.timeline(simulated_punch(), lanes=["NAT A", "server"])
    # A's register NAT A -> server and the peer list server -> NAT A; all else involves hidden lanes
    assert colour_counts(ax) == {"register": 1, "peer-list": 1}


# --- timeline: real run -----------------------------------------------------------------------


def test_real_run_trace_draws_matched_arrows_and_a_stub_for_the_lost_keepalive() -> None:
    ax = viz.timeline(real_run())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["peer A", "server", "peer B"]
    assert len(arrows(ax)) == 9
    assert colour_counts(ax) == {"register": 2, "peer-list": 2, "syn": 2, "ack": 2, "keepalive": 1}
    assert [a.get_linestyle() for a in arrows(ax)].count("--") == 1
    assert len([line for line in ax.lines if line.get_gid() == "connected"]) == 2


def test_real_run_pairs_send_and_receive_first_in_first_out() -> None:
    trace = Trace([
        R(0.0, "peer A", Action.SEND, LO_A, LO_SERVER, "register"),
        R(0.1, "peer A", Action.SEND, LO_A, LO_SERVER, "register"),  # a retransmission
        R(0.2, "server", Action.RECEIVE, LO_A, LO_SERVER, "register"),
        R(0.3, "server", Action.RECEIVE, LO_A, LO_SERVER, "register"),
    ])
    hops = viz.timeline_hops(trace, ["peer A", "server"])
    assert [(h.start, h.end, h.t0, h.t1) for h in hops] == [(0, 2, 0.0, 0.2), (1, 3, 0.1, 0.3)]


def test_real_run_through_a_nat_matches_by_destination_then_kind() -> None:
    public_a = Endpoint("198.51.100.10", 61000)  # what the server sees instead of A's address
    trace = Trace([
        R(0.0, "peer A", Action.SEND, LO_A, LO_SERVER, "register"),
        R(0.0, "peer B", Action.SEND, LO_B, LO_SERVER, "register"),
        R(0.2, "server", Action.RECEIVE, LO_B, LO_SERVER, "register"),
        R(0.3, "server", Action.RECEIVE, public_a, LO_SERVER, "register"),
        R(0.4, "peer B", Action.SEND, LO_B, Endpoint("198.51.100.10", 61000), "syn"),
        R(0.5, "peer A", Action.RECEIVE, Endpoint("203.0.113.7", 4000), LO_A, "syn"),
    ])
    hops = viz.timeline_hops(trace, ["peer A", "server", "peer B"])
    assert [(h.src, h.dst, h.start, h.end) for h in hops] == [
        ("peer A", "server", 0, 3), ("peer B", "server", 1, 2), ("peer B", "peer A", 4, 5)]


def test_sides_of_a_real_run_with_their_own_packet_ids_are_still_paired() -> None:
    trace = Trace([
        R(0.0, "peer A", Action.SEND, LO_A, LO_B, "data", packet=7),
        R(0.1, "peer B", Action.RECEIVE, LO_A, LO_B, "data", packet=3),
    ])
    assert [(h.start, h.end) for h in viz.timeline_hops(trace, ["peer A", "peer B"])] == [(0, 1)]


def test_empty_trace_draws_empty_axes() -> None:
    ax = viz.timeline(Trace())
    assert not arrows(ax)


# --- NAT table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping_:
    internal: Endpoint
    external: Endpoint
    remote: Endpoint | None
    expires_at: float


def cells(ax) -> dict[tuple[int, int], str]:
    (table,) = ax.tables
    return {key: cell.get_text().get_text() for key, cell in table.get_celld().items()}


def test_nat_table_shows_every_field_with_readable_headers() -> None:
    rows = [Mapping_(A_PRIV, A_PUB, None, 30.0), Mapping_(A_PRIV, Endpoint("198.51.100.10", 4001), SERVER, 30.021)]
    got = cells(viz.nat_table(rows, title="NAT A"))
    assert [got[(0, c)] for c in range(4)] == ["Internal", "External", "Remote", "Expires at"]
    assert [got[(1, c)] for c in range(4)] == ["10.0.1.2:4000", "198.51.100.10:4000", "-", "30"]
    assert [got[(2, c)] for c in range(4)] == ["10.0.1.2:4000", "198.51.100.10:4001", "203.0.113.1:9000", "30.021"]


def test_nat_table_takes_dicts_with_differing_columns() -> None:
    got = cells(viz.nat_table([{"nat_ip": "198.51.100.10", "port": 4000}, {"port": 4001, "ttl": 30}]))
    assert [got[(0, c)] for c in range(3)] == ["NAT IP", "Port", "TTL"]
    assert [got[(2, c)] for c in range(3)] == ["-", "4001", "30"]


def test_empty_nat_table_says_so_and_bad_rows_are_refused() -> None:
    ax = viz.nat_table([])
    assert not ax.tables and texts(ax) == ["no mappings"]
    with pytest.raises(TypeError, match="row"):
        viz.nat_table([42])


# --- grid heatmap -----------------------------------------------------------------------------


def outcome(connected: bool, elapsed: float | None = None, technique: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(connected=connected, time_to_connect=elapsed, technique=technique)


GRID = {
    ("full cone", "full cone"): outcome(True, 0.045),
    ("full cone", "symmetric"): outcome(True, 1.5, "punch"),
    ("symmetric", "full cone"): {"connected": True, "time_to_connect": None},
    ("symmetric", "symmetric"): outcome(False),
}


def test_heatmap_cells_say_ok_with_time_or_fail() -> None:
    ax = viz.grid_heatmap(GRID, title="NAT pairs")
    assert texts(ax, "cell") == ["ok 45 ms", "ok 1.5 s\npunch", "ok", "fail"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["full cone", "symmetric"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["full cone", "symmetric"]
    (image,) = ax.images
    assert image.get_array().tolist() == [[1.0, 1.0], [1.0, 0.0]]
    green, red = image.cmap(1.0), image.cmap(0.0)
    assert green[1] > green[0] and red[0] > red[1]


def test_grid_pairs_map_a_cell_back_to_its_nat_pair() -> None:
    pairs = viz.grid_pairs(GRID)
    assert pairs == [[("full cone", "full cone"), ("full cone", "symmetric")],
                     [("symmetric", "full cone"), ("symmetric", "symmetric")]]
    ax = viz.grid_heatmap(GRID)
    text = next(t for t in ax.texts if t.get_text() == "fail")
    col, row = text.get_position()
    assert pairs[round(row)][round(col)] == ("symmetric", "symmetric")


def test_missing_pair_is_grey_and_marked() -> None:
    ax = viz.grid_heatmap({("a", "x"): outcome(True), ("b", "y"): outcome(False)})
    assert texts(ax, "cell") == ["ok", "n/a", "n/a", "fail"]
    assert ax.images[0].get_array().mask.tolist() == [[False, True], [True, False]]


# --- topology ---------------------------------------------------------------------------------


def two_nat_graph() -> nx.Graph:
    g = nx.Graph()
    g.add_node("internet", kind="internet")
    g.add_node("server", kind="server", address="203.0.113.1:9000")
    for side, public, private in (("A", "198.51.100.10", "10.0.1.2"), ("B", "198.51.100.20", "10.0.2.2")):
        g.add_node(f"NAT {side}", kind="nat", address=public)
        g.add_node(f"peer {side}", kind="host", label=f"peer {side}", address=private)
        g.add_edge(f"peer {side}", f"NAT {side}", latency=0.001)
        g.add_edge(f"NAT {side}", "internet", latency=0.010)
    g.add_edge("server", "internet", latency=0.020)
    return g


def test_topology_places_server_on_top_and_peers_outside_their_nats() -> None:
    pos = viz.topology_layout(two_nat_graph())
    assert pos["internet"] == (0.0, 0.0)
    assert pos["server"][1] > 0
    assert pos["peer A"][0] < pos["NAT A"][0] < 0 < pos["NAT B"][0] < pos["peer B"][0]


def test_topology_draws_nodes_by_kind_with_labels_and_latencies() -> None:
    ax = viz.topology(two_nat_graph())
    assert sorted(c.get_label() for c in ax.collections) == ["host", "internet", "nat", "server"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 6
    words = texts(ax)
    assert "peer A\n10.0.1.2" in words and "server\n203.0.113.1:9000" in words
    assert Counter(w for w in words if w.endswith("ms")) == {"1 ms": 2, "10 ms": 2, "20 ms": 1}
    assert len(ax.lines) == 5  # one per edge
    with pytest.raises(TypeError, match="networkx"):
        viz.topology({"a": "b"})


# --- state diagrams ---------------------------------------------------------------------------


def boxes(ax) -> list[FancyBboxPatch]:
    return [p for p in ax.patches if isinstance(p, FancyBboxPatch) and p.get_gid() == "state"]


@pytest.mark.parametrize("table", [PEER_TRANSITIONS, CLIENT_TRANSITIONS], ids=["peer", "client"])
def test_state_diagram_has_a_box_per_state_and_a_labelled_arrow_per_transition(table) -> None:
    ax = viz.state_diagram(table)
    states = {s for s, _ in table} | set(table.values())
    assert len(boxes(ax)) == len(states)
    assert {t.get_text() for t in ax.texts if t.get_gid() is None} == {s.name for s in states}
    assert len(arrows(ax, "transition")) == len(table)
    assert Counter(texts(ax, "trigger")) == Counter(trigger.value for _, trigger in table)


@pytest.mark.parametrize("table", [PEER_TRANSITIONS, CLIENT_TRANSITIONS], ids=["peer", "client"])
def test_state_diagram_labels_sit_clear_of_the_boxes(table) -> None:
    ax = viz.state_diagram(table)
    for label in (t for t in ax.texts if t.get_gid() == "trigger"):
        x, y = label.get_position()
        for box in boxes(ax):
            assert not (box.get_x() < x < box.get_x() + box.get_width()
                        and box.get_y() < y < box.get_y() + box.get_height()), label.get_text()


def test_client_states_are_layered_from_the_first_state() -> None:
    columns = viz.state_layers(CLIENT_TRANSITIONS)
    assert columns[0] == [ClientState.IDLE]
    assert columns[1] == [ClientState.REGISTERING]
    assert columns[-1] == [ClientState.CLOSED]


def test_state_layers_survive_cycles() -> None:
    columns = viz.state_layers({("a", "go"): "b", ("b", "back"): "a", ("b", "on"): "c"})
    assert columns == [["a"], ["b"], ["c"]]
    with pytest.raises(ValueError):
        viz.state_diagram({})


# --- export and import hygiene ----------------------------------------------------------------


def test_figure_to_png_gives_png_bytes_from_a_figure_or_axes() -> None:
    ax = viz.new_axes()
    assert viz.timeline(simulated_punch(), ax=ax) is ax
    png = viz.figure_to_png(ax)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert viz.figure_to_png(ax.figure).startswith(b"\x89PNG")
    with pytest.raises(TypeError):
        viz.figure_to_png("not a figure")


def test_importing_viz_defers_pyplot_and_networkx() -> None:
    code = ("import sys, simulator.viz; "
            "print(sorted(m for m in ('networkx', 'matplotlib.pyplot', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
