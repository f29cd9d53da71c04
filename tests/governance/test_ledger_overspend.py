"""Overspend: several instances racing one budget or limit through one real Redis.

Three `RedisLedger`s stand for three gateway instances (each with its own connection); their
requests are started at once, so Redis sees their scripts interleaved in whatever order the
connections deliver them. A ledger that checked and then charged in two steps would admit more
than fits; these tests count exactly what was admitted.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from ledger_kit import ask, fresh_minute, redis_ledgers

from services import RedisServer
from turnout.governance.ledger import (
    Ask,
    Budget,
    BudgetExceeded,
    Limits,
    Period,
    RateLimited,
    Refused,
    Ticket,
)
from turnout.governance.redis_ledger import RedisLedger

pytestmark = pytest.mark.services

INSTANCES = 3
REQUESTS = 200


async def _race(ledgers: list[RedisLedger], *asks_: object) -> list[Ticket | Refused]:
    """Every ask at once, spread over the instances; each answer a ticket or a refusal."""

    async def one(index: int, item: object) -> Ticket | Refused:
        try:
            return await ledgers[index % len(ledgers)].admit(item)  # type: ignore[arg-type]
        except Refused as refused:
            return refused

    return list(await asyncio.gather(*(one(i, a) for i, a in enumerate(asks_))))


def _tickets(answers: list[Ticket | Refused]) -> list[Ticket]:
    return [a for a in answers if isinstance(a, Ticket)]


async def test_a_budget_for_a_tenth_admits_exactly_a_tenth(redis_server: RedisServer) -> None:
    cost = 12_345  # micro-dollars per request
    budget = Budget("key:shared", max=cost * 20 + cost // 2)  # 20 fit, the 21st does not
    team = Budget("team:shared", max=10**12)
    async with redis_ledgers(redis_server, INSTANCES) as ledgers:
        answers = await _race(ledgers, *[ask(cost, budgets=(budget, team))] * REQUESTS)
        admitted = _tickets(answers)
        assert len(admitted) == 20
        assert all(isinstance(a, BudgetExceeded) for a in answers if a not in admitted)
        state = await ledgers[0].budget(budget)
        assert state.spent + state.reserved == 20 * cost <= budget.max
        # The requests end with what they consumed, on whichever instance: exact totals.
        consumed = [random.Random(i).randrange(cost + 1) for i in range(len(admitted))]
        await asyncio.gather(
            *(
                ledgers[i % INSTANCES].settle(ticket, amount, 0)
                for i, (ticket, amount) in enumerate(zip(admitted, consumed, strict=True))
            )
        )
        for scope in (budget, team):
            state = await ledgers[1].budget(scope)
            assert (state.spent, state.reserved) == (sum(consumed), 0)


async def test_after_a_period_end_exactly_the_max_fits_again(redis_server: RedisServer) -> None:
    cost = 1000
    budget = Budget("key:periodic", max=cost * 10, period=Period(seconds=2))
    async with redis_ledgers(redis_server, INSTANCES) as ledgers:
        first = _tickets(await _race(ledgers, *[ask(cost, budgets=(budget,))] * 60))
        assert len(first) == 10
        for ticket in first:
            await ledgers[0].settle(ticket, cost, 0)
        state = await ledgers[0].budget(budget)
        assert state.resets_at is not None
        assert _tickets(await _race(ledgers, *[ask(cost, budgets=(budget,))] * 10)) == []
        await asyncio.sleep(max(0.0, state.resets_at - time.time()) + 0.05)
        second = _tickets(await _race(ledgers, *[ask(cost, budgets=(budget,))] * 60))
        assert len(second) == 10
        after = await ledgers[0].budget(budget)
        assert (after.spent, after.reserved) == (0, budget.max)


async def test_requests_per_minute_are_not_multiplied(redis_server: RedisServer) -> None:
    await fresh_minute(margin_seconds=5)
    limits = Limits("key:rpm", rpm=30)
    async with redis_ledgers(redis_server, INSTANCES) as ledgers:
        answers = await _race(ledgers, *[ask(0, limits=(limits,))] * 120)
        admitted = _tickets(answers)
        assert len(admitted) == 30
        assert sorted(t.limits[0].remaining for t in admitted) == list(range(30))
        refusals = [a for a in answers if isinstance(a, RateLimited)]
        assert len(refusals) == 90 and {r.kind for r in refusals} == {"requests"}


async def test_tokens_per_minute_across_instances(redis_server: RedisServer) -> None:
    await fresh_minute(margin_seconds=5)
    limits = Limits("team:tpm", tpm=1000)
    async with redis_ledgers(redis_server, INSTANCES) as ledgers:
        admitted = _tickets(await _race(ledgers, *[ask(0, tokens=100, limits=(limits,))] * 90))
        assert len(admitted) == 10
        # They used 40 tokens each, not 100: 600 tokens of the minute come free again.
        for ticket in admitted:
            await ledgers[1].settle(ticket, 0, 40)
        again = _tickets(await _race(ledgers, *[ask(0, tokens=100, limits=(limits,))] * 30))
        assert len(again) == 6


async def test_parallel_leases_across_instances(redis_server: RedisServer) -> None:
    limits = Limits("key:parallel", parallel=8)
    async with redis_ledgers(redis_server, INSTANCES, hold_seconds=3.0) as ledgers:
        held = _tickets(await _race(ledgers, *[ask(0, limits=(limits,))] * 64))
        assert len(held) == 8
        for ticket in held[:3]:
            await ledgers[2].release(ticket)
        assert len(_tickets(await _race(ledgers, *[ask(0, limits=(limits,))] * 64))) == 3
        await asyncio.sleep(3.2)  # nobody ends the others: their leases lapse
        assert len(_tickets(await _race(ledgers, *[ask(0, limits=(limits,))] * 64))) == 8


async def test_every_key_of_a_request_is_in_one_cluster_slot(redis_server: RedisServer) -> None:
    import redis.asyncio as redis_client
    from redis.crc import key_slot

    everything = ask(
        5,
        tokens=5,
        budgets=(Budget("key:a", max=100, period=Period(seconds=60)), Budget("team:b", max=100)),
        limits=(Limits("key:a", rpm=5, tpm=50, parallel=2), Limits("team:b", rpm=9)),
    )
    async with redis_ledgers(redis_server, 1) as (ledger,):
        await ledger.admit(everything)
        client = redis_client.from_url(redis_server.url)
        try:
            keys = [key async for key in client.scan_iter(f"{ledger.config.prefix}:*")]
        finally:
            await client.aclose()
    assert len(keys) == 1 + 2 * 2 + 2 * 2 - 1  # team:b sets no parallel limit: no lease set
    assert len({key_slot(key) for key in keys}) == 1


async def test_partitioned_by_team_each_partition_counts_apart(
    redis_server: RedisServer,
) -> None:
    user = Budget("user:u1", max=100)
    async with redis_ledgers(redis_server, 2, partition="team") as (first, second):
        in_a = ask(100, budgets=(user,))
        in_b = Ask(cost=100, budgets=(user,), partition="team-b")
        await first.admit(in_a)
        with pytest.raises(BudgetExceeded):
            await second.admit(in_a)
        await second.admit(in_b)  # the same user, another partition: counted apart
        assert (await first.budget(user, partition="team-b")).reserved == 100
        with pytest.raises(ValueError, match="partition"):
            await first.admit(Ask(cost=1, budgets=(user,)))


async def test_streams_of_requests_never_pass_the_budget(redis_server: RedisServer) -> None:
    """Requests admitted, running a moment and ending (consuming up to their estimate, or
    nothing) on three instances at once, while a watcher reads the budget all along."""
    cost = 1000
    budget = Budget("key:waves", max=cost * 25)
    async with redis_ledgers(redis_server, INSTANCES) as ledgers:
        consumed: list[int] = []
        done = asyncio.Event()
        seen: list[int] = []
        refused: list[int] = []

        async def request(index: int) -> None:
            rng = random.Random(index)
            await asyncio.sleep(rng.random() * 0.2)
            ledger = ledgers[index % INSTANCES]
            try:
                ticket = await ledger.admit(ask(cost, budgets=(budget,)))
            except BudgetExceeded:
                refused.append(index)
                return
            await asyncio.sleep(rng.random() * 0.05)
            if rng.random() < 0.3:
                await ledgers[(index + 1) % INSTANCES].release(ticket)
            else:
                amount = rng.randrange(cost + 1)
                await ledger.settle(ticket, amount, 0)
                consumed.append(amount)

        async def watch() -> None:
            while not done.is_set():
                state = await ledgers[2].budget(budget)
                seen.append(state.spent + state.reserved)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(request(i) for i in range(REQUESTS)))
        done.set()
        await watcher
        state = await ledgers[0].budget(budget)
        assert (state.spent, state.reserved) == (sum(consumed), 0)
        assert len(seen) > 5 and max(seen) <= budget.max
        assert state.spent <= budget.max
        assert refused and len(refused) < REQUESTS - 25  # it was contended, and not starved
