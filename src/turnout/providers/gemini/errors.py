"""Google's error bodies into turnout's error tree.

Gemini (and Vertex AI) answer errors with Google's ``google.rpc.Status`` as JSON::

    {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
               "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": "17s"}]}}

(some endpoints wrap it in a one-element list). The HTTP status decides the class, the canonical
``status`` name stands in for it inside a stream, and ``details`` refine it: an invalid API key is
reported as 400 INVALID_ARGUMENT with an ``ErrorInfo`` of reason ``API_KEY_INVALID`` (an
authentication failure, not a bad request), and a 429 carries its wait in ``RetryInfo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from turnout.errors import (
    AuthenticationError,
    ContentPolicyError,
    ContextWindowExceededError,
    PermissionDeniedError,
    ProviderError,
    StreamInterruptedError,
)
from turnout.providers.headers import Now, retry_after
from turnout.providers.statuses import REJECTED, by_status, mentions

PROVIDER = "gemini"

#: google.rpc.Code names and the HTTP status Google maps each to.
_STATUS_CODES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
#: ``ErrorInfo.reason`` values that mean the key itself is bad.
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED"})
#: How Gemini words a prompt over the model's input limit ("The input token count (1200293)
#: exceeds the maximum number of tokens allowed (1048576).").
_CONTEXT_HINTS = (
    "maximum number of tokens",
    "input token count",
    "token limit",
    "context window",
    "context length",
    "too many tokens",
)
_POLICY_HINTS = ("safety", "prohibited content", "blocked due to")
_HINTS = ((_CONTEXT_HINTS, ContextWindowExceededError), (_POLICY_HINTS, ContentPolicyError))


def error_from_body(
    status: int, body: bytes, headers: Mapping[str, str], now: Now
) -> ProviderError:
    """The classified error of a non-2xx reply."""
    error = _error_object(body)
    wait = retry_after(headers, now)
    if error is None:
        text = body.decode("utf-8", "replace").strip() or f"HTTP {status}"
        return classify(status, {"message": text}, wait)
    return classify(status, error, wait)


def classify(
    status: int | None, error: Mapping[str, Any], header_wait: float | None
) -> ProviderError:
    """Map one Google error object (HTTP status, or None inside a stream) into the tree.

    `header_wait` is what the reply's headers said about retrying; the error's own RetryInfo
    detail, when present, says it more precisely.
    """
    message = str(error.get("message") or "no error message")
    name = error.get("status")
    code = error.get("code")
    if status is None:
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
            status = code
        elif isinstance(name, str) and name in _STATUS_CODES:
            status = _STATUS_CODES[name]
        else:
            return StreamInterruptedError(f"{PROVIDER}: {message}")
    text = f"{PROVIDER}: {message}"
    details = error.get("details")
    details = details if isinstance(details, list) else []
    reasons = {d.get("reason") for d in details if isinstance(d, Mapping)}
    lowered = message.lower()
    if reasons & _KEY_REASONS or "api key not valid" in lowered:
        return AuthenticationError(text, status=status)
    if (
        status in REJECTED
        and name == "FAILED_PRECONDITION"
        and not mentions(lowered, _CONTEXT_HINTS)
    ):
        # "Gemini API free tier is not available in your country": the account's fault, so
        # another deployment (another key or region) may well succeed. A prompt over the limit
        # stays a context-window error.
        return PermissionDeniedError(text, status=status)
    wait = retry_delay(details)
    if wait is None:
        wait = header_wait
    return by_status(text, status, lowered=lowered, hints=_HINTS, retry_after=wait)


def retry_delay(details: list[Any]) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (a protobuf Duration such as "17s")."""
    for detail in details:
        if not isinstance(detail, Mapping):
            continue
        if not str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
        if isinstance(delay, Mapping):  # the proto form {"seconds": 17, "nanos": 0}
            seconds = delay.get("seconds", 0)
            nanos = delay.get("nanos", 0)
            if isinstance(seconds, int | float | str) and isinstance(nanos, int | float):
                try:
                    return max(0.0, float(seconds) + float(nanos) / 1e9)
                except ValueError:
                    return None
    return None


def _error_object(body: bytes) -> Mapping[str, Any] | None:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, Mapping):
        error = value.get("error")
        if isinstance(error, Mapping):
            return error
    return None
