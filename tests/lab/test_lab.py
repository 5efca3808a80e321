"""The real lab on a real kernel: every NAT type is what it claims, unsolicited traffic is
stopped, hairpinning and the early-punch race behave as documented, and nothing is left behind.

Rule: each test builds its own lab (about 0.1-0.3 s) and asserts only what it observed on the
wire; skipped with the reason where there is no root, no Linux or no `ip`/`nft`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from holepunch.lab import (
    NAT_TYPES,
    Lab,
    LabStateError,
    VerifyError,
    cleanup_stale,
    nat_type,
    netns,
    reach,
)
from holepunch.lab.nft import nat_ruleset
from holepunch.lab.probe import responder

pytestmark = pytest.mark.root
PREFIX = "hpt"  # the same as conftest.PREFIX (test modules here are not a package)
MakeLab = Callable[..., Lab]
TYPES = list(NAT_TYPES)


def _gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for its (re)parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("kind", TYPES)
def test_each_nat_type_is_what_was_asked_and_stops_unsolicited_traffic(make_lab: MakeLab, kind: str) -> None:
    other = TYPES[(TYPES.index(kind) + 1) % len(TYPES)]  # every type also meets another one
    lab = make_lab({"A": kind, "B": other})
    verdicts = lab.verify()  # raises VerifyError unless both NATs match
    want = nat_type(kind)
    found = verdicts["A"]
    assert found.translated == want.translates
    if want.translates:
        assert (found.mapping, found.filtering, found.allocation) == (want.mapping, want.filtering, want.allocation)
    with responder(lab):
        cold = reach.unsolicited(lab, "A", "B", mapped_first=False)
        warm = reach.unsolicited(lab, "A", "B", mapped_first=True, port=45010)
    # Negative control: with no mapping nothing gets in; with a mapping towards the server only
    # endpoint-independent filtering lets a stranger in (RFC 4787 §5).
    assert bool(cold) == (not want.translates)
    assert bool(warm) == (want.filtering == "EIF")
    for arrival in cold + warm:
        assert arrival.source.startswith(lab.public_ip("B") + ":")


def test_verify_catches_a_nat_that_is_not_its_configured_type(make_lab: MakeLab) -> None:
    lab = make_lab({"A": "port-restricted"})
    wrong = nat_ruleset(nat_type("full-cone"), table="hpnat", wan="hptwan", lan="hptlan",
                        wan_ip=lab.public_ip("A"), lan_net="10.0.1.0/24")
    lab.run("A:nat", ["nft", "-f", "-"], input="flush ruleset\n" + wrong, check=True)
    with pytest.raises(VerifyError, match="site A \\(port-restricted\\): filtering: expected APDF, found EIF"):
        lab.verify()


@pytest.mark.parametrize(("kind", "hairpin"), [("port-restricted", False), ("port-restricted", True),
                                               ("symmetric", True)])
def test_hairpinning_between_two_hosts_behind_one_nat(make_lab: MakeLab, kind: str, hairpin: bool) -> None:
    lab = make_lab({"A": kind}, hosts_per_site=2, hairpin=hairpin)
    with responder(lab):
        arrivals = reach.hairpin(lab, "A")
    assert bool(arrivals) == hairpin
    for arrival in arrivals:  # RFC 4787 §6 (REQ-9): it comes from the public address
        assert arrival.source.startswith(lab.public_ip("A") + ":")


@pytest.mark.parametrize(("kind", "keeps_port"), [("port-restricted", True), ("linux-masquerade", False)])
def test_early_punch_race(make_lab: MakeLab, kind: str, keeps_port: bool) -> None:
    """A punch that arrives before the inside host has sent: with the input drop the NAT still
    keeps the host's port; without it the punch's conntrack entry takes the port."""
    lab = make_lab({"A": kind, "P": "none"})
    seen = reach.early_punch(lab, "A", "P", port=45001)
    assert seen.startswith(lab.public_ip("A") + ":")
    assert (seen == f"{lab.public_ip('A')}:45001") == keeps_port


@pytest.mark.parametrize("kind", ["port-restricted", "full-cone"])
def test_mapping_timeout_is_set_per_nat_namespace(make_lab: MakeLab, kind: str) -> None:
    lab = make_lab({"A": kind}, mapping_timeout=1)
    nat = lab.namespace("A:nat")
    assert netns.read_sysctl(nat, "net.netfilter.nf_conntrack_udp_timeout") == "1"
    assert netns.read_sysctl(nat, "net.netfilter.nf_conntrack_udp_timeout_stream") == "1"
    assert netns.read_sysctl(lab.namespace("server"), "net.netfilter.nf_conntrack_udp_timeout") != "1"
    with responder(lab):
        assert reach.reply_after(lab, "A", 0.3)
        assert not reach.reply_after(lab, "A", 2.0)  # the mapping died after 1 s of silence


def _count_arrivals(lab: Lab, sent: int, **send: object) -> list[reach.Arrival]:
    listener = reach.Listener(lab, "server", port=5000, wait=2.0, count=2 * sent)
    reach.send(lab, "B", f"{lab.server_ip}:5000", count=sent, gap=0.002, stamp=True, **send)  # type: ignore[arg-type]
    return listener.arrivals()


def test_loss_drops_a_fraction_and_can_be_paused(make_lab: MakeLab) -> None:
    lab = make_lab({"B": "none"}, loss=0.5)
    assert 50 <= len(_count_arrivals(lab, 200)) <= 150
    with lab.unimpaired():
        assert len(_count_arrivals(lab, 50)) == 50


def test_relay_delays_every_frame(make_lab: MakeLab) -> None:
    lab = make_lab({"B": "none"}, delay=0.1)
    arrivals = _count_arrivals(lab, 5)
    assert len(arrivals) == 5
    assert all(a.at - float(a.data.split()[1]) >= 0.095 for a in arrivals)


def test_relay_jitter_reorders_and_duplication_duplicates(make_lab: MakeLab) -> None:
    lab = make_lab({"B": "none"}, delay=0.05, jitter=0.045, duplicate=0.5, seed=7)
    arrivals = _count_arrivals(lab, 60)
    order = [int(a.data.split()[0]) for a in arrivals]
    assert set(order) == set(range(60))  # no loss asked for, none seen
    assert 60 + 15 <= len(order) <= 60 + 45  # about half duplicated
    assert order != sorted(order)


def test_teardown_removes_namespaces_processes_and_interfaces(lab_env: None) -> None:
    mine = f"{PREFIX}{os.getpid()}-"  # other test sessions may be building labs meanwhile
    before = {name for name in netns.list_namespaces() if name.startswith(mine)}
    with Lab({"A": "full-cone", "B": "none"}, hosts_per_site=2, prefix=PREFIX, hairpin=True) as lab:
        sleeper = lab.popen("A:1", ["sleep", "60"])
        orphan = lab.run("A", ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"]).stdout.strip()
        built = set(lab.layout.namespaces())
        assert built <= set(netns.list_namespaces())
    assert not built & set(netns.list_namespaces())
    assert {name for name in netns.list_namespaces() if name.startswith(mine)} == before
    assert sleeper.poll() is not None
    assert _gone(int(orphan))  # killed although the lab never saw its pid
    links = netns.run(["ip", "-o", "link"]).stdout
    assert PREFIX not in links
    assert "hpnat" not in netns.run(["nft", "list", "tables"]).stdout
    with pytest.raises(LabStateError):
        lab.run("A", ["true"])


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_teardown_happens_on_exceptions_and_ctrl_c(lab_env: None, error: type[BaseException]) -> None:
    lab = Lab({"A": "symmetric"}, prefix=PREFIX)
    with pytest.raises(error), lab:
        built = set(lab.layout.namespaces())
        raise error("boom")
    assert not built & set(netns.list_namespaces())


def test_cleanup_stale_removes_what_a_killed_process_left(lab_env: None) -> None:
    script = textwrap.dedent(f"""
        import os, subprocess
        from holepunch.lab import Lab
        lab = Lab({{"A": "port-restricted"}}, prefix="{PREFIX}").start()
        lab.popen("A", ["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(" ".join(lab.layout.namespaces()), flush=True)
        os._exit(0)  # no teardown: as if killed
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          check=False)
    left = set(done.stdout.split())
    assert done.returncode == 0, done.stderr
    assert left and left <= set(netns.list_namespaces())
    removed = cleanup_stale(PREFIX)
    assert left <= set(removed)
    assert not left & set(netns.list_namespaces())


def test_two_labs_run_side_by_side(make_lab: MakeLab) -> None:
    first, second = make_lab({"A": "port-restricted"}), make_lab({"A": "symmetric"})
    assert not set(first.layout.namespaces()) & set(second.layout.namespaces())
    for lab in (first, second):  # same addresses, separate worlds
        listener = reach.Listener(lab, "server", port=5000, wait=2.0)
        reach.send(lab, "A", f"{lab.server_ip}:5000", count=1)
        assert [a.source.split(":")[0] for a in listener.arrivals()] == [lab.public_ip("A")]


def test_flush_forgets_every_mapping(make_lab: MakeLab) -> None:
    if not netns.tool_available("conntrack"):
        pytest.skip("flush needs the conntrack tool (apt-get install conntrack)")
    lab = make_lab({"A": "restricted-cone"})
    lab.verify()  # leaves conntrack entries and map/set elements behind
    assert "udp" in lab.conntrack("A")
    assert "elements" in lab.nat_ruleset("A")
    lab.flush()
    assert "udp" not in lab.conntrack("A")
    assert "elements" not in lab.nat_ruleset("A")


def test_bad_host_names_are_clear(make_lab: MakeLab) -> None:
    lab = make_lab({"A": "none"})
    with pytest.raises(ValueError, match="this lab has A"):
        lab.run("Z", ["true"])
    assert lab.run("A", ["sh", "-c", "exit 3"]).returncode == 3
