"""Which ledger a gateway opens, and how it fails, from each config shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from turnout.config.load import parse_config
from turnout.config.store import StoreConfig
from turnout.gateway.ledger_choice import open_ledger
from turnout.gateway.store_ledger import StoreLedger
from turnout.gateway.store_link import StoreLink
from turnout.governance.ledger import Ask, Budget, LedgerUnavailable, MemoryLedger
from turnout.governance.redis_ledger import RedisLedger

MODELS: Any = {"model_list": [{"model_name": "chat", "provider": "openai", "model": "gpt-4o"}]}
LITELLM: Any = {
    "model_list": [{"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o"}}]
}


async def test_redis_state_means_the_shared_ledger_failing_closed_by_default() -> None:
    config = parse_config({**MODELS, "state": {"backend": "redis"}}, environ={})
    ledger = open_ledger(config)
    assert isinstance(ledger, RedisLedger) and ledger.fail_open is False
    await ledger.aclose()
    opened = parse_config(
        {**MODELS, "state": {"backend": "redis"}, "store": {"fail_open": True}}, environ={}
    )
    ledger = open_ledger(opened)
    assert isinstance(ledger, RedisLedger) and ledger.fail_open is True
    await ledger.aclose()


async def test_in_process_state_means_the_in_process_ledger() -> None:
    assert isinstance(open_ledger(parse_config(MODELS, environ={})), MemoryLedger)


@pytest.mark.parametrize(("closed", "fail_open"), [(True, False), (False, True)])
def test_litellms_fail_closed_setting_is_read(closed: bool, fail_open: bool) -> None:
    data = {**LITELLM, "general_settings": {"fail_closed_budget_enforcement": closed}}
    config = parse_config(data, environ={})
    assert config.store.fail_open is fail_open
    assert not any("fail_closed_budget_enforcement" in w for w in config.warnings)
    # Saying how to fail turns no store on.
    assert config.store.enabled is None


async def test_several_workers_without_redis_share_the_ledger_in_the_store() -> None:
    config = parse_config({**MODELS, "server": {"workers": 2}}, environ={})
    link = StoreLink(config.store)
    ledger = open_ledger(config, link)
    assert isinstance(ledger, StoreLedger) and ledger.fail_open is False
    # The store is not open yet: fail closed, as a shared ledger that is down does.
    with pytest.raises(LedgerUnavailable):
        await ledger.admit(Ask(cost=1, budgets=(Budget("key:k", 10),)))
    await ledger.aclose()
    # One worker keeps the cheapest exact ledger: its own.
    single = parse_config(MODELS, environ={})
    assert isinstance(open_ledger(single, StoreLink(single.store)), MemoryLedger)


async def test_what_was_admitted_locally_while_the_store_was_away_is_charged_to_it(
    tmp_path: Path,
) -> None:
    """Failing open, the workers' shared ledger still learns what an outage spent."""
    config = StoreConfig(url=f"sqlite:///{tmp_path / 'turnout.db'}", enabled=True)
    link = StoreLink(config)
    budget = Budget("key:k", 100)
    ledger = StoreLedger(link, hold_seconds=600, fail_open=True)
    ticket = await ledger.admit(Ask(cost=10, budgets=(budget,)))  # the store is not open yet
    assert not ticket.shared
    await ledger.settle(ticket, 7, 0)
    await link.start()
    await ledger.aclose()  # sends the kept charge
    reader = StoreLedger(link, hold_seconds=600, fail_open=False)
    try:
        assert (await reader.budget(budget)).spent == 7
    finally:
        await reader.aclose()
        await link.aclose()
