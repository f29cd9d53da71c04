"""Learned attempt limits, at turnout's defaults, on the injected clock.

The shape most users run: a LiteLLM config with one deployment per model and ``fallbacks``,
``num_retries: 2``, ``timeout: 30``, nothing else tuned. A silent upstream, a stalled stream and
a first token far slower than usual are left after a limit learned from the deployment's own
successes (or a conservative cold value before it has any), and time is kept for the fallback
to answer inside the caller's deadline. A deployment that is slow by nature is not cut, and one
with nowhere else to go waits up to the cap.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import Harness, chat, dep
from litellm_shape import simulated_one_per_model
from turnout import FallbackConfig, Router, RouterConfig, Timeouts
from turnout.config.load import parse_config
from turnout.config.router import LearnedTimeouts, LimitBounds
from turnout.errors import ConfigError, StreamInterruptedError, UpstreamTimeoutError
from turnout.router.limits import FIRST_TOKEN, IDLE, REQUEST, LearnedLimits
from turnout.testing import Behaviour
from turnout.wire import AttemptLimits, Request

#: Longer than any test's deadline: an upstream that accepts and never answers.
SILENT = Behaviour(latency=10_000, ttft=10_000)
FAST = Behaviour(latency=0.4, ttft=0.3, chunk_interval=0.05, output_tokens=8)
DEFAULTS = LearnedTimeouts()


def _router(h: Harness, data: dict[str, Any]) -> Router:
    return h.router_of(parse_config(data, environ={}, providers={"sim"}).router)


async def _warm(router: Router, h: Harness, count: int = 12, *, stream: bool) -> None:
    for _ in range(count):
        if stream:
            async for _chunk in await router.stream(chat("primary", stream=True)):
                pass
        else:
            await router.complete(chat("primary"))
    h.scripted.calls.clear()


# ---- the estimator and the rules ------------------------------------------------------------


def test_cold_until_enough_samples_then_quantile_times_factor_within_floor_and_cap() -> None:
    limits = LearnedLimits(LearnedTimeouts(min_samples=10))
    assert limits.learned(FIRST_TOKEN, "d") == (60.0, 0)
    for _ in range(9):
        limits.observe_first_token("d", 4.0)
    assert limits.learned(FIRST_TOKEN, "d") == (60.0, 0)  # nine samples: still cold
    limits.observe_first_token("d", 4.0)
    assert limits.learned(FIRST_TOKEN, "d") == (12.0, 10)  # 4 s x 3
    fast = LearnedLimits(DEFAULTS)
    slow = LearnedLimits(DEFAULTS)
    for _ in range(20):
        fast.observe_first_token("d", 0.2)
        slow.observe_first_token("d", 70.0)
    assert fast.learned(FIRST_TOKEN, "d")[0] == 5.0  # the floor
    assert slow.learned(FIRST_TOKEN, "d")[0] == 120.0  # the cap


def test_idle_learns_the_longest_gap_of_each_stream() -> None:
    limits = LearnedLimits(DEFAULTS)
    for gap in [0.5] * 18 + [6.0] * 2:  # two streams in twenty paused for 6 s
        limits.observe_stream("d", gap)
    assert limits.learned(IDLE, "d") == (18.0, 20)


def test_whole_answers_scale_with_the_tokens_the_request_allows() -> None:
    limits = LearnedLimits(DEFAULTS)
    for _ in range(20):
        limits.observe_whole("d", 4.0, 200)  # 20 ms per token
    assert limits.learned(REQUEST, "d") == (12.0, 20)
    # A request allowing 4000 tokens may take 80 s at that pace: its limit is three times that.
    assert limits.learned(REQUEST, "d", max_tokens=4000) == (240.0, 20)
    assert limits.learned(REQUEST, "d", max_tokens=100) == (12.0, 20)


def test_the_quantile_ignores_the_rare_outlier() -> None:
    limits = LearnedLimits(LearnedTimeouts(quantile=0.9))
    for seconds in [1.0] * 19 + [50.0]:
        limits.observe_first_token("d", seconds)
    assert limits.learned(FIRST_TOKEN, "d")[0] == 5.0


def test_memory_is_bounded_to_the_most_recent_samples() -> None:
    limits = LearnedLimits(LearnedTimeouts(samples=16))
    for _ in range(16):
        limits.observe_first_token("d", 30.0)
    for _ in range(16):
        limits.observe_first_token("d", 2.0)
    assert limits.learned(FIRST_TOKEN, "d")[0] == 6.0  # the 30 s samples have left the ring


def test_sources_configured_bounds_request_overrides_and_the_cap() -> None:
    limits = LearnedLimits(DEFAULTS)
    for _ in range(10):
        limits.observe_first_token("d", 0.5)
    plain = dep("d")
    bounded = dep("d", timeouts=Timeouts(first_token=3.0))
    loose = dep("d", timeouts=Timeouts(first_token=300.0))
    request = chat(stream=True)
    learned = limits.limit(FIRST_TOKEN, plain, request, True)
    assert learned is not None and (learned.seconds, learned.source) == (5.0, "learned")
    assert "learned from 10 recent answers" in learned.describe()
    # A configured limit is an upper bound: tighter wins, looser does not loosen.
    configured = limits.limit(FIRST_TOKEN, bounded, request, True)
    assert configured is not None and (configured.seconds, configured.source) == (3.0, "configured")
    assert limits.limit(FIRST_TOKEN, loose, request, True) == learned
    # With nowhere else to go, the wait is the cap (or the configured limit).
    capped = limits.limit(FIRST_TOKEN, plain, request, False)
    assert capped is not None and (capped.seconds, capped.source) == (120.0, "cap")
    only = limits.limit(FIRST_TOKEN, bounded, request, False)
    assert only is not None and only.seconds == 3.0
    # The request's own limit replaces the learned one, within the configured one.
    asked = Request(model="chat", body={}, limits=AttemptLimits(first_token=40.0))
    own = limits.limit(FIRST_TOKEN, plain, asked, True)
    assert own is not None and (own.seconds, own.source) == (40.0, "request")
    within = limits.limit(FIRST_TOKEN, bounded, asked, True)
    assert within is not None and within.seconds == 3.0
    # Disabled: only what is configured.
    off = LearnedLimits(LearnedTimeouts(enabled=False))
    assert off.limit(FIRST_TOKEN, plain, request, True) is None


def test_bounds_are_checked() -> None:
    with pytest.raises(ConfigError):
        LimitBounds(floor=10, cap=5, cold=7)
    with pytest.raises(ConfigError):
        LimitBounds(floor=1, cap=5, cold=7)
    with pytest.raises(ConfigError, match=r"cold \(200\) must lie between floor \(5\) and cap"):
        LearnedTimeouts(first_token=LimitBounds(cold=200))


def test_bounds_left_out_are_their_kinds_defaults() -> None:
    data = {
        **simulated_one_per_model(),
        "learned_timeouts": {"idle": {"cold": 12}, "request": {"floor": 3}},
    }
    learned = parse_config(data, environ={}, providers={"sim"}).router.learned_timeouts
    assert learned.idle == LimitBounds(floor=10, cap=120, cold=12)
    assert learned.request == LimitBounds(floor=3, cap=600, cold=120)
    assert learned.first_token == LearnedTimeouts().first_token
    with pytest.raises(ConfigError, match="learned_timeouts"):
        parse_config(
            {**simulated_one_per_model(), "learned_timeouts": {"idle": {"cap": 5}}},
            environ={},
            providers={"sim"},
        )


def test_the_section_loads_from_a_litellm_config() -> None:
    data = {
        **simulated_one_per_model(),
        "learned_timeouts": {"factor": 4, "first_token": {"floor": 1, "cap": 9, "cold": 3}},
    }
    config = parse_config(data, environ={}, providers={"sim"})
    assert config.router.learned_timeouts.factor == 4
    assert config.router.learned_timeouts.first_token.cold == 3
    assert not [w for w in config.warnings if "learned_timeouts" in w]


# ---- in the router, at the defaults --------------------------------------------------------


async def test_a_cold_silent_primary_leaves_time_for_the_fallback_inside_a_30s_deadline() -> None:
    h = Harness()
    h.sim.set_behaviour("primary", SILENT)
    h.sim.set_behaviour("backup", Behaviour(latency=3.0))
    router = _router(h, simulated_one_per_model(num_retries=2, timeout=30))
    request = chat("primary")
    request.timeout = 29.0  # the SDK's timeout=30, less the gateway's margin
    response = await router.complete(request)
    assert response.deployment.model_name == "backup"
    assert h.scripted.calls == ["primary", "backup"]  # the silent primary is not retried
    # 40% of the time is kept for a fallback whose pace is unknown.
    assert h.clock.now() == pytest.approx(29.0 * 0.6 + 3.0)
    first = response.attempts[0]
    assert first.error is not None and first.error.value == "timeout"
    assert "left to keep" in (first.message or "")


async def test_a_warm_silent_primary_is_left_at_its_learned_limit() -> None:
    h = Harness()
    for name in ("primary", "backup"):
        h.sim.set_behaviour(name, FAST)
    router = _router(h, simulated_one_per_model(num_retries=2, timeout=30))
    await _warm(router, h, stream=False)
    h.sim.set_behaviour("primary", SILENT)
    started = h.clock.now()
    response = await router.complete(chat("primary"))
    assert response.deployment.model_name == "backup"
    assert h.scripted.calls == ["primary", "backup"]
    assert h.clock.now() - started == pytest.approx(10.0 + 0.4)  # the floor of whole answers
    assert "learned from 12 recent answers" in (response.attempts[0].message or "")


async def test_a_20s_first_token_after_warm_up_moves_to_the_fallback_at_5s() -> None:
    h = Harness()
    for name in ("primary", "backup"):
        h.sim.set_behaviour(name, FAST)
    router = _router(h, simulated_one_per_model(num_retries=2, timeout=30))
    await _warm(router, h, stream=True)
    h.sim.set_behaviour("primary", Behaviour(ttft=20.0, chunk_interval=0.05, output_tokens=8))
    started = h.clock.now()
    stream = await router.stream(chat("primary", stream=True))
    assert h.clock.now() - started == pytest.approx(5.0 + 0.3)
    chunks = [chunk async for chunk in stream]
    assert chunks and stream.deployment.model_name == "backup"
    assert h.scripted.calls == ["primary", "backup"]


async def test_a_stalled_stream_is_cut_by_the_learned_idle_limit_and_continued() -> None:
    h = Harness()
    for name in ("primary", "backup"):
        h.sim.set_behaviour(name, FAST)
    router = _router(h, simulated_one_per_model(num_retries=2, timeout=30))
    await _warm(router, h, stream=True)
    h.sim.set_behaviour(
        "primary",
        Behaviour(ttft=0.3, chunk_interval=0.05, stream_failure="stall", fail_after_chunks=3),
    )
    started = h.clock.now()
    stream = await router.stream(chat("primary", stream=True))
    chunks = [chunk async for chunk in stream]
    assert chunks and stream.deployment.model_name == "backup"
    assert h.scripted.calls == ["primary", "backup"]
    # Three chunks, the idle floor of 10 s, then the continuation's own answer.
    assert 10.0 < h.clock.now() - started < 12.0
    stalled = stream.attempts[0]
    assert "stalled" in (stalled.message or "") and "idle limit of 10s" in (stalled.message or "")


async def test_a_cold_stall_under_the_callers_read_timeout_keeps_time_to_continue() -> None:
    h = Harness()
    h.sim.set_behaviour(
        "primary",
        Behaviour(ttft=0.3, chunk_interval=0.05, stream_failure="stall", fail_after_chunks=3),
    )
    h.sim.set_behaviour("backup", FAST)
    router = _router(h, simulated_one_per_model(num_retries=2, timeout=30))
    request = chat("primary", stream=True)
    request.start_within = 29.0  # the SDK reads each chunk with timeout=30
    stream = await router.stream(request)
    chunks = [chunk async for chunk in stream]
    assert chunks and stream.deployment.model_name == "backup"
    # Cut when 40% of the read timeout is left for the continuation to start.
    assert h.clock.now() == pytest.approx(0.3 + 0.1 + 29.0 * 0.6 + 0.3 + 8 * 0.05, abs=0.2)


async def test_a_slow_but_healthy_deployment_is_not_cut_once_its_pace_is_known() -> None:
    h = Harness()
    reasoning = Behaviour(ttft=35.0, chunk_interval=0.05, output_tokens=8)
    h.sim.set_behaviour("primary", reasoning)
    h.sim.set_behaviour("backup", FAST)
    router = _router(h, simulated_one_per_model())
    await _warm(router, h, stream=True)
    h.sim.set_behaviour("primary", Behaviour(ttft=70.0, chunk_interval=0.05, output_tokens=8))
    stream = await router.stream(chat("primary", stream=True))
    assert [c async for c in stream] and stream.deployment.model_name == "primary"
    assert h.scripted.calls == ["primary"]


async def test_with_nowhere_else_to_go_an_attempt_waits_up_to_the_cap(h: Harness) -> None:
    h.sim.set_behaviour("a", Behaviour(ttft=90.0, output_tokens=4))
    router = h.router(dep("a"))
    stream = await router.stream(chat(stream=True))
    assert [c async for c in stream]
    assert h.clock.now() == pytest.approx(90.0, abs=0.5)  # past the cold 60 s: nothing else
    h.sim.set_behaviour("a", SILENT)
    started = h.clock.now()
    with pytest.raises(UpstreamTimeoutError, match="the cap"):
        await router.stream(chat(stream=True))
    assert h.clock.now() - started == pytest.approx(120.0)


async def test_timeouts_are_not_samples(h: Harness) -> None:
    """A cut-off is censored data: it neither lowers nor raises the limit."""
    h.sim.set_behaviour("a", Behaviour(ttft=1.0, output_tokens=4))
    h.sim.set_behaviour("b", FAST)
    router = h.router(
        dep("a"), dep("b", group="spare"), fallbacks=FallbackConfig(general={"chat": ["spare"]})
    )
    for _ in range(10):
        async for _chunk in await router.stream(chat(stream=True)):
            pass
    assert await _first_token(router, "a") == (5.0, "learned", 10)
    h.sim.set_behaviour("a", SILENT)
    for _ in range(3):
        await router.lift_cooldown("a")
        stream = await router.stream(chat(stream=True))
        async for _chunk in stream:
            pass
        assert stream.deployment.id == "b"
    assert await _first_token(router, "a") == (5.0, "learned", 10)


async def _first_token(router: Router, deployment_id: str) -> tuple[float, str, int] | None:
    """The deployment's first-token limit as /health reports it (None: not configured)."""
    for entry in await router.health():
        if entry.deployment_id == deployment_id:
            assert entry.limits is not None and entry.limits.first_token is not None
            limit = entry.limits.first_token
            return limit.seconds, limit.source, limit.samples
    return None


