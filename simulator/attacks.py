"""Attacks in the simulator: reflection and amplification through the rendezvous server.

Rule: the attacker is only a host that forges its source address (`Host.send(spoof=...)`, as
anyone can where no BCP 38 filter stops it, RFC 2827); the server is the real
`RendezvousServer` with whatever `ServerConfig` it is given, its members are real `PeerClient`s,
the forged bytes are a real client's first registration, and every figure is counted off what
the network delivered. Bytes "on the wire" add the IPv4 and
UDP headers (28 bytes) to each payload: that is what floods a victim's link, and what the
server's budget counts (`ServerConfig.datagram_overhead`, RFC 9000 §8).
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from holepunch.protocol import ClientConfig, PeerClient, RendezvousServer, ServerConfig
from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Trace

from .driver import MachineDriver
from .network import Network
from .scenarios import PEER_PORT, SERVER_IP, SERVER_PORT

HEADER_BYTES = 28
"""IPv4 (20) plus UDP (8) header bytes per datagram."""
MESSAGES = {"plain": "register", "extended": "ext-register"}
"""The registration the attacker forges -> its trace kind."""
VICTIM_PORT = 27015  # a game server, say: anything listening on UDP
MAX_SESSION = 240  # the public /24 has about 250 free addresses, less server, victim, attacker


class Sink:
    """The victim's socket: answers nothing, counts what arrives, by sender."""

    def __init__(self) -> None:
        self.datagrams: Counter[Endpoint] = Counter()
        self.payload: Counter[Endpoint] = Counter()
        self.largest: Counter[Endpoint] = Counter()

    def on_datagram(self, data: bytes, source: Endpoint, packet: int) -> None:
        self.datagrams[source] += 1
        self.payload[source] += len(data)
        self.largest[source] = max(self.largest[source], len(data))


@dataclass(frozen=True)
class AmplificationReport:
    """One reflection attack: what the attacker spent, what the victim got, what the server saw."""

    message: str
    """The forged registration: "plain" (the session ID, as a reference client sends it) or
    "extended" (our ExtRegister)."""
    protected: bool
    """True when the server ran with an amplification budget (`amplification_factor` set)."""
    session_size: int
    """Members of the session the attacker names: each reply lists them all."""
    requests: int
    """Forged datagrams sent (all with the victim's address as source)."""
    attacker_bytes: int
    """Payload bytes of those datagrams."""
    victim_datagrams: int
    """Datagrams the victim received from the server."""
    victim_bytes: int
    """Payload bytes of those datagrams."""
    from_peers: int
    """Datagrams the victim received from session members (punching it, once listed)."""
    request_size: int
    """Payload bytes of one forged request."""
    largest_reply: int
    """Payload bytes of the largest datagram the server sent the victim (0 if none)."""
    server_counted: Mapping[str, Any] = field(repr=False)
    """The server's `ServerStats` at the end, as a dict (refusals by reason included)."""
    trace: Trace = field(repr=False, compare=False)

    @property
    def amplification(self) -> float:
        """Bytes on the wire to the victim per byte on the wire from the attacker, over the whole
        attack: the reflection's bandwidth gain, and the quantity RFC 9000 §8 caps at 3."""
        sent = self.attacker_bytes + HEADER_BYTES * self.requests
        got = self.victim_bytes + HEADER_BYTES * self.victim_datagrams
        return got / sent if sent else 0.0

    @property
    def payload_amplification(self) -> float:
        """The same ratio counting payloads only (headers left out)."""
        return self.victim_bytes / self.attacker_bytes if self.attacker_bytes else 0.0

    def to_text(self) -> str:
        """A few lines for a lesson: spent, received, factor, the server's refusals."""
        guard = "with" if self.protected else "without"
        refused = dict(self.server_counted.get("refused", {}))
        return (f"{self.requests} forged {self.message} registrations of {self.request_size} bytes "
                f"({self.attacker_bytes} bytes), session of {self.session_size}, server {guard} "
                f"an amplification budget:\n"
                f"  the victim received {self.victim_datagrams} datagrams, {self.victim_bytes} bytes "
                f"(largest {self.largest_reply}) from the server and {self.from_peers} from members\n"
                f"  amplification {self.amplification:.1f}x on the wire "
                f"({self.payload_amplification:.1f}x in payload); server refusals: {refused or 'none'}\n")


