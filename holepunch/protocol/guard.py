"""Per-source guards of the rendezvous server: request rate, amplification budget, refusal log,
and the pacing of its keep-alives.

Rule: a server on a public address stays cheap and bounded under any flood. Every request is
charged to one *account*: the `Member` it refreshes (the state lives on the member, so a known
member's poll needs no lookup), or else, for a request outside any membership (a join, a cookie
request), a `SourceState` made for that request. An account has a request rate (GCRA: a token
bucket kept as one timestamp) and an amplification credit: an address not yet proved by a cookie
is sent at most `amplification_factor` times the bytes received from it, counted cumulatively
per account (RFC 9000 §8). The rate of requests outside memberships is remembered per source in a
table of timestamps. Refusals are counted by reason and reported at most once per source and
reason per interval. Every table holds at most `ServerConfig.max_tracked_sources` entries; the
least recently used one goes first.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from .config import ServerConfig
from .cookie import COOKIE_LENGTH
from .endpoint import Endpoint
from .events import Event, RequestRefused
from .messages import MAX_ID_LENGTH

UNLIMITED = math.inf
"""The credit of a proved address (and of every address when `amplification_factor` is None)."""

RATE_LIMITED = "rate-limited"
AMPLIFICATION = "amplification"
BAD_COOKIE = "bad-cookie"
"""Refusal reasons of this module (keys of `ServerStats.refused`, with the server's limits)."""

_K = TypeVar("_K")
_V = TypeVar("_V")

_DEFAULTS = ServerConfig()
_CHALLENGE = 6 + 3 + COOKIE_LENGTH
"""Bytes of the ExtCookie that goes with the list to an address not proved yet."""


def padding_to_earn(registration: int, answer: int, limit: int = MAX_ID_LENGTH) -> int:
    """Zero bytes a `registration`-byte request must add so that, under the default budget, it
    pays for an `answer`-byte list and the cookie sent with it (the client's side of the rule,
    as QUIC pads a first Initial): the list then needs no cookie round trip first. Capped so the
    request stays within `limit`, the longest ID the reference server answers."""
    factor, overhead = _DEFAULTS.amplification_factor or 1.0, _DEFAULTS.datagram_overhead
    needed = math.ceil((answer + _CHALLENGE + 2 * overhead) / factor) - overhead
    field = 3  # the PADDING field's own header
    room = limit - registration - field
    return max(0, min(needed - registration - field, room))


class Account(Protocol):
    """What the guards need of whatever a request is charged to (`Member` or `SourceState`)."""

    tat: float
    credit: float


class SourceState:
    """The account of one request outside any membership: the rate's timestamp after it, and
    the credit it earned. Made per request: between requests a source keeps only its timestamp."""

    __slots__ = ("credit", "tat")

    def __init__(self, tat: float, credit: float) -> None:
        self.tat = tat
        self.credit = credit


class Guard:
    """The rate limit, the amplification budget and the refusal log of one server."""

    def __init__(self, config: ServerConfig, refused: Counter[str], events: deque[Event]) -> None:
        rate = config.rate_limit
        self.interval = 0.0 if rate is None else 1.0 / rate
        """Seconds one request adds to its account's theoretical arrival time (GCRA's T)."""
        self.tolerance = math.inf if rate is None else (config.rate_burst - 1) * self.interval + 1e-9
        """How far the arrival time may run ahead of now: `rate_burst` - 1 requests (GCRA's tau),
        plus a nanosecond, so that float rounding never refuses a request that is exactly on time."""
        self.per_host = rate is not None and config.rate_limit_key == "host"
        """Rate-limit by IP address alone (one bucket per host) instead of per endpoint."""
        factor = config.amplification_factor
        self.factor = 0.0 if factor is None else factor
        self.initial_credit = UNLIMITED if factor is None else 0.0
        self.overhead = config.datagram_overhead
        self._cap = config.max_tracked_sources
        self._log_interval = config.refusal_log_interval
        self._refused = refused
        self._events = events
        # Timestamps only (floats are no objects the garbage collector tracks): a flood of fresh
        # registrations from new sources costs a dict entry each, and no collector time.
        self._sources: OrderedDict[Endpoint, float] = OrderedDict()
        self._hosts: OrderedDict[str, float] = OrderedDict()
        self._log: OrderedDict[tuple[Endpoint, str], list[float]] = OrderedDict()
        """(source, reason) -> [time last reported, refusals suppressed since]."""

    def tracked(self) -> dict[str, int]:
        """Entries held in each table (each at most `max_tracked_sources`)."""
        return {"sources": len(self._sources), "hosts": len(self._hosts), "refusal_log": len(self._log)}

    # --- request rate -------------------------------------------------------------------------

    def admit_source(self, source: Endpoint, now: float) -> float | None:
        """Charge a request outside any membership to `source`'s bucket in the table: the
        bucket's timestamp after it, or None (counted) if over the rate."""
        if self.per_host:
            return self._gcra(self._hosts, source.host, source, now)
        sources = self._sources  # _gcra inlined for the common case: a flood of joins comes here
        tat = sources.get(source)
        if tat is None:
            if len(sources) >= self._cap:
                sources.popitem(last=False)
            tat = sources[source] = now + self.interval
            return tat
        return self._gcra(sources, source, source, now)

    def admit(self, member: Account, source: Endpoint, now: float) -> bool:
        """Charge one request to `member`'s own bucket (or its host's); False, counted, if over.

        GCRA (ITU-T I.371, the "virtual scheduling" form of a token bucket): each request moves
        the theoretical arrival time `tat` one interval on; a request that finds it more than
        `tolerance` ahead of now would have found the bucket empty, and changes nothing."""
        if self.per_host:
            return self._gcra(self._hosts, source.host, source, now) is not None
        tat = member.tat
        if tat - now > self.tolerance:
            self.refuse(source, RATE_LIMITED, now)
            return False
        member.tat = (tat if tat > now else now) + self.interval
        return True

    def _gcra(self, table: OrderedDict[_K, float], key: _K, source: Endpoint, now: float) -> float | None:
        tat = table.get(key)
        if tat is None:  # a new bucket is full: admitted
            if len(table) >= self._cap:
                table.popitem(last=False)
            tat = table[key] = now + self.interval
            return tat
        table.move_to_end(key)
        if tat - now > self.tolerance:
            self.refuse(source, RATE_LIMITED, now)
            return None
        tat = table[key] = (tat if tat > now else now) + self.interval
        return tat

    def give_back(self, source: Endpoint, tat: float) -> None:
        """A member left: its source's bucket keeps the member's timestamp if that is later, so
        leaving and joining again buys no fresh bucket."""
        old = self._sources.get(source)
        if old is None:
            _remember(self._sources, source, tat, self._cap)
        elif tat > old:
            self._sources[source] = tat

    # --- amplification ------------------------------------------------------------------------

    def earn(self, account: Account, size: int) -> None:
        """Credit `account` for a received datagram of `size` payload bytes."""
        account.credit += (size + self.overhead) * self.factor

    def spend(self, account: Account, size: int, destination: Endpoint, now: float) -> bool:
        """Debit a datagram of `size` bytes to `destination`; False, counted, if over budget."""
        cost = size + self.overhead
        credit = account.credit
        if credit < cost:
            self.refuse(destination, AMPLIFICATION, now)
            return False
        account.credit = credit - cost
        return True

    @staticmethod
    def verify(account: Account) -> None:
        """The address behind `account` proved it receives what we send: no budget from now on."""
        account.credit = UNLIMITED

    # --- refusals -----------------------------------------------------------------------------

    def refuse(self, source: Endpoint, reason: str, now: float, session: bytes = b"") -> None:
        """Count a refusal; report it unless this source had one for this reason lately.

        A report carries how many refusals of that source and reason went unreported since the
        previous one, so a log shows every flood once per interval, with its size."""
        self._refused[reason] += 1
        key = (source, reason)
        entry = self._log.get(key)
        if entry is None:
            _remember(self._log, key, [now, 0], self._cap)
            self._events.append(RequestRefused(source, reason, 0, session))
        elif now - entry[0] >= self._log_interval:
            self._events.append(RequestRefused(source, reason, int(entry[1]), session))
            entry[0], entry[1] = now, 0
            self._log.move_to_end(key)
        else:
            entry[1] += 1


def _remember(table: OrderedDict[_K, _V], key: _K, value: _V, cap: int) -> _V:
    """Insert a new entry, first evicting the least recently used one if the table is full."""
    if len(table) >= cap:
        table.popitem(last=False)
    table[key] = value
    return value


# --- keep-alive pacing ----------------------------------------------------------------------------


class KeepaliveQueue(Generic[_K]):
    """Members in the order their keep-alives fall due, each `interval` after its own previous
    one (or its join), instead of everyone on one tick (the reference's burst).

    Every member waits the same interval, so appending keeps the queue sorted by due time. It is
    a deque of members plus a deque of runs [due, count]: members queued at one `now` share a run
    (a driver feeds a whole batch of datagrams at one time), so a member costs about 8 bytes
    where an OrderedDict with a due time each cost 130. A removed member is skipped when it
    comes up (`alive` says which are still members); once the removed outnumber half the live
    ones the queue is rebuilt, so they never pin much memory."""

    def __init__(self, interval: float, alive: Callable[[_K], bool]) -> None:
        self.interval = interval
        self._alive = alive
        self._members: deque[_K] = deque()
        self._runs: deque[list[float]] = deque()  # [due, count]
        self._removed = 0

    def __len__(self) -> int:
        return len(self._members) - self._removed

    def add(self, member: _K, now: float) -> None:
        """Queue `member`: its keep-alive is due one interval from `now`."""
        self._members.append(member)
        due, runs = now + self.interval, self._runs
        if runs and runs[-1][0] == due:
            runs[-1][1] += 1
        else:
            runs.append([due, 1])

    def removed(self) -> None:
        """A queued member is no longer alive: it will be skipped (and compacted away)."""
        self._removed += 1
        if self._removed > 1024 + len(self) // 2:
            self._compact()

    def next_due(self) -> float | None:
        """When the earliest live member's keep-alive is due, or None."""
        while self._members and not self._alive(self._members[0]):
            self._pop()
            self._removed -= 1
        return self._runs[0][0] if self._runs else None

    def take_due(self, now: float, limit: int) -> list[_K]:
        """Up to `limit` live members whose keep-alive is due by `now`, queued again for the next."""
        taken: list[_K] = []
        members, runs = self._members, self._runs
        while members and len(taken) < limit and runs[0][0] <= now:
            member = self._pop()
            if self._alive(member):
                taken.append(member)
            else:
                self._removed -= 1
        for member in taken:
            self.add(member, now)
        return taken

    def _pop(self) -> _K:
        run = self._runs[0]
        run[1] -= 1
        if not run[1]:
            self._runs.popleft()
        return self._members.popleft()

    def _compact(self) -> None:
        members, runs = self._members, self._runs
        self._members, self._runs, self._removed = deque(), deque(), 0
        for due, count in runs:
            for _ in range(int(count)):
                member = members.popleft()
                if self._alive(member):
                    self.add(member, due - self.interval)
