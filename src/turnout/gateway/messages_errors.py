"""Errors in Anthropic's shape, for the Messages API routes.

The Anthropic SDKs (and Claude Code) read ``{"type": "error", "error": {"type", "message"}}``
and pick their exception by status, so every error on these routes keeps the status the
gateway chose for it and says it in Anthropic's words: the type follows the status, except
that an upstream that said it was overloaded (Anthropic's 529) stays ``overloaded_error``, as
does a gateway with every deployment busy (503). The message is the one the OpenAI-shaped
body would carry, redacted the same way.
"""

from __future__ import annotations

import msgspec

from turnout.errors import ProviderError, TurnoutError

_ENCODE = msgspec.json.Encoder().encode
#: Anthropic's error types by HTTP status; other 4xx are invalid requests, other 5xx API errors.
_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
#: The upstream status Anthropic uses for "overloaded".
_OVERLOADED = 529


def error_type(status: int, error: TurnoutError | None = None) -> str:
    """The Anthropic error type for an error answered with `status`."""
    if isinstance(error, ProviderError) and error.upstream_status == _OVERLOADED:
        return "overloaded_error"
    found = _TYPES.get(status)
    if found is not None:
        return found
    return "invalid_request_error" if status < 500 else "api_error"


def error_object(status: int, message: str, error: TurnoutError | None = None) -> dict[str, object]:
    """The error object an HTTP error answer and a stream's ``error`` event both carry."""
    return {"type": "error", "error": {"type": error_type(status, error), "message": message}}


def error_body(status: int, message: str, error: TurnoutError | None = None) -> bytes:
    """`error_object` as JSON bytes: the body of an error answer on a Messages route."""
    return _ENCODE(error_object(status, message, error))
