"""What a request costs, from token counts and the deployment's prices per token.

One rule serves both cost-aware routing (on estimated tokens, before the call) and the cost
reported for an answer (on the usage the provider returned).
"""

from __future__ import annotations

from turnout.config.router import Deployment


def price(
    deployment: Deployment, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> float | None:
    """US dollars for these token counts on `deployment`; None when it has no prices.

    `cached_tokens` are the part of `prompt_tokens` read from the provider's prompt cache.
    """
    input_price = deployment.input_cost_per_token
    output_price = deployment.output_cost_per_token
    if input_price is None and output_price is None:
        return None
    input_price = input_price or 0.0
    cost = input_price * prompt_tokens + (output_price or 0.0) * completion_tokens
    cached_price = deployment.cached_input_cost_per_token
    if cached_tokens and cached_price is not None:
        cost -= (input_price - cached_price) * min(cached_tokens, prompt_tokens)
    return cost
