"""The NAT types of the lab and the nftables ruleset that makes a Linux namespace behave as each.

Rule: a NAT type is data (`NatType`: the RFC 4787 axes the probe must find, and the recipe);
`nat_ruleset` turns it into nftables text and does no I/O. The names match the simulator's
presets (`SIMULATOR_PRESET`), so a lab run can be compared with a simulated one.

Every recipe has (docs/lab.md and /work/shared/nat-lab-notes.md say why):
- forward policy drop, accepting established/related, anything from the LAN, and `ct status
  dnat` from the WAN (RFC 4787 §5 filtering is then conntrack's: address AND port dependent);
- an input rule dropping `ct state new` from the WAN, so an early punch that matches no mapping
  is never confirmed as a conntrack entry of the NAT box itself (the early-punch race);
  `linux-masquerade` leaves it out on purpose, to show the race (the simulator's
  `claim_unsolicited`).
Cone filtering wider than conntrack's (EIF, ADF) is built from a dynamic map of the mappings:
every outbound packet, after source NAT, records `l4proto . public port -> inside address .
inside port`, and the WAN prerouting chain DNATs new inbound flows through it.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQUENTIAL_BASE = 20000
"""First port of the sequential allocator (`symmetric-sequential`)."""
SEQUENTIAL_SPAN = 512
"""Ports in its cycle: `numgen inc mod SPAN` indexes a map of that many ports."""


@dataclass(frozen=True)
class NatType:
    """One NAT type: what the probe must observe, and how nftables makes it."""

    name: str
    mapping: str
    """RFC 4787 §4.1 mapping the probe must find: "EIM", "ADM" or "APDM"."""
    filtering: str
    """RFC 4787 §5 filtering: "EIF", "ADF" or "APDF"."""
    allocation: str
    """RFC 4787 §4.2.1 port allocation: "preserving", "sequential" or "random"."""
    snat: str
    """The source-NAT statement template ({wan}, {wan_ip} filled in); "" for no NAT."""
    simulator_preset: str
    """The matching `simulator.presets` name."""
    inbound: str = ""
    """"" (conntrack only), "any" (full cone) or "address" (address-restricted cone)."""
    input_drop: bool = True
    """Drop `ct state new` arriving on the WAN for the box itself (see the module rule)."""
    summary: str = ""

    @property
    def translates(self) -> bool:
        """False for "none": a host straight on the public segment."""
        return bool(self.snat)


_SEQUENTIAL_MAP = ", ".join(f"{i} : {SEQUENTIAL_BASE + i}" for i in range(SEQUENTIAL_SPAN))

NAT_TYPES: dict[str, NatType] = {t.name: t for t in (
    NatType("none", "EIM", "EIF", "preserving", "", "NO_NAT", input_drop=False,
            summary="no NAT: the host sits on the public segment"),
    NatType("full-cone", "EIM", "EIF", "preserving", "oifname {wan} masquerade", "FULL_CONE",
            inbound="any", summary="masquerade + DNAT of any inbound flow through the mapping map"),
    NatType("restricted-cone", "EIM", "ADF", "preserving", "oifname {wan} masquerade",
            "RESTRICTED_CONE", inbound="address",
            summary="masquerade + DNAT of inbound flows from addresses the inside has sent to"),
    NatType("port-restricted", "EIM", "APDF", "preserving", "oifname {wan} masquerade",
            "PORT_RESTRICTED_CONE", summary="plain masquerade; conntrack filters"),
    NatType("symmetric", "APDM", "APDF", "random", "oifname {wan} masquerade fully-random",
            "SYMMETRIC", summary="masquerade fully-random: a random port per flow"),
    NatType("symmetric-sequential", "APDM", "APDF", "sequential",
            "oifname {wan} meta l4proto { tcp, udp } snat ip to {wan_ip} : numgen inc mod "
            + f"{SEQUENTIAL_SPAN} map {{ {_SEQUENTIAL_MAP} }}\n    oifname {{wan}} masquerade",
            "SYMMETRIC",
            summary=f"snat to the next port of {SEQUENTIAL_BASE}.. per flow (delta 1)"),
    NatType("linux-masquerade", "EIM", "APDF", "preserving", "oifname {wan} masquerade",
            "LINUX_MASQUERADE", input_drop=False,
            summary="plain masquerade without the input drop: shows the early-punch race"),
)}

ALIASES = {
    "no-nat": "none", "public": "none", "full": "full-cone", "restricted": "restricted-cone",
    "address-restricted": "restricted-cone", "address-restricted-cone": "restricted-cone",
    "port-restricted-cone": "port-restricted", "masquerade": "linux-masquerade",
    "sequential": "symmetric-sequential",
}


def nat_type(name: str) -> NatType:
    """Look a NAT type up by lab name, alias or simulator preset name ("PORT_RESTRICTED_CONE")."""
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key in NAT_TYPES:
        return NAT_TYPES[key]
    by_preset = [t for t in NAT_TYPES.values() if t.simulator_preset == name.strip().upper()]
    if by_preset:
        return by_preset[0]
    raise ValueError(f"unknown NAT type {name!r}; choose from {', '.join(NAT_TYPES)}")


SIMULATOR_PRESET = {name: t.simulator_preset for name, t in NAT_TYPES.items()}
"""Lab NAT type -> `simulator.presets` name (symmetric-sequential is SYMMETRIC with
`allocation=SEQUENTIAL`)."""


def _quote(name: str) -> str:
    return f'"{name}"'


def nat_ruleset(kind: NatType, *, table: str, wan: str, lan: str, wan_ip: str, lan_net: str,
                hairpin: bool = False, input_drop: bool | None = None,
                map_timeout: float = 120.0) -> str:
    """The nftables text of one NAT box (load with `nft -f -` in its namespace)."""
    if not kind.translates:
        raise ValueError("'none' has no NAT box and no ruleset")
    drop = kind.input_drop if input_drop is None else input_drop
    recording = bool(kind.inbound) or hairpin
    wan_q, lan_q = _quote(wan), _quote(lan)
    snat = kind.snat.replace("{wan}", wan_q).replace("{wan_ip}", wan_ip)
    out = [f"table ip {table} {{"]
    if recording:
        seconds = max(1, round(map_timeout))
        out += ["  # public port -> inside endpoint, refreshed by every outbound packet (RFC 4787 §4.3)",
                "  map mapped { type inet_proto . inet_service : ipv4_addr . inet_service;",
                f"    flags dynamic,timeout; timeout {seconds}s; }}"]
    if kind.inbound == "address":
        out += ["  # (public port, remote address) pairs the inside has sent to: ADF (RFC 4787 §5)",
                "  set permitted { type inet_proto . inet_service . ipv4_addr;",
                f"    flags dynamic,timeout; timeout {seconds}s; }}"]
    out += ["  chain input {", "    type filter hook input priority filter; policy accept;"]
    if drop:
        out.append(f"    iifname {wan_q} ct state new drop  # never confirm an early punch")
    out += ["  }", "  chain forward {", "    type filter hook forward priority filter; policy drop;",
            "    ct state established,related accept", f"    iifname {lan_q} accept",
            f"    iifname {wan_q} ct status dnat accept", "  }"]
    out += _prerouting(kind, wan_q, lan_q, wan_ip, hairpin)
    out += ["  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
            f"    {snat}"]
    if hairpin:  # a hairpinned packet must come back from the public address (RFC 4787 §6)
        out += _hairpin_snat(kind, wan_ip, lan_net)
    out.append("  }")
    if recording:
        out += _recording(kind, wan_q)
    out.append("}")
    return "\n".join(out) + "\n"


def _hairpin_snat(kind: NatType, wan_ip: str, lan_net: str) -> list[str]:
    """The type's own source NAT, applied to LAN-to-LAN packets that were DNATed (hairpinned);
    `masquerade` would take the LAN address, so it becomes `snat` to the WAN address.
    In postrouting `iifname` is empty: the LAN is matched by source address."""
    rules = []
    for line in kind.snat.splitlines():
        statement = line.strip().replace("oifname {wan} ", "").replace("{wan_ip}", wan_ip)
        statement = statement.replace("masquerade", f"snat ip to {wan_ip}")
        rules.append(f"    ip saddr {lan_net} ip daddr {lan_net} ct status dnat {statement}")
    return rules


def _prerouting(kind: NatType, wan_q: str, lan_q: str, wan_ip: str, hairpin: bool) -> list[str]:
    """DNAT rules: cone inbound from the WAN, and hairpinning from the LAN."""
    lookup = "meta l4proto { tcp, udp } dnat ip to meta l4proto . th dport map @mapped"
    rules = []
    if kind.inbound == "any":
        rules.append(f"    iifname {wan_q} {lookup}")
    elif kind.inbound == "address":
        rules.append(f"    iifname {wan_q} meta l4proto . th dport . ip saddr @permitted {lookup}")
    if hairpin:
        rules.append(f"    iifname {lan_q} ip daddr {wan_ip} {lookup}")
    if not rules:
        return []
    return ["  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
            *rules, "  }"]


def _recording(kind: NatType, wan_q: str) -> list[str]:
    """After source NAT (srcnat + 10) the packet carries the public port: record the mapping.

    `ct original proto-src` only has a type (inet_service) once the rule fixes the protocol,
    hence one rule per protocol. Replies of DNATed flows refresh the mapping too."""
    rules = ["  chain record {", "    type filter hook postrouting priority srcnat + 10; policy accept;"]
    for proto in ("udp", "tcp"):
        for direction, side in (("original", "original"), ("reply", "reply")):
            rules.append(
                f"    oifname {wan_q} meta l4proto {proto} ct direction {direction} update @mapped"
                f" {{ meta l4proto . th sport : ct {side} ip saddr . ct {side} proto-src }}")
    if kind.inbound == "address":
        rules.append(f"    oifname {wan_q} meta l4proto {{ tcp, udp }} update @permitted"
                     " { meta l4proto . th sport . ip daddr }")
    rules.append("  }")
    return rules


def loss_ruleset(table: str, loss: float) -> str:
    """Random loss of IPv4 frames crossing the internet bridge (no netem here: nftables numgen)."""
    if not 0.0 <= loss < 1.0:
        raise ValueError(f"loss must be a fraction in [0, 1), got {loss!r}")
    threshold = round(loss * 10000)
    return (f"table bridge {table} {{\n  chain forward {{\n"
            "    type filter hook forward priority filter; policy accept;\n"
            f"    ether type ip numgen random mod 10000 < {threshold} counter drop\n  }}\n}}\n")
