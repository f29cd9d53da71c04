"""How the gateway refuses a request its key's budgets or rate limits do not allow.

- A budget that cannot hold the request's estimate: 429 in LiteLLM's ``budget_exceeded`` shape,
  its message naming the budget as LiteLLM does (``Key=<id>``, ``Team=<id> model=<name>``),
  with ``Retry-After`` when the budget's period ends (a repeat before then is refused again, so
  the response also says ``x-should-retry: false``).
- A rate limit used up: 429 ``rate_limit_error`` with ``Retry-After`` (seconds until the limit's
  window frees what it counted) and OpenAI's ``x-ratelimit-*`` headers.
- The shared ledger unreachable while failing closed: 503 in OpenAI's shape.
- A budgeted request for a model with no known price: 400 naming the model (its spend could not
  be held against the budget).

Each refusal carries its own response headers (`headers`), which the error middleware adds to
the retry advice every error gets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

from turnout.errors import FailureKind, FallbackKind, InvalidRequestError, TurnoutError
from turnout.governance.ledger import (
    BudgetExceeded,
    LimitStatus,
    RateLimited,
    dollars,
    rate_limit_headers,
)


class LedgerRefusal(TurnoutError):
    """A refusal that answers with headers of its own."""

    fallback: ClassVar[FallbackKind | None] = None

    def __init__(self, message: str, headers: Mapping[str, str]) -> None:
        super().__init__(message)
        self.headers = dict(headers)


def describe_scope(scope: str) -> str:
    """A ledger scope in LiteLLM's words: ``key:abc:model:gpt-4o`` is ``Key=abc model=gpt-4o``."""
    owner, _, model = scope.partition(":model:")
    kind, _, ident = owner.partition(":")
    text = f"{kind.capitalize()}={ident}"
    return f"{text} model={model}" if model else text


class BudgetRefusedError(LedgerRefusal):
    """429 ``budget_exceeded``: a budget cannot hold the request's estimate."""

    status = 429
    openai_type = "budget_exceeded"
    openai_code = "429"
    kind = FailureKind.RATE_LIMITED

    def __init__(self, refusal: BudgetExceeded) -> None:
        headers = {}
        if refusal.retry_after is not None:
            headers["retry-after"] = str(refusal.retry_after)
        super().__init__(
            f"Budget has been exceeded! {describe_scope(refusal.scope)} Current cost: "
            f"{dollars(refusal.spent + refusal.reserved)}, Max budget: "
            f"{dollars(refusal.max_budget)}",
            headers,
        )


class RateLimitRefusedError(LedgerRefusal):
    """429 ``rate_limit_error``: a key's or team's rate limit is used up for now."""

    status = 429
    openai_type = "rate_limit_error"
    openai_code = "rate_limit_exceeded"
    kind = FailureKind.RATE_LIMITED

    def __init__(self, refusal: RateLimited) -> None:
        status = LimitStatus(
            refusal.scope, refusal.kind, refusal.limit, refusal.remaining, refusal.reset
        )
        headers = dict(rate_limit_headers([status]))
        headers["retry-after"] = str(refusal.retry_after or 1)
        super().__init__(
            f"Rate limit exceeded for {describe_scope(refusal.scope)}. Limit type: "
            f"{refusal.kind}. Current limit: {refusal.limit}, Remaining: {refusal.remaining}. "
            f"Limit resets in {math.ceil(refusal.reset)}s",
            headers,
        )
        self.retry_after = refusal.retry_after

    def client_wait(self) -> float | None:
        return float(self.retry_after) if self.retry_after is not None else None


class LedgerDownError(TurnoutError):
    """503: the shared budget ledger cannot be reached and the gateway fails closed."""

    status = 503
    openai_type = "service_unavailable"
    openai_code = "ledger_unavailable"
    fallback: ClassVar[FallbackKind | None] = None

    def __init__(self) -> None:
        super().__init__(
            "The gateway cannot reach its budget and rate-limit ledger, so this key's budgets "
            "and limits cannot be enforced now; try again shortly"
        )


class UnpricedModelError(InvalidRequestError):
    """A budgeted key asked for a model whose spend cannot be priced."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="model")
