"""Endpoint: our own address type, with Go's `UDPAddr.String()` text form.

Rule: addresses are `Endpoint` everywhere inside; tuples appear only at the socket edge.
The text form must match the reference byte for byte (wire-protocol.md §1), because the
server's plain reply is a comma-joined list of these texts.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import NamedTuple


class Endpoint(NamedTuple):
    """An IP address and port. A NamedTuple, so it is hashable, cheap and socket-ready."""

    host: str
    port: int

    @property
    def text(self) -> str:
        """The Go `UDPAddr.String()` form: `1.2.3.4:5`, `[::1]:5`, `[fe80::1%eth0]:5`."""
        return format_endpoint(self)

    def __str__(self) -> str:
        return format_endpoint(self)

    @classmethod
    def parse(cls, text: str) -> "Endpoint":
        """Parse the Go text form; raises `ValueError` with the reason on bad input."""
        return parse_endpoint(text)

    @classmethod
    def from_sockaddr(cls, addr: tuple) -> "Endpoint":  # type: ignore[type-arg]
        """Convert a socket address (2- or 4-tuple) into an Endpoint, unmapping v4-in-v6."""
        return _from_sockaddr(addr[0], addr[1])


@lru_cache(maxsize=65536)
def _from_sockaddr(host: str, port: int) -> Endpoint:
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return Endpoint(host, port)


@lru_cache(maxsize=65536)
def format_endpoint(ep: Endpoint) -> str:
    """Text of an endpoint as the reference prints it (v4-mapped addresses shown as IPv4)."""
    host, port = ep
    if ":" in host:
        addr, _, zone = host.partition("%")
        try:
            ip = ipaddress.IPv6Address(addr)
        except ValueError:
            return f"[{host}]:{port}"
        if ip.ipv4_mapped is not None:
            return f"{ip.ipv4_mapped}:{port}"
        return f"[{ip.compressed}{'%' + zone if zone else ''}]:{port}"
    return f"{host}:{port}"


def parse_endpoint(text: str) -> Endpoint:
    """Inverse of `format_endpoint`; the errors mirror Go's `net.SplitHostPort` wording."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"missing ']' in address {text!r}")
        host, rest = text[1:close], text[close + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"missing port in address {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"missing port in address {text!r}")
        if ":" in host:
            raise ValueError(f"too many colons in address {text!r}")
    # isascii(): str.isdigit() also accepts "²" and other scripts' digits, which are no port.
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port in address {text!r}")
    return Endpoint(host, int(port_text))
