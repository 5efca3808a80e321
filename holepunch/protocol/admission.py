"""The checks an extended registration passes before it may change anything on the server, and
the answer to an address not proved yet.

Rule: a registration is charged (guard.py's rate and amplification budget) before it is read;
then its ID length, its address proof (an echoed cookie, RFC 9000 §8.1) and, on a server with
secrets, its MAC over a fresh cookie for this source (auth.py) are checked, in that order. Only
what an extended client sent gets an extension reply. Split out of server.py, which owns one
`Admission` (as it owns its `Guard` and `Relay`) and does the registering itself.
"""

from __future__ import annotations

from collections.abc import Callable

from .auth import KeyRing
from .config import ServerConfig
from .cookie import CookieJar
from .endpoint import Endpoint
from .guard import BAD_COOKIE, UNLIMITED, Account, Guard, SourceState
from .members import Member, ServerStats
from .messages import (
    ErrorCode,
    ExtCookie,
    ExtError,
    ExtRegister,
    MessageKind,
    encode_ext,
)

BAD_AUTH, STALE_AUTH, UNAUTHENTICATED = "bad-auth", "stale-auth", "unauthenticated"
"""Refusal reasons of a server with secrets: a wrong or missing MAC (told with ExtError), a valid
MAC over a cookie not made for this source lately (a replay, or an aged cookie: a fresh cookie is
sent, as to a signed registration with no cookie yet, which is not counted), and a plain
registration, which cannot carry the secret (never answered)."""

Send = Callable[[Account, bytes, Endpoint, MessageKind, float], bool]
"""The server's `_send`: queue a datagram within the account's budget; False if withheld."""


class Admission:
    """Address proof (cookies) and authentication (secrets) of one server's registrations."""

    def __init__(self, config: ServerConfig, guard: Guard, stats: ServerStats, send: Send, cookie_key: bytes) -> None:
        self._guard, self._stats, self._send = guard, stats, send
        self._max_id_length = config.max_id_length
        self._factor, self._overhead = guard.factor, guard.overhead
        self._cookies = CookieJar(cookie_key, config.cookie_interval)
        self.keys = KeyRing(config.secrets) if config.secrets else None
        """The session secrets (auth.py), or None: then nothing is authenticated."""

    def admit_plain(self, sid: bytes, source: Endpoint, now: float) -> float | None:
        """Charge a plain registration from a newcomer to its source: the source's rate timestamp
        after it, or None if refused."""
        if self.keys is not None:  # it cannot carry the secret: never a member of a secret server
            self._guard.refuse(source, UNAUTHENTICATED, now, sid)
            return None
        return self._guard.admit_source(source, now)

    def admit(self, msg: ExtRegister, member: Member | None, source: Endpoint, size: int,
              now: float) -> tuple[Account, bool] | None:
        """The guards first (rate, ID length, address proof, secret): the account the registration
        is charged to and whether its address is proved, or None if it was refused."""
        guard = self._guard
        account: Account
        if member is None:
            tat = guard.admit_source(source, now)
            if tat is None:
                return None
            account = SourceState(tat, guard.initial_credit)
        elif guard.admit(member, source, now):
            account = member
        else:
            return None
        guard.earn(account, size)
        if len(msg.session) > self._max_id_length:
            self._tell(msg.session, source, "id-too-long", ErrorCode.ID_TOO_LONG, account, now)
            return None
        proved = self._proved(msg, account, source, now)
        # A session secret (auth), when set, is checked here, before anything about the session changes.
        if self.keys is not None and not self._authenticated(msg, account, source, now):
            return None
        return account, proved

    def _proved(self, msg: ExtRegister, account: Account, source: Endpoint, now: float) -> bool:
        """True if the address is proved: earlier, or now by a valid cookie (RFC 9000 §8.1),
        or needs no proof (`amplification_factor` None)."""
        if account.credit == UNLIMITED:
            return True
        if msg.cookie:
            if self._cookies.check(msg.cookie, source, now):
                Guard.verify(account)
                self._stats.verified += 1
                return True
            self._guard.refuse(source, BAD_COOKIE, now)  # forged, expired or another address's
        return False

    def answer(self, member: Member, reply: bytes, proved: bool, size: int, now: float) -> None:
        """The peer list; to an address not proved yet, also a cookie to echo (QUIC's Retry).

        Unproved, the list goes first if this registration alone pays for it and the cookie
        (`size` bytes earn `amplification_factor` times as many), as in small sessions, so proving
        the address costs no round trip there; otherwise only the cookie, which always fits (it
        is never larger than the registration it answers), and the list waits for the echo
        (deferred, not refused). So a forged registration never draws a large list, however
        many were forged before it."""
        source = member.endpoint
        if proved:
            if self._send(member, reply, source, MessageKind.EXT_PEERS, now):
                self._stats.replies += 1
            return
        challenge = encode_ext(ExtCookie(self._cookies.make(source, now)))
        overhead = self._overhead
        if (size + overhead) * self._factor >= len(reply) + len(challenge) + 2 * overhead:
            self._send(member, reply, source, MessageKind.EXT_PEERS, now)
            self._stats.replies += 1
        if self._send(member, challenge, source, MessageKind.EXT_COOKIE, now):
            self._stats.cookies += 1

    def _authenticated(self, msg: ExtRegister, account: Account, source: Endpoint, now: float) -> bool:
        """With secrets: a MAC under one of them over a cookie made for this source lately (auth.py).

        The cookie is checked here even for a proved address: it binds the signed registration to
        one address and time, so a captured one replayed from elsewhere or later is refused (and
        answered with a fresh cookie, which only a holder of the secret can sign)."""
        assert self.keys is not None
        index = self.keys.verify(msg)
        if index is None:  # a wrong secret, or none (no MAC)
            self._tell(msg.session, source, BAD_AUTH, ErrorCode.BAD_AUTH, account, now)
            return False
        if not self._cookies.check(msg.cookie, source, now):
            if msg.cookie:  # a replay or an aged cookie; no cookie yet is the first step, not counted
                self._guard.refuse(source, STALE_AUTH, now, msg.session)
            if self._send(account, encode_ext(ExtCookie(self._cookies.make(source, now))), source,
                          MessageKind.EXT_COOKIE, now):
                self._stats.cookies += 1
            return False
        if index:
            self._stats.old_secret += 1
        return True

    def _tell(self, sid: bytes, source: Endpoint, reason: str, code: ErrorCode, account: Account, now: float) -> None:
        """Count and report a refusal, and tell the extended client why (the server's `_refuse`)."""
        self._guard.refuse(source, reason, now, sid)
        self._send(account, encode_ext(ExtError(code, reason)), source, MessageKind.EXT_ERROR, now)
