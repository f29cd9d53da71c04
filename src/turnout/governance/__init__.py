"""Governance: virtual keys, teams, users, budgets and the spend ledger.

- `money`: amounts as integer micro-dollars, converted exactly at the edges.
- `keys`: generating virtual keys and the one-way digest they are stored under.
- `periods`: LiteLLM's durations, key expiry and calendar-aligned budget resets.
- `records`: the settings and records the store holds.
- `store`: the `GovernanceStore` contract; `sql`: its SQLite/PostgreSQL implementation.
- `ledger`: budgets and rate limits held per request, in process, in the store's database for
  the workers of one instance (`sql.ledger`) or across instances on Redis (`redis_ledger`,
  docs/governance-ledger.md); `estimate`: what a request may cost, held first.
- `spend_sink`, `spend_writer`, `spend_spill`: spend log rows from the request path to the
  store, in batches, off the hot path, never lost.

Budgets are enforced by reservation: before a request, an estimate of its cost is held against
every budget it touches in one atomic step (all or nothing); afterwards the hold is settled with
the real cost or released (docs/governance.md).
"""

from turnout.governance.money import to_dollars, to_micros
from turnout.governance.records import (
    Budget,
    CreatedKey,
    DailySpend,
    Key,
    KeySettings,
    ModelLimits,
    Page,
    Scope,
    SpendRow,
    Team,
    TeamSettings,
    User,
    UserSettings,
)
from turnout.governance.refusals import ConflictError, NotFoundError
from turnout.governance.store import GovernanceStore

__all__ = [
    "Budget",
    "ConflictError",
    "CreatedKey",
    "DailySpend",
    "GovernanceStore",
    "Key",
    "KeySettings",
    "ModelLimits",
    "NotFoundError",
    "Page",
    "Scope",
    "SpendRow",
    "Team",
    "TeamSettings",
    "User",
    "UserSettings",
    "to_dollars",
    "to_micros",
]
