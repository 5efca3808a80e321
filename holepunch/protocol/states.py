"""States and transition tables of the peer client, shared by code, tests and diagrams.

Rule: the client changes state only through these tables (h11 style), so the notebook's state
diagrams are drawn from exactly what runs.
"""

from __future__ import annotations

import enum


class ClientState(enum.Enum):
    """Where the whole client is."""

    IDLE = "idle"
    REGISTERING = "registering"
    PUNCHING = "punching"
    ESTABLISHED = "established"
    INCOMPLETE = "incomplete"
    CLOSED = "closed"


class ClientTrigger(enum.Enum):
    """What moves the client."""

    START = "start"
    PEERS_FOUND = "enough peers listed"
    WAIT_EXPIRED = "wait timeout"
    ALL_CONNECTED = "all peers connected"
    DEADLINE = "deadline"
    REFUSED = "server refused"
    CLOSE = "close"


class PeerState(enum.Enum):
    """Where the handshake with one peer is."""

    PUNCHING = "punching"
    ACKING = "acking"
    CONNECTED = "connected"
    FAILED = "failed"


class PeerInput(enum.Enum):
    """What the handshake with one peer reacts to."""

    SYN = "SYN"
    ACK = "ACK"
    DATA = "data"
    DEADLINE = "deadline"


CS, CT = ClientState, ClientTrigger
CLIENT_TRANSITIONS: dict[tuple[ClientState, ClientTrigger], ClientState] = {
    (CS.IDLE, CT.START): CS.REGISTERING,
    (CS.REGISTERING, CT.PEERS_FOUND): CS.PUNCHING,
    (CS.REGISTERING, CT.WAIT_EXPIRED): CS.PUNCHING,
    (CS.REGISTERING, CT.DEADLINE): CS.INCOMPLETE,
    (CS.REGISTERING, CT.REFUSED): CS.INCOMPLETE,
    (CS.PUNCHING, CT.ALL_CONNECTED): CS.ESTABLISHED,
    (CS.PUNCHING, CT.DEADLINE): CS.INCOMPLETE,
    **{(state, CT.CLOSE): CS.CLOSED for state in CS if state is not CS.CLOSED},
}

PS, PI = PeerState, PeerInput
PEER_TRANSITIONS: dict[tuple[PeerState, PeerInput], PeerState] = {
    (PS.PUNCHING, PI.SYN): PS.ACKING,  # their SYN got through: answer ACK at once
    (PS.PUNCHING, PI.ACK): PS.CONNECTED,
    (PS.PUNCHING, PI.DEADLINE): PS.FAILED,
    (PS.ACKING, PI.SYN): PS.ACKING,
    (PS.ACKING, PI.ACK): PS.CONNECTED,
    (PS.ACKING, PI.DATA): PS.CONNECTED,  # data means they saw our ACK: both ways work
    (PS.ACKING, PI.DEADLINE): PS.FAILED,
    (PS.CONNECTED, PI.SYN): PS.CONNECTED,
    (PS.CONNECTED, PI.ACK): PS.CONNECTED,
    (PS.CONNECTED, PI.DATA): PS.CONNECTED,
}


class TransitionError(RuntimeError):
    """A trigger that the tables do not allow in the current state."""


def next_client_state(state: ClientState, trigger: ClientTrigger) -> ClientState:
    """Look up the client's next state; raises `TransitionError` if not allowed."""
    try:
        return CLIENT_TRANSITIONS[(state, trigger)]
    except KeyError:
        raise TransitionError(f"{trigger.value!r} is not allowed in state {state.value}") from None
