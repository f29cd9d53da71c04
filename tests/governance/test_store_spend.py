"""The spend ledger: idempotent rows by request id, a daily aggregate counted once per row."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta

import pytest

from governance_stores import StoreKit
from turnout.governance import (
    KeySettings,
    ModelLimits,
    SpendRow,
    TeamSettings,
    UserSettings,
)
from turnout.governance.periods import parse_duration
from turnout.governance.sql import SqlGovernanceStore

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def row(request_id: str, *, at: datetime = T0, **fields: object) -> SpendRow:
    values: dict[str, object] = {
        "api_key": "a" * 64,
        "key_alias": "ci",
        "team_id": "t",
        "user_id": None,
        "model_group": "gpt-4o",
        "model": "gpt-4o-2024-08-06",
        "deployment": "openai-1",
        "provider": "openai",
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cached_tokens": 10,
        "spend": 1_250,
        "start_time": at,
        "end_time": at + timedelta(seconds=2),
        "completion_start_time": at + timedelta(milliseconds=300),
        "attempts": "openai-1: ok",
    }
    values.update(fields)
    return SpendRow(request_id=request_id, **values)  # type: ignore[arg-type]


async def test_rows_are_stored_as_given_and_read_back_by_filter(store: SqlGovernanceStore) -> None:
    rows = [
        row("r1"),
        row("r2", at=T0 + timedelta(minutes=1), api_key="b" * 64, status="failure", spend=0),
        row("r3", at=T0 + timedelta(days=1), user_id="ana"),
    ]
    assert await store.write_spend(rows) == 3
    assert await store.spend_logs() == rows
    assert await store.spend_logs(api_key="a" * 64) == [rows[0], rows[2]]
    assert await store.spend_logs(request_id="r2") == [rows[1]]
    assert await store.spend_logs(user_id="ana") == [rows[2]]
    assert await store.spend_logs(team_id="t", limit=1) == [rows[0]]
    window = await store.spend_logs(start=T0 + timedelta(seconds=1), end=T0 + timedelta(days=1))
    assert window == [rows[1]]


async def test_the_same_request_twice_is_one_row_counted_once(store: SqlGovernanceStore) -> None:
    first = row("dup", spend=1_000)
    assert await store.write_spend([first, row("other", spend=5)]) == 2
    # A writer that retries a batch (or a duplicate within one) changes nothing.
    assert await store.write_spend([row("dup", spend=9_999), first]) == 0
    assert await store.write_spend([row("new", spend=7), row("new", spend=8)]) == 1
    assert [r.spend for r in await store.spend_logs(request_id="dup")] == [1_000]
    (day,) = await store.daily_spend()
    assert day.api_requests == 3
    assert day.spend == 1_000 + 5 + 7
    assert day.prompt_tokens == 300
    assert await store.total_spend() == 1_012


async def test_concurrent_writers_of_the_same_rows_count_each_once(kit: StoreKit) -> None:
    stores = [await kit.open(pool_size=2) for _ in range(3)]
    rows = [row(f"req-{i}", spend=i) for i in range(300)]
    batches = [rows[i : i + 50] for i in range(0, 300, 50)]
    written = await asyncio.gather(
        *(store.write_spend(batch) for store in stores for batch in batches)
    )
    assert sum(written) == 300
    assert await stores[0].total_spend() == sum(range(300))
    (day,) = await stores[1].daily_spend()
    assert day.api_requests == 300


async def test_the_daily_aggregate_groups_by_day_key_team_user_group_and_provider(
    store: SqlGovernanceStore,
) -> None:
    await store.write_spend(
        [
            row("a", spend=10),
            row("b", spend=20, status="failure"),
            row("c", spend=40, at=T0 + timedelta(days=1)),
            row("d", spend=80, provider="azure"),
            row("e", spend=160, api_key="b" * 64, team_id=None),
        ]
    )
    days = await store.daily_spend()
    assert [(d.day, d.api_key[0], d.team_id, d.provider, d.spend) for d in days] == [
        (date(2026, 4, 1), "a", "t", "azure", 80),
        (date(2026, 4, 1), "a", "t", "openai", 30),
        (date(2026, 4, 1), "b", "", "openai", 160),
        (date(2026, 4, 2), "a", "t", "openai", 40),
    ]
    openai = days[1]
    assert (openai.api_requests, openai.successful_requests, openai.failed_requests) == (2, 1, 1)
    assert await store.total_spend() == 310
    assert await store.total_spend(api_key="a" * 64) == 150
    assert await store.total_spend(start=date(2026, 4, 2)) == 40
    assert await store.total_spend(end=date(2026, 4, 1), team_id="t") == 110
    assert len(await store.daily_spend(api_key="b" * 64)) == 1


async def test_a_large_batch_is_written_whole(store: SqlGovernanceStore) -> None:
    rows = [row(f"bulk-{i:05}", spend=1) for i in range(1_234)]
    assert await store.write_spend(rows) == 1_234
    assert await store.total_spend() == 1_234
    assert len(await store.spend_logs(limit=5_000)) == 1_234


async def test_new_rows_charge_the_budget_counters_of_their_key_team_and_user_once(
    kit: StoreKit,
) -> None:
    store = await kit.open()
    await store.create_team(TeamSettings(max_budget=10**6, budget_duration="1d"), team_id="t")
    await store.create_user(UserSettings(), user_id="u")
    settings = KeySettings(
        team_id="t", user_id="u", model_limits={"gpt-4o": ModelLimits(max_budget=10**6)}
    )
    created = await store.create_key(settings)
    key_id, digest = created.record.id, created.record.token_hash
    rows = [
        row("c1", api_key=digest, user_id="u", spend=300),
        row("c2", api_key=digest, user_id="u", spend=45, model_group="other"),
        row("c3", api_key="f" * 64, team_id="t", spend=5),  # an unknown digest: team only
    ]
    await store.write_spend(rows)
    await store.write_spend(rows)  # written again: charged once
    key = await store.get_key(key_id)
    assert key.budget.spend == 345
    assert key.model_spend == {"gpt-4o": 300}
    assert (await store.get_team("t")).budget.spend == 350
    assert (await store.get_user("u")).budget.spend == 345
    rotated = await store.regenerate_key(key_id, grace_period=parse_duration("1h"))
    await store.write_spend([row("c4", api_key=digest, team_id=None, spend=1)])  # old digest
    await store.write_spend([row("c5", api_key=rotated.record.token_hash, team_id=None, spend=2)])
    assert (await store.get_key(key_id)).budget.spend == 348
    kit.now.advance(days=1)  # the team's day ends: its next charge starts a new period
    assert (await store.get_team("t")).budget.spend == 0
    await store.write_spend([row("c6", api_key="f" * 64, team_id="t", spend=7)])
    team = await store.get_team("t")
    assert team.budget.spend == 7
    assert team.budget.reset_at is not None and team.budget.reset_at > kit.now()


async def test_passing_a_soft_budget_is_logged_once_and_refuses_nothing(
    kit: StoreKit, caplog: pytest.LogCaptureFixture
) -> None:
    store = await kit.open()
    await store.create_team(TeamSettings(soft_budget=500), team_id="t")
    created = await store.create_key(KeySettings(team_id="t", soft_budget=100))
    key_id, digest = created.record.id, created.record.token_hash
    caplog.set_level(logging.WARNING, logger="turnout.governance")

    def alerts() -> list[str]:
        return [r.getMessage() for r in caplog.records if "soft budget" in r.getMessage()]

    await store.write_spend([row("s1", api_key=digest, spend=60)])
    assert alerts() == []
    await store.write_spend([row("s2", api_key=digest, spend=60)])
    assert alerts() == [
        f"soft budget passed: Key={key_id} has spent $0.00012 this period, over its "
        "soft_budget of $0.0001"
    ]
    await store.write_spend([row("s3", api_key=digest, spend=10)])  # already past: no more
    assert len(alerts()) == 1
    await store.write_spend([row("s4", api_key=digest, spend=400)])  # the team's now
    assert len(alerts()) == 2 and alerts()[1].startswith("soft budget passed: Team=t ")
    assert (await store.get_key(key_id)).budget.spend == 530
