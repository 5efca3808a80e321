"""The course widgets, built headless: set `.value`, `.click()`, and check what they show."""

from __future__ import annotations

import pytest

from holepunch.trace import Action, Trace, TraceRecord
from holepunch.protocol.endpoint import Endpoint
from simulator import quiet_period
from simulator import (FULL_CONE, LINUX_MASQUERADE, NO_NAT, PORT_RESTRICTED_CONE, RESTRICTED_CONE,
                       SYMMETRIC, Filtering, Mapping, PortAllocation, run_punch, two_peers)
from simulator.widgets import (CUSTOM, EVENTS, explain_record, grid_explorer, kind_choices,
                               nat_behavior, nat_behaviors, nat_explorer, packet_senders,
                               punch_stepper, state_machine_view, tables_at)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def connected():
    """A run that connects: full cone vs port-restricted cone."""
    return run_punch(FULL_CONE, PORT_RESTRICTED_CONE)


@pytest.fixture(scope="module")
def failed():
    """A run that fails: symmetric vs symmetric (thousands of records)."""
    return run_punch(SYMMETRIC, SYMMETRIC)


def png(image) -> bytes:
    """An Image widget's picture as bytes (ipywidgets keeps a memoryview)."""
    return bytes(image.value)


def first(trace, action: Action, kind: str, actor: str | None = None) -> TraceRecord:
    return next(r for r in trace if r.action is action and r.kind == kind and (actor is None or r.actor == actor))


# --- explain_record -------------------------------------------------------------------------------


def test_explain_send_translate_receive_and_event(connected):
    trace = list(connected.trace)
    senders = packet_senders(trace)
    assert explain_record(first(trace, Action.SEND, "syn", "peer A"), senders) == \
        "peer A sent SYN to 198.51.100.20:4000 from 10.0.1.2:4000."
    assert explain_record(first(trace, Action.TRANSLATE, "syn", "NAT A"), senders) == \
        "NAT A let A's SYN out, rewriting its source 10.0.1.2:4000 to 198.51.100.10:4000 (towards 198.51.100.20:4000)."
    assert explain_record(first(trace, Action.TRANSLATE, "syn", "NAT B"), senders) == \
        "NAT B let B's SYN out, rewriting its source 10.0.2.2:4000 to 198.51.100.20:4000 (towards 198.51.100.10:4000)."
    inbound = next(r for r in trace if r.action is Action.TRANSLATE and r.summary == "inbound" and r.kind == "syn")
    assert explain_record(inbound, senders).startswith(f"{inbound.actor} let ")
    assert "rewriting its destination" in explain_record(inbound, senders)
    assert explain_record(first(trace, Action.RECEIVE, "syn", "peer B"), senders) == \
        "peer B received A's SYN from 198.51.100.10:4000."
    assert explain_record(first(trace, Action.EVENT, "PeerConnected", "peer A"), senders) == \
        "peer A connected with 198.51.100.20:4000, 84 ms after it started punching it."
    assert explain_record(first(trace, Action.RECEIVE, "ext-peers", "peer A"), senders).startswith(
        "peer A received the server's peer list (extended) from 198.51.100.1:5000: session b'demo'")
    assert explain_record(first(trace, Action.LINK, "syn", "lan A"), senders) == \
        "A's SYN went onto link lan A, arriving 1 ms later."


def test_explain_drop_says_where_and_why(failed):
    trace = list(failed.trace)
    drop = first(trace, Action.DROP, "syn")
    text = explain_record(drop, packet_senders(trace))
    owner = "A's" if drop.actor == "NAT B" else "B's"
    assert text == (f"{drop.actor} dropped {owner} SYN from {drop.source} on the way in: it lets in only "
                    "endpoints (address and port) its inside host has sent to (filtered (address-and-port dependent)).")
    # Without the senders the sentence still reads, with an article instead of an owner.
    assert explain_record(drop).startswith(f"{drop.actor} dropped a SYN from {drop.source}")
    # A punching client keeps refreshing its registration now, so the failed run keeps its
    # mappings alive: a quiet, connected pair without keep-alives is where one expires.
    quiet = quiet_period(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, quiet=45.0, keepalive=False)
    expired = next(r for r in quiet.trace if r.action is Action.DROP and r.detail == "mapping expired")
    assert explain_record(expired).endswith("on the way in: the mapping for that port had expired "
                                            "(nothing went out through it for the whole timeout) (mapping expired).")


