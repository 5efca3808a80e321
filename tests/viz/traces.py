"""Hand-built traces for the viz tests: a simulated two-peer punch and a real-run-like one.

Addresses: peer A 10.0.1.2:4000 behind NAT A 198.51.100.10, peer B 10.0.2.2:4000 behind NAT B
198.51.100.20, server 203.0.113.1:9000. The simulated trace follows one packet per id through
send, NAT translation, link and delivery or drop.
"""

from __future__ import annotations

from holepunch.protocol.endpoint import Endpoint
from holepunch.trace import Action, Trace, TraceRecord

A_PRIV, A_PUB = Endpoint("10.0.1.2", 4000), Endpoint("198.51.100.10", 4000)
B_PRIV, B_PUB = Endpoint("10.0.2.2", 4000), Endpoint("198.51.100.20", 4000)
SERVER = Endpoint("203.0.113.1", 9000)
FILTERED = "filtered (address-and-port dependent)"
LANES = ["peer A", "NAT A", "server", "NAT B", "peer B"]
NAT = {"A": (A_PRIV, A_PUB), "B": (B_PRIV, B_PUB)}


def R(time: float, actor: str, action: Action, source: Endpoint | None = None,
      destination: Endpoint | None = None, kind: str = "", summary: str = "", detail: str = "",
      packet: int | None = None) -> TraceRecord:
    return TraceRecord(time, actor, action, source, destination, kind, summary, detail, packet)


def _outbound(t: float, side: str, dst: Endpoint, kind: str, pid: int) -> list[TraceRecord]:
    """peer X sends to `dst`; NAT X rewrites the source; the packet enters the internet link."""
    priv, pub = NAT[side]
    return [
        R(t, f"peer {side}", Action.SEND, priv, dst, kind, packet=pid),
        R(t + 0.001, f"NAT {side}", Action.TRANSLATE, pub, dst, kind, detail=f"{priv} -> {pub}", packet=pid),
        R(t + 0.001, f"link {side}", Action.LINK, pub, dst, kind, detail="0.010 s", packet=pid),
    ]


def _inbound(t: float, side: str, src: Endpoint, kind: str, pid: int) -> list[TraceRecord]:
    """NAT X rewrites the destination back to peer X, who receives."""
    priv, pub = NAT[side]
    return [
        R(t, f"NAT {side}", Action.TRANSLATE, src, priv, kind, detail=f"{pub} -> {priv}", packet=pid),
        R(t + 0.001, f"peer {side}", Action.RECEIVE, src, priv, kind, packet=pid),
    ]


def simulated_punch() -> Trace:
    """Registrations, peer lists, A's first SYN dropped at NAT B, B's SYN through, ACKs, connects.

    Arrows (lane changes): register 2+2, peer-list 2+2, syn 2 (dropped) + 3, ack 3+3 = 19.
    """
    t = Trace()
    t.extend(_outbound(0.000, "A", SERVER, "register", 1))
    t.append(R(0.021, "server", Action.RECEIVE, A_PUB, SERVER, "register", packet=1))
    t.extend(_outbound(0.005, "B", SERVER, "register", 2))
    t.append(R(0.026, "server", Action.RECEIVE, B_PUB, SERVER, "register", packet=2))
    t.append(R(0.030, "peer A", Action.TIMER, summary="retransmit"))
    t.append(R(0.040, "server", Action.SEND, SERVER, A_PUB, "peer-list", packet=3))
    t.extend(_inbound(0.060, "A", SERVER, "peer-list", 3))
    t.append(R(0.041, "server", Action.SEND, SERVER, B_PUB, "peer-list", packet=4))
    t.extend(_inbound(0.061, "B", SERVER, "peer-list", 4))
    t.extend(_outbound(0.070, "A", B_PUB, "syn", 5))
    t.append(R(0.091, "NAT B", Action.DROP, A_PUB, B_PUB, "syn", detail=FILTERED, packet=5))
    t.extend(_outbound(0.075, "B", A_PUB, "syn", 6))
    t.extend(_inbound(0.096, "A", B_PUB, "syn", 6))
    t.extend(_outbound(0.100, "A", B_PUB, "ack", 7))
    t.extend(_inbound(0.121, "B", A_PUB, "ack", 7))
    t.append(R(0.122, "peer B", Action.EVENT, kind="PeerConnected", summary="peer A at 198.51.100.10:4000"))
    t.extend(_outbound(0.125, "B", A_PUB, "ack", 8))
    t.extend(_inbound(0.146, "A", B_PUB, "ack", 8))
    t.append(R(0.147, "peer A", Action.EVENT, kind="PeerConnected", summary="peer B at 198.51.100.20:4000"))
    t.records.sort(key=lambda r: r.time)  # a simulator emits in time order
    return t


LO_A, LO_B, LO_SERVER = Endpoint("127.0.0.1", 5001), Endpoint("127.0.0.1", 5002), Endpoint("127.0.0.1", 9000)


def real_run() -> Trace:
    """What the asyncio driver records on loopback: SEND/RECEIVE/EVENT only, no packet ids.

    8 matched arrows (2 registers, 2 peer lists, 2 SYNs, 2 ACKs) plus one keepalive from A that
    never arrived (drawn as a stub toward the server).
    """
    def hop(t: float, sender: str, src: Endpoint, receiver: str, dst: Endpoint, kind: str) -> list[TraceRecord]:
        return [R(t, sender, Action.SEND, src, dst, kind), R(t + 0.0004, receiver, Action.RECEIVE, src, dst, kind)]

    t = Trace()
    t.extend(hop(0.000, "peer A", LO_A, "server", LO_SERVER, "register"))
    t.extend(hop(0.002, "peer B", LO_B, "server", LO_SERVER, "register"))
    t.extend(hop(0.003, "server", LO_SERVER, "peer A", LO_A, "peer-list"))
    t.extend(hop(0.004, "server", LO_SERVER, "peer B", LO_B, "peer-list"))
    t.extend(hop(0.006, "peer A", LO_A, "peer B", LO_B, "syn"))
    t.extend(hop(0.007, "peer B", LO_B, "peer A", LO_A, "syn"))
    t.extend(hop(0.008, "peer A", LO_A, "peer B", LO_B, "ack"))
    t.extend(hop(0.009, "peer B", LO_B, "peer A", LO_A, "ack"))
    t.append(R(0.0095, "peer A", Action.EVENT, kind="PeerConnected", summary="127.0.0.1:5002"))
    t.append(R(0.0096, "peer B", Action.EVENT, kind="PeerConnected", summary="127.0.0.1:5001"))
    t.append(R(0.010, "peer A", Action.SEND, LO_A, LO_SERVER, "keepalive"))
    t.records.sort(key=lambda r: r.time)
    return t
