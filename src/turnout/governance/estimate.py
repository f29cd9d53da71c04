"""What a request may cost at most, in integer micro-dollars, before it is sent.

The ledger holds this estimate against the request's budgets while it runs, so it must be an
upper bound the request is unlikely to pass, yet no larger than needed (a hold too large
refuses other requests for nothing: LiteLLM reserved a team's whole headroom for requests
without ``max_tokens``). The rule, per candidate deployment:

    (input tokens x input price + min(max_tokens or the default, the model's output bound)
     x output price) x n

Input tokens are counted by `turnout.tokens` (about four characters per token, on the large
side). The output bound is the caller's `max_output_tokens` for the model when known, else its
context window less the input, else none; embeddings write no output. ``n`` is
``max(n, best_of, 1)``. Over several candidates (a model group's deployments and its
fallbacks) the most expensive one counts, since the router may end on any of them. A
deployment's prices are its own fields, else the built-in list prices
(`turnout.pricing.lookup.with_known_prices`), as routing finds them. Arithmetic is `Decimal`
from the prices' shortest decimal form, rounded up to the next micro-dollar: no float ever
rounds an amount down.

A request that sets no ``max_tokens`` and writes more than the default output bound is charged
what it consumed (settling always charges it), so a budget can be passed by that difference:
the default (4096) keeps such holds small while covering most answers.

Unknown prices: a candidate with neither an input nor an output price cannot be priced before
or after the call, so a budget could not stop its spend; `estimate` raises `UnpricedModel`
(the gateway refuses the request with a message saying to set the deployment's prices)
rather than let a budgeted key spend without bound. Requests that touch no budget need no
price: `estimate_tokens` alone serves rate limits. A deployment with only one of the two prices
has the other taken as 0, as `turnout.pricing.price` charges it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache

from turnout.config.router import Deployment
from turnout.pricing.lookup import with_known_prices
from turnout.wire import Operation, Request

#: Output tokens assumed for a request that sets no ``max_tokens``.
DEFAULT_OUTPUT_TOKENS = 4096

_MICRO = Decimal(1_000_000)


class UnpricedModel(ValueError):
    """A budgeted request could be served by a deployment with no known price."""

    def __init__(self, deployment: Deployment) -> None:
        self.model_name = deployment.model_name
        self.model = deployment.model
        super().__init__(
            f"model {deployment.model_name!r} (deployment model {deployment.model!r}) has no "
            "known price, so its spend cannot be held against a budget: set its "
            "input_cost_per_token and output_cost_per_token"
        )


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    """Tokens a request may use: its counted input, its bounded output, and their total times
    n (what a TPM limit holds)."""

    input: int
    output: int
    total: int


@dataclass(frozen=True, slots=True)
class Estimate:
    """The hold for one request: `cost` micro-dollars, `tokens` for TPM limits."""

    cost: int
    tokens: int


def _choices(request: Request) -> int:
    body = request.body
    values = [body.get("n"), body.get("best_of"), 1]
    return max(v for v in values if isinstance(v, int) and not isinstance(v, bool))


def _output_bound(
    request: Request,
    deployment: Deployment,
    input_tokens: int,
    default_output_tokens: int,
    max_output_tokens: int | None,
) -> int:
    if request.operation is Operation.EMBEDDING:
        return 0
    asked = request.max_completion_tokens
    output = asked if asked is not None and asked >= 0 else default_output_tokens
    if max_output_tokens is not None:
        output = min(output, max_output_tokens)
    elif deployment.context_window is not None:
        output = min(output, max(1, deployment.context_window - input_tokens))
    return output


def estimate_tokens(
    request: Request,
    deployments: Sequence[Deployment],
    *,
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    max_output_tokens: int | None = None,
) -> TokenEstimate:
    """The largest token use of `request` on any of `deployments`."""
    if not deployments:
        raise ValueError("an estimate needs at least one candidate deployment")
    input_tokens = request.prompt_tokens  # counted once per request, shared with routing
    output = max(
        _output_bound(request, d, input_tokens, default_output_tokens, max_output_tokens)
        for d in deployments
    )
    return TokenEstimate(input_tokens, output, (input_tokens + output) * _choices(request))


@lru_cache(maxsize=4096)
def _micro_price(price_per_token: float) -> Decimal:
    """A float price per token as exact micro-dollars (its shortest decimal form), worked out
    once per price: deployments have few."""
    return Decimal(repr(price_per_token)) * _MICRO


def micro_dollars(price_per_token: float | None, tokens: int) -> Decimal:
    """`tokens` at a float price per token, exactly, in (fractional) micro-dollars."""
    if price_per_token is None or tokens == 0:
        return Decimal(0)
    return _micro_price(price_per_token) * tokens


#: Deployments with their prices filled in from the built-in table, by the identity of the
#: deployment as configured (kept, so that an id is never reused while cached).
_PRICED: dict[int, tuple[Deployment, Deployment]] = {}


def _priced(deployment: Deployment) -> Deployment:
    cached = _PRICED.get(id(deployment))
    if cached is not None and cached[0] is deployment:
        return cached[1]
    if len(_PRICED) >= 4096:
        _PRICED.clear()
    priced = with_known_prices(deployment)
    _PRICED[id(deployment)] = (deployment, priced)
    return priced


def round_up(amount: Decimal) -> int:
    """Micro-dollars rounded up to a whole one."""
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


def estimate(
    request: Request,
    deployments: Sequence[Deployment],
    *,
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    max_output_tokens: int | None = None,
) -> Estimate:
    """The hold for `request` routed to any of `deployments`; `UnpricedModel` when one of
    them has no price."""
    input_tokens = request.prompt_tokens  # counted once per request, shared with routing
    choices = _choices(request)
    worst = Decimal(0)
    largest_output = 0
    for given in deployments:
        deployment = _priced(given)
        if deployment.input_cost_per_token is None and deployment.output_cost_per_token is None:
            raise UnpricedModel(deployment)
        output = _output_bound(
            request, deployment, input_tokens, default_output_tokens, max_output_tokens
        )
        largest_output = max(largest_output, output)
        cost = micro_dollars(deployment.input_cost_per_token, input_tokens) + micro_dollars(
            deployment.output_cost_per_token, output
        )
        worst = max(worst, cost * choices)
    if not deployments:
        raise ValueError("an estimate needs at least one candidate deployment")
    return Estimate(round_up(worst), (input_tokens + largest_output) * choices)


def exact_cost(
    deployment: Deployment, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> int | None:
    """What usage cost on `deployment`, in micro-dollars rounded up (the same rule as
    `turnout.pricing.price`, without floats); None when it has no price."""
    deployment = _priced(deployment)
    input_price = deployment.input_cost_per_token
    if input_price is None and deployment.output_cost_per_token is None:
        return None
    cost = micro_dollars(input_price, prompt_tokens) + micro_dollars(
        deployment.output_cost_per_token, completion_tokens
    )
    cached_price = deployment.cached_input_cost_per_token
    if cached_tokens and cached_price is not None:
        cached = min(cached_tokens, prompt_tokens)
        cost -= micro_dollars(input_price or 0.0, cached) - micro_dollars(cached_price, cached)
    return round_up(cost)
