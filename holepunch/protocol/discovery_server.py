"""The discovery responder as a sans-IO machine: answers PROBE on the primary and alternate sockets.

Rule: stateless per probe (RFC 5780 §4: the server keeps nothing between requests). A probe gets
one PROBE_REPLY to its source with the observed endpoint, sent from the socket it asked for
(`Transmit.via`: 0 primary, 1 alternate port, 2 alternate address); a socket the responder lacks
is answered from the one the probe arrived on, and the reply says so. Any other datagram on the
primary socket goes to the optional `RendezvousServer`, so one port serves both.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .discovery import (
    DiscoveryKind,
    Probe,
    ProbeReply,
    Via,
    decode_discovery,
    encode_discovery,
    is_discovery,
)
from .endpoint import Endpoint
from .messages import MessageError, Transmit


class DiscoveryResponder:
    """Answers probes; `alt_port`/`alt_address` are announced in every reply (0/"" when absent)."""

    def __init__(self, alt_port: int = 0, alt_address: str = "", *, rendezvous: Any = None) -> None:
        if not 0 <= alt_port <= 65535:
            raise ValueError(f"alt port must be 0-65535, got {alt_port}")
        self.alt_port = alt_port
        self.alt_address = alt_address
        self.rendezvous = rendezvous
        """A `RendezvousServer` (or None) that gets every non-probe datagram of the primary socket."""
        self.probes = 0
        self.dropped = 0
        self._out: list[Transmit] = []
        self._events: deque[Any] = deque()

    def sockets_wanted(self) -> int:
        """Extra sockets the driver must provide: 1 alternate port, 2 with an alternate address."""
        return 2 if self.alt_address else 1 if self.alt_port else 0

    def receive_datagram(self, data: bytes, source: Endpoint, now: float, via: int = 0) -> None:
        """Answer a probe that arrived on socket `via`; pass anything else on; never raises."""
        if not is_discovery(data):
            if via == 0 and self.rendezvous is not None:
                self.rendezvous.receive_datagram(data, source, now)
            else:
                self.dropped += 1
            return
        try:
            msg = decode_discovery(data)
        except MessageError:
            self.dropped += 1
            return
        if not isinstance(msg, Probe):
            self.dropped += 1  # a reply sent to a responder: nothing to do
            return
        self.probes += 1
        out = via if msg.reply_from == Via.SAME else int(msg.reply_from)
        if out > self.sockets_wanted():
            out = via  # no such socket: answer from where it came in, and say so
        reply = ProbeReply(msg.request_id, source, Via(out), self.alt_port, self.alt_address)
        self._out.append(Transmit(encode_discovery(reply), source, DiscoveryKind.PROBE_REPLY, out))  # type: ignore[arg-type]

    def handle_timer(self, now: float) -> None:
        """Only the rendezvous server has timers."""
        if self.rendezvous is not None:
            self.rendezvous.handle_timer(now)

    def get_timer(self) -> float | None:
        """The rendezvous server's next timer, if any."""
        return self.rendezvous.get_timer() if self.rendezvous is not None else None

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        """Replies queued since the last call, then the rendezvous server's datagrams."""
        out, self._out = self._out, []
        if self.rendezvous is not None:
            out += self.rendezvous.datagrams_to_send(now)
        return out

    def next_event(self) -> Any:
        """The rendezvous server's events (the responder itself reports none)."""
        return self.rendezvous.next_event() if self.rendezvous is not None else None
