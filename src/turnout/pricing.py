"""What a request costs, from token counts and the deployment's prices per token.

One rule serves both cost-aware routing (on estimated tokens, before the call) and the cost
reported for an answer (on the usage the provider returned).
"""

from __future__ import annotations

from turnout.config import Deployment


def price(deployment: Deployment, prompt_tokens: int, completion_tokens: int) -> float | None:
    """US dollars for these token counts on `deployment`; None when it has no prices."""
    input_price = deployment.input_cost_per_token
    output_price = deployment.output_cost_per_token
    if input_price is None and output_price is None:
        return None
    return (input_price or 0.0) * prompt_tokens + (output_price or 0.0) * completion_tokens
