"""Runs the techniques inside one `PeerClient`: extended punches, path adoption, probe sweeps.

Rule: only peers the server listed as extended (while we are extended too) ever get a PUNCH, a
probe or an adopted path; everyone else keeps SYN/ACK at the listed endpoint (wire-protocol.md
§7). A punch is valid when its token is our session's, its target is our peer id and its sender
is that listed peer. An unlisted address is adopted only when a technique allows it: peer-reflexive
learning (RFC 8445 §7.3.1.3), or it is an address we probed. Before a peer connects, the path in
use is the one the latest valid punch came on (a reply always goes back the way the punch came);
afterwards the controlling peer (the lower peer id, RFC 8445 §6.1.1) keeps its path and the
controlled one follows the path the peer's datagrams arrive on, so both settle on the same flow.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..endpoint import Endpoint
from ..handshake import Hint, Peer
from ..messages import MAGIC, ExtPunch, ExtPunchAck, MessageError, MessageKind, Transmit, decode_ext, encode_ext
from ..states import PeerInput, PeerState
from ..tcp_messages import session_token
from . import BASIC, PROBE_CODES, PROBING, BirthdayRole, Technique, resolve_role
from .probes import Pacer, birthday_ports, prediction_ports

if TYPE_CHECKING:  # pragma: no cover
    from ..client import PeerClient

Path = tuple[Endpoint, int]  # (remote address, local socket index)
MAX_PATHS = 2048
"""Paths remembered per peer at most: birthday needs a few hundred; anyone who knows the session
ID can forge valid punches from many sources, and must not grow our tables without bound."""
_BY_CODE = {code: technique for technique, code in PROBE_CODES.items()}


@dataclass
class _Plan:
    """The technique state for one extended peer."""

    peer: Peer
    controlling: bool
    probed: dict[Endpoint, Technique] = field(default_factory=dict)
    labels: dict[Path, str] = field(default_factory=dict)
    birthday: list[Endpoint] = field(default_factory=list)
    next_sweep: float | None = None
    sweeps: int = 0


class Techniques:
    """The client's technique engine; `PeerClient` calls it and never branches on technique names."""

    def __init__(self, client: PeerClient, rng: random.Random) -> None:
        self.client = client
        self.config = client.config
        self.enabled = frozenset(client.config.techniques)
        self.rng = rng
        self.token = session_token(client.session)
        self._plans: dict[Endpoint, _Plan] = {}
        self._by_id: dict[bytes, Endpoint] = {}
        self._routes: dict[Endpoint, Endpoint] = {}
        self._pacer = Pacer(client.config.probe_interval)
        self._sockets = 0

    # --- set-up -------------------------------------------------------------------------------

    def prepare(self, peer: Peer, now: float) -> None:
        """A peer is about to be punched: give an extended peer its PUNCH messages and sweeps."""
        if not (self.client.extended and peer.info.extended):
            return  # a plain (reference) peer: SYN/ACK only, no probe ever
        key = peer.endpoint
        self._by_id.setdefault(peer.info.peer_id, key)
        plan = self._plans[key] = _Plan(peer, self.client.peer_id < peer.info.peer_id)
        plan.labels[(key, 0)] = BASIC
        if self.enabled:
            peer.messages = self._punches(peer.info.peer_id)
        if self.enabled & PROBING:
            plan.next_sweep = now + self.config.escalation_delay

    def _punches(self, target: bytes, probe: int = 0) -> tuple[bytes, bytes]:
        me, token = self.client.peer_id, self.token
        return (encode_ext(ExtPunch(token, me, target, probe)), encode_ext(ExtPunchAck(token, me, target, probe)))

    # --- receiving ----------------------------------------------------------------------------

    def route(self, source: Endpoint) -> Endpoint | None:
        """The listed endpoint of the peer that owns `source`, an address adopted earlier."""
        return self._routes.get(source)

    def adopt(self, data: bytes, source: Endpoint, via: int) -> Endpoint | None:
        """A datagram from an unlisted address: the listed endpoint of its peer if it may be adopted."""
        msg = self._punch_of(data)
        key = None if msg is None else self._by_id.get(msg.peer_id)
        if msg is None or key is None or not self._wanted(key):
            return None  # not a punch, not from an extended peer we punch, or that peer is settled
        peer = self._plans[key].peer
        if self._invalid(msg, peer):
            return None
        if self._technique_of(self._plans[key], source, via, msg) is None:
            peer.last_seen = f"PUNCH from the unlisted {source} (peer-reflexive learning is off)"
            return None
        if len(self._plans[key].labels) >= MAX_PATHS:
            return None
        self._routes[source] = peer.endpoint
        return peer.endpoint

    def check(self, peer: Peer, data: bytes, source: Endpoint, via: int) -> Hint | str | None:
        """Classify a datagram from a known address of `peer`: a punch (its hint), a drop reason,
        or None for anything else (data, keep-alive), after which the path may follow it."""
        plan = self._plans.get(peer.endpoint)
        msg = self._punch_of(data) if plan is not None else None
        if msg is None:
            if plan is not None and peer.connected:
                self._follow(plan, source, via)
            return None
        reason = self._invalid(msg, peer)
        if reason:
            return reason
        assert plan is not None
        technique = self._technique_of(plan, source, via, msg)
        if technique is None:
            return "punch on another socket"
        if (source, via) not in plan.labels and len(plan.labels) >= MAX_PATHS:
            return "too many paths"
        if plan.labels.get((source, via), BASIC) == BASIC:
            plan.labels[(source, via)] = technique  # a probe on the listed path names its technique
        if peer.messages is None:
            peer.messages = self._punches(peer.info.peer_id)  # answer an extended peer in kind
        if peer.connected:
            self._follow(plan, source, via)
        else:
            self._use(plan, (source, via))
        label = "PUNCH_ACK" if type(msg) is ExtPunchAck else "PUNCH"
        if source != peer.endpoint:
            label += f" from {source}"
        return (PeerInput.ACK if type(msg) is ExtPunchAck else PeerInput.SYN), label

    def _punch_of(self, data: bytes) -> ExtPunch | None:
        if data[:4] != MAGIC:
            return None
        try:
            msg = decode_ext(data)
        except MessageError:
            return None
        return msg if isinstance(msg, ExtPunch) else None

    def _invalid(self, msg: ExtPunch, peer: Peer) -> str:
        if msg.token != self.token:
            return "punch for another session"
        if msg.target != self.client.peer_id:
            return "punch for another peer"
        if msg.peer_id != peer.info.peer_id or not peer.info.extended:
            return "punch from another peer"
        return ""

    def _technique_of(self, plan: _Plan, source: Endpoint, via: int, msg: ExtPunch) -> str | None:
        """Which technique makes the path (source, via) acceptable, or None if none does."""
        if via:
            return Technique.BIRTHDAY.value if Technique.BIRTHDAY in self.enabled else None
        if source in plan.probed:
            return plan.probed[source].value
        if source != plan.peer.endpoint:
            return Technique.PEER_REFLEXIVE.value if Technique.PEER_REFLEXIVE in self.enabled else None
        probe = _BY_CODE.get(msg.probe)
        return probe.value if probe is not None else BASIC

    def _use(self, plan: _Plan, path: Path) -> None:
        peer = plan.peer
        address, peer.via = path
        peer.remote = None if address == peer.endpoint else address
        peer.technique = plan.labels.get(path, peer.technique)

    def _follow(self, plan: _Plan, source: Endpoint, via: int) -> None:
        """After connecting, the controlled peer sends where the controlling peer's datagrams come from."""
        path = (source, via)
        if not plan.controlling and path in plan.labels and path != (plan.peer.address, plan.peer.via):
            self._use(plan, path)

    # --- probing ------------------------------------------------------------------------------

    def on_timer(self, now: float) -> list[Transmit]:
        """Start the sweeps that are due, then release the probe that is due."""
        for plan in self._plans.values():
            if plan.next_sweep is not None and now >= plan.next_sweep:
                self._sweep(plan, now)
        return self._pacer.due(now, self._wanted)

    def next_timer(self) -> float | None:
        """The next sweep or probe, whichever is first."""
        times = [p.next_sweep for p in self._plans.values() if p.next_sweep is not None]
        if (at := self._pacer.next_timer()) is not None:
            times.append(at)
        return min(times) if times else None

    def sockets_wanted(self) -> int:
        """Extra local sockets wanted: the birthday sockets while punching, then those in use."""
        if self._sockets and any(self._wanted(key) for key in self._plans):
            return self._sockets
        return max((p.via for p in self.client.peers.values() if p.connected), default=0)

    def stop(self) -> None:
        """Connect is over or the client closed: no more sweeps or probes."""
        self._pacer.clear()
        for plan in self._plans.values():
            plan.next_sweep = None

    def _wanted(self, key: Hashable) -> bool:
        """True while the peer listed at `key` is extended and still being punched."""
        plan = self._plans.get(key) if isinstance(key, Endpoint) else None
        return plan is not None and plan.peer.state in (PeerState.PUNCHING, PeerState.ACKING)

    def _sweep(self, plan: _Plan, now: float) -> None:
        """One round of probes for a peer that has not connected yet; the pacer spaces them out, as
        ICE paces its checks (RFC 8445 §14: Ta)."""
        peer, cfg = plan.peer, self.config
        plan.sweeps += 1
        more = plan.sweeps < cfg.max_sweeps and self._wanted(peer.endpoint)
        plan.next_sweep = now + cfg.sweep_interval if more else None
        if not self._wanted(peer.endpoint) or self._pacer.pending(peer.endpoint):
            return
        self._pacer.push(peer.endpoint, self._probes(plan), now)

    def _probes(self, plan: _Plan) -> list[Transmit]:
        listed, cfg, out = plan.peer.endpoint, self.config, []
        if Technique.PREDICTION in self.enabled:
            data = self._punches(plan.peer.info.peer_id, PROBE_CODES[Technique.PREDICTION])[0]
            for address in prediction_ports(listed, cfg.prediction_window, cfg.prediction_delta):
                plan.probed.setdefault(address, Technique.PREDICTION)
                out.append(Transmit(data, address, MessageKind.PUNCH))
        if Technique.BIRTHDAY in self.enabled:
            data = self._punches(plan.peer.info.peer_id, PROBE_CODES[Technique.BIRTHDAY])[0]
            roles = resolve_role(BirthdayRole(cfg.birthday_role), self.client.nat_hard)
            if BirthdayRole.HARD in roles and cfg.birthday_sockets > 1:
                # Our socket 0 already punches the listed endpoint: k sockets = it + k - 1 more.
                self._sockets = max(self._sockets, cfg.birthday_sockets - 1)
                out += [Transmit(data, listed, MessageKind.PUNCH, j) for j in range(1, cfg.birthday_sockets)]
            if BirthdayRole.EASY in roles:
                if not plan.birthday:
                    ports = birthday_ports(listed.host, cfg.birthday_probes, cfg.birthday_ports, self.rng)
                    plan.birthday = [p for p in ports if p != listed]
                for address in plan.birthday:
                    plan.probed.setdefault(address, Technique.BIRTHDAY)
                    out.append(Transmit(data, address, MessageKind.PUNCH))
        return out
