"""The rendezvous server's pushes: extended members told of the members that joined after them.

Rule: only members that registered with the extension are pushed to, never a plain (reference)
one (wire-protocol.md B1). Newcomers are gathered over one batch of input and pushed once it is
fed, so members joining in one batch cost one push per member, not one per member and newcomer;
the pushes go out ahead of the batch's replies, except to a member answered meanwhile. Split out
of server.py, which owns one `PushBatch` (as it owns its `Guard`, `Admission` and `Relay`).
"""

from __future__ import annotations

from .admission import Send
from .endpoint import Endpoint
from .members import Member, ServerStats
from .messages import ExtPeers, MessageKind, PeerInfo, Transmit, encode_ext


class PushBatch:
    """The newcomers of the current batch, by session, until `flush` pushes them to the others."""

    def __init__(self, send: Send, stats: ServerStats) -> None:
        self._send, self._stats = send, stats
        self.pending: dict[bytes, list[Member]] = {}
        """Members that joined in the current batch, by session. Emptied in place, never rebound:
        the server keeps it to test for a batch at each drain without a call."""
        self._at, self._place = 0.0, 0  # the batch's time, and its first datagram's place in the output
        self.answered: set[Member] = set()
        """Extended members sent a full peer list while a batch is pending (the server adds them):
        their pushes go out after that reply, which they would otherwise undo."""

    def add(self, member: Member, now: float, place: int) -> None:
        """`member` joined a session with others at `now`, when `place` datagrams were queued."""
        if not self.pending:
            self._at, self._place = now, place
        self.pending.setdefault(member.session, []).append(member)

    def flush(self, sessions: dict[bytes, dict[Endpoint, Member]], out: list[Transmit]) -> None:
        """Push the batch into `out` (the list the server's `send` appends to).

        A member that joined in the same batch had the earlier ones in its reply, so it is told
        only of those after it. Pushes go out ahead of the batch's replies, so members hear of a
        newcomer no later than it hears of them (a newcomer punching first finds them not punching
        yet: wasted SYNs, and on Linux masquerade the early-punch race), except to a member
        answered meanwhile: that reply lists fewer and replaces its list."""
        pending, now = self.pending, self._at
        answered, self.answered = self.answered, set()
        later = out[self._place:]
        del out[self._place:]
        behind: list[tuple[Member, bytes]] = []
        for sid, newcomers in pending.items():
            session = sessions.get(sid, {})
            live = [m for m in newcomers if session.get(m.endpoint) is m]  # none left or expired since
            after = {m: n + 1 for n, m in enumerate(live)}  # members hash by identity
            infos: list[PeerInfo] = []  # built at the first extended member: often there is none
            for member in session.values() if live else ():
                start = after.get(member, 0)
                if member.peer_id is not None and start < len(live):
                    infos = infos or [m.info() for m in live]
                    data = encode_ext(ExtPeers(sid, member.endpoint, tuple(infos[start:]), push=True))
                    if member in answered:
                        behind.append((member, data))
                    else:
                        self._push(member, data, now)
        pending.clear()  # in place (the server holds it); nothing above can join a member
        out += later
        for member, data in behind:
            self._push(member, data, now)

    def _push(self, member: Member, data: bytes, now: float) -> None:
        """Queue one push within the member's amplification budget; counted if it went out."""
        if self._send(member, data, member.endpoint, MessageKind.EXT_PUSH, now):
            self._stats.pushes += 1
