"""Go `net` address helpers shared by the Go stand-ins.

The reference keys everything on Go's ``UDPAddr.String()`` text and parses peer
lists with ``net.ResolveUDPAddr``; these helpers reproduce both so the stand-ins
produce and accept exactly the same endpoint text (fact sheet §1).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

__all__ = [
    "AddrParseError",
    "endpoint_text",
    "parse_endpoint",
    "sockaddr_for",
    "split_host_port",
]

SockAddr = tuple[Any, ...]


class AddrParseError(ValueError):
    """An endpoint text that Go's ``net.ResolveUDPAddr`` would reject."""


def _format_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, zone: str) -> str:
    """Go ``net.IP.String()`` (+zone): v4-mapped IPv6 addresses print as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return f"{ip.compressed}%{zone}" if zone else ip.compressed
    return str(ip)


def _join(host: str, port: int) -> str:
    """Go ``net.JoinHostPort``: brackets around hosts containing a colon."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def endpoint_text(sockaddr: SockAddr) -> str:
    """Text of a Python socket address as Go's ``UDPAddr.String()`` prints it."""
    host, port = str(sockaddr[0]), int(sockaddr[1])
    zone = ""
    if "%" in host:
        host, zone = host.split("%", 1)
    elif len(sockaddr) >= 4 and sockaddr[3]:
        try:
            zone = socket.if_indextoname(int(sockaddr[3]))
        except OSError:
            zone = str(sockaddr[3])
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        zone = ""
    return _join(_format_ip(ip, zone), port)


def split_host_port(text: str) -> tuple[str, str]:
    """Go ``net.SplitHostPort``, line for line, with Go's ``AddrError`` texts."""

    def fail(why: str) -> AddrParseError:
        return AddrParseError(f"address {text}: {why}" if text else why)

    last = text.rfind(":")
    if last < 0:
        raise fail("missing port in address")
    j = k = 0
    if text[0] == "[":
        end = text.find("]")
        if end < 0:
            raise fail("missing ']' in address")
        if end + 1 == len(text):
            raise fail("missing port in address")
        if end + 1 != last:
            if text[end + 1] == ":":
                raise fail("too many colons in address")
            raise fail("missing port in address")
        host = text[1:end]
        j, k = 1, end + 1
    else:
        host = text[:last]
        if ":" in host:
            raise fail("too many colons in address")
    if "[" in text[j:]:
        raise fail("unexpected '[' in address")
    if "]" in text[k:]:
        raise fail("unexpected ']' in address")
    return host, text[last + 1 :]


def _parse_port(text: str, port: str) -> int:
    """Go port parsing: empty means 0, decimal 0-65535, else a service name."""
    if port == "":
        return 0
    if port.isdigit():
        value = int(port)
        if value > 65535:
            raise AddrParseError(f"address {port}: invalid port")
        return value
    try:
        return socket.getservbyname(port, "udp")
    except OSError:
        raise AddrParseError(f"lookup udp/{port}: unknown port") from None


def parse_endpoint(text: str) -> tuple[str, str, int]:
    """Go ``net.ResolveUDPAddr("udp", text)``: returns (canonical text, ip, port).

    ``ip`` is "" for an empty host (Go's nil IP, printed as ":port").
    """
    host, port_s = split_host_port(text)
    port = _parse_port(text, port_s)
    if host == "":
        return f":{port}", "", port
    literal, zone = (host.split("%", 1) + [""])[:2]
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(literal)
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except OSError:
            raise AddrParseError(f"lookup {host}: no such host") from None
        # Go's "udp" network prefers an IPv4 address when there is one.
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        ip = ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])
        zone = ""
    if isinstance(ip, ipaddress.IPv4Address):
        zone = ""
    shown = _format_ip(ip, zone)
    return _join(shown, port), shown, port


def sockaddr_for(text: str, family: int) -> SockAddr:
    """Python socket address for Go endpoint text, for a socket of ``family``."""
    _, ip, port = parse_endpoint(text)
    if ip == "":
        ip = "127.0.0.1" if family == socket.AF_INET else "::1"
    if family == socket.AF_INET6:
        if ":" not in ip:
            return (f"::ffff:{ip}", port, 0, 0)
        literal, _, zone = ip.partition("%")
        scope = 0
        if zone:
            scope = int(zone) if zone.isdigit() else socket.if_nametoindex(zone)
        return (literal, port, 0, scope)
    return (ip, port)
