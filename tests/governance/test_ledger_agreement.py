"""The in-process and Redis ledgers agree, operation by operation, on random traffic.

The contract suite checks chosen cases; here the same random sequence of admissions, settles
and releases over overlapping budgets and limits runs on both, and every answer and every
budget's state must be the same.
"""

from __future__ import annotations

import random

import pytest
from ledger_kit import ask, fresh_minute, redis_ledgers

from services import RedisServer
from turnout.governance.ledger import (
    Budget,
    BudgetExceeded,
    Ledger,
    Limits,
    MemoryLedger,
    Period,
    RateLimited,
    Ticket,
)

pytestmark = pytest.mark.services

BUDGETS = [
    Budget("key:a", max=5_000),
    Budget("key:b", max=3_000, seed=1_000),
    Budget("team:t", max=7_000),
    Budget("key:a:model:m", max=2_500),
    Budget("user:u", max=6_000, period=Period.parse("1d", anchor=0)),
    Budget("team:t:member:u", max=4_000, period=Period.parse("1mo")),
]
LIMITS = [
    Limits("key:a", rpm=40, tpm=4_000),
    Limits("key:b", parallel=3),
    Limits("team:t", tpm=6_000, parallel=5),
]


async def _step(ledger: Ledger, rng: random.Random, open_: list[Ticket]) -> object:
    choice = rng.random()
    if open_ and choice < 0.45:
        ticket = open_.pop(rng.randrange(len(open_)))
        if choice < 0.15:
            await ledger.release(ticket)
            return "released"
        cost, tokens = rng.randrange(2 * ticket.ask.cost + 1), rng.randrange(300)
        await ledger.settle(ticket, cost, tokens)
        return ("settled", cost, tokens)
    budgets = tuple(rng.sample(BUDGETS, rng.randrange(len(BUDGETS) + 1)))
    limits = tuple(rng.sample(LIMITS, rng.randrange(len(LIMITS) + 1)))
    try:
        ticket = await ledger.admit(
            ask(rng.randrange(1_200), budgets=budgets, limits=limits, tokens=rng.randrange(700))
        )
    except BudgetExceeded as refused:
        return ("budget", refused.scope, refused.spent, refused.reserved)
    except RateLimited as refused:
        return ("limit", refused.scope, refused.kind, refused.remaining)
    open_.append(ticket)
    return ("admitted", ticket.held_tokens, [(s.scope, s.kind, s.remaining) for s in ticket.limits])


async def test_both_ledgers_answer_alike(redis_server: RedisServer) -> None:
    await fresh_minute(margin_seconds=10)
    memory = MemoryLedger()
    async with redis_ledgers(redis_server, 1) as (shared,):
        open_memory: list[Ticket] = []
        open_shared: list[Ticket] = []
        answers = []
        for step in range(300):
            seed = random.Random(step).random()
            mine = await _step(memory, random.Random(seed), open_memory)
            theirs = await _step(shared, random.Random(seed), open_shared)
            assert mine == theirs, f"step {step}"
            answers.append(mine)
            for budget in BUDGETS:
                assert await memory.budget(budget) == await shared.budget(budget), f"step {step}"
    kinds = {answer[0] if isinstance(answer, tuple) else answer for answer in answers}
    assert kinds == {"admitted", "budget", "limit", "settled", "released"}
