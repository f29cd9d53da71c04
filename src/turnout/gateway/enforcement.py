"""Admission: before a virtual key's request is routed, hold it against the key's budgets and
rate limits on the ledger, all at once, or refuse it.

The hold (`turnout.governance.estimate`) is the most the request may cost on any deployment the
router might end on: the model group's deployments and those of its fallbacks. A key with
budgets needs prices for all of them (else `UnpricedModelError`); a key with only rate limits
needs none, its TPM limits holding the request's estimated tokens. Requests of the master key,
and of keys with neither budgets nor limits, are not held: they are only accounted
(`turnout.gateway.spend_tracking`).
"""

from __future__ import annotations

from collections.abc import Sequence

from turnout.config.router import Deployment
from turnout.errors import InvalidRequestError
from turnout.gateway.key_rules import Rules
from turnout.gateway.ledger_errors import (
    BudgetRefusedError,
    LedgerDownError,
    RateLimitRefusedError,
    UnpricedModelError,
)
from turnout.governance.estimate import UnpricedModel, estimate, estimate_tokens
from turnout.governance.ledger import (
    LARGEST,
    Ask,
    BudgetExceeded,
    Ledger,
    LedgerUnavailable,
    RateLimited,
    Ticket,
)
from turnout.router.router import Router
from turnout.wire import Operation, Request

#: Candidates by model group, for the deployment list they were worked out from (a reload
#: brings a new list, and with it an empty cache).
_candidates: tuple[tuple[Deployment, ...], dict[str, list[Deployment]]] = ((), {})


def candidates(router: Router, group: str) -> list[Deployment]:
    """The deployments a request for `group` may end on: the group's and its fallbacks'."""
    global _candidates
    deployments = router.deployments()
    if _candidates[0] is not deployments:
        _candidates = (deployments, {})
    found = _candidates[1].get(group)
    if found is None:
        found = _candidates[1][group] = _candidates_of(router, group)
    return found


def _candidates_of(router: Router, group: str) -> list[Deployment]:
    config = router.config
    groups = {group}
    fallbacks = config.fallbacks
    for table in (
        fallbacks.general,
        fallbacks.context_window,
        fallbacks.content_policy,
        fallbacks.rate_limit,
    ):
        groups.update(table.get(group, ()))
        groups.update(table.get("*", ()))
    return [d for d in router.deployments() if d.model_name in groups]


def build_ask(rules: Rules, request: Request, group: str, router: Router) -> Ask | None:
    """What `request` asks of the ledger under `rules` (None: nothing to hold)."""
    budgets, limits = rules.for_model(request.model, group)
    if not budgets and not limits:
        return None
    cost = tokens = 0
    deployments: Sequence[Deployment] = ()
    if budgets or any(limit.tpm is not None for limit in limits):
        deployments = candidates(router, group)
    if budgets:
        try:
            held = estimate(request, deployments)
        except UnpricedModel as unpriced:
            raise UnpricedModelError(str(unpriced)) from None
        cost, tokens = held.cost, held.tokens
    elif deployments:
        tokens = estimate_tokens(request, deployments).total
    if cost >= LARGEST or tokens >= LARGEST:
        raise _too_large(request)
    return Ask(cost, tokens, budgets, limits, rules.partition)


def _too_large(request: Request) -> InvalidRequestError:
    """A request whose estimate no ledger can count (2**53 micro-dollars or tokens)."""
    body = request.body
    for name in ("max_completion_tokens", "max_tokens", "n", "best_of"):
        if isinstance(body.get(name), int) and body[name] > 1:
            field = name
            break
    else:
        field = {Operation.CHAT: "messages", Operation.COMPLETION: "prompt"}.get(
            request.operation, "input"
        )
    return InvalidRequestError(
        f"`{field}` is too large: the request's estimated cost or tokens cannot be held "
        "against its key's budgets and limits",
        param=field,
    )


async def admit(ledger: Ledger, ask: Ask) -> Ticket:
    """Hold `ask` on `ledger`, or raise the refusal the caller gets."""
    try:
        return await ledger.admit(ask)
    except BudgetExceeded as refusal:
        raise BudgetRefusedError(refusal) from None
    except RateLimited as refusal:
        raise RateLimitRefusedError(refusal) from None
    except LedgerUnavailable:
        raise LedgerDownError() from None
