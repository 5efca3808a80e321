"""What connect achieved, per peer: the path, the technique that found it, the time, or why not.

Rule: results are frozen snapshots read off `Peer` records; they add nothing the machine does not
know. Later techniques (relay) fill `path` and `technique` with their own names.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..endpoint import Endpoint
from ..handshake import Peer
from ..states import PeerState


@dataclass(frozen=True)
class PeerResult:
    """One peer: connected or not, over which path, found by which technique, and how fast."""

    peer: Endpoint
    """The peer as the server listed it (its name in events and in `PeerClient.peers`)."""
    peer_id: bytes
    state: PeerState
    path: str
    """"direct" (a hole in the NATs) or "relayed"; meaningful once connected."""
    technique: str
    """What found the path: "basic", "peer-reflexive", "prediction", "birthday", ..."""
    address: Endpoint
    """Where datagrams to the peer go (the listed endpoint unless a technique found another)."""
    via: int
    """The local socket in use: 0 is the registered one, 1.. the extra birthday sockets."""
    time_to_connect: float | None
    """Seconds from our first punch to the confirmed handshake; None unless connected."""
    reason: str
    """Why the peer failed (the last thing seen from it); empty unless it failed."""

    @property
    def connected(self) -> bool:
        """True once datagrams flow both ways."""
        return self.state is PeerState.CONNECTED

    @classmethod
    def of(cls, peer: Peer) -> PeerResult:
        """Snapshot a protocol `Peer` record."""
        elapsed = None if peer.connected_at is None else peer.connected_at - peer.started
        reason = ""
        if peer.state is PeerState.FAILED:
            reason = "timed out; last seen: " + peer.last_seen
        elif not peer.connected:
            reason = "still punching; last seen: " + peer.last_seen
        return cls(peer.endpoint, peer.info.peer_id, peer.state, peer.path, peer.technique, peer.address,
                   peer.via, elapsed, reason)

    def to_text(self) -> str:
        """One line, e.g. "198.51.100.20:4000 direct via peer-reflexive in 0.084 s"."""
        if self.connected:
            where = "" if self.address == self.peer else f" at {self.address}"
            socket = f" (socket {self.via})" if self.via else ""
            return f"{self.peer} {self.path} by {self.technique}{where}{socket} in {self.time_to_connect:.3f} s"
        return f"{self.peer} not connected: {self.reason}"


@dataclass(frozen=True)
class ConnectResult:
    """Every punched peer's result, and how connect as a whole ended."""

    peers: tuple[PeerResult, ...]
    expected: int
    reason: str = ""
    """Why connect ended early or incomplete (a deadline, a refusal); empty otherwise."""

    @property
    def complete(self) -> bool:
        """True when at least the expected number of peers connected and none failed."""
        connected = sum(1 for p in self.peers if p.connected)
        return not self.reason and connected >= self.expected and all(p.connected for p in self.peers)

    def peer(self, endpoint: Endpoint) -> PeerResult:
        """The result for the peer listed at `endpoint`; `KeyError` if it was never punched."""
        for result in self.peers:
            if result.peer == endpoint:
                return result
        raise KeyError(f"{endpoint} was not punched")

    def to_text(self) -> str:
        """One line per peer, then the overall reason if there is one."""
        lines = [p.to_text() for p in self.peers] or ["no peer was punched"]
        if self.reason:
            lines.append(f"connect ended: {self.reason}")
        return "\n".join(lines) + "\n"
