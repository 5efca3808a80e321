"""The plan of a lab: namespace and interface names, addresses, and the `ip` commands per namespace.

Rule: pure data and pure functions (no I/O), so the plan can be checked without root and saved
as JSON for a later CLI call. Names carry the prefix, the pid and a per-process counter, so
parallel labs never clash; interface names stay within the kernel's 15 characters.

Addresses (documentation range 198.51.100.0/24 is the "internet", RFC 5737):
  server 198.51.100.1 (and .2 for NAT discovery); site k (1..9, in the order given) has the
  public address 198.51.100.1k and the LAN 10.0.k.0/24 (NAT 10.0.k.1, host i at 10.0.k.(10+i)).
  A "none" site's host 0 is 198.51.100.1k itself, host i >= 1 is 198.51.100.(100+10k+i).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from .nft import nat_type

INTERNET = "198.51.100"
SERVER_IP = f"{INTERNET}.1"
SERVER_ALT_IP = f"{INTERNET}.2"
MAX_SITES = 9
MAX_HOSTS = 9
RESERVED = {"server", "internet"}

_SITE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}")
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,7}")
_counter = itertools.count()


@dataclass(frozen=True)
class Site:
    """One site: a NAT box (unless nat == "none") and its hosts."""

    name: str
    index: int
    nat: str
    public_ip: str
    host_ips: tuple[str, ...]
    host_namespaces: tuple[str, ...]
    nat_namespace: str | None
    lan_net: str | None
    hairpin: bool = False


@dataclass(frozen=True)
class Layout:
    """Everything needed to build, use and tear down a lab; JSON round-trips."""

    lab_id: str
    prefix: str
    sites: tuple[Site, ...]
    internet_namespace: str
    server_namespace: str
    server_ip: str = SERVER_IP
    server_alt_ip: str | None = SERVER_ALT_IP
    mapping_timeout: float | None = None
    loss: float = 0.0
    input_drop: bool | None = None
    impairment: dict[str, float] = field(default_factory=dict)

    # --- names ---------------------------------------------------------------------------

    def site(self, name: str) -> Site:
        """The site called `name`, or a ValueError listing the sites."""
        for site in self.sites:
            if site.name == name:
                return site
        raise ValueError(f"no site {name!r}; this lab has {', '.join(s.name for s in self.sites)}")

    def namespaces(self) -> list[str]:
        """Every namespace of the lab, internet first."""
        names = [self.internet_namespace, self.server_namespace]
        for site in self.sites:
            names += [site.nat_namespace] if site.nat_namespace else []
            names += list(site.host_namespaces)
        return names

    def hosts(self) -> list[str]:
        """Every host name accepted by `namespace()`: "server", "A", "A:1", "A:nat", ..."""
        names = ["server", "internet"]
        for site in self.sites:
            names += [site.name] + [f"{site.name}:{i}" for i in range(1, len(site.host_ips))]
            names += [f"{site.name}:nat"] if site.nat_namespace else []
        return names

    def namespace(self, host: str) -> str:
        """The namespace of a host name: "server", "internet", "A" (host 0), "A:1", "A:nat"."""
        if host == "server":
            return self.server_namespace
        if host == "internet":
            return self.internet_namespace
        site_name, _, which = host.partition(":")
        site = self.site(site_name)
        if which == "nat":
            if site.nat_namespace is None:
                raise ValueError(f"site {site.name!r} has no NAT (type 'none')")
            return site.nat_namespace
        return site.host_namespaces[_host_index(site, which or "0")]

    @property
    def relayed(self) -> bool:
        """True when a userspace relay (delay, jitter, ...) replaces the internet bridge."""
        return any(self.impairment.get(k) for k in ("delay", "jitter", "duplicate", "reorder"))

    def to_json(self) -> str:
        """The layout as JSON (the CLI's state file)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Layout:
        """Inverse of `to_json`."""
        data = json.loads(text)
        data["sites"] = tuple(
            Site(**{**s, "host_ips": tuple(s["host_ips"]),
                    "host_namespaces": tuple(s["host_namespaces"])}) for s in data["sites"])
        return cls(**data)


def _host_index(site: Site, text: str) -> int:
    if not text.isdigit() or int(text) >= len(site.host_ips):
        raise ValueError(f"site {site.name!r} has hosts 0..{len(site.host_ips) - 1}; got {text!r}")
    return int(text)


def lab_id(prefix: str) -> str:
    """A name unique among running labs: prefix, pid, per-process counter ("hp4711-0")."""
    return f"{prefix}{os.getpid()}-{next(_counter)}"


def plan(sites: Mapping[str, str], *, hosts_per_site: int = 1, prefix: str = "hp",
         server_alt: bool = True, mapping_timeout: float | None = None, loss: float = 0.0,
         hairpin: bool = False, input_drop: bool | None = None,
         impairment: Mapping[str, float] | None = None, ident: str | None = None) -> Layout:
    """Validate the arguments of `Lab` and lay the lab out; ValueError says what is wrong."""
    _check(sites, hosts_per_site, prefix, mapping_timeout, loss)
    ident = ident or lab_id(prefix)
    planned = tuple(_site(ident, name, index, kind, hosts_per_site, hairpin)
                    for index, (name, kind) in enumerate(sites.items(), start=1))
    return Layout(ident, prefix, planned, f"{ident}-inet", f"{ident}-srv",
                  server_alt_ip=SERVER_ALT_IP if server_alt else None,
                  mapping_timeout=mapping_timeout, loss=loss, input_drop=input_drop,
                  impairment=dict(impairment or {}))


def _check(sites: Mapping[str, str], hosts: int, prefix: str, timeout: float | None,
           loss: float) -> None:
    if not sites:
        raise ValueError("a lab needs at least one site, e.g. sites={'A': 'port-restricted'}")
    if len(sites) > MAX_SITES:
        raise ValueError(f"at most {MAX_SITES} sites (public addresses 198.51.100.11-19)")
    for name, kind in sites.items():
        if not _SITE_NAME.fullmatch(name) or name in RESERVED:
            raise ValueError(f"bad site name {name!r}: a letter then up to 15 letters, digits or _"
                             f", not {' or '.join(sorted(RESERVED))}")
        nat_type(kind)  # ValueError listing the types
    if not 1 <= hosts <= MAX_HOSTS:
        raise ValueError(f"hosts_per_site must be 1..{MAX_HOSTS}, got {hosts!r}")
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"bad prefix {prefix!r}: 1-8 lowercase letters or digits, letter first")
    if timeout is not None and not 1 <= timeout <= 86400:
        raise ValueError(f"mapping_timeout must be 1..86400 seconds, got {timeout!r}")
    if not 0.0 <= loss < 1.0:
        raise ValueError(f"loss must be a fraction in [0, 1), e.g. 0.05; got {loss!r}")


