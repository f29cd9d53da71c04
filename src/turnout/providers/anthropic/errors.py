"""Anthropic's errors and rate-limit headers, in turnout's terms.

Every Anthropic error has the body ``{"type": "error", "error": {"type": ..., "message": ...},
"request_id": ...}``, as an HTTP answer or as an ``error`` event in a stream that had already
started. The error ``type`` decides the class (the HTTP status where the type is unknown):

====================== ====== =================================================================
type                   status turnout error
====================== ====== =================================================================
invalid_request_error  400    BadRequestError; ContextWindowExceededError for "prompt is too
                              long"; ContentPolicyError for "blocked by content filtering
                              policy"; PermissionDeniedError for a credit balance too low
authentication_error   401    AuthenticationError
billing_error          402    PermissionDeniedError (this key cannot be used; another may)
permission_error       403    PermissionDeniedError
not_found_error        404    UpstreamNotFoundError
request_too_large      413    BadRequestError
rate_limit_error       429    RateLimitError, with ``retry-after``
api_error              500    ServerError
timeout_error          504    UpstreamTimeoutError
overloaded_error       529    ServerError (overloaded: retry elsewhere)
====================== ====== =================================================================

The errors page documents 400, 401, 403, 404, 413, 429, 500 and 529; ``billing_error`` and
``timeout_error`` appear only in newer material, and an unknown type falls back to the status.

Rate-limit headers (``anthropic-ratelimit-requests-*`` and ``-tokens-*``) give limits, what
remains, and when it resets as an RFC 3339 timestamp, turned into seconds on the given clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from turnout.errors import (
    ContentPolicyError,
    ContextWindowExceededError,
    PermissionDeniedError,
    ProviderError,
    StreamInterruptedError,
)
from turnout.providers.headers import Now, seconds_until
from turnout.providers.headers import retry_after as header_wait
from turnout.providers.statuses import by_status
from turnout.wire import RateLimitHints

#: The HTTP status each documented error type comes with (for errors met inside a stream).
STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_CONTEXT_HINTS = ("prompt is too long", "exceed context limit", "context window")
_POLICY_HINTS = ("content filtering policy", "usage policy")
_BILLING_HINTS = ("credit balance",)
_HINTS = (
    (_CONTEXT_HINTS, ContextWindowExceededError),
    (_POLICY_HINTS, ContentPolicyError),
    (_BILLING_HINTS, PermissionDeniedError),
)


def describe(body: bytes) -> tuple[str | None, str]:
    """The error type and message of an error body, whatever came (Cloudflare sends HTML)."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        decoded = None
    if isinstance(decoded, dict):
        return fields(decoded)
    text = body.decode("utf-8", "replace").strip()
    return None, text or "no error message"


def fields(event: Mapping[str, Any]) -> tuple[str | None, str]:
    """Type and message of a decoded ``{"type": "error", "error": {...}}`` object."""
    error = event.get("error")
    if not isinstance(error, Mapping):
        return None, "no error message"
    kind, message = error.get("type"), error.get("message")
    request_id = event.get("request_id")
    text = str(message) if message else "no error message"
    if isinstance(request_id, str) and request_id:
        text = f"{text} (request id {request_id})"
    return (str(kind) if kind is not None else None), text


def classify(
    provider: str,
    status: int | None,
    kind: str | None,
    message: str,
    headers: Mapping[str, str],
    now: Now,
) -> ProviderError:
    """The turnout error for an Anthropic error (`status` None: met inside a stream)."""
    text = f"{provider}: {message}"
    # The type decides where it is known; invalid_request_error also stands for 4xx statuses
    # the docs do not list, so there the status does.
    effective = status
    if kind in STATUS_OF_TYPE and (status is None or kind != "invalid_request_error"):
        effective = STATUS_OF_TYPE[kind]
    if effective is None:
        return StreamInterruptedError(text)
    status = effective if status is None else status
    if effective == 402:
        return PermissionDeniedError(text, status=status)
    return by_status(
        text,
        effective,
        reported=status,
        lowered=message.lower(),
        hints=_HINTS,
        retry_after=retry_after(headers, now),
    )


def retry_after(headers: Mapping[str, str], now: Now) -> float | None:
    """Seconds to wait: ``retry-after`` (seconds or an HTTP date), else the reset time of a
    quota the rate-limit headers report as used up."""
    wait = header_wait(headers, now)
    if wait is not None:
        return wait
    waits = [
        seconds_until(headers.get(f"anthropic-ratelimit-{quota}-reset"), now)
        for quota in ("requests", "tokens", "input-tokens", "output-tokens")
        if _int(headers.get(f"anthropic-ratelimit-{quota}-remaining")) == 0
    ]
    known = [wait for wait in waits if wait is not None]
    return max(known) if known else None


def rate_limit_hints(headers: Mapping[str, str], now: Now) -> RateLimitHints | None:
    """The request and token quotas; the combined ``tokens`` one, else the input-token one."""
    requests = "anthropic-ratelimit-requests"
    tokens = "anthropic-ratelimit-tokens"
    if headers.get(f"{tokens}-remaining") is None:
        tokens = "anthropic-ratelimit-input-tokens"
    if headers.get(f"{requests}-remaining") is None and headers.get(f"{tokens}-remaining") is None:
        return None
    return RateLimitHints(
        remaining_requests=_int(headers.get(f"{requests}-remaining")),
        limit_requests=_int(headers.get(f"{requests}-limit")),
        remaining_tokens=_int(headers.get(f"{tokens}-remaining")),
        limit_tokens=_int(headers.get(f"{tokens}-limit")),
        reset_requests=seconds_until(headers.get(f"{requests}-reset"), now),
        reset_tokens=seconds_until(headers.get(f"{tokens}-reset"), now),
    )


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