def test_explain_hand_made_records():
    a, b = Endpoint("198.51.100.10", 4000), Endpoint("198.51.100.20", 4000)
    lost = TraceRecord(1.0, "wan A", Action.DROP, a, b, "ack", "", "lost on link", 7)
    assert explain_record(lost, {7: "peer A"}) == "link wan A lost A's ACK on its way to 198.51.100.20:4000."
    odd = TraceRecord(1.0, "server", Action.EVENT, kind="Mystery", summary="x=1 y=[a, b]")
    assert explain_record(odd) == "server reported Mystery: x=1 y=[a, b]."
    refused = TraceRecord(2.0, "peer B", Action.EVENT, kind="DatagramDropped",
                          summary="source=203.0.113.9:1 size=3 reason=stranger")
    assert explain_record(refused) == ("peer B ignored a 3-byte datagram from 203.0.113.9:1 "
                                       "(stranger: it came from an endpoint the server had not listed).")
    timer = TraceRecord(3.0, "peer A", Action.TIMER)
    assert explain_record(timer) == "A's timer fired."


def test_packet_senders_follow_link_duplicates():
    outcome = run_punch(FULL_CONE, FULL_CONE, duplicate=0.5, seed=3)
    senders = packet_senders(outcome.trace)
    dups = [r for r in outcome.trace if r.action is Action.LINK and "duplicate of #" in r.detail]
    assert dups, "the seed should duplicate something"
    for r in dups:
        assert senders[r.packet] == senders[int(r.detail.rsplit("#", 1)[1])]


# --- NAT tables rebuilt from the trace ------------------------------------------------------------


@pytest.mark.parametrize("nat_a, nat_b", [(LINUX_MASQUERADE, SYMMETRIC), (PORT_RESTRICTED_CONE, SYMMETRIC),
                                          (LINUX_MASQUERADE, LINUX_MASQUERADE), (RESTRICTED_CONE, FULL_CONE)])
def test_tables_at_match_the_live_tables_at_every_stop(nat_a, nat_b):
    sc = two_peers(nat_a, nat_b)
    for t in (0.1, 0.25, 0.5, 31.0, 45.0):
        sc.run(t)
        records = list(sc.trace)
        rebuilt = tables_at(records, len(records) - 1, nat_behaviors(sc), now=sc.now, include_expired=True)
        assert rebuilt == sc.tables(include_expired=True)
        assert tables_at(records, len(records) - 1, nat_behaviors(sc), now=sc.now) == sc.tables()


def test_tables_at_start_empty_and_without_behaviours(connected):
    records = list(connected.trace)
    assert tables_at(records, 0, nat_behaviors(connected.scenario)) == {"NAT A": [], "NAT B": []}
    plain = tables_at(records, len(records) - 1)  # no behaviours: keyed by endpoints, APDF permits
    assert [row.external for row in plain["NAT A"]] == [Endpoint("198.51.100.10", 4000)]
    assert "198.51.100.20:4000" in plain["NAT A"][0].permits
    with pytest.raises(IndexError):
        tables_at(records, len(records))


# --- punch_stepper --------------------------------------------------------------------------------


def test_stepper_next_back_and_slider_agree():
    stepper = punch_stepper(two_peers(FULL_CONE, PORT_RESTRICTED_CONE))  # not run yet: runs it
    assert stepper.outcome is not None and stepper.outcome.connected
    assert stepper.index == 0 and stepper.back_button.disabled
    seen = [(stepper.explanation.value, png(stepper.timeline_image))]
    for _ in range(3):
        stepper.next_button.click()
        seen.append((stepper.explanation.value, png(stepper.timeline_image)))
    assert stepper.index == 3 and stepper.current_record is stepper.records[3]
    assert len({text for text, _ in seen}) == 4 and len({png for _, png in seen}) == 4
    assert all(picture.startswith(PNG) for _, picture in seen)
    stepper.back_button.click()
    assert stepper.index == 2 and stepper.explanation.value == seen[2][0]
    other = punch_stepper(outcome=stepper.outcome)
    other.slider.value = 3
    assert (other.explanation.value, png(other.timeline_image)) == seen[3]
    other.play.value = 5  # Play drives the slider
    assert other.index == 5 and other.current_record == stepper.records[5]


