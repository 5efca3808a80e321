"""Optional session authentication (issue 8): a shared secret signs registrations and punches.

Rule: sans-IO, standard library only (hashlib, hmac). With no secret nothing here runs and every
byte on the wire is unchanged. With one, a message's MAC is HMAC-SHA256 under a key derived from
the secret, over the message encoded with its MAC field empty, truncated to 16 bytes (RFC 2104 §5;
the HMAC-SHA-256-128 of RFC 4868 §2.3), and compared in constant time. The PUNCH token is derived
from the secret too, so a client without it does not even recognise the punches of the session.
docs/wire-protocol.md, "Authentication" has the layout, golden hex, replay window and rotation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from typing import TypeVar

from .messages import TOKEN_LENGTH, ExtPunch, ExtRegister, ExtRelay, encode_ext

MAC_LENGTH = 16
"""Bytes of the truncated HMAC-SHA256 (128 bits, as RFC 4868 §2.3's HMAC-SHA-256-128)."""
NONCE_LENGTH = 8
"""Bytes of a punch nonce: fresh per PUNCH and PUNCH_ACK, drawn from the client's injected rng."""
KDF_SALT = b"holepunch session secret v1"
KDF_ITERATIONS = 100_000
"""PBKDF2 rounds (RFC 8018 §5.2): about 50 ms once per secret, so guessing a weak secret from a
captured MAC costs 100,000 HMACs a guess. A random secret (`secrets.token_urlsafe(24)`) needs none."""

Secret = str | bytes
Signed = TypeVar("Signed", ExtRegister, ExtPunch, ExtRelay)


class AuthError(ValueError):
    """A secret that cannot be used (empty, or not text or bytes)."""


def secret_bytes(secret: Secret) -> bytes:
    """The secret as bytes: text is UTF-8 encoded; an empty secret is refused (it would guard nothing)."""
    if isinstance(secret, str):
        data = secret.encode("utf-8")
    elif isinstance(secret, (bytes, bytearray, memoryview)):
        data = bytes(secret)
    else:
        raise AuthError(f"a secret must be str or bytes, not {type(secret).__name__}")
    if not data:
        raise AuthError("the secret is empty")
    return data


@lru_cache(maxsize=16)
def _master_key(secret: bytes) -> bytes:
    # Cached: every client of a simulated session derives the same key, and PBKDF2 is slow on purpose.
    return hashlib.pbkdf2_hmac("sha256", secret, KDF_SALT, KDF_ITERATIONS)


def _expand(master: bytes, label: bytes) -> bytes:
    """One 32-byte HKDF-Expand block (RFC 5869 §2.3): independent keys for MACs and tokens."""
    return hmac.new(master, label + b"\x01", hashlib.sha256).digest()


class SessionKey:
    """The keys of one secret: signs and checks messages, and names the session in punches."""

    __slots__ = ("mac_key", "token_key")

    def __init__(self, secret: Secret) -> None:
        master = _master_key(secret_bytes(secret))
        self.mac_key = _expand(master, b"holepunch mac")
        self.token_key = _expand(master, b"holepunch token")

    def __repr__(self) -> str:
        return "<SessionKey>"  # never show key material in logs

    def token(self, session: bytes) -> bytes:
        """The PUNCH token of `session` under this secret (replaces the secret-less SHA-256 token)."""
        return hmac.new(self.token_key, session, hashlib.sha256).digest()[:TOKEN_LENGTH]

    def mac(self, msg: Signed) -> bytes:
        """HMAC-SHA256(key, `msg` encoded with an empty MAC field), truncated to 16 bytes."""
        unsigned = encode_ext(dataclasses.replace(msg, mac=b""))
        return hmac.new(self.mac_key, unsigned, hashlib.sha256).digest()[:MAC_LENGTH]

    def sign(self, msg: Signed) -> Signed:
        """`msg` with its MAC field set."""
        return dataclasses.replace(msg, mac=self.mac(msg))

    def verify(self, msg: Signed) -> bool:
        """True if `msg` carries the right MAC; a missing MAC is simply wrong (constant-time compare)."""
        return len(msg.mac) == MAC_LENGTH and hmac.compare_digest(msg.mac, self.mac(msg))


class KeyRing:
    """The server's secrets: the first is current, the others are still accepted (rotation)."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.keys = tuple(SessionKey(s) for s in secrets)
        if not self.keys:
            raise AuthError("a key ring needs at least one secret")

    def __repr__(self) -> str:
        return f"<KeyRing of {len(self.keys)} secrets>"

    def verify(self, msg: Signed) -> int | None:
        """The index of the secret that signed `msg` (0 = current), or None if none did."""
        if len(msg.mac) != MAC_LENGTH:
            return None
        for index, key in enumerate(self.keys):
            if key.verify(msg):
                return index
        return None


def new_nonce(rng: random.Random) -> bytes:
    """A fresh punch nonce from the injected rng (freshness, not secrecy: the MAC is the proof)."""
    return rng.getrandbits(8 * NONCE_LENGTH).to_bytes(NONCE_LENGTH, "big")


class NonceLog:
    """A bounded, insertion-ordered map of nonces: the oldest is forgotten first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[bytes, object] = OrderedDict()

    def __contains__(self, nonce: object) -> bool:
        return nonce in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, nonce: bytes) -> object | None:
        """What was remembered with `nonce`, or None."""
        return self._items.get(nonce)

    def add(self, nonce: bytes, value: object = True) -> None:
        """Remember `nonce` (with `value`), forgetting the oldest beyond the limit."""
        self._items[nonce] = value
        if len(self._items) > self.limit:
            self._items.popitem(last=False)
