"""States and transition tables of the TCP peer client: module-level data, reused by code and tests.

Rule: every state is an Enum and every move is a lookup in one of these tables (h11 `_state.py`);
a move the table does not list raises `TransitionError`. The client's table is the UDP client's
plus the one TCP trigger, so the notebook's state diagrams draw both from data.
"""

from __future__ import annotations

import enum

from .states import CLIENT_TRANSITIONS, ClientState, ClientTrigger, TransitionError


class TcpTrigger(enum.Enum):
    """The one client trigger TCP adds to `ClientTrigger`."""

    ERROR = "socket or server error"


CS = ClientState
TCP_CLIENT_TRANSITIONS: dict[tuple[ClientState, ClientTrigger | TcpTrigger], ClientState] = {
    (state, trigger): target for (state, trigger), target in CLIENT_TRANSITIONS.items()
}  # the UDP client's table, plus:
TCP_CLIENT_TRANSITIONS[(CS.REGISTERING, TcpTrigger.ERROR)] = CS.INCOMPLETE
TCP_CLIENT_TRANSITIONS[(CS.PUNCHING, TcpTrigger.ERROR)] = CS.INCOMPLETE


class StreamState(enum.Enum):
    """Where one TCP connection to a peer (or to the server) is."""

    CONNECTING = "connecting"
    OPEN = "open"  # TCP is up; HELLO not yet verified
    VERIFIED = "verified"  # HELLO exchanged both ways
    SELECTED = "selected"  # the one stream kept for this peer
    CLOSED = "closed"


class StreamInput(enum.Enum):
    """What moves a stream."""

    CONNECTED = "connected"
    FAILED = "connect failed"
    HELLO = "valid HELLO"
    SELECT = "SELECT"
    LOST = "connection lost"
    CLOSE = "we close"


SS, SI = StreamState, StreamInput
STREAM_TRANSITIONS: dict[tuple[StreamState, StreamInput], StreamState] = {
    (SS.CONNECTING, SI.CONNECTED): SS.OPEN,
    (SS.CONNECTING, SI.FAILED): SS.CLOSED,
    (SS.OPEN, SI.HELLO): SS.VERIFIED,
    (SS.VERIFIED, SI.SELECT): SS.SELECTED,
    **{(s, SI.LOST): SS.CLOSED for s in SS if s is not SS.CLOSED},
    **{(s, SI.CLOSE): SS.CLOSED for s in SS if s is not SS.CLOSED},
}


class TcpPeerState(enum.Enum):
    """Where one listed peer is."""

    PUNCHING = "punching"
    CONNECTED = "connected"
    FAILED = "failed"
    DISCONNECTED = "disconnected"


class TcpPeerInput(enum.Enum):
    """What moves a peer."""

    SELECTED = "stream selected"
    DEADLINE = "deadline"
    ERROR = "local error"
    LOST = "stream lost"


TP, TI = TcpPeerState, TcpPeerInput
TCP_PEER_TRANSITIONS: dict[tuple[TcpPeerState, TcpPeerInput], TcpPeerState] = {
    (TP.PUNCHING, TI.SELECTED): TP.CONNECTED,
    (TP.PUNCHING, TI.DEADLINE): TP.FAILED,
    (TP.PUNCHING, TI.ERROR): TP.FAILED,
    (TP.CONNECTED, TI.LOST): TP.DISCONNECTED,
}


def step(table: dict, state: enum.Enum, trigger: enum.Enum) -> enum.Enum:  # type: ignore[type-arg]
    """The state `trigger` moves `state` to in `table`; `TransitionError` if none."""
    try:
        return table[(state, trigger)]  # type: ignore[no-any-return]
    except KeyError:
        raise TransitionError(f"{trigger.value!r} is not allowed in state {state.value}") from None
