"""The ``x-turnout-*`` headers and a stream's closing summary: where and how a request was served.

An answer says which deployment served it (its readable name), from which model group, after
how many attempts, what the gateway itself added to the latency and what the answer cost. An
error answer says as much as is known: the group asked for, the attempts made, the last
deployment tried and what the failed attempts were billed. A stream's headers go out with its
first chunk, before its cost is known, so a stream ends with a summary in an SSE comment line
(``: turnout {...}``), which SSE clients, the OpenAI SDKs among them, skip: just before
``data: [DONE]``, or before the error event of a stream that broke.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from turnout.errors import AttemptRecord
from turnout.wire import Usage

DEPLOYMENT = "x-turnout-deployment"
MODEL_GROUP = "x-turnout-model-group"
ATTEMPTS = "x-turnout-attempts"
OVERHEAD = "x-turnout-overhead-ms"
COST = "x-turnout-cost"

_ENCODE = msgspec.json.Encoder().encode


def served_headers(
    deployment: str, model_group: str, attempts: int, overhead: float, cost: float | None
) -> dict[str, str]:
    """The headers of an answer: `deployment` is its readable name, `overhead` in seconds."""
    headers = {
        DEPLOYMENT: deployment,
        MODEL_GROUP: model_group,
        ATTEMPTS: str(attempts),
        OVERHEAD: f"{max(0.0, overhead) * 1000:.2f}",
    }
    if cost is not None:
        headers[COST] = f"{cost:.8f}"
    return headers


def error_headers(
    attempts: Sequence[AttemptRecord], model_group: str | None, elapsed: float
) -> dict[str, str]:
    """What is known of a failed request: its group, and when routing began, the attempts
    made, the last deployment tried, the gateway's own time and what was billed."""
    headers: dict[str, str] = {}
    if model_group is not None:
        headers[MODEL_GROUP] = model_group
    if attempts:
        headers[ATTEMPTS] = str(len(attempts))
        headers[DEPLOYMENT] = attempts[-1].name
        upstream = sum(attempt.duration for attempt in attempts)
        headers[OVERHEAD] = f"{max(0.0, elapsed - upstream) * 1000:.2f}"
        cost = billed(attempts)
        if cost is not None:
            headers[COST] = f"{cost:.8f}"
    return headers


def billed(attempts: Sequence[AttemptRecord]) -> float | None:
    """What the attempts were billed, summed; None when none of them has a known cost."""
    costs = [attempt.cost for attempt in attempts if attempt.cost is not None]
    return sum(costs) if costs else None


def stream_summary(
    request_id: str,
    deployment: str,
    model_group: str,
    attempts: Sequence[AttemptRecord],
    usage: Usage | None,
) -> bytes:
    """The SSE comment line that closes a stream: its id, who served it, the attempts made,
    what they were billed and the answer's usage (None when it broke)."""
    summary: dict[str, Any] = {
        "request_id": request_id,
        "deployment": deployment,
        "model_group": model_group,
        "attempts": len(attempts),
        "cost": billed(attempts),
        "usage": usage.to_openai() if usage is not None else None,
    }
    return b": turnout " + _ENCODE(summary) + b"\n\n"
