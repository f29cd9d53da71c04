"""What an upstream's response headers say: Retry-After, rate-limit quotas, the call's own id.

One parser for every family. Waits given as a moment (an HTTP date, an RFC 3339 reset time) are
turned into seconds against the injected clock's wall time, never the system clock, so that a
test's `ManualClock` decides what "now" is for Retry-After exactly as it does for cooldowns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from turnout.wire import RateLimitHints

#: The wall time now, in seconds since the epoch (an injected clock's ``wall``).
Now = Callable[[], float]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


#: Where upstreams put their own id for a call, most specific first: Azure's API gateway
#: (``apim-request-id``) and Azure's services, Anthropic (``request-id``), AWS
#: (``x-amzn-requestid``, S3-style ``x-amz-request-id``), Google's (``x-goog-request-id``), and
#: the OpenAI family's ``x-request-id`` (OpenAI, Groq, Mistral, vLLM and most compatible
#: servers, Azure OpenAI too), which a proxy in front of any of them may add.
UPSTREAM_ID_HEADERS: tuple[str, ...] = (
    "apim-request-id",
    "x-ms-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-amz-request-id",
    "x-goog-request-id",
    "x-request-id",
)
#: Longest upstream id kept: ids are short; anything longer is not one.
_ID_LIMIT = 200


def upstream_request_id(headers: Mapping[str, str]) -> str | None:
    """The upstream's own id for the call, from the first of `UPSTREAM_ID_HEADERS` it sent."""
    for name in UPSTREAM_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value[:_ID_LIMIT]
    return None


def retry_after(headers: Mapping[str, str], now: Now) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now())


def seconds_until(value: str | None, now: Now) -> float | None:
    """Seconds from now until an RFC 3339 timestamp with a zone (None if absent or unreadable)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now())


def parse_duration(value: str) -> float | None:
    """OpenAI's reset durations ("1s", "6m0s", "20ms", "1h2m3.5s") in seconds."""
    parts = _DURATION.findall(value)
    if not parts:
        try:
            return float(value)
        except ValueError:
            return None
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def openai_rate_limits(headers: Mapping[str, str]) -> RateLimitHints | None:
    """OpenAI's ``x-ratelimit-*`` headers, which most OpenAI-compatible servers and Azure send."""
    remaining = headers.get("x-ratelimit-remaining-requests")
    remaining_tokens = headers.get("x-ratelimit-remaining-tokens")
    if remaining is None and remaining_tokens is None:
        return None
    return RateLimitHints(
        remaining_requests=as_int(remaining),
        limit_requests=as_int(headers.get("x-ratelimit-limit-requests")),
        remaining_tokens=as_int(remaining_tokens),
        limit_tokens=as_int(headers.get("x-ratelimit-limit-tokens")),
        reset_requests=_duration(headers.get("x-ratelimit-reset-requests")),
        reset_tokens=_duration(headers.get("x-ratelimit-reset-tokens")),
    )


def as_int(value: str | None) -> int | None:
    """A header's count ("12", "12.0"), None when absent or unreadable."""
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _duration(value: str | None) -> float | None:
    return parse_duration(value) if value is not None else None
