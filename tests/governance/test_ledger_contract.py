"""One contract for every ledger: the in-process one, the Redis one on a real redis-server, and
the SQL one on a real SQLite file and a real PostgreSQL database.

Each test builds its ledger(s) through the `make` fixture: for memory, every call gives the same
ledger (one process); for Redis, a new `RedisLedger` on one Redis and prefix (another instance);
for SQL, a new `SqlLedger` on a store of its own over one database (another worker process).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from ledger_kit import ask, fresh_minute, redis_config, sql_ledgers, wait_until

from services import RedisServer
from turnout.governance.ledger import (
    Budget,
    BudgetExceeded,
    Ledger,
    Limits,
    MemoryLedger,
    Period,
    RateLimited,
    rate_limit_headers,
)
from turnout.governance.redis_ledger import RedisLedger

Make = Callable[..., Ledger]


@pytest.fixture(params=["memory", "redis", "sqlite", "postgresql"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Make]:
    if request.param in ("sqlite", "postgresql"):
        async with sql_ledgers(request, tmp_path) as sql_build:
            yield sql_build
        return
    made: list[Ledger] = []
    if request.param == "memory":
        shared: dict[tuple[Any, ...], MemoryLedger] = {}

        def build(**options: Any) -> Ledger:
            key = tuple(sorted(options.items()))
            if key not in shared:
                shared[key] = MemoryLedger(**options)
                made.append(shared[key])
            return shared[key]

    else:
        request.applymarker(pytest.mark.services)
        server: RedisServer = request.getfixturevalue("redis_server")
        config = redis_config(server)

        def build(**options: Any) -> Ledger:
            ledger = RedisLedger(config, **options)
            made.append(ledger)
            return ledger

    yield build
    for ledger in made:
        await ledger.aclose()


KEY = Budget("key:k1", max=1000)


async def test_a_hold_counts_until_settled_with_what_was_consumed(make: Make) -> None:
    first, second = make(), make()
    ticket = await first.admit(ask(600, budgets=(KEY,)))
    assert await second.budget(KEY) == (state := await first.budget(KEY))
    assert (state.spent, state.reserved, state.resets_at) == (0, 600, None)
    with pytest.raises(BudgetExceeded) as refused:
        await second.admit(ask(401, budgets=(KEY,)))
    assert refused.value.scope == "key:k1"
    assert (refused.value.spent, refused.value.reserved, refused.value.max_budget) == (0, 600, 1000)
    assert refused.value.resets_at is None
    assert "Budget has been exceeded! key:k1 Current cost: 0, Max budget: 0.001" in str(
        refused.value
    )
    await second.admit(ask(400, budgets=(KEY,)))  # exactly what is left
    await second.settle(ticket, 250, 0)
    state = await first.budget(KEY)
    assert (state.spent, state.reserved) == (250, 400)


async def test_consumption_above_the_hold_and_the_max_is_charged(make: Make) -> None:
    ledger = make()
    ticket = await ledger.admit(ask(100, budgets=(KEY,)))
    await ledger.settle(ticket, 1500, 0)
    state = await ledger.budget(KEY)
    assert (state.spent, state.reserved) == (1500, 0)
    with pytest.raises(BudgetExceeded):
        await ledger.admit(ask(0, budgets=(KEY,)))


async def test_admission_is_all_or_nothing_across_budgets(make: Make) -> None:
    ledger = make()
    team = Budget("team:t1", max=500)
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.admit(ask(600, budgets=(KEY, team)))
    assert refused.value.scope == "team:t1"
    assert (await ledger.budget(KEY)).reserved == 0
    limited = Limits("key:k1", rpm=1)
    with pytest.raises(BudgetExceeded):
        await ledger.admit(ask(600, budgets=(KEY, team), limits=(limited,)))
    await ledger.admit(ask(1, limits=(limited,)))  # the refused ask counted no request


async def test_release_frees_exactly_and_an_end_counts_once(make: Make) -> None:
    ledger = make()
    ticket = await ledger.admit(ask(700, budgets=(KEY,)))
    await ledger.release(ticket)
    await ledger.release(ticket)
    await ledger.settle(ticket, 900, 0)  # already ended: nothing charged
    state = await ledger.budget(KEY)
    assert (state.spent, state.reserved) == (0, 0)
    other = await make().admit(ask(300, budgets=(KEY,)))
    await ledger.settle(other, 300, 0)
    await make().settle(other, 300, 0)
    assert (await ledger.budget(KEY)).spent == 300


async def test_holds_of_a_crashed_instance_lapse(make: Make) -> None:
    crashed, alive = make(hold_seconds=1.0), make(hold_seconds=1.0)
    limits = Limits("key:k1", parallel=1)
    await crashed.admit(ask(1000, budgets=(KEY,), limits=(limits,)))
    with pytest.raises(RateLimited):
        await alive.admit(ask(0, limits=(limits,)))

    async def reclaimed() -> bool:
        return (await alive.budget(KEY)).reserved == 0

    await wait_until(reclaimed, 5.0)
    ticket = await alive.admit(ask(1000, budgets=(KEY,), limits=(limits,)))
    await alive.settle(ticket, 10, 0)
    assert (await alive.budget(KEY)).spent == 10


async def test_renew_keeps_holds_past_their_first_expiry(make: Make) -> None:
    ledger = make(hold_seconds=2.0)
    limits = Limits("key:k1", parallel=1)
    ticket = await ledger.admit(ask(500, budgets=(KEY,), limits=(limits,)))
    for _ in range(5):  # 2.5 s: past the first expiry
        await asyncio.sleep(0.5)
        assert await ledger.renew(ticket)
    assert (await ledger.budget(KEY)).reserved == 500
    await asyncio.sleep(2.3)
    assert not await ledger.renew(ticket)
    assert (await ledger.budget(KEY)).reserved == 0
    await ledger.settle(ticket, 42, 0)  # lapsed, but what was consumed is charged
    assert (await ledger.budget(KEY)).spent == 42


async def test_a_budget_resets_at_its_period_end(make: Make) -> None:
    ledger = make()
    budget = Budget("key:short", max=100, period=Period(seconds=2))
    ticket = await ledger.admit(ask(60, budgets=(budget,)))
    await ledger.settle(ticket, 80, 0)
    held = await ledger.admit(ask(20, budgets=(budget,)))
    state = await ledger.budget(budget)
    assert (state.spent, state.reserved) == (80, 20)
    assert state.resets_at is not None
    assert 0 < state.resets_at - time.time() <= 2.5
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.admit(ask(1, budgets=(budget,)))
    assert refused.value.resets_at == state.resets_at
    assert refused.value.retry_after is not None and 1 <= refused.value.retry_after <= 3

    async def reset() -> bool:
        return (await ledger.budget(budget)).spent == 0

    await wait_until(reset, 4.0)
    after = await ledger.budget(budget)
    assert after.reserved == 20  # the running request's hold moves to the new period
    assert after.resets_at is not None
    periods = (after.resets_at - state.resets_at) / 2  # one, unless the machine stalled
    assert periods >= 1 and periods == pytest.approx(round(periods), abs=0.001)
    await ledger.admit(ask(80, budgets=(budget,)))
    await ledger.settle(held, 5, 0)
    assert (await ledger.budget(budget)).spent == 5


async def test_calendar_months_reset_on_the_first_at_midnight_utc(make: Make) -> None:
    ledger = make()
    state = await ledger.budget(Budget("user:u1", max=5, period=Period.parse("1mo")))
    today = dt.datetime.now(dt.UTC).date()
    first = dt.date(today.year + today.month // 12, today.month % 12 + 1, 1)
    assert state.resets_at == dt.datetime(first.year, first.month, 1, tzinfo=dt.UTC).timestamp()
    quarter = await ledger.budget(Budget("user:u2", max=5, period=Period(months=3)))
    index = (today.year * 12 + today.month - 1) // 3 * 3 + 3
    ends = dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC).timestamp()
    assert quarter.resets_at == ends


async def test_an_anchored_period_starts_where_it_says(make: Make) -> None:
    ledger = make()
    anchor = int(time.time()) - 90_000  # a daily budget created a day and an hour ago
    state = await ledger.budget(Budget("key:daily", max=5, period=Period.parse("1d", anchor)))
    assert state.resets_at == anchor + 2 * 86_400


async def test_the_seed_restores_spend_the_ledger_does_not_hold(make: Make) -> None:
    ledger = make()
    seeded = Budget("team:seeded", max=1000, seed=900)
    with pytest.raises(BudgetExceeded):
        await ledger.admit(ask(101, budgets=(seeded,)))
    ticket = await ledger.admit(ask(100, budgets=(seeded,)))
    await ledger.settle(ticket, 100, 0)
    again = Budget("team:seeded", max=1000, seed=0)  # the seed is never added twice
    assert (await ledger.budget(again)).spent == 1000


async def test_requests_per_minute(make: Make) -> None:
    await fresh_minute()
    first, second = make(), make()
    limits = Limits("key:k1", rpm=3)
    tickets = [await (first, second)[i % 2].admit(ask(0, limits=(limits,))) for i in range(3)]
    assert [t.limits[0].remaining for t in tickets] == [2, 1, 0]
    with pytest.raises(RateLimited) as refused:
        await second.admit(ask(0, limits=(limits,)))
    assert (refused.value.kind, refused.value.limit, refused.value.remaining) == ("requests", 3, 0)
    assert 0 < refused.value.reset <= 60
    assert refused.value.retry_after is not None and 1 <= refused.value.retry_after <= 60
    for ticket in tickets:
        await first.release(ticket)  # a request made counts in its minute, ended or not
    with pytest.raises(RateLimited):
        await first.admit(ask(0, limits=(limits,)))
    headers = rate_limit_headers(tickets[1].limits)
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-reset-requests"].endswith("s")


async def test_tokens_per_minute_are_held_then_corrected(make: Make) -> None:
    await fresh_minute()
    ledger = make()
    limits = Limits("key:k1", tpm=100)
    first = await ledger.admit(ask(0, tokens=60, limits=(limits,)))
    assert first.held_tokens == (60,)
    with pytest.raises(RateLimited) as refused:
        await ledger.admit(ask(0, tokens=60, limits=(limits,)))
    assert (refused.value.kind, refused.value.remaining) == ("tokens", 40)
    await ledger.settle(first, 0, 15)  # it used 15, not 60
    second = await ledger.admit(ask(0, tokens=60, limits=(limits,)))
    assert second.limits[0].remaining == 25
    await ledger.settle(second, 0, 85)  # more than held: counted
    with pytest.raises(RateLimited) as full:
        await ledger.admit(ask(0, tokens=1, limits=(limits,)))
    assert full.value.remaining == 0
    big = Limits("key:k2", tpm=50)  # an estimate above the limit holds the limit, not more
    ticket = await ledger.admit(ask(0, tokens=1000, limits=(big,)))
    assert ticket.held_tokens == (50,)
    assert rate_limit_headers(ticket.limits)["x-ratelimit-remaining-tokens"] == "0"


async def test_parallel_requests_are_leases(make: Make) -> None:
    first, second = make(), make()
    limits = Limits("team:t1", parallel=2)
    one = await first.admit(ask(0, limits=(limits,)))
    await second.admit(ask(0, limits=(limits,)))
    with pytest.raises(RateLimited) as refused:
        await first.admit(ask(0, limits=(limits,)))
    assert (refused.value.kind, refused.value.limit, refused.value.retry_after) == (
        "parallel_requests",
        2,
        1,
    )
    await second.settle(one, 0, 0)
    await first.admit(ask(0, limits=(limits,)))


def test_durations_parse_as_litellm_writes_them() -> None:
    assert Period.parse("30s") == Period(seconds=30)
    assert Period.parse("30m") == Period(seconds=1800)
    assert Period.parse("30h") == Period(seconds=108_000)
    assert Period.parse("30d", anchor=5) == Period(seconds=2_592_000, anchor=5)
    assert Period.parse("1mo") == Period(months=1)
    for bad in ("", "0d", "1w", "1.5d", "-1d", "d"):
        with pytest.raises(ValueError, match="budget_duration"):
            Period.parse(bad)


def test_amounts_are_integers_in_range() -> None:
    for bad in (1.5, -1, 2**53, True):
        with pytest.raises(ValueError, match="integer"):
            Budget("key:x", max=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="named twice"):
        ask(1, budgets=(KEY, KEY))
    with pytest.raises(ValueError, match="rpm"):
        Limits("key:x", rpm=0)
