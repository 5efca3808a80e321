"""NAT behaviour, one RFC 4787 axis at a time, table-driven (Tailscale natlab style)."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from holepunch.protocol.endpoint import Endpoint
from simulator import (
    EXPIRED,
    FILTERED,
    FULL_CONE,
    HAIRPIN_OFF,
    LINUX_MASQUERADE,
    NO_MAPPING,
    PORT_RESTRICTED_CONE,
    RESTRICTED_CONE,
    SYMMETRIC,
    Filtering,
    Mapping,
    NatBehavior,
    NatTable,
    Packet,
    PortAllocation,
)

PUBLIC = "198.51.100.10"
INSIDE = Endpoint("10.0.1.2", 4000)
INSIDE2 = Endpoint("10.0.1.3", 4000)
R1 = Endpoint("203.0.113.1", 5000)
R1_OTHER_PORT = Endpoint("203.0.113.1", 6000)
R2 = Endpoint("203.0.113.2", 5000)
_ids = itertools.count(1)


def pkt(source: Endpoint, destination: Endpoint) -> Packet:
    return Packet(next(_ids), source, destination, b"x", "data", "test")


def table(behavior: NatBehavior, seed: int = 0) -> NatTable:
    return NatTable(behavior, PUBLIC, random.Random(seed))


def out(t: NatTable, source: Endpoint, destination: Endpoint, now: float = 0.0) -> Endpoint:
    verdict = t.outbound(pkt(source, destination), now)
    assert verdict.packet is not None, verdict.reason
    assert verdict.packet.destination == destination
    return verdict.packet.source


def inbound(t: NatTable, source: Endpoint, external: Endpoint, now: float = 0.0) -> Endpoint | str:
    """The inside endpoint the packet reaches, or the drop reason."""
    verdict = t.inbound(pkt(source, external), now)
    if verdict.packet is None:
        return verdict.reason
    assert verdict.packet.source == source  # the remote's address is never rewritten inbound
    return verdict.packet.destination


def behavior(**axes: object) -> NatBehavior:
    return NatBehavior("test", **axes)  # type: ignore[arg-type]


# --- mapping (RFC 4787 §4.1) -------------------------------------------------------------------

MAPPING_CASES = [
    # mapping, same port for R1 and R2?, same port for R1 and R1's other port?
    (Mapping.EIM, True, True),
    (Mapping.ADM, False, True),
    (Mapping.APDM, False, False),
]


@pytest.mark.parametrize("mapping, same_other_host, same_other_port", MAPPING_CASES)
@pytest.mark.parametrize("allocation", list(PortAllocation))
def test_mapping_decides_which_destinations_share_an_external_endpoint(
    mapping: Mapping, same_other_host: bool, same_other_port: bool, allocation: PortAllocation
) -> None:
    t = table(behavior(mapping=mapping, allocation=allocation))
    first = out(t, INSIDE, R1)
    assert first.host == PUBLIC
    assert (out(t, INSIDE, R2) == first) is same_other_host
    assert (out(t, INSIDE, R1_OTHER_PORT) == first) is same_other_port
    assert out(t, INSIDE, R1) == first  # the same destination always reuses its mapping


def test_presets_have_the_classic_axes() -> None:
    assert (FULL_CONE.mapping, FULL_CONE.filtering) == (Mapping.EIM, Filtering.EIF)
    assert (RESTRICTED_CONE.mapping, RESTRICTED_CONE.filtering) == (Mapping.EIM, Filtering.ADF)
    assert (PORT_RESTRICTED_CONE.mapping, PORT_RESTRICTED_CONE.filtering) == (Mapping.EIM, Filtering.APDF)
    assert (SYMMETRIC.mapping, SYMMETRIC.filtering, SYMMETRIC.allocation) == (
        Mapping.APDM, Filtering.APDF, PortAllocation.RANDOM)
    assert LINUX_MASQUERADE.per_flow and LINUX_MASQUERADE.filtering is Filtering.APDF


# --- filtering (RFC 4787 §5) -----------------------------------------------------------------

APDF_REASON = "filtered (address-and-port dependent)"
ADF_REASON = "filtered (address dependent)"
FILTER_CASES = [
    # filtering, from the endpoint sent to, from its address's other port, from another address
    (Filtering.EIF, True, True, True),
    (Filtering.ADF, True, True, ADF_REASON),
    (Filtering.APDF, True, APDF_REASON, APDF_REASON),
]


@pytest.mark.parametrize("filtering, same, other_port, other_host", FILTER_CASES)
def test_filtering_decides_who_may_send_in(
    filtering: Filtering, same: object, other_port: object, other_host: object
) -> None:
    t = table(behavior(mapping=Mapping.EIM, filtering=filtering))
    external = out(t, INSIDE, R1)
    for source, expected in ((R1, same), (R1_OTHER_PORT, other_port), (R2, other_host)):
        got = inbound(t, source, external, now=1.0)
        assert got == (INSIDE if expected is True else expected), (filtering, source)


def test_the_filter_reasons_are_the_documented_strings() -> None:
    assert FILTERED[Filtering.ADF] == ADF_REASON
    assert FILTERED[Filtering.APDF] == APDF_REASON
    assert NO_MAPPING == "no mapping" and EXPIRED == "mapping expired"
    assert HAIRPIN_OFF == "hairpin not supported"


def test_inbound_to_a_port_never_mapped_has_no_mapping() -> None:
    t = table(FULL_CONE)
    out(t, INSIDE, R1)
    assert inbound(t, R1, Endpoint(PUBLIC, 9999)) == NO_MAPPING


# --- port allocation (RFC 4787 §4.2) ------------------------------------------------------------


def test_preserving_allocation_keeps_the_internal_port() -> None:
    assert out(table(PORT_RESTRICTED_CONE), INSIDE, R1) == Endpoint(PUBLIC, 4000)


def test_preservation_falls_back_to_another_port_on_collision() -> None:
    t = table(PORT_RESTRICTED_CONE)
    first = out(t, INSIDE, R1)
    second = out(t, INSIDE2, R1)  # another host, same internal port
    assert first.port == 4000 and second.port != 4000
    assert inbound(t, R1, second, now=1.0) == INSIDE2  # and the two mappings stay apart
    assert inbound(t, R1, first, now=1.0) == INSIDE


@pytest.mark.parametrize("delta", [1, 2, 7])
def test_sequential_allocation_steps_by_the_delta(delta: int) -> None:
    t = table(behavior(mapping=Mapping.APDM, allocation=PortAllocation.SEQUENTIAL,
                       port_delta=delta, ports=(20000, 20999)))
    ports = [out(t, INSIDE, Endpoint("203.0.113.9", 5000 + i)).port for i in range(4)]
    assert ports == [20000 + i * delta for i in range(4)]


def test_sequential_allocation_skips_ports_in_use_and_wraps() -> None:
    t = table(behavior(mapping=Mapping.APDM, allocation=PortAllocation.SEQUENTIAL, ports=(20000, 20002)))
    ports = [out(t, INSIDE, Endpoint("203.0.113.9", 5000 + i)).port for i in range(3)]
    assert ports == [20000, 20001, 20002]
    with pytest.raises(RuntimeError, match="no free external port"):
        out(t, INSIDE, Endpoint("203.0.113.9", 6000))


def test_random_allocation_stays_in_range_and_depends_only_on_the_rng_seed() -> None:
    symmetric_small = dataclasses.replace(SYMMETRIC, ports=(30000, 30999))
    runs = []
    for _ in range(2):
        t = table(symmetric_small, seed=7)
        runs.append([out(t, INSIDE, Endpoint("203.0.113.9", 5000 + i)).port for i in range(20)])
    assert runs[0] == runs[1]
    assert all(30000 <= p <= 30999 for p in runs[0]) and len(set(runs[0])) == 20
    other = table(symmetric_small, seed=8)
    assert [out(other, INSIDE, Endpoint("203.0.113.9", 5000 + i)).port for i in range(20)] != runs[0]


# --- Linux conntrack: per-flow rows, tuple collisions, the early-punch race ----------------------


def test_linux_keeps_the_port_for_every_remote_while_free() -> None:
    t = table(LINUX_MASQUERADE)
    assert out(t, INSIDE, R1) == out(t, INSIDE, R2) == Endpoint(PUBLIC, 4000)  # EIM as observed
    assert len(t.rows(0.0)) == 2  # but conntrack keeps one row per flow
    assert {row.remote for row in t.rows(0.0)} == {str(R1), str(R2)}


def test_linux_lets_two_hosts_share_a_port_towards_different_remotes() -> None:
    t = table(LINUX_MASQUERADE)
    assert out(t, INSIDE, R1).port == 4000
    assert out(t, INSIDE2, R2).port == 4000  # the (port, remote) tuples differ
    assert out(t, INSIDE2, R1).port != 4000  # this tuple is taken: fall back to another port
    assert inbound(t, R2, Endpoint(PUBLIC, 4000), now=1.0) == INSIDE2
    assert inbound(t, R1, Endpoint(PUBLIC, 4000), now=1.0) == INSIDE


@pytest.mark.parametrize("preset, keeps_port", [(LINUX_MASQUERADE, False), (PORT_RESTRICTED_CONE, True)])
def test_an_early_unsolicited_packet_claims_the_tuple_only_on_linux(preset: NatBehavior, keeps_port: bool) -> None:
    t = table(preset)
    assert out(t, INSIDE, R1).port == 4000  # registered with the server
    assert inbound(t, R2, Endpoint(PUBLIC, 4000), now=1.0) == APDF_REASON  # the peer's early SYN
    assert (out(t, INSIDE, R2, now=1.1).port == 4000) is keeps_port
    claims = [row for row in t.rows(1.1) if row.internal is None]
    assert len(claims) == (0 if keeps_port else 1)
    if claims:
        assert claims[0].external == Endpoint(PUBLIC, 4000) and claims[0].remote == str(R2)


def test_claims_expire_like_any_conntrack_entry() -> None:
    t = table(LINUX_MASQUERADE)
    out(t, INSIDE, R1)
    inbound(t, R2, Endpoint(PUBLIC, 4000), now=1.0)
    assert out(t, INSIDE, R2, now=40.0).port == 4000  # 30 s later the claim is gone


def test_claiming_needs_per_flow_rows() -> None:
    with pytest.raises(ValueError, match="per_flow"):
        behavior(claim_unsolicited=True)


# --- expiry and refresh (RFC 4787 §4.3) ----------------------------------------------------------


def test_a_mapping_expires_after_the_timeout_without_outbound_traffic() -> None:
    t = table(PORT_RESTRICTED_CONE)
    external = out(t, INSIDE, R1, now=0.0)
    assert inbound(t, R1, external, now=29.9) == INSIDE
    assert inbound(t, R1, external, now=30.0) == EXPIRED
    assert t.rows(30.0) == [] and len(t.rows(30.0, include_expired=True)) == 1


def test_outbound_traffic_refreshes_the_mapping() -> None:
    t = table(PORT_RESTRICTED_CONE)
    external = out(t, INSIDE, R1, now=0.0)
    assert out(t, INSIDE, R1, now=20.0) == external
    assert inbound(t, R1, external, now=45.0) == INSIDE
    assert t.rows(45.0)[0].refreshed == 20.0 and t.rows(45.0)[0].expires == 50.0


def test_inbound_traffic_does_not_refresh_the_mapping() -> None:
    t = table(FULL_CONE)
    external = out(t, INSIDE, R1, now=0.0)
    for now in (10.0, 20.0, 29.0):
        assert inbound(t, R1, external, now=now) == INSIDE
    assert inbound(t, R1, external, now=31.0) == EXPIRED


def test_an_expired_mapping_is_replaced_by_a_fresh_one_on_the_next_outbound_packet() -> None:
    t = table(PORT_RESTRICTED_CONE)
    out(t, INSIDE, R1, now=0.0)
    external = out(t, INSIDE, R2, now=40.0)
    assert external.port == 4000  # preserved again
    assert inbound(t, R1, external, now=41.0) == APDF_REASON  # the old permission died with it
    (row,) = t.rows(41.0)
    assert row.created == 40.0 and row.permits == (str(R2),)


@pytest.mark.parametrize("timeout", [5.0, 120.0])
def test_the_timeout_is_configurable(timeout: float) -> None:
    t = table(dataclasses.replace(FULL_CONE, timeout=timeout))
    external = out(t, INSIDE, R1)
    assert inbound(t, R1, external, now=timeout - 0.1) == INSIDE
    assert inbound(t, R1, external, now=timeout) == EXPIRED


# --- hairpinning (RFC 4787 §6) --------------------------------------------------------------------


@pytest.mark.parametrize("hairpinning", [True, False])
def test_hairpinning_loops_packets_to_the_own_public_address_back_in(hairpinning: bool) -> None:
    t = table(dataclasses.replace(FULL_CONE, hairpinning=hairpinning))
    ext1 = out(t, INSIDE, R1)
    verdict = t.outbound(pkt(INSIDE2, ext1), 1.0)
    if not hairpinning:
        assert verdict.packet is None and verdict.reason == HAIRPIN_OFF
        return
    assert verdict.hairpin and verdict.packet is not None
    assert verdict.packet.destination == INSIDE
    # RFC 4787 REQ-9: the source is INSIDE2's external endpoint, not its private one.
    assert verdict.packet.source.host == PUBLIC


def test_hairpinned_packets_still_pass_the_filter() -> None:
    t = table(PORT_RESTRICTED_CONE)
    ext1 = out(t, INSIDE, R1)
    verdict = t.outbound(pkt(INSIDE2, ext1), 1.0)
    assert verdict.packet is None and verdict.reason == APDF_REASON  # INSIDE never sent to INSIDE2
    ext2 = Endpoint(PUBLIC, next(r.external.port for r in t.rows(1.0) if r.internal == INSIDE2))
    # INSIDE2's attempt opened its own mapping towards ext1, so INSIDE's answer gets in...
    back = t.outbound(pkt(INSIDE, ext2), 1.1).packet
    assert back is not None and back.source == ext1 and back.destination == INSIDE2
    # ...and that answer opened INSIDE's mapping towards ext2: the hole is punched both ways.
    again = t.outbound(pkt(INSIDE2, ext1), 1.2).packet
    assert again is not None and again.source == ext2 and again.destination == INSIDE


# --- the behaviour value and the table view -----------------------------------------------------


def test_axes_accept_names_and_values_and_reject_nonsense() -> None:
    b = behavior(mapping="APDM", filtering="address-dependent", allocation="SEQUENTIAL")
    assert (b.mapping, b.filtering, b.allocation) == (Mapping.APDM, Filtering.ADF, PortAllocation.SEQUENTIAL)
    with pytest.raises(ValueError, match="Mapping"):
        behavior(mapping="cone")
    with pytest.raises(ValueError, match="timeout"):
        behavior(timeout=0)
    with pytest.raises(ValueError, match="ports"):
        behavior(ports=(70000, 80000))
    with pytest.raises(ValueError, match="port_delta"):
        behavior(port_delta=0)


def test_rows_show_every_column_a_learner_needs() -> None:
    t = table(RESTRICTED_CONE)
    out(t, INSIDE, R1, now=1.0)
    out(t, INSIDE, R1_OTHER_PORT, now=2.0)
    (row,) = t.rows(2.0)
    assert row.internal == INSIDE and row.external == Endpoint(PUBLIC, 4000)
    assert row.remote == ""  # EIM: not keyed on the remote
    assert (row.created, row.refreshed, row.expires) == (1.0, 2.0, 32.0)
    assert row.permits == ("203.0.113.1",)  # ADF: addresses
    assert "203.0.113.1" in t.format(2.0)
    sym = table(SYMMETRIC)
    out(sym, INSIDE, R1)
    assert sym.rows(0.0)[0].remote == str(R1) and sym.rows(0.0)[0].permits == (str(R1),)
    assert table(FULL_CONE).rows(0.0) == []
