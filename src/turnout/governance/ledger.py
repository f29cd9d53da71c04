"""The budget-and-limits ledger: what a request may spend and how fast, decided in one step.

Before a call the gateway asks the ledger to `admit` it: reserve the estimated cost (integer
micro-dollars) against every budget the request touches (key, team, user, per-model key
budget...) and count it against every rate limit that applies (requests and tokens per minute,
parallel requests), all or nothing. A refusal is an exception naming the scope and limit that
refused, with what a 429 needs (`Retry-After`, the ``x-ratelimit-*`` figures). After the call
the gateway `settle`s the ticket with what was really consumed, which is always charged, even
above the budget's max (the tokens were served), or `release`s it when nothing was consumed.

Why reservations: a check of spent-so-far followed by a charge after the call lets every
concurrent request pass the check (LiteLLM's overspend across replicas). Here the estimate is
held while the request runs, so concurrent requests see each other's holds; the only overshoot
left is a request consuming more than its estimate, which `turnout.governance.estimate` bounds
by the request's ``max_tokens``.

Each hold is a lease with an expiry: a crashed instance's reservations, parallel-request leases
included, are reclaimed by the next operation on the same scope, with no sweeper. A budget's
period (``budget_duration``) is part of its state and rolls over lazily, inside the atomic
step, when the ledger's clock passes its end: spent goes back to 0, holds stay (their requests
are still running and will be charged to the new period).

`MemoryLedger` is the in-process implementation: exact for one process (asyncio runs each
operation without interruption). `turnout.governance.redis_ledger` is the shared one: exact
across workers and instances. Both pass one contract suite.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import os
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

#: Micro-dollars per dollar: every amount in the ledger is an integer count of them.
MICRO = 1_000_000
#: Largest amount or count the ledger accepts: Redis' Lua compares numbers as doubles, exact
#: up to 2**53 (nine billion dollars in micro-dollars).
LARGEST = 2**53
#: Requests and tokens are counted per minute of the ledger's clock.
MINUTE_MS = 60_000
#: Seconds a refused parallel request is told to wait: a lease ends when its request does.
PARALLEL_RETRY_AFTER = 1

LimitKind = Literal["requests", "tokens", "parallel_requests"]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|mo)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Period:
    """How often a budget resets: every `seconds` (from `anchor`, Unix seconds; from the
    budget's first use when None), or every `months` calendar months, at 00:00 UTC on the 1st."""

    seconds: int = 0
    months: int = 0
    anchor: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds > 0) == (self.months > 0) or min(self.seconds, self.months) < 0:
            raise ValueError("a period is a positive number of seconds or of months")

    @classmethod
    def parse(cls, text: str, anchor: int | None = None) -> Period:
        """LiteLLM's ``budget_duration``: ``30s``, ``30m``, ``30h``, ``30d`` or ``1mo``."""
        match = _DURATION.match(text)
        if match is None or int(match[1]) == 0:
            raise ValueError(f"budget_duration {text!r}: use a number and s, m, h, d or mo")
        count, unit = int(match[1]), match[2]
        if unit == "mo":
            return cls(months=count)
        return cls(seconds=count * _UNIT_SECONDS[unit], anchor=anchor)

    def bounds(self, now_ms: int, first_ms: int) -> tuple[int, int]:
        """Start and end (Unix ms) of the period holding `now_ms`; `first_ms` is when the budget
        was first used (the anchor of a period of seconds that names none)."""
        if self.months:
            year, month = _civil(now_ms // 86_400_000)
            index = year * 12 + month - 1
            index -= index % self.months
            return _month_start_ms(index), _month_start_ms(index + self.months)
        length = self.seconds * 1000
        anchor = first_ms if self.anchor is None else self.anchor * 1000
        start = anchor + (now_ms - anchor) // length * length
        return start, start + length


def _civil(days: int) -> tuple[int, int]:
    day = _EPOCH + dt.timedelta(days=days)
    return day.year, day.month


def _month_start_ms(index: int) -> int:
    return (dt.date(index // 12, index % 12 + 1, 1) - _EPOCH).days * 86_400_000


def _amount(name: str, value: int, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < LARGEST:
        raise ValueError(f"{name} must be an integer from {low} below 2**53, not {value!r}")


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget a request spends from. `scope` names it (``key:<id>``, ``team:<id>``,
    ``user:<id>``, ``key:<id>:model:<name>``...; never a secret: scopes appear in refusals and
    in Redis key names) and is its identity in the ledger; `max` is in
    micro-dollars; `period` None never resets. `seed`: spend already recorded for the scope in
    its current period (by the store of record), taken only when the ledger holds no state for
    it (first use, or a Redis that lost its data): it is never added twice."""

    scope: str
    max: int
    period: Period | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _amount("max", self.max)
        _amount("seed", self.seed)
        if not self.scope:
            raise ValueError("a budget names its scope")


@dataclass(frozen=True, slots=True)
class Limits:
    """The rate limits of one scope (None: no such limit): requests and tokens per minute, and
    requests in flight at once."""

    scope: str
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "parallel"):
            value = getattr(self, name)
            if value is not None:
                _amount(name, value, low=1)
        if not self.scope:
            raise ValueError("limits name their scope")


@dataclass(frozen=True, slots=True)
class Ask:
    """What one request asks of the ledger: `cost` (estimated micro-dollars) held against each
    budget, `tokens` (estimated) against each TPM limit, one request against each RPM and
    parallel limit. `partition`: the root of the request's principal chain (its team, or its key
    when it has none), which a partitioned Redis ledger places its keys by; ignored otherwise."""

    cost: int
    tokens: int = 0
    budgets: tuple[Budget, ...] = ()
    limits: tuple[Limits, ...] = ()
    partition: str = ""

    def __post_init__(self) -> None:
        _amount("cost", self.cost)
        _amount("tokens", self.tokens)
        for kind, items in (("budget", self.budgets), ("limits", self.limits)):
            scopes = [item.scope for item in items]
            if len(set(scopes)) != len(scopes):
                raise ValueError(f"a {kind} scope is named twice in one ask")


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """One limit as it stands after an admission: what ``x-ratelimit-*`` headers show."""

    scope: str
    kind: LimitKind
    limit: int
    remaining: int
    #: Seconds until the limit's window ends (and what it counted frees).
    reset: float


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request's holds, to settle or release exactly once."""

    id: str
    ask: Ask
    #: When the holds lapse unless renewed (Unix seconds on the ledger's clock).
    expires_at: float
    #: Start (Unix ms) of the minute the request was counted in.
    window: int
    #: Tokens held against each of `ask.limits` (0 where it sets no TPM): the estimate, capped
    #: at the limit so that a large estimate cannot make a request impossible.
    held_tokens: tuple[int, ...]
    limits: tuple[LimitStatus, ...] = ()
    #: Admitted by the shared store (False: by the in-process ledger while it was down).
    shared: bool = True


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A budget as the ledger holds it: micro-dollars spent in the current period and held by
    requests in flight, and the period's end (Unix seconds; None: it never resets)."""

    spent: int
    reserved: int
    resets_at: float | None


class Refused(Exception):
    """The ledger refused a request (a 429): `retry_after` seconds for ``Retry-After``."""

    retry_after: int | None = None


class BudgetExceeded(Refused):
    """A budget cannot hold the request's estimate."""

    def __init__(
        self, scope: str, max_budget: int, spent: int, reserved: int, resets_at: float | None
    ) -> None:
        self.scope = scope
        self.max_budget = max_budget
        self.spent = spent
        self.reserved = reserved
        self.resets_at = resets_at
        if resets_at is not None:
            self.retry_after = max(1, math.ceil(resets_at - time.time()))
        super().__init__(
            f"Budget has been exceeded! {scope} Current cost: {dollars(spent)}, "
            f"Max budget: {dollars(max_budget)}"
        )


class RateLimited(Refused):
    """A rate limit is used up until `reset` seconds from now."""

    def __init__(
        self, scope: str, kind: LimitKind, limit: int, remaining: int, reset: float
    ) -> None:
        self.scope = scope
        self.kind = kind
        self.limit = limit
        self.remaining = remaining
        self.reset = reset
        self.retry_after = max(1, math.ceil(reset))
        super().__init__(
            f"Rate limit exceeded for {scope}. Limit type: {kind}. Current limit: {limit}, "
            f"Remaining: {remaining}. Limit resets in {self.retry_after} s"
        )


class LedgerUnavailable(Exception):
    """The shared ledger cannot be reached and the gateway fails closed (a 503)."""


def dollars(micro: int) -> str:
    """Micro-dollars as an exact decimal dollar figure (``1.5``, ``0.000072``)."""
    text = format(Decimal(micro).scaleb(-6), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def rate_limit_headers(limits: Sequence[LimitStatus]) -> Mapping[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the tightest requests and tokens limits."""
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        mine = [status for status in limits if status.kind == kind]
        if mine:
            tight = min(mine, key=lambda status: (status.remaining, -status.reset))
            headers[f"x-ratelimit-limit-{kind}"] = str(tight.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(tight.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = f"{math.ceil(tight.reset)}s"
    return headers


class Ledger(Protocol):
    """Budgets and rate limits, exact under concurrency."""

    async def admit(self, ask: Ask) -> Ticket:
        """Hold `ask` against all its budgets and limits at once, or raise `BudgetExceeded` /
        `RateLimited` (nothing held) or `LedgerUnavailable` (failing closed)."""
        ...

    async def settle(self, ticket: Ticket, cost: int, tokens: int) -> None:
        """End the request: free its holds, charge `cost` micro-dollars to every budget (even
        above max) and correct its TPM count to `tokens`. Only the first end of a ticket counts."""
        ...

    async def release(self, ticket: Ticket) -> None:
        """End a request that consumed nothing: free its holds, charge nothing."""
        ...

    async def renew(self, ticket: Ticket) -> bool:
        """Push the ticket's expiry out by the ledger's hold time (a long stream); False when its
        holds already lapsed (settling it still charges what it consumed)."""
        ...

    async def budget(self, budget: Budget, partition: str = "") -> BudgetState:
        """Where `budget` stands now (`partition`: as in `Ask`)."""
        ...

    async def aclose(self) -> None: ...


#: Ticket ids: a random prefix per process and a counter, unique across instances (tickets of
#: every instance meet in Redis) without a system call per request.
_TICKET_PREFIX = os.urandom(8).hex()
_TICKET_COUNTER = itertools.count(1)


def new_ticket_id() -> str:
    return f"{_TICKET_PREFIX}{next(_TICKET_COUNTER):x}"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class _Holds:
    """Holds by ticket id (an amount each, 0 for a parallel lease), their total, and a heap of
    expiries, so that dropping lapsed holds costs O(log n) per hold, not a scan per request."""

    __slots__ = ("amounts", "expiries", "heap", "total")

    def __init__(self) -> None:
        self.amounts: dict[str, int] = {}
        self.expiries: dict[str, int] = {}
        self.heap: list[tuple[int, str]] = []
        self.total = 0

    def __len__(self) -> int:
        return len(self.amounts)

    def put(self, ticket_id: str, amount: int, expiry: int) -> None:
        self.pop(ticket_id)
        self.amounts[ticket_id] = amount
        self.total += amount
        self.extend(ticket_id, expiry)

    def pop(self, ticket_id: str) -> bool:
        amount = self.amounts.pop(ticket_id, None)
        if amount is None:
            return False
        self.total -= amount
        del self.expiries[ticket_id]
        return True

    def extend(self, ticket_id: str, expiry: int) -> bool:
        if ticket_id not in self.amounts:
            return False
        self.expiries[ticket_id] = expiry
        heapq.heappush(self.heap, (expiry, ticket_id))
        if len(self.heap) > 2 * len(self.expiries) + 64:  # stale entries of ended holds
            self.heap = [(when, held) for held, when in self.expiries.items()]
            heapq.heapify(self.heap)
        return True

    def lapse(self, now: int) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            expiry, ticket_id = heapq.heappop(heap)
            if self.expiries.get(ticket_id) == expiry:
                self.pop(ticket_id)


@dataclass(slots=True)
class _BudgetRecord:
    spent: int
    start: int = 0
    end: int = 0  # 0: no period
    first: int = 0
    holds: _Holds = field(default_factory=_Holds)


@dataclass(slots=True)
class _LimitRecord:
    requests_window: int = -1
    requests: int = 0
    tokens_window: int = -1
    tokens: int = 0
    leases: _Holds = field(default_factory=_Holds)


class MemoryLedger:
    """The ledger of one process. `hold_seconds`: how long holds last without `renew`; `now_ms`:
    the clock (Unix ms)."""

    def __init__(self, *, hold_seconds: float = 600.0, now_ms: Callable[[], int] = wall_ms) -> None:
        self._hold_ms = int(hold_seconds * 1000)
        self._now = now_ms
        self._budgets: dict[str, _BudgetRecord] = {}
        self._limits: dict[str, _LimitRecord] = {}
        self._open: dict[str, int] = {}
        self._ended: deque[tuple[int, str]] = deque()
        self._ended_ids: set[str] = set()

    def _record(self, budget: Budget, now: int) -> _BudgetRecord:
        record = self._budgets.get(budget.scope)
        if record is None:
            record = self._budgets[budget.scope] = _BudgetRecord(budget.seed, first=now)
        record.holds.lapse(now)
        if budget.period is None:
            record.start = record.end = 0
        elif not record.start <= now < record.end:
            start, end = budget.period.bounds(now, record.first)
            if record.end and start >= record.end:
                record.spent = 0  # a new period; holds stay, their requests still run
            record.start, record.end = start, end
        return record

    def _limit(self, scope: str, now: int) -> _LimitRecord:
        record = self._limits.setdefault(scope, _LimitRecord())
        window = now - now % MINUTE_MS
        if record.requests_window != window:
            record.requests_window, record.requests = window, 0
        if record.tokens_window != window:
            record.tokens_window, record.tokens = window, 0
        record.leases.lapse(now)
        return record

    async def admit(self, ask: Ask) -> Ticket:
        now = self._now()
        window = now - now % MINUTE_MS
        reset = (window + MINUTE_MS - now) / 1000
        budgets = [self._record(budget, now) for budget in ask.budgets]
        for budget, record in zip(ask.budgets, budgets, strict=True):
            held = record.holds.total
            if record.spent + held + ask.cost > budget.max:
                ends = record.end / 1000 if record.end else None
                raise BudgetExceeded(budget.scope, budget.max, record.spent, held, ends)
        limits = [self._limit(limit.scope, now) for limit in ask.limits]
        taken: list[int] = []
        for limit, counts in zip(ask.limits, limits, strict=True):
            if limit.rpm is not None and counts.requests + 1 > limit.rpm:
                raise RateLimited(limit.scope, "requests", limit.rpm, 0, reset)
            tokens = min(ask.tokens, limit.tpm) if limit.tpm is not None else 0
            if limit.tpm is not None and counts.tokens + tokens > limit.tpm:
                left = max(0, limit.tpm - counts.tokens)
                raise RateLimited(limit.scope, "tokens", limit.tpm, left, reset)
            if limit.parallel is not None and len(counts.leases) >= limit.parallel:
                raise RateLimited(
                    limit.scope, "parallel_requests", limit.parallel, 0, PARALLEL_RETRY_AFTER
                )
            taken.append(tokens)
        ticket_id = new_ticket_id()
        expiry = now + self._hold_ms
        for record in budgets:
            record.holds.put(ticket_id, ask.cost, expiry)
        statuses: list[LimitStatus] = []
        for limit, counts, tokens in zip(ask.limits, limits, taken, strict=True):
            counts.requests += 1
            counts.tokens += tokens
            if limit.parallel is not None:
                counts.leases.put(ticket_id, 0, expiry)
            if limit.rpm is not None:
                left = limit.rpm - counts.requests
                statuses.append(LimitStatus(limit.scope, "requests", limit.rpm, left, reset))
            if limit.tpm is not None:
                left = max(0, limit.tpm - counts.tokens)
                statuses.append(LimitStatus(limit.scope, "tokens", limit.tpm, left, reset))
        self._open[ticket_id] = now + 2 * self._hold_ms  # as long as Redis keeps its record
        return Ticket(ticket_id, ask, expiry / 1000, window, tuple(taken), tuple(statuses), False)

    async def settle(self, ticket: Ticket, cost: int, tokens: int) -> None:
        self.settle_now(ticket, cost, tokens)

    def settle_now(self, ticket: Ticket, cost: int, tokens: int) -> None:
        """`settle`, which here waits for nothing: callers that know the ledger is in memory
        end a request without a task of its own."""
        _amount("cost", cost)
        _amount("tokens", tokens)
        now = self._now()
        self._forget_ended(now)
        if ticket.id in self._ended_ids:
            return
        self._open.pop(ticket.id, None)
        self._ended.append((now + self._hold_ms, ticket.id))
        self._ended_ids.add(ticket.id)
        for budget in ticket.ask.budgets:
            record = self._record(budget, now)
            record.holds.pop(ticket.id)
            record.spent += cost
        for limit, held in zip(ticket.ask.limits, ticket.held_tokens, strict=True):
            counts = self._limit(limit.scope, now)
            counts.leases.pop(ticket.id)
            if limit.tpm is not None and counts.tokens_window == ticket.window:
                counts.tokens = max(0, counts.tokens + tokens - held)

    async def release(self, ticket: Ticket) -> None:
        await self.settle(ticket, 0, 0)

    async def renew(self, ticket: Ticket) -> bool:
        now = self._now()
        expiry = now + self._hold_ms
        held = True
        for budget in ticket.ask.budgets:
            held = self._record(budget, now).holds.extend(ticket.id, expiry) and held
        for limit in ticket.ask.limits:
            leases = self._limit(limit.scope, now).leases
            if limit.parallel is not None:
                held = leases.extend(ticket.id, expiry) and held
        if self._open.get(ticket.id, 0) <= now:
            return False
        self._open[ticket.id] = now + 2 * self._hold_ms
        return held

    async def budget(self, budget: Budget, partition: str = "") -> BudgetState:
        record = self._record(budget, self._now())
        ends = record.end / 1000 if record.end else None
        return BudgetState(record.spent, record.holds.total, ends)

    def _forget_ended(self, now: int) -> None:
        """Ended tickets are remembered for a hold time, so a repeated settle charges nothing."""
        while self._ended and self._ended[0][0] <= now:
            self._ended_ids.discard(self._ended.popleft()[1])
        for ticket_id, expiry in list(self._open.items())[:64]:
            if expiry <= now:
                del self._open[ticket_id]

    async def aclose(self) -> None:
        return None
