"""The lab's pure parts, no root needed: layout names, NAT types, rulesets, the probe's verdicts.

Rule: these pin what the lab WILL build; tests/lab/test_lab.py checks it on a real kernel.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from holepunch.lab import NAT_TYPES, SIMULATOR_PRESET, LabError, Layout, nat_type
from holepunch.lab.cli import lab_main
from holepunch.lab.impair import Impairment, parse_duration, parse_fraction
from holepunch.lab.layout import ip_commands, names, plan, veths
from holepunch.lab.nft import SEQUENTIAL_BASE, loss_ruleset, nat_ruleset
from holepunch.lab.probe import Verdict, classify
from holepunch.lab.relay import checksum, fix_l4_checksum

BIG = {f"S{k}": kind for k, kind in enumerate(list(NAT_TYPES) + ["full-cone", "symmetric"])}


def test_interface_names_fit_the_kernel_limit_and_never_clash_inside_a_namespace() -> None:
    layout = plan(BIG, hosts_per_site=9, prefix="abcdefgh", ident="abcdefgh4194304-99")
    per_namespace: dict[str, list[str]] = {}
    for v in veths(layout):
        per_namespace.setdefault(v.namespace_a, []).append(v.name_a)
        per_namespace.setdefault(v.namespace_b, []).append(v.name_b)
    for ifnames in per_namespace.values():
        assert all(len(name) <= 15 for name in ifnames)
        assert len(set(ifnames)) == len(ifnames)
    assert all(len(name) <= 15 for name in names(layout).values())
    namespaces = layout.namespaces()
    assert len(set(namespaces)) == len(namespaces)
    assert all(name.startswith("abcdefgh4194304-99-") for name in namespaces)


def test_two_labs_in_one_process_get_different_names() -> None:
    first, second = plan({"A": "symmetric"}), plan({"A": "symmetric"})
    assert not set(first.namespaces()) & set(second.namespaces())


def test_addresses_follow_the_documented_plan() -> None:
    layout = plan({"A": "port-restricted", "B": "none"}, hosts_per_site=2)
    a, b = layout.site("A"), layout.site("B")
    assert (a.public_ip, a.host_ips, a.lan_net) == ("198.51.100.11", ("10.0.1.10", "10.0.1.11"), "10.0.1.0/24")
    assert (b.public_ip, b.host_ips, b.nat_namespace) == ("198.51.100.12", ("198.51.100.12", "198.51.100.121"), None)
    assert layout.server_ip == "198.51.100.1" and layout.server_alt_ip == "198.51.100.2"
    assert "route add default via 10.0.1.1" in ip_commands(layout)[a.host_namespaces[1]]


def test_host_names_resolve_and_bad_ones_say_what_exists() -> None:
    layout = plan({"A": "port-restricted", "B": "none"}, hosts_per_site=2)
    assert layout.namespace("A") == layout.namespace("A:0") == layout.site("A").host_namespaces[0]
    assert layout.namespace("A:nat") == layout.site("A").nat_namespace
    assert layout.namespace("server") == layout.server_namespace
    with pytest.raises(ValueError, match="hosts 0..1"):
        layout.namespace("A:2")
    with pytest.raises(ValueError, match="this lab has A, B"):
        layout.namespace("C")
    with pytest.raises(ValueError, match="no NAT"):
        layout.namespace("B:nat")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sites": {}}, "at least one site"),
    ({"sites": {"A": "bogus"}}, "unknown NAT type 'bogus'"),
    ({"sites": {"server": "none"}}, "bad site name"),
    ({"sites": {"A b": "none"}}, "bad site name"),
    ({"sites": {f"S{i}": "none" for i in range(10)}}, "at most 9 sites"),
    ({"sites": {"A": "none"}, "hosts_per_site": 0}, "hosts_per_site"),
    ({"sites": {"A": "none"}, "prefix": "Bad-prefix"}, "bad prefix"),
    ({"sites": {"A": "none"}, "loss": 1.0}, "loss"),
    ({"sites": {"A": "none"}, "mapping_timeout": 0}, "mapping_timeout"),
])
def test_bad_lab_arguments_are_refused_clearly(kwargs: dict[str, Any], message: str) -> None:
    sites = kwargs.pop("sites")
    with pytest.raises(ValueError, match=message):
        plan(sites, **kwargs)


def test_layout_round_trips_through_json() -> None:
    layout = plan({"A": "symmetric", "B": "none"}, hosts_per_site=2, loss=0.1, mapping_timeout=5,
                  impairment={"delay": 0.02})
    assert Layout.from_json(layout.to_json()) == layout
    assert layout.relayed and not plan({"A": "none"}, loss=0.1).relayed


def test_nat_types_accept_aliases_and_simulator_preset_names() -> None:
    assert nat_type("PORT_RESTRICTED_CONE").name == "port-restricted"
    assert nat_type("port-restricted-cone").name == "port-restricted"
    assert nat_type("NO_NAT").name == "none"
    assert nat_type("LINUX_MASQUERADE").name == "linux-masquerade"
    with pytest.raises(ValueError, match="choose from none, full-cone"):
        nat_type("carrier-grade")


def test_every_nat_type_has_the_axes_of_its_simulator_preset() -> None:
    presets = pytest.importorskip("simulator.presets")
    for name, kind in NAT_TYPES.items():
        preset = presets.preset(SIMULATOR_PRESET[name])
        assert preset.translates == kind.translates, name
        if not kind.translates:
            continue
        assert (preset.mapping.name, preset.filtering.name) == (kind.mapping, kind.filtering), name
        if name != "symmetric-sequential":  # SYMMETRIC with allocation=SEQUENTIAL
            assert preset.allocation.value == kind.allocation, name
    assert presets.LINUX_MASQUERADE.claim_unsolicited and not NAT_TYPES["linux-masquerade"].input_drop


def _rules(kind: str, **options: object) -> str:
    return nat_ruleset(nat_type(kind), table="t", wan="w", lan="l", wan_ip="198.51.100.11",
                       lan_net="10.0.1.0/24", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [k for k in NAT_TYPES if k != "none"])
def test_every_ruleset_filters_forwarding_and_drops_early_punches_except_linux_masquerade(kind: str) -> None:
    text = _rules(kind)
    assert "policy drop" in text and 'iifname "w" ct status dnat accept' in text
    assert ('iifname "w" ct state new drop' in text) == (kind != "linux-masquerade")
    assert 'iifname "w" ct state new drop' not in _rules(kind, input_drop=False)
    assert ("map mapped" in text) == (kind in ("full-cone", "restricted-cone"))
    assert ("set permitted" in text) == (kind == "restricted-cone")


def test_sequential_ruleset_counts_ports_through_a_map_in_network_order() -> None:
    text = _rules("symmetric-sequential")
    assert f"numgen inc mod 512 map {{ 0 : {SEQUENTIAL_BASE}, 1 : {SEQUENTIAL_BASE + 1}," in text
    assert "offset" not in text  # `numgen ... offset` would write host byte order into the port


def test_hairpinning_adds_a_lan_dnat_and_an_snat_to_the_public_address() -> None:
    text = _rules("symmetric", hairpin=True)
    assert 'iifname "l" ip daddr 198.51.100.11' in text
    assert "ip saddr 10.0.1.0/24 ip daddr 10.0.1.0/24 ct status dnat snat ip to 198.51.100.11 fully-random" in text
    assert "map mapped" in text and "ct original proto-src" in text
    assert 'iifname "l"' not in _rules("symmetric").split("chain forward")[0]


def test_loss_ruleset_is_a_bridge_numgen_rule() -> None:
    assert "numgen random mod 10000 < 500 counter drop" in loss_ruleset("x", 0.05)
    with pytest.raises(ValueError):
        loss_ruleset("x", 1.5)


# --- the probe's classification ---------------------------------------------------------------

def _observed(local: str, mapped: list[str | None], *, other: bool = False, port: bool = False,
              filter_local: str = "10.0.1.10:50001", filter_mapped: str | None = None) -> dict[str, Any]:
    return {"local": local, "mapped": mapped, "filter_local": filter_local,
            "filter_mapped": filter_mapped or filter_local.replace("10.0.1.10", "198.51.100.11"),
            "from_other_address": other, "from_other_port": port}


P = "198.51.100.11"


@pytest.mark.parametrize(("observed", "expected"), [
    (_observed("10.0.1.10:5000", [f"{P}:5000"] * 4, other=True, port=True),
     ("EIM", "EIF", "preserving", None)),
    (_observed("10.0.1.10:5000", [f"{P}:5000"] * 4, port=True), ("EIM", "ADF", "preserving", None)),
    (_observed("10.0.1.10:5000", [f"{P}:5000"] * 4), ("EIM", "APDF", "preserving", None)),
    (_observed("10.0.1.10:5000", [f"{P}:7000", f"{P}:7001", f"{P}:7001", f"{P}:7000"]),
     ("ADM", "APDF", "random", None)),
    (_observed("10.0.1.10:5000", [f"{P}:20000", f"{P}:20002", f"{P}:20004", f"{P}:20006"],
               filter_mapped=f"{P}:20008"), ("APDM", "APDF", "sequential", 2)),
    (_observed("10.0.1.10:5000", [f"{P}:31337", f"{P}:1234", f"{P}:60001", f"{P}:4242"],
               filter_mapped=f"{P}:999"), ("APDM", "APDF", "random", None)),
    # the first mapping kept its port by chance, the filtering socket's did not: not preserving
    (_observed("10.0.1.10:5000", [f"{P}:5000", f"{P}:1234", f"{P}:60001", f"{P}:4242"],
               filter_mapped=f"{P}:999"), ("APDM", "APDF", "random", None)),
])
def test_classify_reads_the_rfc_4787_axes(observed: dict[str, Any], expected: tuple[object, ...]) -> None:
    verdict = classify("A", observed)
    assert (verdict.mapping, verdict.filtering, verdict.allocation, verdict.port_delta) == expected
    assert verdict.translated


def test_classify_untranslated_host_matches_only_none() -> None:
    local = "198.51.100.12:5000"
    verdict = classify("B", _observed(local, [local] * 4, other=True, port=True,
                                      filter_local="198.51.100.12:6000"))
    assert not verdict.translated and verdict.mismatches("none") == []
    assert verdict.mismatches("full-cone") == ["expected full-cone, but the host's address was seen untranslated"]


def test_verdict_mismatches_name_each_wrong_axis() -> None:
    verdict = Verdict("A", "10.0.1.10:5000", (f"{P}:5000",) * 4, True, "EIM", "EIF", "preserving")
    assert verdict.mismatches("full-cone") == []
    assert verdict.mismatches("port-restricted") == ["filtering: expected APDF, found EIF"]
    assert len(verdict.mismatches("symmetric")) == 3


def test_classify_without_replies_is_an_error_not_a_verdict() -> None:
    with pytest.raises(LabError, match="did not answer"):
        classify("A", _observed("10.0.1.10:5000", [None, None, None, None]))


# --- impairment settings and the relay's checksums ----------------------------------------------

def test_durations_and_fractions_parse_like_the_cli_writes_them() -> None:
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("0.5s") == 0.5 and parse_duration("0.02") == 0.02
    assert parse_fraction("5%") == pytest.approx(0.05) and parse_fraction("0.05") == 0.05
    for bad in ("fast", "-3ms"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="below 100%"):
        parse_fraction("100%")
    with pytest.raises(ValueError, match="loss"):
        Impairment(loss=2.0)
    assert Impairment(delay=0.02, loss=0.1).relay_settings() == {"delay": 0.02}


def _udp_frame(payload: bytes, csum: int) -> bytes:
    udp = struct.pack("!HHHH", 5000, 6000, 8 + len(payload), csum) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     bytes([10, 0, 1, 10]), bytes([198, 51, 100, 1]))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp


def test_relay_recomputes_udp_checksums_that_verify() -> None:
    fixed = fix_l4_checksum(_udp_frame(b"hello lab", 0x1234))  # a partial (offload) checksum
    segment = fixed[34:]
    pseudo = fixed[26:34] + struct.pack("!BBH", 0, 17, len(segment))
    assert checksum(pseudo + segment) == 0  # RFC 1071: the sum over a correct datagram is 0
    arp = b"\xff" * 6 + b"\x04" * 6 + b"\x08\x06" + b"\0" * 28
    assert fix_l4_checksum(arp) == arp


# --- the CLI's argument errors (no root needed) -------------------------------------------------

def test_cli_refuses_bad_arguments_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert lab_main(["up"]) == 2
    assert lab_main(["up", "--site", "A=bogus"]) == 2
    assert "unknown NAT type 'bogus'" in capsys.readouterr().err
    assert lab_main(["up", "--site", "A=none", "--delay", "soon"]) == 2
    assert "not a duration" in capsys.readouterr().err


def test_cli_lists_types_and_reports_a_missing_lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lab_main(["types"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAT_TYPES)
    assert lab_main(["--state-dir", str(tmp_path), "status"]) == 1
    assert "no lab 'default' is up" in capsys.readouterr().err
