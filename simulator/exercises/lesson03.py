"""Checks for lesson 3 (rendezvous): the server's replies, their order, expiry and the wire format.

Rule: the right answers come from the protocol machines themselves: `RendezvousServer` (ours),
`ReferenceServer` (the model of the Go reference) and `encode_ext`, each driven by hand with an
explicit clock, exactly as the lesson's cells drive them.
"""

from __future__ import annotations

from holepunch.protocol import RendezvousServer, ServerConfig
from holepunch.protocol.endpoint import Endpoint
from holepunch.protocol.events import PeerLeft
from holepunch.protocol.messages import ExtRegister, encode_ext
from holepunch.protocol.reference import ReferenceServer

from . import UNANSWERED, Feedback, not_yet, right
from .lesson00 import endpoint_answer, number_answer, unanswered

SESSION = b"class1"
PEERS = {
    "A": Endpoint("203.0.113.7", 40001),
    "B": Endpoint("198.51.100.20", 4000),
    "C": Endpoint("192.0.2.33", 51000),
}
"""The public endpoints the server sees for peers A, B and C (after their NATs)."""

JOINS = ((0.0, "C"), (0.1, "A"), (0.2, "B"))
"""Exercise 1: C, A and B register (plain M1) in this order (not the lesson's order, on purpose)."""
POLLS = JOINS + ((0.3, "C"), (0.4, "A"))
"""Exercise 2: ... and then C and A poll again."""
REFERENCE_POLLS = ((10.0, "A"), (25.0, "A"), (45.0, "A"))
"""Exercise 3: A polls the reference server three times."""
PEER_ID = bytes.fromhex("0102030405060708")


def plain_replies(polls: tuple[tuple[float, str], ...]) -> list[bytes]:
    """Feed plain registrations to our server (no keep-alives); return each reply's bytes."""
    server = RendezvousServer(ServerConfig(keepalive_interval=0))
    replies = []
    for now, letter in polls:
        server.handle_timer(now)
        server.receive_datagram(SESSION, PEERS[letter], now)
        replies.extend(t.data for t in server.datagrams_to_send(now))
    return replies


def reference_removal_time() -> float | None:
    """When the reference server first removes A, for all its polls in `REFERENCE_POLLS`."""
    server = ReferenceServer(keepalive=0)
    for now, letter in REFERENCE_POLLS:
        server.handle_timer(now)
        server.receive_datagram(SESSION, PEERS[letter], now)
        server.datagrams_to_send(now)
    while (due := server.get_timer()) is not None:
        server.handle_timer(due)
        while (event := server.next_event()) is not None:
            if isinstance(event, PeerLeft):
                return due
    return None


def _letters(answer: object) -> list[str] | None:
    """Peer letters from "CA", "C,A", ["C", "A"], endpoints, or the reply's own bytes."""
    if isinstance(answer, bytes):
        answer = answer.decode("ascii", "replace")
    if isinstance(answer, str):
        parts = answer.split(",") if ":" in answer else [c for c in answer if c.isalpha()]
    elif isinstance(answer, (list, tuple)) and not isinstance(answer, Endpoint):
        parts = list(answer)
    else:
        return None
    by_endpoint = {e: letter for letter, e in PEERS.items()}
    letters = []
    for part in parts:
        if isinstance(part, str) and part.strip().upper() in PEERS:
            letters.append(part.strip().upper())
            continue
        endpoint = endpoint_answer(part)
        if endpoint not in by_endpoint:
            return None
        letters.append(by_endpoint[endpoint])  # type: ignore[index]
    return letters


