"""The machine driver: runs one sans-IO protocol machine on a simulated host.

Rule: this is the sibling of the asyncio driver and has the same loop: feed one input (a
datagram, a timer, a request), drain the events, send the datagrams, re-arm exactly one timer at
`get_timer()`. It accepts ANY object with the machine interface (`receive_datagram`,
`handle_timer`, `get_timer`, `datagrams_to_send`, `next_event`, optionally `start`): our
`PeerClient` and `RendezvousServer`, or a model of the Go reference client. It knows nothing of
SYN, ACK or registrations; the protocol lives only in `holepunch.protocol`. A machine with
`sockets_wanted()` (birthday probing) gets that many extra ports on its host, numbered 1.. as
`Transmit.via` and the `via` argument of `receive_datagram`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action

from .network import Host
from .scheduler import Handle

MAX_FIRES_AT_ONE_TIME = 10_000  # a machine whose timer never advances would hang the run


class Machine(Protocol):
    """The interface shared by every protocol machine (aioquic's QuicConnection shape)."""

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def get_timer(self) -> float | None: ...
    def datagrams_to_send(self, now: float) -> list[Any]: ...
    def next_event(self) -> Any: ...


EventListener = Callable[[float, Any], None]


class MachineDriver:
    """Binds `machine` to `host:port` and drives it from the network's scheduler."""

    def __init__(self, host: Host, port: int, machine: Machine) -> None:
        self.host = host
        self.network = host.network
        self.scheduler = host.network.scheduler
        self.machine = machine
        self.port = port
        self.endpoint = host.bind(port, self)
        self.events: list[tuple[float, Any]] = []
        """Every event the machine reported, with the time it was drained."""
        self.listeners: list[EventListener] = []
        self.completed_at: float | None = None
        """Time of the machine's `ConnectCompleted` event, if any."""
        self._timer: Handle | None = None
        self._fires = (0.0, 0)
        self.extra_ports: list[int] = []
        """Ports of the extra sockets the machine asked for; `via` i is `extra_ports[i - 1]`."""
        self._sockets_wanted: Callable[[], int] | None = getattr(machine, "sockets_wanted", None)

    @property
    def name(self) -> str:
        """The host's name, which is the actor name in traces."""
        return self.host.name

    # --- inputs -------------------------------------------------------------------------------

    def start(self, at: float | None = None) -> Handle:
        """Call the machine's `start(now)` (if it has one) at time `at` (default: now)."""
        when = self.scheduler.now if at is None else at
        return self.scheduler.call_at(when, self._start)

    def _start(self) -> None:
        start = getattr(self.machine, "start", None)
        if start is not None:
            start(self.scheduler.now)
        self._pump(None)

    def on_datagram(self, data: bytes, source: Endpoint, packet: int) -> None:
        """A datagram arrived at our port: feed it in."""
        self.machine.receive_datagram(data, source, self.scheduler.now)
        self._pump(packet)

    def on_extra_datagram(self, via: int, data: bytes, source: Endpoint, packet: int) -> None:
        """A datagram arrived at extra socket `via`: feed it in with its socket index."""
        self.machine.receive_datagram(data, source, self.scheduler.now, via)  # type: ignore[call-arg]
        self._pump(packet)

    def apply(self, request: Callable[[Any, float], Any]) -> Any:
        """Run `request(machine, now)` (e.g. a `send` or `close`), then pump; returns its result."""
        result = request(self.machine, self.scheduler.now)
        self._pump(None)
        return result

    def _fire(self) -> None:
        now = self.scheduler.now
        self._timer = None
        at, count = self._fires
        self._fires = (now, count + 1 if at == now else 1)
        if self._fires[1] > MAX_FIRES_AT_ONE_TIME:
            raise RuntimeError(f"{self.name}: the machine's timer does not advance past {now}")
        if self.network.trace_timers:
            self.network.trace.emit((now, self.name, Action.TIMER, None, None, "", "", "", None))
        self.machine.handle_timer(now)
        self._pump(None)

    # --- the loop -----------------------------------------------------------------------------

    def _pump(self, packet: int | None) -> None:
        """Drain events, send datagrams, re-arm the one timer."""
        now = self.scheduler.now
        machine = self.machine
        event = machine.next_event()
        while event is not None:
            self._on_event(now, event, packet)
            event = machine.next_event()
        if self._sockets_wanted is not None and self._sockets_wanted() != len(self.extra_ports):
            self._resize(self._sockets_wanted())
        for transmit in machine.datagrams_to_send(now):
            data, destination = transmit[0], transmit[1]
            if type(destination) is not Endpoint:
                destination = Endpoint(*destination)  # a machine that speaks socket tuples
            kind = getattr(transmit, "kind", None)
            via = getattr(transmit, "via", 0)
            port = self.extra_ports[via - 1] if via else self.port
            self.host.send(port, data, destination, _kind_text(kind, data))
        self._arm(machine.get_timer(), now)

    def _resize(self, wanted: int) -> None:
        """Bind extra ports (the next free ones above ours) or release the ones beyond `wanted`."""
        while len(self.extra_ports) > wanted:
            self.host.sockets.pop(self.extra_ports.pop(), None)
        port = self.extra_ports[-1] if self.extra_ports else self.port
        while len(self.extra_ports) < wanted:
            port += 1
            if port > 65535:
                raise RuntimeError(f"{self.name}: no free port left for an extra socket")
            if port not in self.host.sockets:
                self.host.bind(port, _ExtraSocket(self, len(self.extra_ports) + 1))
                self.extra_ports.append(port)

    def _on_event(self, now: float, event: Any, packet: int | None) -> None:
        name = type(event).__name__
        self.events.append((now, event))
        self.network.trace.emit((now, self.name, Action.EVENT, None, None, name,
                                 describe_event(event), "", packet))
        if name == "ConnectCompleted" and self.completed_at is None:
            self.completed_at = now
        for listener in self.listeners:
            listener(now, event)

    def _arm(self, at: float | None, now: float) -> None:
        timer = self._timer
        if at is not None and at < now:
            at = now
        if timer is not None:
            if at is not None and timer.when == at:
                return  # already armed for that time
            timer.cancel()
            self._timer = None
        if at is not None:
            self._timer = self.scheduler.call_at(at, self._fire)

    def __repr__(self) -> str:
        return f"<MachineDriver {self.name} {self.endpoint} {type(self.machine).__name__}>"


class _ExtraSocket:
    """The receiver bound to one extra port: hands datagrams to the driver with their `via`."""

    __slots__ = ("driver", "via")

    def __init__(self, driver: MachineDriver, via: int) -> None:
        self.driver = driver
        self.via = via

    def on_datagram(self, data: bytes, source: Endpoint, packet: int) -> None:
        self.driver.on_extra_datagram(self.via, data, source, packet)


def _kind_text(kind: Any, data: bytes) -> str:
    """The trace kind of an outgoing datagram: the machine's own label when it gives one."""
    if kind is None:
        return "keepalive" if not data else "data"
    return str(getattr(kind, "value", kind))


def describe_event(event: Any) -> str:
    """An event's fields as stable `name=value` text (floats to the microsecond)."""
    if not dataclasses.is_dataclass(event):
        return repr(event)
    parts = []
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        if field.metadata.get("trace") == "omit-default" and value == field.default:
            continue  # a field added later, at its default: older traces stay as they were
        parts.append(f"{field.name}={_value_text(value)}")
    return " ".join(parts)


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, Endpoint):
        return str(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and hasattr(value, "endpoint"):
        return str(getattr(value, "endpoint"))  # a PeerInfo: its endpoint says enough
    if isinstance(value, bytes):
        return repr(value) if len(value) <= 24 else repr(value[:24]) + "..."
    return str(value)
