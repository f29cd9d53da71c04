"""Google's error bodies (``google.rpc.Status`` as JSON, as the Gemini API documents them) into
turnout's error tree."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    UpstreamNotFoundError,
    UpstreamTimeoutError,
)
from turnout.providers.gemini.adapter import GeminiAdapter
from turnout.testing import ManualClock


def _adapter() -> GeminiAdapter:
    return GeminiAdapter("gemini", {}, ManualClock())


def _encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _google(code: int, status: str, message: str, *details: dict[str, Any]) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return _encode({"error": error})


RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}
KEY_INVALID = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, _google(400, "INVALID_ARGUMENT", "Invalid value"), BadRequestError),
        (
            400,
            _google(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                KEY_INVALID,
            ),
            AuthenticationError,
        ),
        (
            400,
            _google(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200293) exceeds the maximum number of tokens allowed "
                "(1048576).",
            ),
            ContextWindowExceededError,
        ),
        (
            400,
            _google(
                400, "FAILED_PRECONDITION", "Gemini API free tier is not available in your country."
            ),
            PermissionDeniedError,
        ),
        (
            401,
            _google(401, "UNAUTHENTICATED", "Request had invalid credentials."),
            AuthenticationError,
        ),
        (
            403,
            _google(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers"),
            PermissionDeniedError,
        ),
        (404, _google(404, "NOT_FOUND", "models/x is not found"), UpstreamNotFoundError),
        (429, _google(429, "RESOURCE_EXHAUSTED", "You exceeded your quota", RETRY), RateLimitError),
        (500, _google(500, "INTERNAL", "An internal error has occurred."), ServerError),
        (503, _google(503, "UNAVAILABLE", "The model is overloaded."), ServerError),
        (504, _google(504, "DEADLINE_EXCEEDED", "Deadline expired"), UpstreamTimeoutError),
        (502, b"<html>Bad Gateway</html>", ServerError),
    ],
)
def test_errors_map_into_the_tree(status: int, body: bytes, kind: type[ProviderError]) -> None:
    error = _adapter().error(status, body, {})
    assert type(error) is kind
    assert error.message.startswith("gemini: ")
    assert error.upstream_status == status


def test_a_rate_limit_waits_as_retry_info_says() -> None:
    body = _google(429, "RESOURCE_EXHAUSTED", "quota", RETRY)
    error = _adapter().error(429, body, {"retry-after": "99"})
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 17.0
    headers_only = _adapter().error(
        429, _google(429, "RESOURCE_EXHAUSTED", "q"), {"retry-after": "3"}
    )
    assert headers_only.retry_after == 3.0
    nested = {"@type": RETRY["@type"], "retryDelay": {"seconds": 2, "nanos": 500_000_000}}
    assert (
        _adapter().error(429, _google(429, "RESOURCE_EXHAUSTED", "q", nested), {}).retry_after
        == 2.5
    )


def test_a_list_wrapped_error_body_is_read() -> None:
    body = b"[" + _google(429, "RESOURCE_EXHAUSTED", "Resource exhausted.") + b"]"
    error = _adapter().error(429, body, {})
    assert isinstance(error, RateLimitError)
    assert error.message == "gemini: Resource exhausted."


def test_rate_limit_headers_are_none() -> None:
    assert _adapter().rate_limits({"x-ratelimit-remaining-requests": "1"}) is None
