"""The client's side of the server conversation: register, learn the peers, keep registering.

Rule: the extension is tried first (`extension_attempts` times) and abandoned as soon as the
server answers in the plain protocol, never with a session secret (the plain protocol cannot
carry it: wire-protocol.md §7). A server cookie is echoed at once and in every later
registration (RFC 9000 §8.1). Waiting for peers, an extended client refreshes at the polling
pace at first, each gap twice the last, up to `extended_refresh_interval` (wire-protocol.md §4).
Once punching, answers to our own refreshes are expected and only counted; every other late
reply is dropped and counted (the reference's bug B1, §6). This module reads replies and says
what they mean; the `PeerClient` that owns it moves its state machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from .endpoint import Endpoint
from .events import Event, PeerListReceived, Registered
from .guard import padding_to_earn
from .messages import (
    ErrorCode,
    ExtCookie,
    ExtError,
    ExtMessage,
    ExtPeers,
    ExtRegister,
    MessageError,
    MessageKind,
    PeerInfo,
    Transmit,
    decode_ext,
    decode_peer_list,
    encode_ext,
    is_extension,
    peers_reply_bound,
)
from .states import ClientState, ClientTrigger
from .techniques import Technique

if TYPE_CHECKING:  # pragma: no cover - client.py imports this module
    from .client import PeerClient

Verdict = tuple[ClientTrigger, str]
"""What a reply during registration calls for: PEERS_FOUND (start punching) or REFUSED (why)."""


class Registration:
    """The registration of one `PeerClient`: it sets the client's `extended`, `public_endpoint`,
    `listed` and `refresh_answers`, and returns a `Verdict` when the client must move on."""

    def __init__(
        self,
        client: PeerClient,
        emit: Callable[[Event], None],
        send: Callable[[Transmit], None],
        drop: Callable[[Endpoint, bytes, str], None],
    ) -> None:
        self.client = client
        self.config = client.config
        self._emit, self._send, self._drop = emit, send, drop  # the client's queues and drop count
        self.next_at: float | None = None
        """When we register (or refresh) next; None when nothing is due."""
        self.plain_registered = False
        self.cookie = b""  # the server's address cookie (ExtCookie), echoed in every registration
        self._ext_attempts = 0
        self._wait_gap = self.config.register_interval
        """The next gap between extended registrations while we wait for peers (see `_send_ext`)."""

    # --- sending ------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """The first registration: extended if configured, else plain from the outset."""
        if self.config.extension and self.config.extension_attempts > 0:
            self._send_ext(now)
        else:
            self.client.extended = False
            self._send_plain(now)

    def on_timer(self, now: float) -> None:
        """While registering: register again, or give up on the extension and fall back."""
        if self.next_at is None or now < self.next_at:
            return
        if self.client.extended is False:
            self._send_plain(now)
        elif self.client.extended or self._ext_attempts < self.config.extension_attempts:
            self._send_ext(now)
        else:
            self._fall_back(now)

    def refresh(self, now: float) -> None:
        """While punching, some listed peer is still unconnected (else we would have finished):
        keep registering, so a server that restarted meanwhile relearns us and lists us to the
        peers still polling for us (found by simulator/faults.py: without it both sides strand)."""
        if self.next_at is None or now < self.next_at:
            return
        if self.client.extended:
            self._send_ext(now)
        else:
            self._send_plain(now)

    def refresh_at(self, now: float) -> float | None:
        """When a punching client registers again: at its polling interval (plain) or extended
        refresh interval; never if the server has not answered in either protocol yet."""
        if self.client.extended:
            return now + self.config.extended_refresh_interval
        return now + self.config.register_interval if self.plain_registered else None

    def _send_ext(self, now: float) -> None:
        self._ext_attempts += 1
        self._send(self._ext_register())
        interval = self.config.register_interval
        if self.client.extended and self.client.state is ClientState.REGISTERING:
            interval = self._wait_gap
            self._wait_gap = min(2 * interval, self.config.extended_refresh_interval)
        elif self.client.extended:
            interval = self.config.extended_refresh_interval
        self.next_at = now + interval

    def _ext_register(self) -> Transmit:
        client = self.client
        msg = ExtRegister(client.session, client.peer_id, client.expected, self.cookie)
        if not self.cookie and self.config.pad_registrations:  # signed below: the MAC covers it
            answer = peers_reply_bound(client.session, client.expected, ":" in client.server.host)
            msg = dataclasses.replace(msg, padding=padding_to_earn(len(encode_ext(msg)), answer))
        if client.auth is not None:
            msg = client.auth.sign(msg)
        return Transmit(encode_ext(msg), client.server, MessageKind.EXT_REGISTER)

    def _send_plain(self, now: float) -> None:
        self._send(Transmit(self.client.session, self.client.server, MessageKind.REGISTER))
        self.next_at = now + self.config.register_interval

    def _fall_back(self, now: float) -> None:
        """The server does not speak the extension (the reference): use the plain protocol."""
        if self.client.auth is not None:  # never downgrade: the plain protocol cannot carry the secret
            self._send_ext(now)
            return
        self.client.extended = False
        self._send_plain(now)

    # --- replies while registering ------------------------------------------------------------

    def answer(self, data: bytes, now: float) -> Verdict | None:
        """A server datagram while we register."""
        extended = self.client.extended
        if is_extension(data):
            return self._ext_answer(data, now)
        if extended is None and self.client.auth is not None:
            why = "server does not support authentication (it answered in the plain protocol)"
            return ClientTrigger.REFUSED, why
        if extended is None:
            self._fall_back(now)
        elif extended:
            if data:
                self._drop(self.client.server, data, "plain reply to extended client")
        else:
            return self._plain_answer(data)
        return None

    def _plain_answer(self, data: bytes) -> Verdict | None:
        try:
            endpoints = decode_peer_list(data)
        except MessageError as exc:
            self._drop(self.client.server, data, f"malformed peer list: {exc}")
            return None
        if not self.plain_registered:
            self.plain_registered = True
            self._emit(Registered(False, None))
        return self._list(tuple(PeerInfo(e) for e in endpoints), replace=True, push=False)

    def _ext_answer(self, data: bytes, now: float) -> Verdict | None:
        client = self.client
        try:
            msg = decode_ext(data)
        except MessageError as exc:
            self._drop(client.server, data, f"malformed: {exc}")
            return None
        if isinstance(msg, ExtError):
            why = " (wrong or missing secret)" if msg.code == ErrorCode.BAD_AUTH else ""
            return ClientTrigger.REFUSED, f"server refused: {msg.text}{why}"
        if isinstance(msg, ExtPeers) and msg.session == client.session:
            if not client.extended:
                client.extended = True
                client.public_endpoint = msg.observed
                self._emit(Registered(True, msg.observed))
                # Waiting, we first refresh at the polling pace, slowing to the refresh interval:
                # a push to an address the server has not proved yet is withheld by its budget,
                # and a lost cookie or echo would otherwise cost a whole refresh interval.
                self.next_at = now + self._wait_gap
            return self._list(msg.peers, replace=not msg.push, push=msg.push)
        if isinstance(msg, ExtCookie) and client.extended is not False:
            self._echo_cookie(msg.cookie, now)
        else:
            self._drop(client.server, data, "unexpected extension message")
        return None

    def _echo_cookie(self, cookie: bytes, now: float) -> None:
        """The server asks us to prove our address (RFC 9000 §8.1): echo its cookie at once and
        in every later registration. It speaks the extension, so no fallback is counted down."""
        self._ext_attempts = 0
        if cookie != self.cookie:  # the same cookie again waits for the timer: no ping-pong
            self.cookie = cookie
            self._send_ext(now)

    def _list(self, infos: tuple[PeerInfo, ...], *, replace: bool, push: bool) -> Verdict | None:
        """Record a peer list (a push adds to ours); enough peers listed: time to punch."""
        client = self.client
        if replace:
            client.listed = {}
        for info in infos:
            if info.endpoint != client.public_endpoint:
                client.listed[info.endpoint] = info
        self._emit(PeerListReceived(infos, push))
        if len(client.listed) >= client.expected and (infos or not push):
            return ClientTrigger.PEERS_FOUND, ""
        return None

    # --- replies once punching ----------------------------------------------------------------

    def late_cookie(self, msg: ExtMessage | None) -> bool:
        """A cookie after the list: echo it once if we may need the relay, which the server
        forwards only to proved addresses, or with a secret while punching: a restarted server
        takes our refreshes only on a cookie of its own. Nothing else needs the proof then."""
        state = self.client.state
        refreshing = self.client.auth is not None and state is ClientState.PUNCHING
        if not (refreshing or Technique.RELAY in self.config.techniques) or state is ClientState.CLOSED:
            return False
        if not isinstance(msg, ExtCookie):
            return False
        if msg.cookie != self.cookie:
            self.cookie = msg.cookie
            self._send(self._ext_register())
        return True

    def late_reply(self, data: bytes, msg: ExtMessage | None, error: str) -> None:
        """An extended client registers again while it punches (`refresh`), so its server's
        answers keep coming: our session's list or a cookie (which `late_cookie` did not need)
        is expected and only counted. Anything else is dropped, and so is every late reply to a
        plain client: a plain list cannot be told from a late or duplicate one (B1)."""
        client = self.client
        if not client.extended:
            self._drop(client.server, data, "late server reply")
        elif not is_extension(data):
            self._drop(client.server, data, "plain reply to extended client")
        elif msg is None:
            self._drop(client.server, data, error)
        elif isinstance(msg, ExtCookie) or (isinstance(msg, ExtPeers) and msg.session == client.session):
            client.refresh_answers += 1
        elif isinstance(msg, ExtPeers):
            self._drop(client.server, data, "reply for another session")
        elif isinstance(msg, ExtError):
            self._drop(client.server, data, f"server error after registration: {msg.text}")
        else:
            self._drop(client.server, data, "unexpected extension message")