def check_reply_bytes(answer: object) -> Feedback:
    """Exercise 1: the exact bytes of the server's reply to the last registration of `JOINS`."""
    if unanswered(answer):
        return UNANSWERED
    expected, asker = plain_replies(JOINS)[-1], JOINS[-1][1]
    if answer == expected:
        return right(f"Yes: {expected!r}, {len(expected)} bytes: the others, oldest first, joined by commas.")
    if isinstance(answer, str):
        if answer.encode() == expected:
            return not_yet("That is the right text, but a datagram carries bytes: write it as b\"...\".")
        return not_yet("A datagram carries bytes: write your answer as b\"...\".")
    if not isinstance(answer, bytes):
        return not_yet(f"Write the reply as bytes, b\"...\", not {answer!r}.")
    if b" " in answer:
        return not_yet("The reference's format has no spaces: entries are joined by a bare comma.")
    letters, right_letters = _letters(answer), _letters(expected)
    if letters is not None and letters != right_letters and sorted(letters) == sorted(right_letters or []):
        return not_yet("Right members, wrong order: the least recently registered comes first.")
    if PEERS[asker].text.encode() in answer:
        return not_yet("The reply lists the OTHER members: never the one who asked.")
    return not_yet("Not these bytes. Each member is written HOST:PORT, as Endpoint.text prints it.")


def check_list_order(answer: object) -> Feedback:
    """Exercise 2: the peers listed by the reply to the last poll of `POLLS`, in order."""
    if unanswered(answer):
        return UNANSWERED
    given = _letters(answer)
    if given is None:
        return not_yet(f"Give the letters in order, such as [\"A\", \"B\"], not {answer!r}.")
    expected = _letters(plain_replies(POLLS)[-1])
    now, asker = POLLS[-1]
    if given == expected:
        return right(f"Yes: {', '.join(expected or [])}. Each registration moves its sender to the end of "
                     "the list, and a reply lists the others from the front.")
    if expected is not None and sorted(given) == sorted(expected):
        return not_yet("Right peers, wrong order: each registration moves its sender to the END of the list.")
    if asker in given:
        return not_yet("The reply lists the OTHER members: never the one who asked.")
    return not_yet(f"Not quite: who is in session class1 at {now:g} s besides {asker}?")


def check_reference_removal(answer: object) -> Feedback:
    """Exercise 3: the time at which the reference server first removes A."""
    if unanswered(answer):
        return UNANSWERED
    expected = reference_removal_time()
    value = number_answer(answer)
    if value is None:
        return not_yet(f"Give a time in seconds, such as 12.5, not {answer!r}.")
    if expected is not None and abs(value - expected) < 1e-6:
        return right(f"Yes: {expected:g} s. The reference fixes each registration's removal at 40 s after "
                     "it, whatever came later, so A vanishes although it polled since (the flicker).")
    if abs(value - (REFERENCE_POLLS[-1][0] + 40.0)) < 1e-6:
        return not_yet("That is when OUR server would expire A (sliding expiry). The reference's is fixed.")
    return not_yet(f"Not {value:g} s. Each registration schedules a removal 40 s later: which comes first?")


def register_length() -> int:
    """Exercise 4's answer: the size of ExtRegister(session=SESSION, expected=2)."""
    return len(encode_ext(ExtRegister(SESSION, PEER_ID, 2)))


def check_register_length(answer: object) -> Feedback:
    """Exercise 4: how many bytes the extended registration for `class1`, expecting 2, has."""
    if unanswered(answer):
        return UNANSWERED
    value = number_answer(answer)
    if value is None or value != int(value):
        return not_yet(f"Give a whole number of bytes, not {answer!r}.")
    expected = register_length()
    if value == expected:
        return right(f"Yes: {expected} bytes: 6 of header, then 3 of tag and length before each of the "
                     "three values (6 + 8 + 2 bytes).")
    if value == expected - 9:
        return not_yet("Each TLV field has 3 bytes before its value: a tag byte and a 2-byte length.")
    if value == expected - 6:
        return not_yet("Do not forget the 6-byte header: magic, version and type.")
    return not_yet(f"Not {int(value)}. Add the header, then tag (1) + length (2) + value for each field.")