def test_stepper_shows_tables_at_the_current_record(connected):
    stepper = punch_stepper(outcome=connected)
    assert stepper.tables == {"NAT A": [], "NAT B": []}
    assert "no mappings" in stepper.tables_html.value
    translate = next(i for i, r in enumerate(stepper.records) if r.action is Action.TRANSLATE)
    stepper.slider.value = translate
    assert [str(r.external) for r in stepper.tables["NAT A"]] == ["198.51.100.10:4000"]
    assert "198.51.100.10:4000" in stepper.tables_html.value and "FULL_CONE" in stepper.tables_html.value
    stepper.slider.value = stepper.slider.max
    assert stepper.next_button.disabled
    stepper.next_button.click()
    assert stepper.index == stepper.slider.max


def test_stepper_kind_filter_restricts_the_steps(connected):
    stepper = punch_stepper(outcome=connected)
    assert stepper.kinds.options[:2] == ("ext-register", "ext-peers") and EVENTS in stepper.kinds.options
    stepper.slider.value = 2
    stepper.kinds.value = ("syn",)
    syn = [i for i, r in enumerate(connected.trace) if r.kind == "syn"]
    assert stepper.slider.max == len(syn) - 1 == stepper.play.max
    assert stepper.record_index == syn[0]  # moved to the first SYN after the old record
    assert stepper.steps == syn
    stepper.next()
    stepper.next()
    assert stepper.current_record.kind == "syn" and stepper.record_index == syn[2]
    stepper.slider.value = stepper.slider.max
    assert stepper.record_index == syn[-1]
    here = stepper.record_index
    stepper.kinds.value = ("syn", "ack")  # the current record still matches: stay on it
    assert stepper.record_index == here
    stepper.kinds.value = ()
    assert stepper.slider.max == len(connected.trace) - 1 and stepper.record_index == here


def test_stepper_windows_long_traces(failed):
    stepper = punch_stepper(failed)
    assert len(stepper.records) > 1000
    start = png(stepper.timeline_image)
    stepper.slider.value = stepper.slider.max
    assert png(stepper.timeline_image).startswith(PNG) and png(stepper.timeline_image) != start
    assert stepper.current_record == stepper.records[-1]


def test_stepper_accepts_a_trace_and_refuses_nonsense(connected):
    stepper = punch_stepper(trace=Trace(list(connected.trace)))
    assert stepper.scenario is None and stepper.index == 0
    stepper.next()
    assert stepper.tables == {"NAT A": [], "NAT B": []}
    with pytest.raises(TypeError):
        punch_stepper()
    with pytest.raises(TypeError):
        punch_stepper(connected, trace=connected.trace)
    with pytest.raises(TypeError):
        punch_stepper(42)
    with pytest.raises(ValueError):
        punch_stepper(trace=Trace())


def test_kind_choices_list_kinds_then_events():
    records = [TraceRecord(0.0, "peer A", Action.SEND, kind="syn"),
               TraceRecord(0.0, "peer A", Action.EVENT, kind="Registered"),
               TraceRecord(0.1, "peer A", Action.SEND, kind="ack")]
    assert kind_choices(records) == ["syn", "ack", EVENTS]


# --- nat_explorer ---------------------------------------------------------------------------------


def test_nat_behavior_keeps_presets_and_names_custom_axes():
    assert nat_behavior("SYMMETRIC", Mapping.APDM, Filtering.APDF, PortAllocation.RANDOM) is SYMMETRIC
    assert nat_behavior("NO_NAT", Mapping.EIM, Filtering.EIF, PortAllocation.PRESERVE) is NO_NAT
    custom = nat_behavior(CUSTOM, Mapping.ADM, Filtering.ADF, PortAllocation.SEQUENTIAL)
    assert (custom.name, custom.mapping, custom.filtering, custom.allocation) == \
        ("ADM+ADF, sequential ports", Mapping.ADM, Filtering.ADF, PortAllocation.SEQUENTIAL)