def _site(ident: str, name: str, k: int, kind: str, hosts: int, hairpin: bool) -> Site:
    nat = nat_type(kind)
    public = f"{INTERNET}.{10 + k}"
    namespaces = tuple(f"{ident}-{name}-{i}" for i in range(hosts))
    if not nat.translates:
        ips = tuple(public if i == 0 else f"{INTERNET}.{100 + 10 * k + i}" for i in range(hosts))
        return Site(name, k, nat.name, public, ips, namespaces, None, None)
    ips = tuple(f"10.0.{k}.{10 + i}" for i in range(hosts))
    return Site(name, k, nat.name, public, ips, namespaces, f"{ident}-nat-{name}",
                f"10.0.{k}.0/24", hairpin)


# --- interfaces and `ip` commands ------------------------------------------------------------

@dataclass(frozen=True)
class Veth:
    """One veth pair, each end created directly inside its namespace (never in the root one)."""

    namespace_a: str
    name_a: str
    namespace_b: str
    name_b: str

    def command(self) -> str:
        """The `ip -batch` line that creates it."""
        return (f"link add name {self.name_a} netns {self.namespace_a} type veth "
                f"peer name {self.name_b} netns {self.namespace_b}")


def names(layout: Layout) -> dict[str, str]:
    """Interface names (all <= 15 characters) by role."""
    p = layout.prefix
    return {"bridge": f"{p}br", "server": f"{p}srv", "eth": f"{p}eth", "wan": f"{p}wan",
            "lan": f"{p}lan"}


def veths(layout: Layout) -> list[Veth]:
    """Every veth pair of the lab."""
    n, inet, p = names(layout), layout.internet_namespace, layout.prefix
    pairs = [Veth(inet, n["server"], layout.server_namespace, n["eth"])]
    for site in layout.sites:
        if site.nat_namespace is None:
            pairs += [Veth(inet, f"{p}h{site.index}-{i}", ns, n["eth"])
                      for i, ns in enumerate(site.host_namespaces)]
            continue
        pairs.append(Veth(inet, f"{p}n{site.index}", site.nat_namespace, n["wan"]))
        pairs += [Veth(site.nat_namespace, f"{p}l{i}", ns, n["eth"])
                  for i, ns in enumerate(site.host_namespaces)]
    return pairs


def ip_commands(layout: Layout) -> dict[str, list[str]]:
    """Per namespace, the `ip -batch` lines that address and raise its interfaces."""
    n = names(layout)
    up = ["link set lo up"]
    ports = [v.name_a for v in veths(layout) if v.namespace_a == layout.internet_namespace]
    if layout.relayed:  # the userspace relay switches between the ports instead of a bridge
        inet = [*up, *(f"link set {port} up" for port in ports)]
    else:
        inet = [*up, f"link add name {n['bridge']} type bridge", f"link set {n['bridge']} up"]
        inet += [f"link set {port} master {n['bridge']} up" for port in ports]
    server = [*up, f"addr add {layout.server_ip}/24 dev {n['eth']}", f"link set {n['eth']} up"]
    if layout.server_alt_ip:
        server.insert(2, f"addr add {layout.server_alt_ip}/24 dev {n['eth']}")
    commands = {layout.internet_namespace: inet, layout.server_namespace: server}
    for site in layout.sites:
        commands.update(_site_commands(layout, site, n))
    return commands


def _site_commands(layout: Layout, site: Site, n: dict[str, str]) -> dict[str, list[str]]:
    commands: dict[str, list[str]] = {}
    if site.nat_namespace is None:
        for ip, ns in zip(site.host_ips, site.host_namespaces):
            commands[ns] = ["link set lo up", f"addr add {ip}/24 dev {n['eth']}", f"link set {n['eth']} up"]
        return commands
    gateway = site.lan_net.replace(".0/24", ".1") if site.lan_net else ""
    nat = ["link set lo up", f"addr add {site.public_ip}/24 dev {n['wan']}", f"link set {n['wan']} up",
           f"link add name {n['lan']} type bridge", f"addr add {gateway}/24 dev {n['lan']}",
           f"link set {n['lan']} up"]
    nat += [f"link set {layout.prefix}l{i} master {n['lan']} up" for i in range(len(site.host_ips))]
    commands[site.nat_namespace] = nat
    for ip, ns in zip(site.host_ips, site.host_namespaces):
        commands[ns] = ["link set lo up", f"addr add {ip}/24 dev {n['eth']}", f"link set {n['eth']} up",
                        f"route add default via {gateway}"]
    return commands
