"""The shared ledger: budgets and rate limits exact across workers and instances, on Redis.

Each operation is one Lua script (`turnout.governance.ledger_scripts`) over every key the
request touches, so admission is all or nothing and two instances can never both take the last
of a budget. Scripts go through the state store's connection machinery
(`turnout.redisio.link`, `turnout.redisio.pipe`): the pipelined connection for a
single Redis or Sentinel, redis-py's client on a Cluster.

Hash tags. A script's keys must live in one Cluster slot. ``partition="fleet"`` (the default)
puts every governance key under one tag: exact for any shape of principals (a user's budget
across keys of several teams, a team's across its users), at the price of one node serving
every admission. A request with three budgets and two limit scopes costs about 30 Redis
commands per script, two scripts per request: on a busy 2-core test machine Redis spent about
100 µs per script, so one node serves some 5,000 requests a second (a dedicated server,
several times more), beyond the LLM traffic of most gateway fleets.
``partition="team"`` tags keys by the ask's `partition` (the request's team, or its key when it
has none), spreading governance over the Cluster; the catch: a scope reached from two
partitions is counted once per partition (a user whose keys belong to two teams has, in effect,
one user budget per team), so choose it only when budgets are team-scoped.

Redis down (refused, slow beyond ``timeout_ms``, erroring): by default the ledger fails closed:
`admit` raises `LedgerUnavailable` (the gateway answers 503) until Redis answers again, tried at
most every ``retry_interval``. With ``fail_open=True`` the in-process `MemoryLedger` admits
meanwhile (each instance then enforces the limits on its own traffic). Either way nothing
consumed is forgotten: an end that cannot reach Redis (a shared ticket's settle, or a locally
admitted ticket's charge) is kept in a bounded queue and sent when Redis answers again; ends are
idempotent per ticket, so one sent twice charges once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

from turnout.config.state import StateConfig
from turnout.governance import ledger_scripts as lua
from turnout.governance.kept_ends import KeptEnds, shared_charge
from turnout.governance.ledger import (
    MINUTE_MS,
    Ask,
    Budget,
    BudgetExceeded,
    BudgetState,
    LedgerUnavailable,
    LimitStatus,
    MemoryLedger,
    RateLimited,
    Ticket,
    _amount,
    new_ticket_id,
)
from turnout.redisio.link import connect, describe, is_redis_failure
from turnout.redisio.pipe import Pipe, Script

logger = logging.getLogger("turnout.governance")

_ADMIT, _SETTLE = Script(lua.ADMIT), Script(lua.SETTLE)
_RENEW, _READ = Script(lua.RENEW), Script(lua.READ_BUDGET)


class _Down(Exception):
    """Redis cannot be used now."""


def _budget_args(budget: Budget) -> list[Any]:
    period = budget.period
    if period is None:
        return [budget.max, 0, 0, -1, budget.seed]
    anchor = -1 if period.anchor is None else period.anchor * 1000
    return [budget.max, period.seconds, period.months, anchor, budget.seed]


class RedisLedger:
    """A `Ledger` shared through Redis. `config`: the Redis to use (the state store's settings:
    URL, password, prefix, ``timeout_ms``, ``retry_interval``). `hold_seconds`: how long a hold
    lasts unless renewed (a crashed instance's holds free after it); `keep_seconds`: how long an
    idle budget's state stays in Redis (at least to its period's end; after it, the budget's
    `seed` restores it)."""

    def __init__(
        self,
        config: StateConfig,
        *,
        fail_open: bool = False,
        partition: Literal["fleet", "team"] = "fleet",
        hold_seconds: float = 600.0,
        keep_seconds: float = 7 * 86_400.0,
    ) -> None:
        self.config = config
        self.fail_open = fail_open
        self.partition = partition
        self._hold_ms = int(hold_seconds * 1000)
        self._keep_ms = int(keep_seconds * 1000)
        self._timeout = config.timeout_ms / 1000
        self._connect_timeout = max(1.0, 4 * self._timeout)
        self._client: Any = None
        self._pipe: Pipe | None = None
        self._down_until = 0.0
        self._kept = KeptEnds("Redis")
        self._drain: asyncio.Task[None] | None = None
        #: Admits locally while Redis is down, when failing open.
        self.local = MemoryLedger(hold_seconds=hold_seconds)
        #: Whether Redis answered the last call.
        self.shared = True
        self.outages = 0

    # ---- keys and calls ------------------------------------------------------------------

    def _tag(self, ask: Ask) -> str:
        if self.partition == "team":
            if not ask.partition:
                raise ValueError("a ledger partitioned by team needs the ask's partition")
            return f"gov:{ask.partition}"
        return "gov"

    def _keys(self, ticket_id: str, ask: Ask) -> list[str]:
        base = f"{self.config.prefix}:{{{self._tag(ask)}}}"
        keys = [f"{base}:t:{ticket_id}"]
        for budget in ask.budgets:
            keys += [f"{base}:b:{budget.scope}", f"{base}:h:{budget.scope}"]
        for limits in ask.limits:
            keys += [f"{base}:l:{limits.scope}", f"{base}:p:{limits.scope}"]
        return keys

    async def _run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        if time.monotonic() < self._down_until:
            raise _Down
        if self._client is None:
            self._client, endpoint = connect(self.config, self._timeout, self._connect_timeout)
            if endpoint is not None:
                self._pipe = Pipe(endpoint, self._timeout, self._connect_timeout)
        try:
            if self._pipe is not None:
                answer = await self._pipe.run(script, keys, args)
            else:
                async with asyncio.timeout(self._timeout):
                    answer = await self._cluster_call(script, keys, args)
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            self._trip(exc)
            raise _Down from None
        self._answered()
        return answer

    async def _cluster_call(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await self._client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._client.eval(script.body, len(keys), *keys, *args)

    def _trip(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.config.retry_interval
        if self._pipe is not None:
            self._pipe.abort()
        if self.shared:
            self.shared = False
            self.outages += 1
            logger.warning(
                "governance: Redis at %s unavailable (%s); %s until it answers again",
                describe(self.config),
                type(exc).__name__,
                "admitting on this process's ledger" if self.fail_open else "refusing requests",
            )

    def _answered(self) -> None:
        """Redis answered: say so once, and send the ends kept while it was away."""
        if not self.shared:
            self.shared = True
            logger.warning("governance: Redis at %s answers again", describe(self.config))
        if self._kept and (self._drain is None or self._drain.done()):
            self._drain = asyncio.get_running_loop().create_task(
                self._kept.send(self._settle_shared, _Down)
            )

    # ---- the ledger ----------------------------------------------------------------------

    async def admit(self, ask: Ask) -> Ticket:
        ticket_id = new_ticket_id()
        args: list[Any] = [ticket_id, ask.cost, ask.tokens, self._hold_ms]
        args += [len(ask.budgets), len(ask.limits), self._keep_ms]
        for budget in ask.budgets:
            args += _budget_args(budget)
        for limits in ask.limits:
            args += [-1 if value is None else value for value in (limits.rpm, limits.tpm)]
            args.append(-1 if limits.parallel is None else limits.parallel)
        try:
            reply = await self._run(_ADMIT, self._keys(ticket_id, ask), args)
        except _Down:
            if self.fail_open:
                return await self.local.admit(ask)
            raise LedgerUnavailable(
                "the budget and rate-limit ledger (Redis) is unreachable"
            ) from None
        return self._ticket(ticket_id, ask, reply)

    def _ticket(self, ticket_id: str, ask: Ask, reply: list[Any]) -> Ticket:
        if reply[0] == 0:
            kind, index = reply[1].decode(), int(reply[2]) - 1
            if kind == "budget":
                budget = ask.budgets[index]
                spent, holds, ends = int(reply[3]), int(reply[4]), int(reply[5])
                raise BudgetExceeded(budget.scope, budget.max, spent, holds, ends / 1000 or None)
            limits = ask.limits[index]
            limit = {"requests": limits.rpm, "tokens": limits.tpm}.get(kind, limits.parallel)
            assert limit is not None
            reset = int(reply[4]) / 1000
            raise RateLimited(limits.scope, kind, limit, int(reply[3]), reset)
        now, expiry, window = int(reply[1]), int(reply[2]), int(reply[3])
        reset = (window + MINUTE_MS - now) / 1000
        held: list[int] = []
        statuses: list[LimitStatus] = []
        for position, limits in enumerate(ask.limits):
            requests, tokens, took = (int(v) for v in reply[4 + 3 * position : 7 + 3 * position])
            held.append(took)
            if limits.rpm is not None:
                left = limits.rpm - requests
                statuses.append(LimitStatus(limits.scope, "requests", limits.rpm, left, reset))
            if limits.tpm is not None:
                left = max(0, limits.tpm - tokens)
                statuses.append(LimitStatus(limits.scope, "tokens", limits.tpm, left, reset))
        return Ticket(ticket_id, ask, expiry / 1000, window, tuple(held), tuple(statuses))

    async def _settle_shared(self, ticket: Ticket, cost: int, tokens: int) -> None:
        ask = ticket.ask
        args: list[Any] = [ticket.id, ask.cost, cost, tokens, ticket.window, self._hold_ms]
        args += [len(ask.budgets), len(ask.limits), self._keep_ms]
        for budget in ask.budgets:
            args += _budget_args(budget)
        for limits, took in zip(ask.limits, ticket.held_tokens, strict=True):
            args += [-1 if limits.tpm is None else limits.tpm, took]
        await self._run(_SETTLE, self._keys(ticket.id, ask), args)

    async def settle(self, ticket: Ticket, cost: int, tokens: int) -> None:
        _amount("cost", cost)
        _amount("tokens", tokens)
        if not ticket.shared:
            await self.local.settle(ticket, cost, tokens)
            if cost == 0 and tokens == 0:
                return
            ticket = shared_charge(ticket)  # charge Redis too, once it answers
        try:
            await self._settle_shared(ticket, cost, tokens)
        except _Down:
            self._kept.keep(ticket, cost, tokens)

    async def release(self, ticket: Ticket) -> None:
        await self.settle(ticket, 0, 0)

    async def renew(self, ticket: Ticket) -> bool:
        if not ticket.shared:
            return await self.local.renew(ticket)
        ask = ticket.ask
        args: list[Any] = [ticket.id, ask.cost, self._hold_ms, len(ask.budgets), len(ask.limits)]
        args += [0 if limits.parallel is None else 1 for limits in ask.limits]
        try:
            return bool(await self._run(_RENEW, self._keys(ticket.id, ask), args))
        except _Down:
            return False

    async def budget(self, budget: Budget, partition: str = "") -> BudgetState:
        ask = Ask(cost=0, budgets=(budget,), partition=partition)
        keys = self._keys("", ask)[1:]
        args = [*_budget_args(budget)[1:], self._keep_ms]
        try:
            spent, held, ends = await self._run(_READ, keys, args)
        except _Down:
            if self.fail_open:
                return await self.local.budget(budget)
            raise LedgerUnavailable(
                "the budget and rate-limit ledger (Redis) is unreachable"
            ) from None
        return BudgetState(int(spent), int(held), int(ends) / 1000 or None)

    async def aclose(self) -> None:
        """Close the connections, after one last try at sending the kept ends."""
        if self._drain is not None and not self._drain.done():
            await self._drain
        elif self._kept:
            await self._kept.send(self._settle_shared, _Down)
        self._kept.report_unsent()
        if self._pipe is not None:
            await self._pipe.aclose()
        if self._client is not None:
            await self._client.aclose()
        await self.local.aclose()
