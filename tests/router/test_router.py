"""Routing basics: answers, names, filters, limits, observability."""

from __future__ import annotations

import asyncio

import pytest

from harness import Harness, chat, dep
from turnout import Deployment, Request, Router, RouterConfig, RoutingConfig
from turnout.errors import (
    ConfigError,
    ContextWindowExceededError,
    ModelNotFoundError,
    NoDeploymentsAvailableError,
    NoMatchingDeploymentError,
    UpstreamTimeoutError,
)
from turnout.observe.events import AttemptFinished, AttemptStarted, CooldownEntered, CooldownLeft
from turnout.testing import Behaviour
from turnout.wire import Operation


async def test_answers_with_body_usage_cost_and_where_it_was_served(h: Harness) -> None:
    router = h.router(dep("a", input_cost_per_token=1e-6, output_cost_per_token=2e-6))
    response = await router.complete(chat())
    assert response.deployment.id == "a"
    assert response.text is not None and "a" in response.text
    assert response.body["object"] == "chat.completion"
    assert response.usage.completion_tokens == 16
    assert response.cost == pytest.approx(
        response.usage.prompt_tokens * 1e-6 + response.usage.completion_tokens * 2e-6
    )
    assert [a.error for a in response.attempts] == [None]


async def test_chat_shorthand_and_embeddings(h: Harness) -> None:
    router = h.router(dep("a"), dep("e", group="embed"))
    assert (await router.chat("chat", [{"role": "user", "content": "hi"}])).deployment.id == "a"
    embedding = await router.embed(
        Request(model="embed", body={"input": ["x", "y"]}, operation=Operation.EMBEDDING)
    )
    assert len(embedding.body["data"]) == 2


async def test_unknown_model_is_a_404_naming_what_exists(h: Harness) -> None:
    h.router(dep("a"), aliases={"gpt": "chat"})
    error = await h.failure(chat("nope"))
    assert isinstance(error, ModelNotFoundError)
    assert error.status == 404
    assert "available: chat, gpt" in error.message
    assert h.scripted.calls == []


async def test_aliases_route_to_their_group(h: Harness) -> None:
    router = h.router(dep("a"), aliases={"smart": "chat", "gpt": "smart"})
    assert (await router.complete(chat("gpt"))).deployment.id == "a"
    assert router.model_names() == ["chat", "gpt", "smart"]


def test_every_provider_named_must_be_registered() -> None:
    with pytest.raises(ConfigError, match="no provider registered for 'nowhere'"):
        Router(
            RouterConfig(model_list=(Deployment(model_name="g", model="m", provider="nowhere"),)),
            {},
        )


async def test_tags_choose_deployments_and_default_catches_the_rest(h: Harness) -> None:
    router = h.router(
        dep("eu", tags=frozenset({"eu"})),
        dep("us", tags=frozenset({"us", "default"})),
    )
    for _ in range(5):
        assert (await router.complete(chat())).deployment.id in {"eu", "us"}
    tagged = chat()
    tagged.tags = frozenset({"eu"})
    assert (await router.complete(tagged)).deployment.id == "eu"
    other = chat()
    other.tags = frozenset({"asia"})
    assert (await router.complete(other)).deployment.id == "us"


async def test_tags_that_match_nothing_are_a_clear_400(h: Harness) -> None:
    h.router(dep("eu", tags=frozenset({"eu"})))
    request = chat()
    request.tags = frozenset({"asia"})
    error = await h.failure(request)
    assert isinstance(error, NoMatchingDeploymentError)
    assert error.status == 400


async def test_context_window_filter_skips_small_models(h: Harness) -> None:
    router = h.router(dep("small", context_window=10), dep("large", context_window=10_000))
    long_prompt = chat(text="word " * 100)
    for _ in range(5):
        assert (await router.complete(long_prompt)).deployment.id == "large"


async def test_prompt_too_long_for_every_deployment_is_a_context_window_error(h: Harness) -> None:
    h.router(dep("small", context_window=10))
    error = await h.failure(chat(text="word " * 100))
    assert isinstance(error, ContextWindowExceededError)
    assert "largest: 10 tokens" in error.message
    assert h.scripted.calls == []


async def test_rpm_limit_moves_traffic_to_the_next_deployment(h: Harness) -> None:
    router = h.router(
        dep("limited", rpm=2, priority=0),
        dep("spare", priority=1),
        routing=RoutingConfig(strategy="priority"),
    )
    served = [(await router.complete(chat())).deployment.id for _ in range(4)]
    assert served == ["limited", "limited", "spare", "spare"]
    h.clock.advance(60)
    assert (await router.complete(chat())).deployment.id == "limited"