async def test_a_group_of_several_moves_to_the_next_deployment_at_the_learned_limit(
    h: Harness,
) -> None:
    from turnout import RoutingConfig

    for name in ("a", "b"):
        h.sim.set_behaviour(name, FAST)
    router = h.router(
        dep("a", priority=0), dep("b", priority=1), routing=RoutingConfig(strategy="priority")
    )
    for _ in range(12):
        await router.complete(chat())
    h.scripted.calls.clear()
    h.sim.set_behaviour("a", SILENT)
    started = h.clock.now()
    response = await router.complete(chat())
    assert response.deployment.id == "b"
    assert h.scripted.calls == ["a", "b"]
    assert h.clock.now() - started == pytest.approx(10.4)


async def test_a_short_deadline_cut_is_no_verdict_on_the_deployment() -> None:
    h = Harness()
    h.sim.set_behaviour("primary", Behaviour(latency=2.0))
    h.sim.set_behaviour("backup", Behaviour(latency=0.1))
    router = _router(h, simulated_one_per_model())
    request = chat("primary")
    request.timeout = 1.0
    response = await router.complete(request)
    assert response.deployment.model_name == "backup"
    first = response.attempts[0]
    assert first.error is not None and first.error.value == "deadline"
    health = {entry.deployment_id: entry for entry in await router.health()}
    assert not health["primary"].cooling_down


