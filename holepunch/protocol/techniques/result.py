"""What connect achieved, per peer: the path, the technique that found it, the time, or why not.

Rule: results are frozen snapshots read off `Peer` records (and the relay's record of when it
took a peer over); they add nothing the machine does not know. A relayed peer counts as
connected: its data flows both ways, through the server.
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
    """"direct" (a hole in the NATs) or "relayed" (the server's relay); meaningful once connected."""
    technique: str
    """What found the path: "basic", "peer-reflexive", "prediction", "birthday", or "relay"."""
    address: Endpoint
    """Where datagrams to the peer go (the listed endpoint unless a technique found another)."""
    via: int
    """The local socket in use: 0 is the registered one, 1.. the extra birthday sockets."""
    time_to_connect: float | None
    """Seconds from our first punch to the path in use (the direct handshake, or the relay's
    confirmation); None unless connected."""
    reason: str
    """Why the peer failed, or for a relayed peer why the direct punch has not worked (the last
    thing seen from it directly); empty for a direct peer."""
    time_to_relay: float | None = None
    """Seconds from our first punch until the relay carried the peer; None if it never did (a
    direct peer with a value was upgraded from the relay)."""

    @property
    def connected(self) -> bool:
        """True once datagrams flow both ways, directly or through the relay."""
        return self.state is PeerState.CONNECTED or self.relayed

    @property
    def relayed(self) -> bool:
        """True while the server's relay carries the peer."""
        return self.path == "relayed" and self.state is not PeerState.CONNECTED

    @classmethod
    def of(cls, peer: Peer, relayed_at: float | None = None) -> PeerResult:
        """Snapshot a protocol `Peer` record; `relayed_at` is when the relay took it over, if ever."""
        relay = None if relayed_at is None else relayed_at - peer.started
        elapsed = None if peer.connected_at is None else peer.connected_at - peer.started
        technique, reason = peer.technique, ""
        if peer.state is PeerState.CONNECTED:
            pass
        elif peer.path == "relayed":
            elapsed, technique = relay, "relay"
            reason = "no direct path; last seen: " + peer.last_seen
        elif peer.state is PeerState.FAILED:
            reason = "timed out; last seen: " + peer.last_seen
        else:
            reason = "still punching; last seen: " + peer.last_seen
        return cls(peer.endpoint, peer.info.peer_id, peer.state, peer.path, technique, peer.address,
                   peer.via, elapsed, reason, relay)

    def to_text(self) -> str:
        """One line, e.g. "198.51.100.20:4000 direct by peer-reflexive in 0.084 s"."""
        if self.relayed:
            return f"{self.peer} relayed in {self.time_to_connect:.3f} s ({self.reason})"
        if self.connected:
            where = "" if self.address == self.peer else f" at {self.address}"
            socket = f" (socket {self.via})" if self.via else ""
            upgraded = "" if self.time_to_relay is None else f", relayed from {self.time_to_relay:.3f} s"
            return (f"{self.peer} {self.path} by {self.technique}{where}{socket} in "
                    f"{self.time_to_connect:.3f} s{upgraded}")
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
