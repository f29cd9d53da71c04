"""The spend `/key/info`, `/team/info` and `/user/info` report: what the ledger charged.

For a key, team or user with a budget, the ledger's own figure for the current period (which
starts from the spend logs, its `seed`, and adds every request settled since), so that the
reported spend is exactly what admission compares with ``max_budget``. Without a budget
nothing is held for it, and the figure is the spend logs' sum for the current period (the
whole history when no ``budget_duration`` is set); rows are written off the request path, so
it trails the requests that just ended by the time of their write.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from turnout.gateway.key_rules import ledger_period, period_start
from turnout.gateway.ledger_errors import LedgerDownError
from turnout.governance import GovernanceStore, Key, Team, TeamSettings, User
from turnout.governance.ledger import Budget, Ledger, LedgerUnavailable, wall_ms

EntityT = TypeVar("EntityT", Key, Team, User)


async def with_ledger_spend(
    ledger: Ledger | None, store: GovernanceStore, entity: EntityT
) -> EntityT:
    """`entity` with its budget's spend as charged (see the module doc)."""
    if isinstance(entity, Key):
        scope, owner = f"key:{entity.id}", {"api_key": entity.token_hash}
    elif isinstance(entity.settings, TeamSettings):
        scope, owner = f"team:{entity.id}", {"team_id": entity.id}
    else:
        scope, owner = f"user:{entity.id}", {"user_id": entity.id}
    settings = entity.settings
    period = ledger_period(settings.budget_duration, entity.budget.reset_at)
    spent = await store.spend_since(period_start(period, wall_ms()), **owner)
    if ledger is not None and settings.max_budget is not None:
        budget = Budget(scope, settings.max_budget, period, spent)
        try:
            spent = (await ledger.budget(budget)).spent
        except LedgerUnavailable:
            raise LedgerDownError() from None
    return msgspec.structs.replace(
        entity, budget=msgspec.structs.replace(entity.budget, spend=spent)
    )
