"""Runs the techniques inside one `PeerClient`: extended punches, path adoption, probe sweeps.

Rule: only peers the server listed as extended (while we are extended too) ever get a PUNCH, a
probe or an adopted path; everyone else keeps SYN/ACK at the listed endpoint (wire-protocol.md
§7). A punch is valid when its token is our session's, its target is our peer id and its sender
is that listed peer. An unlisted address is adopted only when a technique allows it: peer-reflexive
learning (RFC 8445 §7.3.1.3), or it is an address we probed. Before a peer connects, the path in
use is the one the latest valid punch came on (a reply always goes back the way the punch came);
afterwards the controlling peer (the lower peer id, RFC 8445 §6.1.1) keeps its path and the
controlled one follows the path the peer's datagrams arrive on, so both settle on the same flow.
With a session secret (auth.py) every punch carries a fresh nonce and a MAC, and an address is
used for a peer only once a valid PUNCH_ACK from it echoes a nonce we sent to that very address:
a punch from elsewhere is answered there, never adopted (wire-protocol.md, "Authentication").
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..auth import NONCE_LENGTH, NonceLog, new_nonce
from ..endpoint import Endpoint
from ..handshake import Deadlines, Hint, Peer
from ..messages import ExtPunch, ExtPunchAck, MessageKind, Transmit, encode_ext, punch_in
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
NONCES_KEPT = 4096
"""Nonces remembered per peer, sent (for echoes) and received (against replays): more than the
probes and retransmissions of a whole connect (3 sweeps of 256 birthday probes each)."""


@dataclass
class _Proofs:
    """What an authenticated session remembers per peer to tell fresh, answered punches from replays."""

    sent: NonceLog = field(default_factory=lambda: NonceLog(NONCES_KEPT))
    """Nonce -> the path (address, socket) we sent it on; a PUNCH_ACK must echo one from that path."""
    seen: NonceLog = field(default_factory=lambda: NonceLog(NONCES_KEPT))
    """Nonces received in valid punches: a second copy is a replay (or a duplicate) and is dropped."""
    echo: dict[Path, bytes] = field(default_factory=dict)
    """Per path, the latest nonce received on it: what our PUNCH_ACK on that path echoes."""
    proven: set[Path] = field(default_factory=set)
    """Paths a valid PUNCH_ACK echoed our nonce on: the only ones used, and data is taken from."""


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
    proofs: _Proofs | None = None
    """Nonce bookkeeping, only in a session with a secret."""


class _SignedPunches:
    """`Peer.messages` of an authenticated session: every PUNCH and PUNCH_ACK the handshake sends
    is built afresh, with a new nonce recorded for the path it goes to, and signed."""

    __slots__ = ("_engine", "_plan")

    def __init__(self, engine: Techniques, plan: _Plan) -> None:
        self._engine, self._plan = engine, plan

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> bytes:
        peer = self._plan.peer  # the handshake sends to peer.address on peer.via right after
        return self._engine._signed(self._plan, ExtPunchAck if index else ExtPunch, (peer.address, peer.via))


class Techniques:
    """The client's technique engine; `PeerClient` calls it and never branches on technique names."""

    def __init__(self, client: PeerClient, rng: random.Random, send: Callable[[Transmit], None]) -> None:
        self.client = client
        self._send = send  # the client's output queue, for answers outside the handshake
        self.config = client.config
        self.enabled = frozenset(client.config.techniques)
        self.rng = rng
        self.auth = client.auth
        self.token = session_token(client.session) if self.auth is None else self.auth.token(client.session)
        self._plans: dict[Endpoint, _Plan] = {}
        self._by_id: dict[bytes, Endpoint] = {}
        self._routes: dict[Endpoint, Endpoint] = {}
        self._orders: dict[Endpoint, int] = {}
        self._pacer = Pacer(client.config.probe_interval)
        self._sockets = 0
        # Scan-free bookkeeping (every pump asks `next_timer` and `sockets_wanted`):
        self._order: list[_Plan] = []
        """The plans in the order of `_plans`; a plan's index here is its key in `_sweeps`."""
        self._sweeps = Deadlines()
        """Every plan's `next_sweep`."""
        self._punching_from = 0
        """`_order[:this]` are no longer punched: CONNECTED and FAILED are final states."""
        self._moved = False
        """True once some peer was given a socket other than 0 (`_use`); until then every `via` is 0."""
        self._probing = bool(self.enabled & PROBING)  # per peer, a set intersection hashing enums was 5 % of a mesh

    # --- set-up -------------------------------------------------------------------------------

    def prepare(self, peer: Peer, now: float) -> None:
        """A peer is about to be punched: give an extended peer its PUNCH messages and sweeps."""
        if not (self.client.extended and peer.info.extended):
            return  # a plain (reference) peer: SYN/ACK only, no probe ever
        key = peer.endpoint
        self._by_id.setdefault(peer.info.peer_id, key)
        plan = self._plans[key] = _Plan(peer, self.client.peer_id < peer.info.peer_id)
        index = self._index_of(key, plan)
        plan.labels[(key, 0)] = BASIC
        if self.auth is not None:  # with a secret, only signed punches count: never SYN/ACK
            plan.proofs = _Proofs()
            peer.messages = _SignedPunches(self, plan)  # type: ignore[assignment]  # a Sequence[bytes]
        elif self.enabled:
            peer.messages = self._punches(peer.info.peer_id)
        if self._probing:
            plan.next_sweep = now + self.config.escalation_delay
            self._sweeps.set(index, plan.next_sweep)

    def _index_of(self, key: Endpoint, plan: _Plan) -> int:
        """Record `plan` at the place `key` has in `_plans` (a dict keeps a replaced key's place)."""
        index = self._orders.setdefault(key, len(self._order))
        if index == len(self._order):
            self._order.append(plan)
        else:
            self._order[index] = plan
            self._punching_from = min(self._punching_from, index)
        return index

    def _punches(self, target: bytes, probe: int = 0) -> tuple[bytes, bytes]:
        me, token = self.client.peer_id, self.token
        return (encode_ext(ExtPunch(token, me, target, probe)), encode_ext(ExtPunchAck(token, me, target, probe)))

    def _signed(self, plan: _Plan, cls: type[ExtPunch], path: Path, probe: int = 0) -> bytes:
        """A signed PUNCH or PUNCH_ACK for `path` with a fresh nonce (a PUNCH_ACK echoes the latest
        nonce received on that path)."""
        assert plan.proofs is not None and self.auth is not None
        nonce = new_nonce(self.rng)
        plan.proofs.sent.add(nonce, path)
        echo = plan.proofs.echo.get(path, b"") if cls is ExtPunchAck else b""
        msg = cls(self.token, self.client.peer_id, plan.peer.info.peer_id, probe, nonce, echo)
        return encode_ext(self.auth.sign(msg))

    # --- receiving ----------------------------------------------------------------------------

    def route(self, source: Endpoint) -> Endpoint | None:
        """The listed endpoint of the peer that owns `source`, an address adopted earlier."""
        return self._routes.get(source)

    def adopt(self, data: bytes, source: Endpoint, via: int) -> Endpoint | None:
        """A datagram from an unlisted address: the listed endpoint of its peer if it may be adopted."""
        msg = punch_in(data)
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
        hint = self._check(peer, data, source, via)
        if self.auth is not None and isinstance(hint, str) and not peer.connected:
            peer.last_seen = hint  # a peer that fails says why: most often another secret
        return hint

    def _check(self, peer: Peer, data: bytes, source: Endpoint, via: int) -> Hint | str | None:
        plan = self._plans.get(peer.endpoint)
        msg = punch_in(data) if plan is not None else None
        if msg is None and self.auth is not None:
            if plan is None:
                return "plain peer in an authenticated session"  # it cannot sign: SYN/ACK ignored
            assert plan.proofs is not None
            if (source, via) not in plan.proofs.proven:
                return "unauthenticated datagram"  # before the handshake, or from an unproven address
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
        if plan.proofs is not None:
            return self._check_signed(plan, msg, (source, via))
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

    def _invalid(self, msg: ExtPunch, peer: Peer) -> str:
        if msg.token != self.token:
            return "punch for another session"  # with a secret: also a punch made without it
        if msg.target != self.client.peer_id:
            return "punch for another peer"
        if msg.peer_id != peer.info.peer_id or not peer.info.extended:
            return "punch from another peer"
        if self.auth is not None and not self.auth.verify(msg):
            return "punch with a bad MAC" if msg.mac else "punch without a MAC"
        return ""

    def _check_signed(self, plan: _Plan, msg: ExtPunch, path: Path) -> Hint | str:
        """A valid signed punch on `path`: a PUNCH_ACK proves the path if it echoes a nonce we sent
        there; a PUNCH is answered on its own path, through the handshake only if that is the path
        in use (the handshake's answer goes there), otherwise here, without adopting the path."""
        proofs, peer = plan.proofs, plan.peer
        assert proofs is not None
        if len(msg.nonce) != NONCE_LENGTH:
            return "punch without a nonce"
        if msg.nonce in proofs.seen:
            return "replayed punch"
        is_ack = type(msg) is ExtPunchAck
        if is_ack and proofs.sent.get(msg.echo) != path:
            return "PUNCH_ACK that echoes no nonce sent to its address"
        proofs.seen.add(msg.nonce)
        proofs.echo[path] = msg.nonce
        if is_ack:
            proofs.proven.add(path)
            if peer.connected:
                self._follow(plan, *path)
            else:
                self._use(plan, path)
        elif peer.connected:
            self._follow(plan, *path)
        if not is_ack and path != (peer.address, peer.via):
            data = self._signed(plan, ExtPunchAck, path)
            # Sent outside the handshake: it only ever answers on the path in use, and this path
            # stays unused until a PUNCH_ACK from it echoes our nonce.
            self._send(Transmit(data, path[0], MessageKind.PUNCH_ACK, path[1]))
            return "PUNCH answered on an unproven path"
        label = ("PUNCH_ACK" if is_ack else "PUNCH") + ("" if path[0] == peer.endpoint else f" from {path[0]}")
        return (PeerInput.ACK if is_ack else PeerInput.SYN), label

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
        self._moved = self._moved or peer.via != 0
        peer.remote = None if address == peer.endpoint else address
        peer.technique = plan.labels.get(path, peer.technique)

    def _follow(self, plan: _Plan, source: Endpoint, via: int) -> None:
        """After connecting, the controlled peer sends where the controlling peer's datagrams come from."""
        path = (source, via)
        if plan.proofs is not None and path not in plan.proofs.proven:
            return  # with a secret only a path a PUNCH_ACK proved is ever used
        if not plan.controlling and path in plan.labels and path != (plan.peer.address, plan.peer.via):
            self._use(plan, path)

    # --- probing ------------------------------------------------------------------------------

    def on_timer(self, now: float) -> list[Transmit]:
        """Start the sweeps that are due, then release the probe that is due."""
        for index in self._sweeps.pop_due(now):  # in the order of `_plans`
            self._sweep(self._order[index], now)
        return self._pacer.due(now, self._wanted)

    def next_timer(self) -> float | None:
        """The next sweep or probe, whichever is first."""
        sweep, probe = self._sweeps.earliest(), self._pacer.next_timer()
        if sweep is None or probe is None:
            return probe if sweep is None else sweep
        return min(sweep, probe)

    def sockets_wanted(self) -> int:
        """Extra local sockets wanted: the birthday sockets while punching, then those in use."""
        if self._sockets and self._still_punching():
            return self._sockets
        if not self._moved:
            return 0  # the max below over peers that all use socket 0
        return max((p.via for p in self.client.peers.values() if p.connected), default=0)

    def _still_punching(self) -> bool:
        """True while some extended peer is punched; resumes where the last call stopped."""
        order, i = self._order, self._punching_from
        while i < len(order) and order[i].peer.state not in (PeerState.PUNCHING, PeerState.ACKING):
            i += 1
        self._punching_from = i
        return i < len(order)

    def stop(self) -> None:
        """Connect is over or the client closed: no more sweeps or probes."""
        self._pacer.clear()
        for plan in self._plans.values():
            plan.next_sweep = None
        self._sweeps.clear()

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
        self._sweeps.set(self._orders[peer.endpoint], plan.next_sweep)
        if not self._wanted(peer.endpoint) or self._pacer.pending(peer.endpoint):
            return
        self._pacer.push(peer.endpoint, self._probes(plan), now)

    def _probes(self, plan: _Plan) -> list[Transmit]:
        listed, cfg, out = plan.peer.endpoint, self.config, []
        if Technique.PREDICTION in self.enabled:
            probe = self._prober(plan, PROBE_CODES[Technique.PREDICTION])
            for address in prediction_ports(listed, cfg.prediction_window, cfg.prediction_delta):
                plan.probed.setdefault(address, Technique.PREDICTION)
                out.append(Transmit(probe(address, 0), address, MessageKind.PUNCH))
        if Technique.BIRTHDAY in self.enabled:
            probe = self._prober(plan, PROBE_CODES[Technique.BIRTHDAY])
            roles = resolve_role(BirthdayRole(cfg.birthday_role), self.client.nat_hard)
            if BirthdayRole.HARD in roles and cfg.birthday_sockets > 1:
                # Our socket 0 already punches the listed endpoint: k sockets = it + k - 1 more.
                self._sockets = max(self._sockets, cfg.birthday_sockets - 1)
                out += [Transmit(probe(listed, j), listed, MessageKind.PUNCH, j)
                        for j in range(1, cfg.birthday_sockets)]
            if BirthdayRole.EASY in roles:
                if not plan.birthday:
                    ports = birthday_ports(listed.host, cfg.birthday_probes, cfg.birthday_ports, self.rng)
                    plan.birthday = [p for p in ports if p != listed]
                for address in plan.birthday:
                    plan.probed.setdefault(address, Technique.BIRTHDAY)
                    out.append(Transmit(probe(address, 0), address, MessageKind.PUNCH))
        return out

    def _prober(self, plan: _Plan, code: int) -> Callable[[Endpoint, int], bytes]:
        """The probe PUNCH per (address, socket): one shared message, or with a secret one signed
        afresh per destination, so that the answer's echo proves which probe hit."""
        if plan.proofs is None:
            data = self._punches(plan.peer.info.peer_id, code)[0]
            return lambda address, via: data
        return lambda address, via: self._signed(plan, ExtPunch, (address, via), code)
