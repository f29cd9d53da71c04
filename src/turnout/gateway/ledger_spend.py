"""The spend `/key/info`, `/team/info` and `/user/info` report: what the ledger charged.

For a key, team or user with a budget, the ledger's own figure for the current period (which
starts from the store's counter, its `seed`, and adds every request settled since), so that
the reported spend is exactly what admission compares with ``max_budget``. Without a budget
nothing is held for it, and the figure is the store's counter for the current period (the
whole history when no ``budget_duration`` is set); rows are written off the request path, so
it trails the requests that just ended by the time of their write.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from turnout.gateway.key_rules import ledger_period
from turnout.gateway.ledger_errors import LedgerDownError
from turnout.governance import Key, Team, TeamSettings, User
from turnout.governance.ledger import Budget, Ledger, LedgerUnavailable

EntityT = TypeVar("EntityT", Key, Team, User)


async def with_ledger_spend(ledger: Ledger | None, entity: EntityT) -> EntityT:
    """`entity` with its budget's spend as charged (see the module doc)."""
    settings = entity.settings
    if ledger is None or settings.max_budget is None:
        return entity
    if isinstance(entity, Key):
        scope = f"key:{entity.id}"
    elif isinstance(settings, TeamSettings):
        scope = f"team:{entity.id}"
    else:
        scope = f"user:{entity.id}"
    period = ledger_period(settings.budget_duration, entity.budget.reset_at)
    budget = Budget(scope, settings.max_budget, period, entity.budget.spend)
    try:
        spent = (await ledger.budget(budget)).spent
    except LedgerUnavailable:
        raise LedgerDownError() from None
    return msgspec.structs.replace(
        entity, budget=msgspec.structs.replace(entity.budget, spend=spent)
    )
