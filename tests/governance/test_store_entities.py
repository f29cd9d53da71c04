"""The store's contract for keys, teams and users, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from governance_stores import StoreKit
from turnout.governance import (
    ConflictError,
    GovernanceStore,
    KeySettings,
    ModelLimits,
    NotFoundError,
    Scope,
    SpendRow,
    TeamSettings,
    UserSettings,
)
from turnout.governance.periods import parse_duration
from turnout.governance.sql import SqlGovernanceStore
from turnout.secrets import Secret


def spend_row(request_id: str, digest: str, spend: int) -> SpendRow:
    at = datetime(2026, 4, 1, tzinfo=UTC)
    return SpendRow(request_id=request_id, api_key=digest, spend=spend, start_time=at, end_time=at)


def test_the_sql_store_honours_the_contract(store: SqlGovernanceStore) -> None:
    # Checked by mypy (every method's signature) as much as at run time.
    contract: GovernanceStore = store
    assert isinstance(contract, SqlGovernanceStore)


async def test_a_key_is_stored_only_as_its_digest_and_found_by_it(
    store: SqlGovernanceStore,
) -> None:
    created = await store.create_key(
        KeySettings(key_alias="ci", models=("gpt-4o",), metadata={"env": "ci"}, max_budget=5)
    )
    record = created.record
    assert created.key.startswith("sk-")
    assert record.token_hash == store.key_hash(created.key)
    assert record.key_name == f"sk-...{created.key[-4:]}"
    assert created.key not in repr(record)
    assert record.settings.models == ("gpt-4o",)
    assert record.settings.metadata == {"env": "ci"}
    assert record.budget.max_budget == 5
    assert record.budget.spend == 0
    assert await store.key_by_hash(record.token_hash) == record
    assert await store.get_key(record.id) == record
    assert await store.key_by_hash(store.key_hash("sk-not-a-key")) is None


async def test_a_custom_key_is_kept_and_may_not_be_taken_twice(store: SqlGovernanceStore) -> None:
    created = await store.create_key(KeySettings(), key="sk-my-own-key")
    assert created.key == "sk-my-own-key"
    with pytest.raises(ConflictError, match="taken"):
        await store.create_key(KeySettings(), key="sk-my-own-key")


async def test_a_pepper_changes_the_stored_digest(kit: StoreKit) -> None:
    plain = await kit.open()
    peppered = await kit.open(pepper=Secret("a-server-secret"))
    created = await peppered.create_key(KeySettings())
    assert created.record.token_hash == peppered.key_hash(created.key)
    assert created.record.token_hash != plain.key_hash(created.key)
    assert await plain.key_by_hash(plain.key_hash(created.key)) is None


async def test_updates_change_only_the_fields_named_and_are_validated(
    store: SqlGovernanceStore,
) -> None:
    record = (await store.create_key(KeySettings(key_alias="a", rpm_limit=10))).record
    updated = await store.update_key(record.id, {"tpm_limit": 1000, "metadata": {"x": 1}})
    assert updated.settings.key_alias == "a"
    assert updated.settings.rpm_limit == 10
    assert updated.settings.tpm_limit == 1000
    assert updated.settings.metadata == {"x": 1}
    with pytest.raises(ValueError, match="max_budget"):
        await store.update_key(record.id, {"max_budget": -1})
    with pytest.raises(ValueError, match="budget_duration"):
        await store.update_key(record.id, {"budget_duration": "monthly"})
    with pytest.raises(ValueError, match="unknown field `spend_cap`"):
        await store.update_key(record.id, {"spend_cap": 1})
    assert (await store.get_key(record.id)).settings == updated.settings


async def test_block_unblock_and_soft_delete(store: SqlGovernanceStore) -> None:
    record = (await store.create_key(KeySettings())).record
    assert (await store.block_key(record.id)).settings.blocked
    blocked = await store.key_by_hash(record.token_hash)
    assert blocked is not None and blocked.settings.blocked
    assert not (await store.unblock_key(record.id)).settings.blocked
    deleted = await store.delete_key(record.id)
    assert deleted.deleted_at is not None
    assert await store.key_by_hash(record.token_hash) is None
    with pytest.raises(NotFoundError):
        await store.get_key(record.id)
    with pytest.raises(NotFoundError):
        await store.update_key(record.id, {"blocked": False})
    kept = await store.list_keys(include_deleted=True)
    assert [k.id for k in kept.items] == [record.id]
    assert (await store.list_keys()).total == 0


async def test_regenerating_keeps_the_key_and_its_spend_and_honours_the_grace_period(
    kit: StoreKit, store: SqlGovernanceStore
) -> None:
    first = await store.create_key(KeySettings(max_budget=1_000_000))
    await store.write_spend([spend_row("r1", first.record.token_hash, 250)])
    second = await store.regenerate_key(
        first.record.id, grace_period=parse_duration("1h"), changes={"key_alias": "rotated"}
    )
    assert second.key != first.key
    assert second.record.id == first.record.id
    assert second.record.budget.spend == 250
    assert second.record.settings.key_alias == "rotated"
    old = await store.key_by_hash(store.key_hash(first.key))
    new = await store.key_by_hash(store.key_hash(second.key))
    assert old is not None and new is not None and old.id == new.id == first.record.id
    kit.now.advance(hours=1)
    assert await store.key_by_hash(store.key_hash(first.key)) is None
    assert await store.key_by_hash(store.key_hash(second.key)) is not None
    third = await store.regenerate_key(first.record.id)
    assert await store.key_by_hash(store.key_hash(second.key)) is None
    assert await store.key_by_hash(store.key_hash(third.key)) is not None
    with pytest.raises(ConflictError):
        await store.regenerate_key(first.record.id, key=first.key)


async def test_a_deleted_keys_grace_period_ends_with_it(kit: StoreKit) -> None:
    store = await kit.open()
    first = await store.create_key(KeySettings())
    await store.regenerate_key(first.record.id, grace_period=parse_duration("1d"))
    await store.delete_key(first.record.id)
    assert await store.key_by_hash(store.key_hash(first.key)) is None


async def test_key_expiry_is_kept_as_an_aware_time(kit: StoreKit) -> None:
    store = await kit.open()
    expires = kit.now() + timedelta(days=30)
    record = (await store.create_key(KeySettings(expires=expires))).record
    assert (await store.get_key(record.id)).settings.expires == expires


async def test_lists_filter_and_page_oldest_first(kit: StoreKit, store: SqlGovernanceStore) -> None:
    team = await store.create_team(TeamSettings(team_alias="search"), team_id="search")
    user = await store.create_user(UserSettings(user_email="a@example.com"), user_id="ana")
    made = []
    for i in range(5):
        kit.now.advance(seconds=1)
        made.append(
            (await store.create_key(KeySettings(team_id=team.id, key_alias=f"k{i}"))).record
        )
    other = (await store.create_key(KeySettings(user_id=user.id))).record
    everything = await store.list_keys()
    assert everything.total == 6
    page = await store.list_keys(team_id="search", offset=2, limit=2)
    assert page.total == 5
    assert [k.id for k in page.items] == [k.id for k in made[2:4]]
    assert [k.id for k in (await store.list_keys(user_id="ana")).items] == [other.id]
    assert [k.id for k in (await store.list_keys(key_alias="k3")).items] == [made[3].id]
    with pytest.raises(ValueError, match="limit"):
        await store.list_keys(limit=0)


async def test_a_key_names_only_teams_and_users_that_exist(store: SqlGovernanceStore) -> None:
    with pytest.raises(NotFoundError, match="team"):
        await store.create_key(KeySettings(team_id="nobody"))
    record = (await store.create_key(KeySettings())).record
    with pytest.raises(NotFoundError, match="user"):
        await store.update_key(record.id, {"user_id": "nobody"})


async def test_teams_and_users_are_created_updated_listed_and_deleted(
    store: SqlGovernanceStore,
) -> None:
    team = await store.create_team(
        TeamSettings(team_alias="research", max_budget=100, budget_duration="30d")
    )
    assert team.budget.max_budget == 100
    assert team.budget.reset_at is not None
    assert (await store.get_team(team.id)).settings.team_alias == "research"
    with pytest.raises(ConflictError):
        await store.create_team(TeamSettings(), team_id=team.id)
    updated = await store.update_team(team.id, {"max_budget": 200, "models": ["gpt-4o"]})
    assert updated.budget.max_budget == 200
    assert updated.settings.models == ("gpt-4o",)
    user = await store.create_user(
        UserSettings(user_email="ana@example.com", user_role="internal_user"), user_id="ana"
    )
    assert (await store.get_user("ana")).settings == user.settings
    assert (await store.update_user("ana", {"user_alias": "Ana"})).settings.user_alias == "Ana"
    assert (await store.list_teams()).total == 1
    assert [u.id for u in (await store.list_users()).items] == ["ana"]
    assert (await store.delete_team(team.id)).deleted_at is not None
    assert (await store.delete_user("ana")).deleted_at is not None
    assert (await store.list_teams()).total == 0
    assert (await store.list_users(include_deleted=True)).total == 1
    with pytest.raises(NotFoundError):
        await store.get_team(team.id)


async def test_per_model_limits_are_stored_with_their_own_budget(
    store: SqlGovernanceStore,
) -> None:
    limits = {
        "gpt-4o": ModelLimits(max_budget=50, budget_duration="1d", rpm_limit=5),
        "claude": ModelLimits(tpm_limit=1000),
    }
    record = (await store.create_key(KeySettings(model_limits=limits))).record
    assert record.settings.model_limits == limits
    assert (await store.budget(Scope("key", record.id, "gpt-4o"))).max_budget == 50
    updated = await store.update_key(record.id, {"model_limits": {"claude": {"tpm_limit": 10}}})
    assert updated.settings.model_limits == {"claude": ModelLimits(tpm_limit=10)}
    # The model whose budget was removed keeps its counter, unlimited.
    assert (await store.budget(Scope("key", record.id, "gpt-4o"))).max_budget is None
