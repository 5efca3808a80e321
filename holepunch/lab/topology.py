"""`Lab`: a real NAT lab of network namespaces, built from a `Layout` and always torn down.

Rule: whatever happens (an exception, Ctrl-C, a failed build), every process started in the
lab's namespaces is killed and every namespace is deleted, which takes the veths and nftables
tables with it. `cleanup_stale` removes what a killed Python process could not.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from . import netns
from .errors import LabStateError
from .impair import Impairment
from .layout import Layout, Site, ip_commands, names, plan, veths
from .nft import loss_ruleset, nat_ruleset, nat_type
from .probe import Verdict, probe_host, verify_lab

NAT_TABLE = "hpnat"
LOSS_TABLE = "hploss"
STATE_DIR = Path("/run/holepunch-lab")
"""Where the CLI keeps the layout of labs it left running (a lab there is never "stale")."""

_BASE_SYSCTLS = {"net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0}
_OPTIONAL_SYSCTLS = {  # absent on kernels without IPv6 or without br_netfilter
    "net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1,
    "net.bridge.bridge-nf-call-iptables": 0, "net.bridge.bridge-nf-call-arptables": 0,
}


class Lab:
    """Namespaces: an "internet" bridge, a server, and per site a NAT box with hosts behind it.

    `with Lab(sites={"A": "port-restricted", "B": "symmetric"}) as lab:` builds it; host names
    for `run`/`popen` are "server", "A" (site A's host 0), "A:1", "A:nat", "internet".
    """

    def __init__(self, sites: Mapping[str, str], hosts_per_site: int = 1, prefix: str = "hp",
                 server_alt: bool = True, mapping_timeout: float | None = None,
                 loss: float = 0.0, hairpin: bool = False, input_drop: bool | None = None,
                 delay: float = 0.0, jitter: float = 0.0, duplicate: float = 0.0,
                 reorder: float = 0.0, seed: int | None = None) -> None:
        impairment = Impairment(delay, jitter, loss, duplicate, reorder, seed)
        self.layout = plan(sites, hosts_per_site=hosts_per_site, prefix=prefix,
                           server_alt=server_alt, mapping_timeout=mapping_timeout, loss=loss,
                           hairpin=hairpin, input_drop=input_drop,
                           impairment=impairment.relay_settings())
        self._procs: list[subprocess.Popen[Any]] = []
        self._started = False
        self._closed = False
        self.build_seconds = 0.0
        self.teardown_seconds = 0.0

    @classmethod
    def attach(cls, layout: Layout) -> Lab:
        """A handle on a lab built by another process (the CLI's `run`, `down`, `status`)."""
        lab = cls.__new__(cls)
        lab.layout, lab._procs, lab._started, lab._closed = layout, [], True, False
        lab.build_seconds = lab.teardown_seconds = 0.0
        return lab

    # --- life cycle --------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> Lab:
        """Build the lab (about 0.2 s); on any failure, tear down what was built and re-raise."""
        if self._started:
            raise LabStateError("this lab is already started; make a new Lab for another run")
        netns.check_environment()
        self._started = True
        atexit.register(self.close)
        began = time.monotonic()
        try:
            build(self.layout)
        except BaseException:
            self.close()
            raise
        self.build_seconds = time.monotonic() - began
        return self

    def close(self) -> None:
        """Kill every process in the lab and delete its namespaces; safe to call twice."""
        if self._closed or not self._started:
            return
        began = time.monotonic()
        with _sigint_deferred():
            self._closed = True
            atexit.unregister(self.close)
            for proc in self._procs:
                with contextlib.suppress(OSError):
                    proc.kill()
            netns.delete_namespaces(self.layout.namespaces())
            for proc in self._procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2)
        self.teardown_seconds = time.monotonic() - began

    def detach(self) -> Layout:
        """Leave the lab running after this process exits (the CLI's `up`); returns its layout,
        which `Lab.attach` turns back into a handle. This object no longer tears it down."""
        self._require_running()
        atexit.unregister(self.close)
        self._closed = True
        return self.layout

    @property
    def running(self) -> bool:
        """True between start() and close()."""
        return self._started and not self._closed

    # --- addresses ---------------------------------------------------------------------------

    @property
    def server_ip(self) -> str:
        """The rendezvous server's address (198.51.100.1)."""
        return self.layout.server_ip

    @property
    def server_alt_ip(self) -> str | None:
        """The server's second address for NAT discovery (198.51.100.2), if asked for."""
        return self.layout.server_alt_ip

    @property
    def sites(self) -> dict[str, str]:
        """Site name -> NAT type name."""
        return {s.name: s.nat for s in self.layout.sites}

    def site(self, name: str) -> Site:
        """The planned site (addresses, namespaces)."""
        return self.layout.site(name)

    def public_ip(self, site: str) -> str:
        """The site's public address (its NAT's WAN, or host 0 for a "none" site)."""
        return self.layout.site(site).public_ip

    def host_ip(self, site: str, index: int = 0) -> str:
        """The address host `index` of the site has on its own interface."""
        self.layout.namespace(f"{site}:{index}")  # ValueError naming the valid hosts
        return self.layout.site(site).host_ips[index]

    def namespace(self, host: str) -> str:
        """The namespace name of a host ("server", "A", "A:1", "A:nat", "internet")."""
        return self.layout.namespace(host)

    # --- processes ---------------------------------------------------------------------------

    def argv(self, host: str, argv: Sequence[str]) -> list[str]:
        """The command line that runs `argv` on `host` (via `ip netns exec`)."""
        return netns.exec_argv(self.layout.namespace(host), [str(a) for a in argv])

    def run(self, host: str, argv: Sequence[str], *, timeout: float = 30.0, check: bool = False,
            input: str | None = None, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run a command on a host to completion; stdout/stderr captured as text."""
        self._require_running()
        return subprocess.run(self.argv(host, argv), input=input, capture_output=True, text=True,
                              timeout=timeout, check=check, env=None if env is None else dict(env))

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a long-running command (a server, a listener) on a host; killed at close()."""
        self._require_running()
        proc: subprocess.Popen[Any] = subprocess.Popen(self.argv(host, argv), **kwargs)
        self._procs.append(proc)
        return proc

    def _require_running(self) -> None:
        if not self.running:
            raise LabStateError("the lab is not running; use `with Lab(...) as lab:` or lab.start()")

    # --- NAT state ---------------------------------------------------------------------------

    def nat_ruleset(self, site: str) -> str:
        """The live nftables ruleset of the site's NAT (for debugging and the docs)."""
        return self.run(f"{site}:nat", [netns.tool("nft"), "list", "ruleset"], check=True).stdout

    def conntrack(self, site: str) -> str:
        """The site NAT's conntrack table (`conntrack -L`), needs the conntrack tool."""
        done = self.run(f"{site}:nat", [netns.tool("conntrack"), "-L"], check=True)
        return done.stdout

    def flush(self, site: str | None = None) -> None:
        """Forget every mapping (conntrack entries and the nft maps), on one site or all:
        UDP entries live 30 s or more, and old entries would decide the next trial."""
        for s in self.layout.sites if site is None else [self.layout.site(site)]:
            if s.nat_namespace is None:
                continue
            self.run(f"{s.name}:nat", [netns.tool("conntrack"), "-F"], check=False)
            kind = nat_type(s.nat)
            script = f"flush set ip {NAT_TABLE} permitted" if kind.inbound == "address" else ""
            script += f"\nflush map ip {NAT_TABLE} mapped" if kind.inbound or s.hairpin else ""
            if script.strip():
                self.run(f"{s.name}:nat", [netns.tool("nft"), "-f", "-"], input=script, check=True)

    # --- impairment --------------------------------------------------------------------------

    @contextlib.contextmanager
    def unimpaired(self) -> Iterator[None]:
        """Switch loss, delay and the rest off for the block (to verify the NATs, say)."""
        self._impair(False)
        try:
            yield
        finally:
            self._impair(True)

    def _impair(self, on: bool) -> None:
        inet = self.layout.internet_namespace
        if self.layout.relayed:  # the relay's signals: SIGUSR2 resumes, SIGUSR1 pauses
            for pid in netns.namespace_pids(inet):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGUSR2 if on else signal.SIGUSR1)
        elif self.layout.loss:
            text = loss_ruleset(LOSS_TABLE, self.layout.loss if on else 0.0)
            _nft(inet, f"flush table bridge {LOSS_TABLE}\n" + text)

    # --- verification ------------------------------------------------------------------------

    def probe(self, site: str, host: int = 0) -> Verdict:
        """Classify the site's NAT from one of its hosts (see `probe.probe_host`)."""
        with self.unimpaired():
            return probe_host(self, f"{site}:{host}")

    def verify(self) -> dict[str, Verdict]:
        """Probe every site and raise `VerifyError` unless each NAT is the type asked for."""
        with self.unimpaired():
            return verify_lab(self)



def build(layout: Layout) -> None:
    """Create namespaces, veths, addresses, routes, sysctls and nftables rules."""
    netns.add_namespaces(layout.namespaces())
    netns.ip_batch([v.command() for v in veths(layout)])
    nat_boxes = {s.nat_namespace for s in layout.sites if s.nat_namespace}
    for namespace, lines in ip_commands(layout).items():
        sysctls = dict(_BASE_SYSCTLS)
        if namespace in nat_boxes:
            sysctls["net.ipv4.ip_forward"] = 1
        netns.configure(namespace, sysctls, _OPTIONAL_SYSCTLS, {"ipv4.rp_filter": 0}, lines)
    for site in layout.sites:
        if site.nat_namespace:
            _load_nat(layout, site)
    if layout.relayed:  # the relay applies the loss too
        from .impair import start_relay

        start_relay(layout)
    elif layout.loss:
        _nft(layout.internet_namespace, loss_ruleset(LOSS_TABLE, layout.loss))


def _load_nat(layout: Layout, site: Site) -> None:
    """Load the site's NAT ruleset, then set the conntrack UDP timeouts (they exist per netns)."""
    n = names(layout)
    timeout = layout.mapping_timeout
    text = nat_ruleset(nat_type(site.nat), table=NAT_TABLE, wan=n["wan"], lan=n["lan"],
                       wan_ip=site.public_ip, lan_net=site.lan_net or "", hairpin=site.hairpin,
                       input_drop=layout.input_drop, map_timeout=timeout or 120.0)
    assert site.nat_namespace is not None
    _nft(site.nat_namespace, text)
    if timeout is not None:
        seconds = max(1, round(timeout))
        lines = netns.sysctl_lines({"net.netfilter.nf_conntrack_udp_timeout": seconds,
                                    "net.netfilter.nf_conntrack_udp_timeout_stream": seconds})
        netns.run(netns.exec_argv(site.nat_namespace, [netns.tool("sh"), "-c", "\n".join(lines)]))


def _nft(namespace: str, text: str) -> None:
    netns.run(netns.exec_argv(namespace, [netns.tool("nft"), "-f", "-"]), input=text)


# --- stale labs ----------------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kept_by_state_files() -> set[str]:
    """Lab ids the CLI left running on purpose (their layout is in STATE_DIR)."""
    kept = set()
    for path in STATE_DIR.glob("*.json") if STATE_DIR.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            kept.add(Layout.from_json(path.read_text()).lab_id)
    return kept


def stale_namespaces(prefix: str = "hp", *, everything: bool = False) -> list[str]:
    """Namespaces of labs whose process died and that no CLI state file claims
    (`everything=True`: all namespaces of this prefix, live labs included)."""
    pattern = re.compile(rf"({re.escape(prefix)}(\d+)-\d+)-")
    kept = set() if everything else _kept_by_state_files()
    found = []
    for name in netns.list_namespaces():
        match = pattern.match(name)
        if match is None or match.group(1) in kept:
            continue
        pid = int(match.group(2))
        if everything or (pid != os.getpid() and not _pid_alive(pid)):
            found.append(name)
    return found


def cleanup_stale(prefix: str = "hp", *, everything: bool = False) -> list[str]:
    """Delete the namespaces (with their processes, veths and tables) of crashed labs."""
    netns.check_environment(("ip",))
    stale = stale_namespaces(prefix, everything=everything)
    netns.delete_namespaces(stale)
    return stale


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C until teardown has finished, then raise it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt
