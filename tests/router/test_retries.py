"""Retries within a group: where they go, how long they wait, when they stop."""

from __future__ import annotations

import pytest

from harness import Harness, chat, dep
from turnout import HealthConfig, RetryConfig, RoutingConfig
from turnout.errors import (
    AuthenticationError,
    ContextWindowExceededError,
    DeadlineExceededError,
    FailureKind,
    RateLimitError,
    ServerError,
    UpstreamTimeoutError,
)
from turnout.observe.events import RetryScheduled
from turnout.testing import Behaviour


async def test_a_failure_is_retried_at_once_on_another_deployment(h: Harness) -> None:
    router = h.router(dep("a"), dep("b"))
    h.scripted.fail("a", ServerError("boom", status=500))
    h.scripted.fail("b", ServerError("boom", status=500))
    response = await router.complete(chat())
    first, second, third = response.attempts
    assert first.error is not None and second.error is not None and third.error is None
    assert second.deployment_id != first.deployment_id
    delays = [e.delay for e in h.recorder.of(RetryScheduled)]
    assert delays[0] == 0.0  # another deployment was free: no waiting
    assert delays[1] > 0.0  # both tried: back off before trying one again


async def test_the_only_deployment_is_retried_after_a_jittered_backoff(h: Harness) -> None:
    router = h.router(dep("a"), retries=RetryConfig(num_retries=3, base_delay=1.0))
    h.scripted.fail("a", ServerError("boom", status=500), ServerError("boom", status=500))
    response = await router.complete(chat())
    assert [a.deployment_id for a in response.attempts] == ["a", "a", "a"]
    delays = [e.delay for e in h.recorder.of(RetryScheduled)]
    assert len(delays) == 2
    assert 0 <= delays[0] <= 1.0 and 0 <= delays[1] <= 2.0
    assert h.clock.now() == pytest.approx(sum(delays))


async def test_retries_stop_at_num_retries_with_every_attempt_reported(h: Harness) -> None:
    h.router(dep("a"), dep("b"), retries=RetryConfig(num_retries=2))
    h.scripted.fail("a", *[ServerError("a broke", status=500)] * 5)
    h.scripted.fail("b", *[ServerError("b broke", status=503)] * 5)
    error = await h.failure(chat())
    assert isinstance(error, ServerError)
    assert len(error.attempts) == 3
    message = error.to_openai()["error"]["message"]
    assert "3 attempts" in message and "a broke" in message and "b broke" in message


async def test_auth_errors_are_never_retried_on_the_same_deployment(h: Harness) -> None:
    h.router(dep("a"), health=HealthConfig(disable_cooldowns=True))
    h.scripted.fail("a", AuthenticationError("bad key", status=401))
    error = await h.failure(chat())
    assert isinstance(error, AuthenticationError)
    assert h.scripted.calls == ["a"]


async def test_auth_error_moves_to_another_deployment(h: Harness) -> None:
    router = h.router(dep("a"), dep("b", priority=1), routing=RoutingConfig(strategy="priority"))
    h.scripted.fail("a", AuthenticationError("bad key", status=401))
    response = await router.complete(chat())
    assert [(a.deployment_id, a.error) for a in response.attempts] == [
        ("a", FailureKind.AUTHENTICATION),
        ("b", None),
    ]
    h.scripted.fail("a", AuthenticationError("bad key", status=401))
    h.scripted.fail("b", AuthenticationError("bad key", status=401))
    h.clock.advance(60)
    error = await h.failure(chat())
    assert isinstance(error, AuthenticationError)
    assert len(error.attempts) == 2


async def test_context_window_errors_are_never_retried_on_the_same_model(h: Harness) -> None:
    h.router(dep("a"), dep("b"))
    h.sim.set_behaviour("a", Behaviour(context_window=5))
    h.sim.set_behaviour("b", Behaviour(context_window=5))
    error = await h.failure(chat(text="a long prompt " * 20))
    assert isinstance(error, ContextWindowExceededError)
    assert len(h.scripted.calls) == 1


async def test_rate_limited_only_deployment_is_retried_once_it_may_be(h: Harness) -> None:
    router = h.router(dep("a"), health=HealthConfig(cooldown_time=1))
    h.scripted.fail("a", RateLimitError("slow down", status=429, retry_after=4))
    response = await router.complete(chat())
    assert [a.deployment_id for a in response.attempts] == ["a", "a"]
    assert h.clock.now() >= 4.0  # Retry-After was honoured


async def test_retry_after_beyond_the_limit_fails_fast_with_the_hint(h: Harness) -> None:
    h.router(dep("a"), retries=RetryConfig(max_retry_after=10))
    h.scripted.fail("a", RateLimitError("slow down", status=429, retry_after=3600))
    error = await h.failure(chat())
    assert isinstance(error, RateLimitError)
    assert error.client_wait() == 3600
    assert h.clock.now() == 0.0
    assert h.scripted.calls == ["a"]


async def test_a_retry_that_cannot_finish_before_the_deadline_is_not_started(h: Harness) -> None:
    h.router(dep("a"), health=HealthConfig(cooldown_time=1))
    h.scripted.fail("a", RateLimitError("slow down", status=429, retry_after=8))
    request = chat()
    request.timeout = 5
    error = await h.failure(request)
    assert isinstance(error, RateLimitError)
    assert h.clock.now() == 0.0


async def test_the_deadline_bounds_every_attempt(h: Harness) -> None:
    h.sim.set_behaviour("a", Behaviour(latency=30))
    router = h.router(dep("a"))
    request = chat()
    request.timeout = 2.5
    error = await h.failure(request)
    assert isinstance(error, DeadlineExceededError)
    assert error.status == 504
    assert h.clock.now() == pytest.approx(2.5)
    assert [entry.in_flight for entry in await router.health()] == [0]


async def test_an_attempt_timeout_fails_over_and_cools_the_slow_deployment(h: Harness) -> None:
    from turnout import Timeouts

    h.sim.set_behaviour("slow", Behaviour(latency=30))
    router = h.router(
        dep("slow", timeouts=Timeouts(request=1), priority=0),
        dep("fast", priority=1),
        routing=RoutingConfig(strategy="priority"),
    )
    response = await router.complete(chat())
    assert [a.deployment_id for a in response.attempts] == ["slow", "fast"]
    assert response.attempts[0].error is not None
    assert response.attempts[0].error.value == "timeout"
    assert h.clock.now() == pytest.approx(1.0)
    assert (await router.complete(chat())).deployment.id == "fast"  # slow is cooling down


async def test_a_provider_bug_becomes_a_classified_error(h: Harness) -> None:
    router = h.router(dep("a"), dep("b"))
    h.scripted.fail("a", KeyError("sk-secret-in-a-bug"))
    h.scripted.fail("b", KeyError("sk-secret-in-a-bug"))
    response = await router.complete(chat())
    first = response.attempts[0]
    assert first.error is not None and first.error.value == "server_error"
    assert first.message is not None and "KeyError" in first.message
    assert "sk-secret" not in first.message


async def test_raw_timeout_from_a_provider_is_an_upstream_timeout(h: Harness) -> None:
    h.router(dep("a"), retries=RetryConfig(num_retries=0))
    h.scripted.fail("a", TimeoutError())
    error = await h.failure(chat())
    assert isinstance(error, UpstreamTimeoutError)
