"""Stateless address cookies: proof that a client receives what is sent to its address.

Rule: a cookie is an HMAC of the source endpoint and a time bucket under a server key, so the
server keeps no state per cookie (QUIC's Retry token, RFC 9000 §8.1.2-8.1.4). A cookie is
valid from the source it was made for, in its own time bucket and the next one; anything else
(forged, expired, made for another address) fails. No clock is read: `now` is passed in.
"""

from __future__ import annotations

import hashlib
import hmac

from .endpoint import Endpoint

COOKIE_LENGTH = 16
"""Bytes of a cookie: one byte of time bucket, then 15 bytes of HMAC-SHA256 (120 bits: a forger
must guess them, one datagram per guess)."""
MIN_KEY_LENGTH = 16
DEFAULT_COOKIE_KEY = b"holepunch default cookie key: public, for simulations and tests only"
"""The key of a `RendezvousServer` built without one. It is in this source file, so anyone can
forge cookies with it: fine for the simulator (reproducible traces), never for a real server,
which is why `holepunch.aio.serve` always passes `os.urandom(32)`."""


class CookieJar:
    """Makes and checks address cookies under one key; `interval` is the time bucket in seconds."""

    def __init__(self, key: bytes, interval: float) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"cookie key must be at least {MIN_KEY_LENGTH} bytes, got {len(key)}")
        if not interval > 0:
            raise ValueError(f"cookie interval must be positive, got {interval!r}")
        self._key = bytes(key)
        self.interval = interval

    def make(self, source: Endpoint, now: float) -> bytes:
        """The cookie for `source` in the current time bucket."""
        return self._for_bucket(source, int(now // self.interval))

    def check(self, cookie: bytes, source: Endpoint, now: float) -> bool:
        """True if `cookie` was made for `source` in the current or the previous time bucket."""
        if len(cookie) != COOKIE_LENGTH:
            return False
        bucket = int(now // self.interval)
        # The first byte names the bucket (mod 256), so one HMAC is computed, never two.
        if cookie[0] != bucket & 0xFF:
            bucket -= 1
            if cookie[0] != bucket & 0xFF:
                return False
        return hmac.compare_digest(cookie, self._for_bucket(source, bucket))

    def _for_bucket(self, source: Endpoint, bucket: int) -> bytes:
        host, port = source
        message = b"%d|%s|%d" % (bucket, host.encode("utf-8", "surrogatepass"), port)
        mac = hmac.new(self._key, message, hashlib.sha256).digest()
        return bytes([bucket & 0xFF]) + mac[: COOKIE_LENGTH - 1]
