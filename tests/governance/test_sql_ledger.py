"""The SQL ledger beyond the shared contract: exact when several stores (engines, connection
pools) and several processes share one database, free of deadlocks when requests lock scopes
in every order across a period's end, and safe when connections die or callers leave.

Real SQLite files and real PostgreSQL databases of the test's own (`kit`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import pytest

from governance_stores import StoreKit, terminate_connections
from turnout.config.store import StoreConfig
from turnout.governance.ledger import (
    Ask,
    Budget,
    BudgetExceeded,
    LedgerUnavailable,
    Limits,
    Period,
    RateLimited,
    Ticket,
)
from turnout.governance.sql import SqlLedger, open_runner


def ask(cost: int, *budgets: Budget, limits: tuple[Limits, ...] = ()) -> Ask:
    return Ask(cost=cost, budgets=budgets, limits=limits)


async def ledgers(kit: StoreKit, count: int, **options: object) -> list[SqlLedger]:
    """`count` ledgers, each on a store (engine and pool) of its own, over one database."""
    return [SqlLedger((await kit.open(pool_size=4)).runner, **options) for _ in range(count)]  # type: ignore[arg-type]


async def test_concurrent_admissions_through_several_stores_never_overspend(
    kit: StoreKit,
) -> None:
    shared = await ledgers(kit, 4)
    amount = 1_000
    key = Budget("key:k", max=37 * amount + amount // 2)
    team = Budget("team:all", max=10**9)
    limits = (Limits("key:k", rpm=10_000, parallel=10_000),)

    async def attempt(index: int) -> Ticket | BudgetExceeded:
        try:
            return await shared[index % 4].admit(ask(amount, team, key, limits=limits))
        except BudgetExceeded as refused:
            return refused

    outcomes = await asyncio.gather(*(attempt(i) for i in range(200)))
    granted = [o for o in outcomes if isinstance(o, Ticket)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert (len(granted), len(refused)) == (37, 163)
    assert {r.scope for r in refused} == {"key:k"}
    assert (await shared[1].budget(key)).reserved == 37 * amount
    assert (await shared[2].budget(team)).reserved == 37 * amount

    async def finish(index: int, ticket: Ticket) -> None:
        ledger = shared[index % 4]
        if index % 2:
            await ledger.release(ticket)
        else:
            await ledger.settle(ticket, index, 0)
        await shared[(index + 1) % 4].settle(ticket, 10**6, 0)  # a repeated end: no charge

    await asyncio.gather(*(finish(i, t) for i, t in enumerate(granted)))
    spent = sum(i for i in range(len(granted)) if not i % 2)
    for budget in (key, team):
        state = await shared[3].budget(budget)
        assert (state.spent, state.reserved) == (spent, 0)


_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from turnout.config.store import StoreConfig
    from turnout.governance.ledger import Ask, Budget, BudgetExceeded, Limits
    from turnout.governance.sql import SqlLedger, open_store

    async def main(url, attempts):
        store = await open_store(StoreConfig(url=url, pool_size=4))
        ledger = SqlLedger(store.runner)
        budget = Budget("team:shared", max=int(sys.argv[3]))
        limits = (Limits("team:shared", parallel=1000),)
        granted = 0

        async def one():
            nonlocal granted
            try:
                ticket = await ledger.admit(Ask(cost=100, budgets=(budget,), limits=limits))
            except BudgetExceeded:
                return
            granted += 1
            await ledger.settle(ticket, 100, 0)

        await asyncio.gather(*(one() for _ in range(attempts)))
        await store.aclose()
        print(json.dumps({"granted": granted}))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_processes_sharing_the_database_never_overspend(kit: StoreKit) -> None:
    await kit.open()  # migrated once, before the processes race
    capacity = 70
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            kit.url,
            "60",
            str(capacity * 100),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    granted = 0
    for process in processes:
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, err.decode()
        granted += json.loads(out)["granted"]
    assert granted == capacity  # 180 attempts; exactly what the budget holds got through
    state = await SqlLedger((await kit.open()).runner).budget(
        Budget("team:shared", max=capacity * 100)
    )
    assert (state.spent, state.reserved) == (capacity * 100, 0)


async def test_scopes_locked_in_every_order_across_a_periods_end_never_deadlock(
    kit: StoreKit,
) -> None:
    clock = {"now": 1_790_000_000_000}
    shared = await ledgers(kit, 4, now_ms=lambda: clock["now"])
    daily = Budget("team:t", max=50, period=Period(seconds=86_400, anchor=1_700_000_000))
    key = Budget("key:k", max=10**9)
    model = Budget("key:k:model:m1", max=10**9)
    ticket = await shared[0].admit(ask(50, key, daily))
    await shared[0].settle(ticket, 50, 0)
    clock["now"] += 86_400_000  # the team's day ends; the key has no period
    limit_a, limit_b = Limits("key:k", rpm=1000, parallel=1000), Limits("team:t", tpm=10**6)
    shapes = [
        ask(1, key, daily, limits=(limit_a, limit_b)),
        ask(1, daily, model, limits=(limit_b,)),
        ask(1, model, key, daily, limits=(limit_b, limit_a)),
        ask(1, daily, key),
    ]

    async def attempt(index: int) -> bool:
        try:
            await shared[index % 4].admit(shapes[index % len(shapes)])
        except BudgetExceeded:
            return False
        return True

    granted = sum(await asyncio.gather(*(attempt(i) for i in range(120))))
    assert granted == 50
    state = await shared[1].budget(daily)
    assert (state.spent, state.reserved) == (0, 50)


@pytest.mark.services
async def test_connections_the_server_closed_are_replaced_without_a_failure(
    postgres_kit: StoreKit,
) -> None:
    store = await postgres_kit.open(pool_size=3)
    ledger = SqlLedger(store.runner)
    key = Budget("key:k", max=1_000)
    held = await asyncio.gather(*(ledger.admit(ask(100, key)) for _ in range(3)))
    database = postgres_kit.url.rsplit("/", 1)[1]
    assert await terminate_connections(database) >= 1
    # Every pooled connection is dead now; each operation meets one and still succeeds.
    await asyncio.gather(*(ledger.settle(ticket, 50, 0) for ticket in held))
    await ledger.admit(ask(100, key))
    state = await ledger.budget(key)
    assert (state.spent, state.reserved) == (150, 100)


async def test_an_admission_whose_caller_is_cancelled_gives_its_holds_back(
    kit: StoreKit,
) -> None:
    ledger = SqlLedger((await kit.open()).runner)
    key = Budget("key:k", max=1_000)
    parallel = Limits("key:k", parallel=1)
    for _ in range(3):
        caller = asyncio.create_task(ledger.admit(ask(1_000, key, limits=(parallel,))))
        await asyncio.sleep(0)  # the admission is under way
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await ledger.aclose()  # waits for the release of what the transaction held
        assert (await ledger.budget(key)).reserved == 0
    ticket = await ledger.admit(ask(1_000, key, limits=(parallel,)))
    with pytest.raises(RateLimited):
        await ledger.admit(ask(0, limits=(parallel,)))
    await ledger.release(ticket)


async def test_a_database_that_cannot_be_reached_fails_closed_without_its_password() -> None:
    runner = open_runner(StoreConfig(url="postgresql://turnout:s3cret-pw@127.0.0.1:1/none"))
    ledger = SqlLedger(runner)
    try:
        with pytest.raises(LedgerUnavailable) as failed:
            await ledger.admit(ask(1, Budget("key:k", max=10)))
        assert "s3cret-pw" not in str(failed.value)
        with pytest.raises(LedgerUnavailable):
            await ledger.budget(Budget("key:k", max=10))
    finally:
        await runner.aclose()
