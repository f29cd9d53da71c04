"""The ``x-ratelimit-*`` headers the fake sends with every answer, written as OpenAI writes them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimits:
    """The ``x-ratelimit-*`` headers sent with every answer; only the fields set are sent."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    #: Seconds until the request budget is whole again, written as OpenAI does ("1s", "6m0s").
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for unit in ("requests", "tokens"):
            for prefix in ("limit", "remaining"):
                value = getattr(self, f"{prefix}_{unit}")
                if value is not None:
                    headers[f"x-ratelimit-{prefix}-{unit}"] = str(value)
            reset = getattr(self, f"reset_{unit}")
            if reset is not None:
                headers[f"x-ratelimit-reset-{unit}"] = _duration(reset)
        return headers


def _duration(seconds: float) -> str:
    """A span as OpenAI's rate-limit headers write it (Go's style): "12ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{round(rest, 3):g}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    return f"{hours}h{text}" if hours else text
