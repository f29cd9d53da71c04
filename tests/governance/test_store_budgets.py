"""Reservations: all or nothing across scopes, exact under concurrency, reset lazily."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from governance_stores import StoreKit, terminate_connections
from turnout.governance import (
    BudgetExceededError,
    KeySettings,
    ModelLimits,
    NotFoundError,
    Scope,
    TeamSettings,
    UserSettings,
)
from turnout.governance.sql import SqlGovernanceStore


async def _background_done() -> None:
    """Wait until every task but this one has finished (those it starts, too)."""
    while others := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
        await asyncio.wait(others)


async def _key(store: SqlGovernanceStore, **settings: object) -> Scope:
    record = (await store.create_key(KeySettings(**settings))).record  # type: ignore[arg-type]
    return Scope("key", record.id)


async def test_a_reservation_holds_on_every_scope_and_settles_to_the_real_cost(
    store: SqlGovernanceStore,
) -> None:
    team = await store.create_team(TeamSettings(max_budget=10_000), team_id="t")
    user = await store.create_user(UserSettings(max_budget=10_000), user_id="u")
    key = await _key(store, max_budget=10_000, team_id="t", user_id="u")
    scopes = [key, Scope("team", team.id), Scope("user", user.id), Scope("key", key.entity_id, "m")]
    held = await store.reserve(scopes, 3_000)
    for scope in scopes:
        budget = await store.budget(scope)
        assert (budget.spend, budget.reserved) == (0, 3_000)
    assert await store.settle(held, 1_234)
    for scope in scopes:
        budget = await store.budget(scope)
        assert (budget.spend, budget.reserved) == (1_234, 0)
    assert not await store.settle(held, 1_234)
    assert not await store.release(held)
    assert (await store.budget(key)).spend == 1_234
    assert (await store.get_key(key.entity_id)).model_spend == {"m": 1_234}


async def test_a_refusal_holds_nothing_anywhere_and_names_the_scope(
    store: SqlGovernanceStore,
) -> None:
    await store.create_team(TeamSettings(max_budget=1_000_000), team_id="small")
    key = await _key(store, max_budget=50_000_000, team_id="small")
    team = Scope("team", "small")
    with pytest.raises(BudgetExceededError) as refused:
        await store.reserve([key, team], 1_000_001)
    assert refused.value.scope == team
    assert refused.value.status == 429
    body = refused.value.to_openai()["error"]
    assert body["type"] == "budget_exceeded"
    assert body["code"] == "429"
    assert body["message"] == (
        "Budget has been exceeded! Team=small Current cost: 0.0, Max budget: 1.0"
    )
    assert (await store.budget(key)).reserved == 0
    assert (await store.budget(team)).reserved == 0


async def test_a_budget_fills_exactly_to_the_micro_dollar(store: SqlGovernanceStore) -> None:
    key = await _key(store, max_budget=1_000_000)
    first = await store.reserve([key], 600_000)
    await store.reserve([key], 400_000)
    with pytest.raises(BudgetExceededError):
        await store.reserve([key], 1)
    await store.release(first)
    await store.reserve([key], 600_000)
    budget = await store.budget(key)
    assert (budget.spend, budget.reserved) == (0, 1_000_000)


async def test_spend_counts_against_the_budget_and_may_pass_it_only_by_real_cost(
    store: SqlGovernanceStore,
) -> None:
    key = await _key(store, max_budget=1_000)
    held = await store.reserve([key], 600)
    await store.settle(held, 900)  # the real cost exceeded the estimate
    with pytest.raises(BudgetExceededError) as refused:
        await store.reserve([key], 101)
    assert "Current cost: 0.0009, Max budget: 0.001" in str(refused.value)
    await store.reserve([key], 100)
    over = await store.reserve([key], 0)
    await store.settle(over, 500)
    assert (await store.budget(key)).spend == 1_400


async def test_no_budget_means_no_limit_but_spend_is_counted(store: SqlGovernanceStore) -> None:
    key = await _key(store)
    held = await store.reserve([key], 10**15)
    await store.settle(held, 10**12)
    assert (await store.budget(key)).spend == 10**12


async def test_a_per_model_budget_refuses_only_that_model(store: SqlGovernanceStore) -> None:
    key = await _key(store, model_limits={"gpt-4o": ModelLimits(max_budget=100)})
    gpt = Scope("key", key.entity_id, "gpt-4o")
    with pytest.raises(BudgetExceededError, match="model=gpt-4o"):
        await store.reserve([key, gpt], 101)
    await store.reserve([key, Scope("key", key.entity_id, "claude")], 101)
    assert (await store.budget(key)).reserved == 101


async def test_unknown_scopes_and_bad_amounts_are_refused(store: SqlGovernanceStore) -> None:
    key = await _key(store, max_budget=100)
    with pytest.raises(NotFoundError):
        await store.reserve([key, Scope("team", "ghost")], 1)
    assert (await store.budget(key)).reserved == 0
    with pytest.raises(ValueError, match="amount"):
        await store.reserve([key], -1)
    with pytest.raises(ValueError, match="scopes"):
        await store.reserve([], 1)
    held = await store.reserve([key], 1)
    with pytest.raises(ValueError, match="cost"):
        await store.settle(held, -1)


async def test_changing_a_budget_keeps_what_was_spent(store: SqlGovernanceStore) -> None:
    key = await _key(store, max_budget=1_000)
    await store.settle(await store.reserve([key], 800), 800)
    await store.update_key(key.entity_id, {"max_budget": 900})
    with pytest.raises(BudgetExceededError):
        await store.reserve([key], 101)
    await store.update_key(key.entity_id, {"max_budget": None})
    await store.reserve([key], 10**9)
    assert (await store.budget(key)).spend == 800


async def test_a_period_that_ends_resets_spend_lazily_and_keeps_holds_in_flight(
    kit: StoreKit, store: SqlGovernanceStore
) -> None:
    # The kit's clock starts at 23:59 on the last day of a month.
    key = await _key(store, max_budget=1_000, budget_duration="1d")
    before = await store.budget(key)
    assert before.reset_at is not None and before.reset_at.day == 1 and before.reset_at.hour == 0
    await store.settle(await store.reserve([key], 700), 700)
    in_flight = await store.reserve([key], 300)
    with pytest.raises(BudgetExceededError):
        await store.reserve([key], 1)
    kit.now.advance(minutes=1)
    after = await store.budget(key)
    assert (after.spend, after.reserved) == (0, 300)
    assert after.reset_at is not None and after.reset_at.day == 2
    await store.reserve([key], 700)
    with pytest.raises(BudgetExceededError):
        await store.reserve([key], 1)
    await store.settle(in_flight, 250)  # lands in the new period
    final = await store.budget(key)
    assert (final.spend, final.reserved) == (250, 700)


async def test_a_monthly_team_budget_resets_on_the_first(
    kit: StoreKit, store: SqlGovernanceStore
) -> None:
    team = await store.create_team(TeamSettings(max_budget=10, budget_duration="1mo"))
    scope = Scope("team", team.id)
    await store.settle(await store.reserve([scope], 10), 10)
    kit.now.advance(seconds=30)
    with pytest.raises(BudgetExceededError):
        await store.reserve([scope], 1)
    kit.now.advance(seconds=30)
    await store.reserve([scope], 10)
    budget = await store.budget(scope)
    assert budget.reset_at is not None and (budget.reset_at.month, budget.reset_at.day) == (5, 1)


async def test_an_unaligned_period_continues_from_the_last_reset(
    kit: StoreKit, store: SqlGovernanceStore
) -> None:
    start = kit.now()
    key = await _key(store, max_budget=100, budget_duration="7h")
    assert (await store.budget(key)).reset_at == start + timedelta(hours=7)
    await store.settle(await store.reserve([key], 100), 100)
    kit.now.advance(hours=15)  # two periods later, nothing touched the budget in between
    assert (await store.budget(key)).reset_at == start + timedelta(hours=21)
    await store.reserve([key], 100)
    budget = await store.budget(key)
    assert (budget.spend, budget.reserved) == (0, 100)
    assert budget.reset_at == start + timedelta(hours=21)


async def test_a_reservation_nobody_settles_is_given_back_when_it_expires(
    kit: StoreKit,
) -> None:
    store = await kit.open(reservation_ttl=60)
    key = await _key(store, max_budget=1_000)
    abandoned = await store.reserve([key], 1_000)
    with pytest.raises(BudgetExceededError):
        await store.reserve([key], 1)
    kit.now.advance(seconds=61)
    # The refusal it would cause finds the expired hold and gives it back first.
    fresh = await store.reserve([key], 400)
    assert (await store.budget(key)).reserved == 400
    assert await store.expire_reservations() == 0
    # Its holder comes back after all: the cost is charged, the hold is not taken off twice.
    assert await store.settle(abandoned, 300)
    assert not await store.settle(abandoned, 300)
    await store.settle(fresh, 400)
    budget = await store.budget(key)
    assert (budget.spend, budget.reserved) == (700, 0)


async def test_concurrent_reservations_from_several_engines_never_overspend(kit: StoreKit) -> None:
    stores = [await kit.open(pool_size=4) for _ in range(4)]
    amount = 1_000
    key = await _key(stores[0], max_budget=37 * amount + amount // 2)
    await stores[0].create_team(TeamSettings(max_budget=10**9), team_id="all")
    team = Scope("team", "all")

    async def attempt(index: int) -> object:
        store = stores[index % len(stores)]
        try:
            return await store.reserve([team, key], amount)
        except BudgetExceededError as refused:
            return refused

    outcomes = await asyncio.gather(*(attempt(i) for i in range(200)))
    granted = [o for o in outcomes if not isinstance(o, BudgetExceededError)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    assert len(granted) == 37
    assert len(refused) == 163
    assert all(r.scope == key for r in refused)
    assert (await stores[1].budget(key)).reserved == 37 * amount
    assert (await stores[2].budget(team)).reserved == 37 * amount

    async def finish(index: int, held: object) -> None:
        store = stores[index % len(stores)]
        if index % 2:
            await store.release(held)  # type: ignore[arg-type]
        else:
            await store.settle(held, index)  # type: ignore[arg-type]

    await asyncio.gather(*(finish(i, held) for i, held in enumerate(granted)))
    spent = sum(i for i in range(len(granted)) if not i % 2)
    for scope in (key, team):
        budget = await stores[3].budget(scope)
        assert (budget.spend, budget.reserved) == (spent, 0)


async def test_races_across_a_reset_and_new_model_counters_neither_deadlock_nor_overspend(
    kit: StoreKit,
) -> None:
    # At the period boundary some scopes are due a reset and others are not, and per-model
    # counters are created by the first reservations that name them: every lock is still
    # taken in one order, so no transaction deadlocks.
    stores = [await kit.open(pool_size=4) for _ in range(4)]
    await stores[0].create_team(TeamSettings(max_budget=50, budget_duration="1d"), team_id="t")
    key = await _key(stores[0], team_id="t", user_id=None)
    team = Scope("team", "t")
    await stores[0].settle(await stores[0].reserve([key, team], 50), 50)
    kit.now.advance(minutes=1)  # the team's day ends; the key has no period
    shapes = [
        [key, team],
        [team, Scope("key", key.entity_id, "m1")],
        [Scope("key", key.entity_id, "m2"), key, team],
        [Scope("team", "t", "m1"), team, key],
    ]

    async def attempt(index: int) -> bool:
        try:
            await stores[index % 4].reserve(shapes[index % len(shapes)], 1)
        except BudgetExceededError:
            return False
        return True

    granted = sum(await asyncio.gather(*(attempt(i) for i in range(120))))
    assert granted == 50
    budget = await stores[0].budget(team)
    assert (budget.spend, budget.reserved) == (0, 50)


@pytest.mark.services
async def test_connections_the_server_closed_are_replaced_without_a_failure(
    postgres_kit: StoreKit,
) -> None:
    kit = postgres_kit
    store = await kit.open(pool_size=3)
    key = await _key(store, max_budget=1_000)
    held = await asyncio.gather(*(store.reserve([key], 100) for _ in range(3)))
    database = kit.url.rsplit("/", 1)[1]
    closed = await terminate_connections(database)
    assert closed >= 1
    # Every pooled connection is dead now; each operation meets one and still succeeds once.
    assert all(await asyncio.gather(*(store.settle(h, 50) for h in held)))
    await store.reserve([key], 100)
    budget = await store.budget(key)
    assert (budget.spend, budget.reserved) == (150, 100)


async def test_a_reservation_whose_caller_is_cancelled_is_given_back(kit: StoreKit) -> None:
    store = await kit.open()
    key = await _key(store, max_budget=1_000)
    for _ in range(3):
        caller = asyncio.create_task(store.reserve([key], 1_000))
        await asyncio.sleep(0)  # the reservation is under way
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        # The transaction finishes without its caller, and its hold is then released: wait
        # for the store's background tasks to end.
        await _background_done()
        assert (await store.budget(key)).reserved == 0
    await store.reserve([key], 1_000)
