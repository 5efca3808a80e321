"""What the rendezvous server holds per registration, and its counters.

Rule: plain data, no behaviour beyond describing itself; server.py (the machine), relay.py and
reference_server.py read and write these. Split out of server.py to keep that module one job.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .endpoint import Endpoint, format_endpoint
from .messages import PeerInfo

_NO_PEER_ID = b"\x00" * 8
"""The peer id listed for a plain (reference) member, which has none."""


class Member:
    """One registration: an endpoint in one session, with its expiry and its guard account."""

    __slots__ = ("credit", "endpoint", "expires", "peer_id", "session", "tat", "text")

    def __init__(self, endpoint: Endpoint, session: bytes, peer_id: bytes | None, expires: float) -> None:
        self.endpoint = endpoint
        self.session = session
        host, port = endpoint
        # IPv4 text built here, not by the lru_cache of format_endpoint: 100k members would fill
        # that cache with entries nobody looks up twice (its result is stored right here).
        self.text = (format_endpoint(endpoint) if ":" in host else f"{host}:{port}").encode()
        self.peer_id = peer_id  # None for a plain (reference) client
        self.expires = expires
        self.tat = 0.0
        """The rate limit's state (guard.py, GCRA), kept here so a poll needs no table lookup."""
        self.credit = 0.0
        """Bytes we may still send this address (guard.py); `UNLIMITED` once it is proved."""

    def info(self) -> PeerInfo:
        """This member as an extended peer-list entry."""
        if self.peer_id is None:
            return PeerInfo(self.endpoint, _NO_PEER_ID, False)
        return PeerInfo(self.endpoint, self.peer_id, True)


@dataclass
class ServerStats:
    """Counters for logs and live demos; `refused` and `dropped` are keyed by reason."""

    datagrams: int = 0
    bytes_in: int = 0
    registrations: int = 0
    replies: int = 0
    pushes: int = 0
    keepalives: int = 0
    joined: int = 0
    expired: int = 0
    left: int = 0
    cookies: int = 0
    """ExtCookie challenges sent (an extended client's first registration gets one)."""
    verified: int = 0
    """Addresses proved by an echoed cookie: served in full from then on."""
    old_secret: int = 0
    """Registrations signed with a secret other than the current one (rotation: drop it at 0)."""
    refused: Counter[str] = field(default_factory=Counter)
    """Requests refused and answers withheld, by reason: the limits ("session-full", ...) and the
    guards ("rate-limited", "amplification", "bad-cookie")."""
    dropped: Counter[str] = field(default_factory=Counter)