async def test_health_shows_each_deployments_limits() -> None:
    h = Harness()
    for name in ("primary", "backup"):
        h.sim.set_behaviour(name, FAST)
    router = _router(h, simulated_one_per_model(timeout=30))
    await _warm(router, h, stream=True)
    health = {entry.deployment_id: entry for entry in await router.health()}
    view = health["primary"].limits
    assert view is not None and view.first_token is not None and view.idle is not None
    assert (view.first_token.seconds, view.first_token.source) == (5.0, "learned")
    assert view.idle.source == "learned"
    # No whole answer yet: the cold 120 s, bounded by LiteLLM's ``timeout: 30``.
    assert view.request is not None
    assert (view.request.seconds, view.request.source) == (30.0, "configured")


async def test_stream_interrupted_by_a_request_idle_limit(h: Harness) -> None:
    h.sim.set_behaviour(
        "a", Behaviour(ttft=0.1, chunk_interval=0.05, stream_failure="stall", fail_after_chunks=2)
    )
    router = h.router(dep("a"))
    request = chat(stream=True)
    request.limits = AttemptLimits(idle=2.0)
    stream = await router.stream(request)
    with pytest.raises(StreamInterruptedError, match="set by the request"):
        async for _chunk in stream:
            pass


async def test_a_late_stall_under_a_read_timeout_leaves_the_continuation_its_time(
    h: Harness,
) -> None:
    """The continuation's first chunk is due a read timeout after the last chunk, not after
    the stream began: a stream that ran for a minute is still continued, and the continuation
    (which has a fallback of its own) is given the time left of that read timeout."""
    from turnout import RoutingConfig

    h.sim.set_behaviour(
        "a",
        Behaviour(
            ttft=0.3,
            chunk_interval=2.0,
            output_tokens=64,
            stream_failure="stall",
            fail_after_chunks=30,
        ),
    )
    h.sim.set_behaviour("b", Behaviour(ttft=1.0, chunk_interval=0.05, output_tokens=8))
    router = h.router(
        dep("a", priority=0),
        dep("b", priority=1),
        dep("spare", group="spare"),
        routing=RoutingConfig(strategy="priority"),
        fallbacks=FallbackConfig(general={"chat": ["spare"]}),
    )
    request = chat(stream=True)
    request.start_within = 29.0
    stream = await router.stream(request)
    chunks = [chunk async for chunk in stream]
    assert chunks and stream.deployment.id == "b"
    assert h.scripted.calls == ["a", "b"]
    assert h.clock.now() == pytest.approx(0.3 + 60.0 + 29.0 * 0.6 + 1.0 + 0.4, abs=0.5)


async def test_samples_survive_a_reload_and_leave_with_their_deployment(h: Harness) -> None:
    from turnout import RoutingConfig

    h.sim.set_behaviour("a", Behaviour(ttft=1.0, output_tokens=4))
    priority = RoutingConfig(strategy="priority")
    router = h.router(dep("a", priority=0), dep("b", priority=1), routing=priority)
    for _ in range(10):
        async for _chunk in await router.stream(chat(stream=True)):
            pass
    assert await _first_token(router, "a") == (5.0, "learned", 10)
    await router.reload(RouterConfig(model_list=(dep("a"), dep("c")), routing=priority))
    assert await _first_token(router, "a") == (5.0, "learned", 10)  # kept across the reload
    await router.reload(RouterConfig(model_list=(dep("c"),), routing=priority))
    await router.reload(RouterConfig(model_list=(dep("a"),), routing=priority))
    assert await _first_token(router, "a") == (60.0, "cold", 0)  # forgotten once it left
