"""Why the store said no: a budget that would be exceeded, or something that does not exist."""

from __future__ import annotations

from typing import ClassVar

from turnout.errors import FailureKind, FallbackKind, TurnoutError
from turnout.governance.money import to_dollars
from turnout.governance.records import Scope


class BudgetExceededError(TurnoutError):
    """A reservation would take a budget past its maximum; nothing was reserved anywhere.

    Answered as LiteLLM answers it today: 429 with ``type: budget_exceeded`` and a message
    naming the budget that refused.
    """

    status = 429
    openai_type = "budget_exceeded"
    openai_code = "429"
    kind = FailureKind.RATE_LIMITED
    fallback: ClassVar[FallbackKind | None] = None

    def __init__(self, scope: Scope, *, spend: int, reserved: int, max_budget: int) -> None:
        super().__init__(
            f"Budget has been exceeded! {scope.describe()} Current cost: "
            f"{to_dollars(spend + reserved)}, Max budget: {to_dollars(max_budget)}"
        )
        self.scope = scope
        self.spend = spend
        self.reserved = reserved
        self.max_budget = max_budget


class NotFoundError(LookupError):
    """No key, team, user or budget counter with that id (or it was deleted)."""

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"no {what} {ident!r}")
        self.what = what
        self.ident = ident


class ConflictError(ValueError):
    """The id (or key) to create is taken."""
