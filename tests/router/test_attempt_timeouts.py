"""Per-call limits (LiteLLM's ``timeout``): each bounds one attempt, never the whole request.

A silent deployment is left when its limit runs out, is not tried again for the request, and
the rest of the overall deadline goes to another deployment or the fallback.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import Harness, chat, dep
from litellm_shape import simulated_one_per_model
from turnout import FallbackConfig, Router, RoutingConfig, Timeouts
from turnout.config.load import parse_config
from turnout.errors import UpstreamTimeoutError
from turnout.testing import Behaviour

#: Longer than any test's overall deadline: an upstream that never answers.
SILENT = Behaviour(latency=10_000, ttft=10_000)


def _router_from(h: Harness, data: dict[str, Any]) -> Router:
    return h.router_of(parse_config(data, environ={}, providers={"sim"}).router)


async def test_litellm_timeout_moves_a_silent_primary_to_the_fallback_after_it() -> None:
    h = Harness()
    h.sim.set_behaviour("primary", SILENT)
    router = _router_from(h, simulated_one_per_model(timeout=2, num_retries=2))
    assert router.config.timeout == 600.0  # the overall deadline stays turnout's own
    response = await router.complete(chat("primary"))
    assert response.deployment.model_name == "backup"
    # One try of the primary, cut at its 2 s limit; no retry of it, the fallback at once.
    assert h.scripted.calls == ["primary", "backup"]
    assert [a.deployment_id for a in response.attempts] == ["primary", "backup"]
    error = response.attempts[0].error
    assert error is not None and error.value == "timeout"
    assert h.clock.now() == pytest.approx(2.0)


async def test_the_answer_arrives_well_inside_a_short_overall_deadline() -> None:
    h = Harness()
    h.sim.set_behaviour("primary", SILENT)
    h.sim.set_behaviour("backup", Behaviour(latency=0.5))
    router = _router_from(h, simulated_one_per_model(timeout=2))
    request = chat("primary")
    request.timeout = 8.0  # the caller's deadline: three timed-out tries would not fit
    response = await router.complete(request)
    assert response.deployment.model_name == "backup"
    assert h.clock.now() == pytest.approx(2.5)
    assert h.scripted.calls == ["primary", "backup"]


async def test_a_stream_that_never_starts_moves_to_the_fallback_after_stream_timeout() -> None:
    h = Harness()
    h.sim.set_behaviour("primary", SILENT)
    router = _router_from(h, simulated_one_per_model(timeout=30, stream_timeout=2))
    stream = await router.stream(chat("primary", stream=True))
    chunks = [chunk async for chunk in stream]
    assert chunks and stream.deployment.model_name == "backup"
    assert h.scripted.calls == ["primary", "backup"]
    assert h.clock.now() == pytest.approx(2.0)


async def test_in_a_group_each_silent_deployment_is_tried_once_then_the_fallback(
    h: Harness,
) -> None:
    for name in ("a", "b"):
        h.sim.set_behaviour(name, SILENT)
    router = h.router(
        dep("a", timeouts=Timeouts(request=2), priority=0),
        dep("b", timeouts=Timeouts(request=2), priority=1),
        dep("backup", group="spare"),
        routing=RoutingConfig(strategy="priority"),
        fallbacks=FallbackConfig(general={"chat": ["spare"]}),
    )
    response = await router.complete(chat())
    assert response.deployment.id == "backup"
    assert h.scripted.calls == ["a", "b", "backup"]
    assert h.clock.now() == pytest.approx(4.0)


async def test_a_timed_out_only_deployment_is_not_retried_without_a_fallback(h: Harness) -> None:
    h.sim.set_behaviour("a", SILENT)
    h.router(dep("a", timeouts=Timeouts(request=2)))
    error = await h.failure(chat())
    assert isinstance(error, UpstreamTimeoutError)
    assert h.scripted.calls == ["a"]
    assert h.clock.now() == pytest.approx(2.0)


async def test_a_timed_out_deployment_is_not_retried_even_when_cooldowns_are_off() -> None:
    h = Harness()
    h.sim.set_behaviour("primary", SILENT)
    data = simulated_one_per_model(timeout=2, num_retries=2, disable_cooldowns=True)
    router = _router_from(h, data)
    response = await router.complete(chat("primary"))
    assert response.deployment.model_name == "backup"
    assert h.scripted.calls == ["primary", "backup"]
    assert h.clock.now() == pytest.approx(2.0)