def reflection_attack(config: ServerConfig | None = None, *, session_size: int = 50,
                      requests: int = 50, rate: float = 50.0, message: str = "plain",
                      session: bytes = b"class", members_expect: int | None = None,
                      watch: float = 1.0, seed: int = 0) -> AmplificationReport:
    """A class of `session_size` peers is registered; an attacker then sends `requests`
    registrations for the same session, `rate` a second, forged to come from a victim.

    Members are real `PeerClient`s that expect `members_expect` others (default: more than will
    ever come, so they keep refreshing and never punch; `session_size` makes the victim the
    missing one, and then every member punches it too). The rate stays under the server's
    default rate limit, so what is measured is the amplification alone. The run goes on for
    `watch` seconds after the last forged request (members punch for up to 40 s).
    """
    if message not in MESSAGES:
        raise ValueError(f"message must be one of {', '.join(MESSAGES)}, got {message!r}")
    if not 1 <= session_size <= MAX_SESSION:
        raise ValueError(f"session_size must be 1..{MAX_SESSION}, got {session_size}")
    if requests < 1 or not rate > 0:
        raise ValueError(f"need at least one request at a positive rate, got {requests} at {rate}")
    net = Network(seed=seed)
    server = MachineDriver(net.add_host("server", ip=SERVER_IP, role="server"), SERVER_PORT,
                           RendezvousServer(config))
    _class(net, server.endpoint, session, session_size, members_expect, seed)
    victim = net.add_host("victim", role="victim")
    sink = Sink()
    target = victim.bind(VICTIM_PORT, sink)
    attacker = net.add_host("attacker", role="attacker")
    payload = _forged(message, session, server.endpoint, random.Random(f"{seed}:attacker"))
    start = 0.5 + 0.002 * session_size  # every member has joined (and proved its address) by then
    kind = MESSAGES[message]

    def forge() -> None:
        attacker.send(PEER_PORT, payload, server.endpoint, kind, spoof=target)

    for i in range(requests):
        net.scheduler.call_at(start + i / rate, forge)
    server.start(0.0)
    net.scheduler.run(start + (requests - 1) / rate + watch)
    return _report(message, config, session_size, requests, payload, sink, server, net.trace)


def _class(net: Network, server: Endpoint, session: bytes, size: int, expect: int | None,
           seed: int) -> None:
    """`size` members on public addresses, started 2 ms apart, waiting quietly: they refresh
    their registration every 20 s (within the 40 s session timeout), so the run stays cheap."""
    config = ClientConfig(timeout=None, extended_refresh_interval=20.0)
    expected = size + 1000 if expect is None else expect
    for i in range(size):
        host = net.add_host(f"member {i + 1}", role="peer")
        machine = PeerClient(server, session, expected, config, rng=random.Random(f"{seed}:member:{i}"))
        MachineDriver(host, PEER_PORT, machine).start(0.002 * i)


def _forged(message: str, session: bytes, server: Endpoint, rng: random.Random) -> bytes:
    """The attacker's request: the first registration a real `PeerClient` sends (plain: the ID
    itself; extended: an ExtRegister, with no cookie yet); the simulator builds no message."""
    client = PeerClient(server, session, 1, ClientConfig(extension=message == "extended"), rng=rng)
    client.start(0.0)
    return bytes(client.datagrams_to_send(0.0)[0].data)


def _report(message: str, config: ServerConfig | None, size: int, requests: int, payload: bytes,
            sink: Sink, server: MachineDriver, trace: Trace) -> AmplificationReport:
    origin = server.endpoint
    stats = server.machine.stats  # type: ignore[attr-defined]
    # Shallow on purpose: dataclasses.asdict would rebuild each Counter from its (key, count) pairs.
    names = [f.name for f in dataclasses.fields(stats)] if dataclasses.is_dataclass(stats) else list(vars(stats))
    counted = {name: _plain(getattr(stats, name)) for name in names}
    protected = getattr(config or ServerConfig(), "amplification_factor", None) is not None
    from_peers = sum(n for source, n in sink.datagrams.items() if source != origin)
    return AmplificationReport(message, protected, size, requests, len(payload) * requests,
                               sink.datagrams[origin], sink.payload[origin], from_peers, len(payload),
                               sink.largest[origin], counted, trace)


def _plain(value: Any) -> Any:
    """A counter as a plain dict (a snapshot, not shared with the server)."""
    return dict(value) if isinstance(value, dict) else value
