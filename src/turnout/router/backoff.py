"""How long to wait before retrying on a deployment that was already tried."""

from __future__ import annotations

import random

from turnout.config.router import RetryConfig


def backoff_delay(
    retry: int, config: RetryConfig, rng: random.Random, retry_after: float | None
) -> float:
    """Seconds before retry number `retry` (0-based): the provider's Retry-After when it
    gave one, else full jitter.

    A Retry-After is the provider's own answer to "when": waiting longer only delays the
    caller. Without one, full jitter (a uniform draw up to the exponential ceiling) spreads
    the retries of many clients hit by the same outage, instead of having them return in
    lockstep.
    """
    if retry_after is not None:
        return retry_after
    ceiling = min(config.max_delay, config.base_delay * (2.0**retry))
    return rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0
