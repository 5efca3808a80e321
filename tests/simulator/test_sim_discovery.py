"""NAT discovery in the simulator: the checker classifies every preset by its RFC 4787 axes."""

from __future__ import annotations

import dataclasses

import pytest

from holepunch.protocol.nat_check import FilteringBehavior, MappingBehavior
from simulator.discovery import check_nat, discovery_network
from simulator.nat import Filtering, Mapping, NatBehavior, PortAllocation
from simulator.presets import FULL_CONE, NO_NAT, PRESETS, RESTRICTED_CONE, SYMMETRIC

CLASSIC = {
    "FULL_CONE": "full cone",
    "RESTRICTED_CONE": "restricted cone",
    "PORT_RESTRICTED_CONE": "port-restricted cone",
    "SYMMETRIC": "symmetric",
    "LINUX_MASQUERADE": "port-restricted cone",  # EIM as observed (conntrack keeps the port) + APDF
}


@pytest.mark.parametrize("behavior", [p for p in PRESETS if p.translates], ids=lambda p: p.name)
def test_every_preset_is_classified_by_its_axes(behavior: NatBehavior) -> None:
    run = discovery_network(behavior, seed=1)
    verdict = run.run()
    assert verdict is not None and verdict.nat is True
    assert verdict.mapping is MappingBehavior[behavior.mapping.name]
    assert verdict.filtering is FilteringBehavior[behavior.filtering.name]
    assert verdict.classic_name == CLASSIC[behavior.name]
    assert verdict.preserving is (behavior.allocation.name == "PRESERVE")
    assert verdict.notes == ()


def test_no_nat() -> None:
    verdict = check_nat(NO_NAT)
    assert verdict is not None and verdict.classic_name == "no NAT" and verdict.nat is False
    assert verdict.filtering is FilteringBehavior.EIF


def test_full_cone_only_after_filtering_was_tested() -> None:
    run = discovery_network(FULL_CONE)
    verdict = run.run()
    assert verdict is not None and verdict.classic_name == "full cone"
    kinds = [(r.actor, r.source) for r in run.network.trace if r.kind == "probe-reply" and r.action.name == "SEND"]
    assert ("server alt", verdict.server._replace(host="203.0.113.2")) in kinds  # the filtering test ran
    without_address = check_nat(FULL_CONE, alt_address=False)
    assert without_address is not None and without_address.classic_name == "restricted cone"


def test_restricted_cone_is_not_mistaken_for_full_cone() -> None:
    verdict = check_nat(RESTRICTED_CONE)
    assert verdict is not None and verdict.filtering is FilteringBehavior.ADF


def test_sequential_allocation_delta() -> None:
    sequential = dataclasses.replace(SYMMETRIC, name="SEQ", allocation=PortAllocation.SEQUENTIAL, port_delta=3)
    verdict = check_nat(sequential)
    assert verdict is not None and verdict.delta == 3 and verdict.classic_name == "symmetric"


def test_address_dependent_mapping() -> None:
    adm = dataclasses.replace(SYMMETRIC, name="ADM", mapping=Mapping.ADM, filtering=Filtering.ADF)
    verdict = check_nat(adm)
    assert verdict is not None and verdict.mapping is MappingBehavior.ADM and verdict.filtering is FilteringBehavior.ADF


@pytest.mark.parametrize("seed", range(5))
def test_retransmission_survives_loss(seed: int) -> None:
    verdict = check_nat(RESTRICTED_CONE, seed=seed, loss=0.05)  # per link: ~19% per round trip
    assert verdict is not None and verdict.classic_name == "restricted cone"
