"""What an answer cost, from its usage and the deployment's prices per token."""

from __future__ import annotations

from turnout.config import Deployment
from turnout.wire import Usage


def cost_of(deployment: Deployment, usage: Usage) -> float | None:
    """US dollars for `usage` on `deployment`; None when the deployment has no prices."""
    input_price = deployment.input_cost_per_token
    output_price = deployment.output_cost_per_token
    if input_price is None and output_price is None:
        return None
    return usage.prompt_tokens * (input_price or 0.0) + usage.completion_tokens * (
        output_price or 0.0
    )
