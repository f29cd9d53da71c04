"""Redis stopped under the ledger: closed by default, open on request, nothing consumed lost.

Each test runs a redis-server of its own, stops it and starts it again on the same port (empty:
nothing is saved), as a Redis restart or a network cut would look to the gateway.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from ledger_kit import ask, redis_config, wait_until

from services import RedisServer
from turnout.governance.ledger import Budget, BudgetExceeded, LedgerUnavailable, Limits
from turnout.governance.redis_ledger import RedisLedger

pytestmark = pytest.mark.services

BUDGET = Budget("key:k1", max=1000)


def _ledger(server: RedisServer, **options: object) -> RedisLedger:
    config = redis_config(server, prefix="outage", retry_interval=0.2)
    return RedisLedger(config, **options)  # type: ignore[arg-type]


async def test_fails_closed_by_default_and_recovers(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = _ledger(own_redis)
    try:
        await ledger.admit(ask(100, budgets=(BUDGET,)))
        own_redis.stop()
        with caplog.at_level(logging.WARNING, "turnout.governance"):
            with pytest.raises(LedgerUnavailable, match="unreachable"):
                await ledger.admit(ask(100, budgets=(BUDGET,)))
            with pytest.raises(LedgerUnavailable):
                await ledger.admit(ask(0, limits=(Limits("key:k1", rpm=5),)))
            with pytest.raises(LedgerUnavailable):
                await ledger.budget(BUDGET)
        assert not ledger.shared and ledger.outages == 1
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1 and "refusing requests" in said[0]
        assert f"127.0.0.1:{own_redis.port}" in said[0]
        own_redis.start()

        async def back() -> bool:
            try:
                await ledger.admit(ask(100, budgets=(BUDGET,)))
            except LedgerUnavailable:
                return False
            return True

        await wait_until(back, 5.0)
        assert ledger.shared
    finally:
        await ledger.aclose()


async def test_fails_open_on_request_with_the_limits_held_locally(
    own_redis: RedisServer,
) -> None:
    ledger = _ledger(own_redis, fail_open=True)
    try:
        own_redis.stop()
        local = [await ledger.admit(ask(400, budgets=(BUDGET,))) for _ in range(2)]
        assert not any(ticket.shared for ticket in local)
        with pytest.raises(BudgetExceeded):  # the in-process ledger still counts
            await ledger.admit(ask(400, budgets=(BUDGET,)))
        assert (await ledger.budget(BUDGET)).reserved == 800
        for ticket in local:
            await ledger.settle(ticket, 300, 0)
        own_redis.start()

        async def charged() -> bool:
            try:
                return (await ledger.budget(BUDGET)).spent == 600
            except LedgerUnavailable:
                return False

        # What was consumed during the outage reaches Redis once it answers.
        await wait_until(charged, 5.0)
    finally:
        await ledger.aclose()


async def test_ends_sent_while_redis_is_away_are_charged_once_it_answers(
    own_redis: RedisServer,
) -> None:
    ledger = _ledger(own_redis)
    other = _ledger(own_redis)
    try:
        tickets = [await ledger.admit(ask(100, budgets=(BUDGET,))) for _ in range(3)]
        own_redis.stop()
        for ticket in tickets:
            await ledger.settle(ticket, 70, 0)  # kept, not raised: the tokens were served
        await ledger.settle(tickets[0], 70, 0)  # sent twice: charged once
        own_redis.start()  # empty: the holds are gone with it

        async def charged() -> bool:
            try:
                await ledger.admit(ask(0))  # any call that reaches Redis sends the kept ends
            except LedgerUnavailable:
                return False
            return (await other.budget(BUDGET)).spent == 210

        await wait_until(charged, 5.0)
        assert (await other.budget(BUDGET)).reserved == 0
    finally:
        await ledger.aclose()
        await other.aclose()


async def test_kept_ends_are_sent_at_close(own_redis: RedisServer) -> None:
    ledger = _ledger(own_redis)
    ticket = await ledger.admit(ask(100, budgets=(BUDGET,)))
    own_redis.stop()
    await ledger.settle(ticket, 55, 0)
    own_redis.start()
    await asyncio.sleep(0.3)  # past the retry interval
    await ledger.aclose()
    reader = _ledger(own_redis)
    try:
        assert (await reader.budget(BUDGET)).spent == 55
    finally:
        await reader.aclose()
