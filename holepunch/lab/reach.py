"""Reachability experiments in a lab: does a datagram sent from here arrive there?

Rule: each experiment runs the agent's `listen` and `send` programs on real hosts and reports
what arrived (and from which source); nothing is inferred that was not observed. The probe
responder must be running (`probe.responder`) when a listener asks for its mapping.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import LabError
from .probe import AGENT, PROBE_PORTS

if TYPE_CHECKING:
    from .topology import Lab


@dataclass(frozen=True)
class Arrival:
    """One datagram a listener received."""

    source: str
    data: str
    at: float = 0.0
    """Arrival time (time.time(); the namespaces share the clock)."""


class Listener:
    """`agent listen` on a host: binds a port, optionally learns its mapping from the responder
    and sends to peers, then records what arrives until `count` datagrams or `wait` seconds."""

    def __init__(self, lab: Lab, host: str, *, port: int = 0, via_server: bool = False,
                 send_to: Sequence[str] = (), wait: float = 1.0, count: int = 1,
                 delayed_reply: float | None = None) -> None:
        argv = [sys.executable, AGENT, "listen", "--port", str(port), "--wait", str(wait),
                "--count", str(count)]
        if via_server:
            argv += ["--server", f"{lab.server_ip}:{PROBE_PORTS[0]}"]
        if delayed_reply is not None:
            argv += ["--delayed-reply", str(delayed_reply)]
        for peer in send_to:
            argv += ["--send-to", peer]
        self.host = host
        self.proc: subprocess.Popen[str] = lab.popen(host, argv, stdout=subprocess.PIPE,
                                                     stderr=subprocess.PIPE, text=True)
        self.mapped: str | None = None
        first = self._line()
        if via_server:
            self.mapped = first.get("mapped")
            if self.mapped is None:
                raise LabError(f"{host}: the responder did not answer the listener")
            first = self._line()
        self.local: str = first["listening"]

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise LabError(f"the listener on {self.host} stopped early: {err.strip()}")
        return dict(json.loads(line))

    def arrivals(self) -> list[Arrival]:
        """Wait for the listener to finish and return what it received."""
        out, err = self.proc.communicate(timeout=60)
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        if self.proc.returncode != 0:
            raise LabError(f"the listener on {self.host} failed: {err.strip()}")
        return [Arrival(d["source"], d["received"], d["at"]) for d in lines if "received" in d]


def send(lab: Lab, host: str, to: str, *, port: int = 0, count: int = 3, data: str = "hello",
         gap: float = 0.05, stamp: bool = False) -> str:
    """Send `count` datagrams from `host` (one local port) to `to`; returns the local endpoint.
    With `stamp`, each datagram carries "SEQ SEND_TIME" instead of `data`."""
    argv = [sys.executable, AGENT, "send", "--port", str(port), "--to", to, "--count", str(count),
            "--data", data, "--gap", str(gap)]
    done = lab.run(host, argv + (["--stamp"] if stamp else []), timeout=30)
    if done.returncode != 0:
        raise LabError(f"send on {host} failed: {done.stderr.strip()}")
    return str(json.loads(done.stdout.splitlines()[-1])["local"])


def public_endpoint(lab: Lab, host: str, port: int) -> str:
    """Where `port` of `host` would be reached from outside if the NAT kept it."""
    return f"{lab.public_ip(host.partition(':')[0])}:{port}"


def unsolicited(lab: Lab, target: str, sender: str, *, mapped_first: bool, port: int = 45000,
                wait: float = 1.0) -> list[Arrival]:
    """What `target` receives when `sender` sends to it out of the blue: to the public endpoint
    of a port that has only talked to the server (`mapped_first`) or to nobody at all."""
    listener = Listener(lab, target, port=port, via_server=mapped_first, wait=wait)
    to = listener.mapped or public_endpoint(lab, target, port)
    send(lab, sender, to)
    return listener.arrivals()


def hairpin(lab: Lab, site: str, *, wait: float = 1.0) -> list[Arrival]:
    """Host 0 of `site` sends to the public endpoint of host 1 (learnt from the responder):
    the arrivals at host 1 (RFC 4787 §6: they should come from host 0's public endpoint)."""
    listener = Listener(lab, f"{site}:1", via_server=True, wait=wait)
    assert listener.mapped is not None
    send(lab, site, listener.mapped)
    return listener.arrivals()


def early_punch(lab: Lab, site: str, peer: str, *, port: int = 45001, wait: float = 1.0) -> str:
    """The early-punch race: `peer` (a public host) punches to site's host 0 port `port` BEFORE
    that host has sent anything; then the host sends to the peer. Returns the source the peer
    saw: the same port if the NAT kept it, another if the early punch claimed it."""
    peer_port = port + 1
    listener = Listener(lab, peer, port=peer_port, send_to=[public_endpoint(lab, site, port)],
                        wait=wait)
    send(lab, site, f"{lab.public_ip(peer)}:{peer_port}", port=port, count=1)
    arrivals = listener.arrivals()
    if not arrivals:
        raise LabError(f"{peer} received nothing from {site}: the public peer should be reachable")
    return arrivals[0].source


def reply_after(lab: Lab, host: str, delay: float) -> bool:
    """Does the responder's reply, sent `delay` seconds after the host's last packet, still
    get through the host's NAT? (False once the mapping has timed out, RFC 4787 §4.3.)"""
    listener = Listener(lab, host, via_server=True, delayed_reply=delay, wait=delay + 1.0)
    return bool(listener.arrivals())
