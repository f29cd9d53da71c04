"""The Anthropic adapter's errors (bodies from Anthropic's docs) and rate-limit headers."""

from __future__ import annotations

import msgspec
import pytest

from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    ContextWindowExceededError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    UpstreamNotFoundError,
    UpstreamTimeoutError,
)
from turnout.providers.anthropic.adapter import AnthropicAdapter, create_adapter
from turnout.testing import ManualClock

#: Wall time 1_750_000_000 is 2025-06-15T15:06:40Z.
CLOCK = ManualClock(epoch=1_750_000_000.0)


def _adapter() -> AnthropicAdapter:
    return create_adapter("anthropic", {}, CLOCK)


def test_rate_limit_headers_with_rfc_3339_resets() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2025-06-15T15:06:52Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000",
        "anthropic-ratelimit-tokens-reset": "2025-06-15T15:06:41+00:00",
    }
    hints = _adapter().rate_limits(headers)
    assert hints is not None
    assert (hints.limit_requests, hints.remaining_requests) == (50, 49)
    assert (hints.limit_tokens, hints.remaining_tokens) == (40000, 39000)
    assert (hints.reset_requests, hints.reset_tokens) == (12.0, 1.0)
    assert _adapter().rate_limits({}) is None
    only_input = {"anthropic-ratelimit-input-tokens-remaining": "7"}
    assert _adapter().rate_limits(only_input).remaining_tokens == 7  # type: ignore[union-attr]


def _error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> ProviderError:
    body = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }
    return _adapter().error(status, msgspec.json.encode(body), headers or {})


@pytest.mark.parametrize(
    ("status", "kind", "message", "expected"),
    [
        (400, "invalid_request_error", "temperature: range: 0..1", BadRequestError),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 208310 tokens > 200000 maximum",
            ContextWindowExceededError,
        ),
        (
            400,
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
            ContextWindowExceededError,
        ),
        (
            400,
            "invalid_request_error",
            "Output blocked by content filtering policy",
            ContentPolicyError,
        ),
        (
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API.",
            PermissionDeniedError,
        ),
        (401, "authentication_error", "invalid x-api-key", AuthenticationError),
        (402, "billing_error", "Payment required", PermissionDeniedError),
        (
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
            PermissionDeniedError,
        ),
        (404, "not_found_error", "model: claude-nope", UpstreamNotFoundError),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
            BadRequestError,
        ),
        (500, "api_error", "Internal server error", ServerError),
        (504, "timeout_error", "Request timed out", UpstreamTimeoutError),
        (529, "overloaded_error", "Overloaded", ServerError),
    ],
)
def test_each_documented_error(
    status: int, kind: str, message: str, expected: type[ProviderError]
) -> None:
    error = _error(status, kind, message)
    assert type(error) is expected
    assert error.upstream_status == status
    assert error.message == f"anthropic: {message} (request id req_011CSHoEeqs5C35K2UUqR7Fy)"


def test_rate_limits_carry_retry_after() -> None:
    error = _error(
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
        {"retry-after": "7"},
    )
    assert isinstance(error, RateLimitError) and error.retry_after == 7.0
    reset = {
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2025-06-15T15:07:00Z",
        "anthropic-ratelimit-requests-remaining": "3",
        "anthropic-ratelimit-requests-reset": "2025-06-15T15:08:00Z",
    }
    assert _error(429, "rate_limit_error", "slow down", reset).retry_after == 20.0
    assert _error(429, "rate_limit_error", "slow down").retry_after is None


def test_an_error_body_that_is_not_json_keeps_its_text() -> None:
    error = _adapter().error(413, b"<html>413 Request Entity Too Large</html>", {})
    assert isinstance(error, BadRequestError)
    assert error.message == "anthropic: <html>413 Request Entity Too Large</html>"
    error = _adapter().error(502, b"", {})
    assert isinstance(error, ServerError) and error.message == "anthropic: no error message"
