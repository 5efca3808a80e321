"""Verify each NAT of a lab from the inside, RFC 5780 style, before trusting any result on it.

Rule: `classify` is a pure function from the agent's raw observations to a `Verdict` on the
RFC 4787 axes; the rest starts the responder on the server and the probe on a host. A lab whose
NAT is not the type asked for is an error (`VerifyError`), not a silently wrong experiment.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LabError, VerifyError
from .nft import nat_type

if TYPE_CHECKING:
    from .topology import Lab

AGENT = str(Path(__file__).with_name("agent.py"))
"""The in-namespace programs, run by path so they need nothing but the interpreter."""
PROBE_PORTS = (3478, 3479)
"""The responder's two ports (the STUN port and the next, as RFC 5780 servers use)."""
MAX_SEQUENTIAL_DELTA = 16
"""Consecutive mappings this close, with one constant step, count as sequential allocation."""


@dataclass(frozen=True)
class Verdict:
    """What the probe found for one host's NAT, on the simulator's RFC 4787 axes."""

    host: str
    local: str
    """The host's own endpoint of the mapping test."""
    mapped: tuple[str, ...]
    """Its public endpoints as seen by server:p1, alt:p1, alt:p2, server:p2 (RFC 5780 §4.3)."""
    translated: bool
    mapping: str
    """"EIM", "ADM" or "APDM" (RFC 4787 §4.1)."""
    filtering: str
    """"EIF", "ADF" or "APDF" (RFC 4787 §5)."""
    allocation: str
    """"preserving", "sequential" or "random" (RFC 4787 §4.2.1)."""
    port_delta: int | None = None
    """The step between consecutive ports under sequential allocation."""

    def describe(self) -> str:
        """One line, e.g. "A: EIM + APDF, preserving ports (10.0.1.10:40000 -> ...)"."""
        if not self.translated:
            return f"{self.host}: no NAT ({self.local})"
        delta = f" (delta {self.port_delta})" if self.port_delta is not None else ""
        return (f"{self.host}: {self.mapping} + {self.filtering}, {self.allocation} ports{delta} "
                f"({self.local} -> {', '.join(self.mapped)})")

    def mismatches(self, kind: str) -> list[str]:
        """How this verdict differs from NAT type `kind`; empty when it matches."""
        want = nat_type(kind)
        if not want.translates:
            seen = f"expected no NAT, but {self.local} was seen as {self.mapped[0]}"
            return [seen] if self.translated else []
        if not self.translated:
            return [f"expected {want.name}, but the host's address was seen untranslated"]
        found = {"mapping": self.mapping, "filtering": self.filtering, "allocation": self.allocation}
        expected = {"mapping": want.mapping, "filtering": want.filtering,
                    "allocation": want.allocation}
        return [f"{axis}: expected {expected[axis]}, found {found[axis]}"
                for axis in found if found[axis] != expected[axis]]


def _port(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


def classify(host: str, observed: Mapping[str, Any]) -> Verdict:
    """Turn the agent's observations (one `probe` JSON line) into a verdict."""
    mapped = observed["mapped"]
    if any(m is None for m in mapped) or observed.get("filter_mapped") is None:
        raise LabError(f"{host}: the probe responder did not answer every request "
                       f"(mapped {mapped}); is the lab wired and the responder running?")
    local, first = observed["local"], mapped[0]
    if len(set(mapped)) == 1:
        mapping = "EIM"
    elif len(mapped) == 4 and mapped[0] == mapped[3] and mapped[1] == mapped[2]:
        mapping = "ADM"  # same address, same mapping: the port of the remote did not matter
    else:
        mapping = "APDM"
    filtering = ("EIF" if observed["from_other_address"] else
                 "ADF" if observed["from_other_port"] else "APDF")
    allocation, delta = _allocation(observed, mapping)
    return Verdict(host, local, tuple(mapped), first != local, mapping, filtering, allocation, delta)


def _allocation(observed: Mapping[str, Any], mapping: str) -> tuple[str, int | None]:
    """Preserving if both probe sockets kept their port; sequential if each new mapping moved
    the port by the same small step; else random."""
    mapped, local = observed["mapped"], observed["local"]
    kept = _port(mapped[0]) == _port(local)
    if kept and _port(observed["filter_mapped"]) == _port(observed["filter_local"]):
        return "preserving", None
    ports = [_port(m) for m in dict.fromkeys(mapped)]  # distinct mappings, in creation order
    deltas = {b - a for a, b in itertools.pairwise(ports)}
    if mapping != "EIM" and len(ports) >= 3 and len(deltas) == 1:
        (delta,) = deltas
        if 0 < abs(delta) <= MAX_SEQUENTIAL_DELTA:
            return "sequential", delta
    return "random", None


# --- running it in a lab -----------------------------------------------------------------------

@contextlib.contextmanager
def responder(lab: Lab, ports: tuple[int, int] = PROBE_PORTS) -> Iterator[None]:
    """Run the probe responder on the server (both addresses, both ports) for the block."""
    addresses = [a for a in (lab.server_ip, lab.server_alt_ip) if a]
    proc = lab.popen("server", [sys.executable, AGENT, "respond", "--addresses", ",".join(addresses),
                                "--ports", ",".join(map(str, ports))],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip():
            raise LabError(f"the probe responder did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield
    finally:
        proc.kill()
        proc.wait()


def run_probe(lab: Lab, host: str, ports: tuple[int, int] = PROBE_PORTS, wait: float = 0.4) -> Verdict:
    """Run the agent's probe on `host` (a responder must be running) and classify it; `wait`
    (how long a reply that never comes is awaited) grows with the lab's delay and jitter."""
    impairment = lab.layout.impairment
    wait += 4 * (impairment.get("delay", 0.0) + impairment.get("jitter", 0.0))
    site = lab.site(host.partition(":")[0])
    index = int(host.partition(":")[2] or 0)
    argv = [sys.executable, AGENT, "probe", "--bind", site.host_ips[index], "--server", lab.server_ip,
            "--ports", ",".join(map(str, ports)), "--wait", str(wait)]
    if lab.server_alt_ip:
        argv += ["--alt", lab.server_alt_ip]
    done = lab.run(host, argv, timeout=30)
    if done.returncode != 0 or not done.stdout.strip():
        raise LabError(f"the probe on {host} failed (exit {done.returncode}): {done.stderr.strip()}")
    return classify(host, json.loads(done.stdout.strip().splitlines()[-1]))


def probe_host(lab: Lab, host: str) -> Verdict:
    """Start a responder, probe one host ("A" or "A:1"), stop the responder."""
    with responder(lab):
        return run_probe(lab, host)


def verify_lab(lab: Lab) -> dict[str, Verdict]:
    """Probe host 0 of every site (in parallel); `VerifyError` lists every NAT that is wrong."""
    if not lab.server_alt_ip:
        raise LabError("verify() needs the server's second address: build the lab with server_alt=True")
    with responder(lab), ThreadPoolExecutor(max_workers=len(lab.sites)) as pool:
        futures = {name: pool.submit(run_probe, lab, name) for name in lab.sites}
        verdicts = {name: future.result() for name, future in futures.items()}
    problems = [f"site {name} ({lab.sites[name]}): {'; '.join(issues)}  [{verdicts[name].describe()}]"
                for name in verdicts if (issues := verdicts[name].mismatches(lab.sites[name]))]
    if problems:
        raise VerifyError("NAT behaviour differs from the configuration:\n" + "\n".join(problems))
    return verdicts