async def test_max_parallel_requests_is_never_exceeded(h: Harness) -> None:
    h.sim.set_behaviour("a", Behaviour(latency=1.0))
    h.sim.set_behaviour("b", Behaviour(latency=1.0))
    router = h.router(dep("a", max_parallel_requests=2), dep("b", max_parallel_requests=2))
    results = await asyncio.gather(
        *(router.complete(chat()) for _ in range(4)), return_exceptions=True
    )
    assert sorted(r.deployment.id for r in results if not isinstance(r, BaseException)) == [
        "a",
        "a",
        "b",
        "b",
    ]
    with pytest.raises(NoDeploymentsAvailableError, match="at its max parallel requests limit"):
        await asyncio.gather(*(router.complete(chat()) for _ in range(5)))


async def test_everything_cooling_down_says_which_and_until_when(h: Harness) -> None:
    router = h.router(dep("a"), dep("b"))
    await router.cool_down("a", 30)
    await router.cool_down("b", 10)
    error = await h.failure(chat())
    assert isinstance(error, NoDeploymentsAvailableError)
    assert "a cooling down (manual) for 30.0s more, until 08:00:30 UTC" in error.message
    assert "b cooling down (manual) for 10.0s more" in error.message
    assert error.client_wait() == 10
    assert error.status == 429


async def test_a_caller_is_told_to_wait_out_a_blip_but_not_a_repeated_ejection(
    h: Harness,
) -> None:
    """A first ejection may be a blip: its end is worth a caller's repeat. Ejected again at its
    probe, the deployment's return is one more probe likely to fail: no wait is advised."""
    h.router(dep("a"))
    h.scripted.fail("a", UpstreamTimeoutError("silent"))
    await h.failure(chat())
    first = await h.failure(chat())
    assert isinstance(first, NoDeploymentsAvailableError)
    assert first.client_wait() == 5.0
    h.clock.advance(5)
    h.scripted.fail("a", UpstreamTimeoutError("silent again"))
    await h.failure(chat())  # the probe
    again = await h.failure(chat())
    assert isinstance(again, NoDeploymentsAvailableError)
    assert again.retry_after is not None  # when it will be probed, for the message
    assert again.client_wait() is None


async def test_cooldowns_end_and_are_reported_when_noticed(h: Harness) -> None:
    router = h.router(dep("a"))
    await router.cool_down("a", 5)
    assert [e.reason.value for e in h.recorder.of(CooldownEntered)] == ["manual"]
    h.clock.advance(5)
    assert (await router.complete(chat())).deployment.id == "a"
    assert [e.deployment_id for e in h.recorder.of(CooldownLeft)] == ["a"]


async def test_lift_cooldown_puts_a_deployment_back_at_once(h: Harness) -> None:
    router = h.router(dep("a"))
    await router.cool_down("a", 500)
    await router.lift_cooldown("a")
    assert (await router.complete(chat())).deployment.id == "a"


async def test_events_and_counters(h: Harness) -> None:
    router = h.router(dep("a"), dep("b"))
    for _ in range(6):
        await router.complete(chat())
    started = h.recorder.of(AttemptStarted)
    finished = h.recorder.of(AttemptFinished)
    assert len(started) == len(finished) == 6
    assert all(f.error is None and f.usage is not None for f in finished)
    assert h.stats.requests == 6
    assert sum(h.stats.selections.values()) == 6


async def test_a_failing_observer_never_fails_a_request(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def on_event(self, event: object) -> None:
            raise RuntimeError("observer bug")

    router = Router(
        RouterConfig(model_list=(dep("a"),)), {"sim": h.sim}, clock=h.clock, observers=[Broken()]
    )
    assert (await router.complete(chat())).deployment.id == "a"
    assert "observer" in caplog.text


async def test_health_report(h: Harness) -> None:
    router = h.router(dep("a"), dep("b"))
    await router.complete(chat())
    await router.cool_down("b", 9)
    report = {entry.deployment_id: entry for entry in await router.health()}
    assert report["b"].cooling_down and report["b"].cooldown_left == pytest.approx(9)
    assert not report["a"].cooling_down
    assert report["a"].in_flight == 0


async def test_stream_requests_must_use_stream(h: Harness) -> None:
    router = h.router(dep("a"))
    with pytest.raises(Exception, match=r"Router\.stream"):
        await router.complete(chat(stream=True))


async def test_pick_is_a_routing_decision_without_a_call(h: Harness) -> None:
    router = h.router(dep("a"), dep("b", priority=1), routing=RoutingConfig(strategy="priority"))
    assert (await router.pick(chat())).id == "a"
    await router.cool_down("a", 10)
    assert (await router.pick(chat())).id == "b"
    await router.cool_down("b", 10)
    with pytest.raises(NoDeploymentsAvailableError):
        await router.pick(chat())
    assert h.scripted.calls == []
