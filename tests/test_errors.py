from __future__ import annotations

import pytest

from turnout.errors import (
    AttemptRecord,
    AuthenticationError,
    ContentPolicyError,
    ContextWindowExceededError,
    DeadlineExceededError,
    FailureKind,
    FallbackKind,
    ModelNotFoundError,
    NoDeploymentsAvailableError,
    RateLimitError,
    ServerError,
    TurnoutError,
    UpstreamTimeoutError,
    fallback_kind,
    most_informative,
)
from turnout.gateway.advice import retry_headers


@pytest.mark.parametrize(
    ("error", "status", "kind", "code"),
    [
        (ModelNotFoundError("nope"), 404, "invalid_request_error", "model_not_found"),
        (RateLimitError("slow"), 429, "rate_limit_error", "rate_limit_exceeded"),
        (AuthenticationError("who"), 502, "api_error", "upstream_credentials_refused"),
        (
            ContextWindowExceededError("long"),
            400,
            "invalid_request_error",
            "context_length_exceeded",
        ),
        (UpstreamTimeoutError("slow"), 504, "timeout_error", "timeout"),
        (DeadlineExceededError("late"), 504, "timeout_error", "deadline_exceeded"),
        (NoDeploymentsAvailableError("none"), 429, "rate_limit_error", "no_deployments_available"),
    ],
)
def test_each_error_knows_its_openai_shape(
    error: TurnoutError, status: int, kind: str, code: str
) -> None:
    body = error.to_openai()
    assert error.status == status
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == kind
    assert body["error"]["code"] == code


def test_retry_after_becomes_headers_rounded_up_never_shorter() -> None:
    assert retry_headers(RateLimitError("x", retry_after=2.4), 60, 60) == {
        "x-should-retry": "true",
        "retry-after-ms": "2400",
        "retry-after": "3",
    }
    assert retry_headers(RateLimitError("x", retry_after=0.2), 60, 60) == {
        "x-should-retry": "true",
        "retry-after-ms": "200",
        "retry-after": "1",
    }
    assert retry_headers(RateLimitError("x"), 60, 60) == {"x-should-retry": "false"}


def test_a_repeat_is_advised_only_where_a_bounded_wait_fits_the_deadline() -> None:
    limited = RateLimitError("x", retry_after=3)
    assert retry_headers(limited, 10, 60)["x-should-retry"] == "true"
    assert retry_headers(limited, 10, 2) == {"x-should-retry": "false"}  # over the bound
    assert retry_headers(limited, 3, 60) == {"x-should-retry": "false"}  # past the deadline
    cooling = NoDeploymentsAvailableError("x", retry_after=1, cooling_left=2)
    assert retry_headers(cooling, 10, 60)["retry-after-ms"] == "2000"
    circuit_open = NoDeploymentsAvailableError("x", retry_after=1)
    assert retry_headers(circuit_open, 10, 60) == {"x-should-retry": "false"}
    for error in (
        ServerError("x", retry_after=1),
        UpstreamTimeoutError("x"),
        DeadlineExceededError("x"),
        AuthenticationError("x"),
        ContentPolicyError("x"),
    ):
        assert retry_headers(error, 10, 60) == {"x-should-retry": "false"}


def test_attempt_summary_is_appended_to_the_message() -> None:
    error = ServerError("upstream broke", status=500)
    error.attempts = (
        AttemptRecord("dep-a", "g", 0.0, 0.1, FailureKind.SERVER_ERROR, 500, "upstream broke"),
        AttemptRecord("dep-b", "g", 0.1, 0.2, FailureKind.TIMEOUT, 504, "x" * 500),
    )
    message = error.to_openai()["error"]["message"]
    assert message.startswith("upstream broke [2 attempts: dep-a (g): server_error 500")
    assert "dep-b (g): timeout 504" in message
    assert len(message) < 600  # long upstream messages are cut


def test_the_most_informative_error_wins_and_ties_go_to_the_latest() -> None:
    unavailable = NoDeploymentsAvailableError("none")
    first_server = ServerError("first")
    second_server = ServerError("second")
    context = ContextWindowExceededError("too long")
    assert most_informative([first_server, unavailable]) is first_server
    assert most_informative([first_server, second_server]) is second_server
    assert most_informative([unavailable, context, second_server]) is context


def test_fallback_kinds() -> None:
    assert fallback_kind(ContextWindowExceededError("x")) is FallbackKind.CONTEXT_WINDOW
    assert fallback_kind(ContentPolicyError("x")) is FallbackKind.CONTENT_POLICY
    assert fallback_kind(RateLimitError("x")) is FallbackKind.RATE_LIMIT
    assert fallback_kind(ServerError("x")) is FallbackKind.GENERAL
    assert fallback_kind(ModelNotFoundError("x")) is None
    limited = NoDeploymentsAvailableError("x", rate_limited=True)
    assert fallback_kind(limited) is FallbackKind.RATE_LIMIT
    assert fallback_kind(NoDeploymentsAvailableError("x")) is FallbackKind.GENERAL


def test_a_deployment_is_named_readably_in_error_messages() -> None:
    refused = AuthenticationError("bad key", status=401, deployment_id="d80fc71aeaf0363a")
    assert "`d80fc71aeaf0363a`" in refused.public_message()  # only the id known: the id
    refused.deployment_name = "gpt-4o/openai/gpt-4o"
    assert "deployment `gpt-4o/openai/gpt-4o`" in refused.public_message()
    assert "d80fc71aeaf0363a" not in refused.public_message()
