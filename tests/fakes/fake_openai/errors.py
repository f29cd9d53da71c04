"""OpenAI's error object, and the error answer a handler raises to reject a request."""

from __future__ import annotations

from typing import Any


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object, as every error answer and error event carries it."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


class ApiError(Exception):
    """An error answer decided while handling a request; made into a response in one place."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, "invalid_request_error", param, code)


def missing(param: str) -> ApiError:
    message = f"Missing required parameter: '{param}'."
    return ApiError(400, message, param=param, code="missing_required_parameter")