def test_nat_explorer_symmetric_fails_and_full_cone_connects():
    explorer = nat_explorer(run=False)
    assert explorer.outcome is None and explorer.result.value == ""
    explorer.controls["a_preset"].value = "SYMMETRIC"
    explorer.controls["b_preset"].value = "SYMMETRIC"
    assert explorer.controls["a_mapping"].value is Mapping.APDM  # the preset filled the axes
    explorer.run_button.click()
    assert explorer.outcome is not None and not explorer.outcome.connected
    assert explorer.result.value.startswith("not connected: Peers A (SYMMETRIC) and B (SYMMETRIC) did not connect.")
    failed_png = png(explorer.timeline_image)
    explorer.controls["a_preset"].value = "FULL_CONE"
    explorer.controls["b_preset"].value = "FULL_CONE"
    explorer.run_button.click()
    assert explorer.outcome.connected and explorer.result.value == "connected in 166 ms"
    assert png(explorer.timeline_image).startswith(PNG) and png(explorer.timeline_image) != failed_png


def test_nat_explorer_axes_links_and_presets():
    explorer = nat_explorer("FULL_CONE", PORT_RESTRICTED_CONE, run=False)
    explorer.controls["a_filtering"].value = Filtering.APDF  # no longer full cone
    assert explorer.controls["a_preset"].value == CUSTOM
    assert explorer.behavior("a").name == "EIM+APDF"
    explorer.controls["a_preset"].value = "NO_NAT"
    assert explorer.behavior("a") is NO_NAT and explorer.controls["a_mapping"].disabled
    explorer.controls["latency"].value = 50
    outcome = explorer.run()
    assert outcome.connected and outcome.nats == {"A": "NO_NAT", "B": "PORT_RESTRICTED_CONE"}
    link = next(r for r in outcome.trace if r.action is Action.LINK and r.actor == "wan server")
    assert link.detail == "delay 0.050000 s"
    with pytest.raises(ValueError):
        explorer.behavior("c")


# --- grid_explorer and state diagrams -------------------------------------------------------------


def test_grid_explorer_cells_open_their_runs():
    grid = grid_explorer(["FULL_CONE", PORT_RESTRICTED_CONE, "SYMMETRIC"])
    assert len(grid.cells) == 9 and grid.selected is None
    assert png(grid.heatmap_image).startswith(PNG)
    assert grid.cells[("FULL_CONE", "FULL_CONE")].description == "ok"
    assert grid.cells[("SYMMETRIC", "SYMMETRIC")].description == "fail"
    grid.cells[("FULL_CONE", "SYMMETRIC")].click()
    assert grid.selected == ("FULL_CONE", "SYMMETRIC")
    assert grid.explanation.value.startswith("Peers A (FULL_CONE) and B (SYMMETRIC) did not connect.")
    first_png = png(grid.timeline_image)
    grid.cells[("FULL_CONE", "PORT_RESTRICTED_CONE")].click()
    assert grid.selected == ("FULL_CONE", "PORT_RESTRICTED_CONE")
    assert png(grid.timeline_image).startswith(PNG) and png(grid.timeline_image) != first_png
    assert grid.cells[("FULL_CONE", "SYMMETRIC")].layout.border == ""
    with pytest.raises(KeyError):
        grid.select(("NO_NAT", "NO_NAT"))
    with pytest.raises(TypeError):
        grid_explorer(["FULL_CONE"], grid=grid.grid)


def test_state_machine_views():
    pictures = {which: png(state_machine_view(which)) for which in ("client", "peer", "worker")}
    assert all(png.startswith(PNG) for png in pictures.values())
    assert len(set(pictures.values())) == 3
    with pytest.raises(ValueError):
        state_machine_view("router")



def test_stepper_steps_through_a_tcp_run() -> None:
    """TCP rewrite records carry the session state after the comma, not an address."""
    from simulator import PORT_RESTRICTED_CONE, run_tcp_punch

    stepper = punch_stepper(run_tcp_punch(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE))
    for _ in range(12):
        stepper.next()
    assert stepper.index == 12 and stepper.explanation.value
