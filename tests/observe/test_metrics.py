"""Prometheus metrics: what each event and request does to the rendered exposition."""

from __future__ import annotations

import random
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from harness import Recorder, Scripted, chat, dep
from turnout import Router, RouterConfig
from turnout.errors import AuthenticationError, FailureKind, FallbackKind, ServerError
from turnout.health.record import BreakerPhase, CooldownReason
from turnout.observe.events import (
    AttemptFinished,
    AttemptStarted,
    BreakerTransition,
    BudgetExhausted,
    CooldownEntered,
    CooldownLeft,
    Event,
    FallbackTaken,
    HedgeFired,
    HedgeSettled,
    HttpRequestFinished,
    PoisonRequest,
    RetryScheduled,
    StreamFailover,
)
from turnout.observe.metrics import LATENCY_BUCKETS, GatewayMetrics
from turnout.secrets import Secret
from turnout.testing import ManualClock, SimulatedProvider
from turnout.wire import Usage

Labels = frozenset[tuple[str, str]]


def samples(metrics: GatewayMetrics) -> dict[str, dict[Labels, float]]:
    """Every sample of the rendered output: sample name -> labels -> value."""
    body, _ = metrics.render()
    found: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return found


def key(**labels: str) -> Labels:
    return frozenset(labels.items())


def value(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the series does not exist."""
    return samples(metrics).get(name, {}).get(key(**labels))


def attempts(metrics: GatewayMetrics, deployment: str, outcome: str) -> float | None:
    return value(
        metrics,
        "turnout_attempts_total",
        model_group="chat",
        deployment=deployment,
        outcome=outcome,
    )


def series(metrics: GatewayMetrics, name: str) -> dict[Labels, float]:
    return samples(metrics).get(name, {})


def started(deployment: str = "d1", group: str = "chat") -> AttemptStarted:
    return AttemptStarted("req-1", group, deployment, 1, 0.0, False)


def finished(
    deployment: str = "d1",
    group: str = "chat",
    *,
    error: FailureKind | None = None,
    duration: float = 0.2,
    usage: Usage | None = None,
    cost: float | None = None,
) -> AttemptFinished:
    status = None if error is None else 500
    return AttemptFinished(
        "req-1", group, deployment, 1, 0.0, duration, error, status, usage, cost, None, False
    )


def test_render_returns_the_prometheus_text_format() -> None:
    body, content_type = GatewayMetrics().render()
    assert content_type == CONTENT_TYPE_LATEST
    assert content_type.startswith("text/plain")
    assert b"# TYPE turnout_requests_total counter" in body


def test_requests_are_counted_by_route_group_and_status() -> None:
    metrics = GatewayMetrics()
    for status in (200, 200, 429):
        metrics.on_event(
            HttpRequestFinished(
                route="/v1/chat/completions",
                model_group="chat",
                status=status,
                duration=0.3,
                stream=False,
            )
        )
    metrics.on_event(
        HttpRequestFinished(
            route="/v1/embeddings", model_group="embed", status=200, duration=0.02, stream=False
        )
    )
    assert series(metrics, "turnout_requests_total") == {
        key(route="/v1/chat/completions", model_group="chat", status="200"): 2,
        key(route="/v1/chat/completions", model_group="chat", status="429"): 1,
        key(route="/v1/embeddings", model_group="embed", status="200"): 1,
    }
    chat_route = {"route": "/v1/chat/completions", "model_group": "chat"}
    assert value(metrics, "turnout_request_duration_seconds_count", **chat_route) == 3
    duration = value(metrics, "turnout_request_duration_seconds_sum", **chat_route)
    assert duration == pytest.approx(0.9)
    assert value(metrics, "turnout_request_duration_seconds_bucket", **chat_route, le="0.25") == 0
    assert value(metrics, "turnout_request_duration_seconds_bucket", **chat_route, le="0.5") == 3


def test_request_durations_use_buckets_from_5_ms_to_two_minutes() -> None:
    metrics = GatewayMetrics()
    metrics.on_event(
        HttpRequestFinished(route="/r", model_group="g", status=200, duration=90, stream=False)
    )
    buckets = series(metrics, "turnout_request_duration_seconds_bucket")
    bounds = sorted(float(dict(labels)["le"]) for labels in buckets)
    assert bounds[0] == 0.005
    assert bounds[-2:] == [120.0, float("inf")]
    assert len(bounds) == len(LATENCY_BUCKETS) + 1
    labels = {"route": "/r", "model_group": "g"}
    assert value(metrics, "turnout_request_duration_seconds_bucket", **labels, le="60.0") == 0
    assert value(metrics, "turnout_request_duration_seconds_bucket", **labels, le="120.0") == 1


def test_time_to_first_token_is_observed_for_streams_only() -> None:
    metrics = GatewayMetrics()
    metrics.on_event(
        HttpRequestFinished(
            route="/r", model_group="chat", status=200, duration=2.0, stream=True, ttft=0.15
        )
    )
    metrics.on_event(
        HttpRequestFinished(
            route="/r", model_group="chat", status=200, duration=2.0, stream=False, ttft=2.0
        )
    )
    metrics.on_event(
        HttpRequestFinished(route="/r", model_group="chat", status=502, duration=1, stream=True)
    )
    metrics.on_event(
        HttpRequestFinished(route="/e", model_group="embed", status=200, duration=1, stream=False)
    )
    assert set(series(metrics, "turnout_time_to_first_token_seconds_count")) == {
        key(model_group="chat")
    }
    assert value(metrics, "turnout_time_to_first_token_seconds_count", model_group="chat") == 1
    assert value(
        metrics, "turnout_time_to_first_token_seconds_sum", model_group="chat"
    ) == pytest.approx(0.15)


def test_finished_attempts_count_outcome_duration_tokens_and_cost() -> None:
    metrics = GatewayMetrics()
    metrics.on_event(finished(usage=Usage(10, 5), cost=0.002, duration=1.5))
    metrics.on_event(finished(usage=Usage(7, 3), cost=0.001, duration=0.5))
    metrics.on_event(finished(error=FailureKind.RATE_LIMITED, duration=0.01))
    metrics.on_event(finished("d2", error=FailureKind.TIMEOUT, duration=30))
    assert series(metrics, "turnout_attempts_total") == {
        key(model_group="chat", deployment="d1", outcome="success"): 2,
        key(model_group="chat", deployment="d1", outcome="rate_limited"): 1,
        key(model_group="chat", deployment="d2", outcome="timeout"): 1,
    }
    d1 = {"model_group": "chat", "deployment": "d1"}
    assert value(metrics, "turnout_attempt_duration_seconds_count", **d1) == 3
    assert value(metrics, "turnout_attempt_duration_seconds_sum", **d1) == pytest.approx(2.01)
    assert value(metrics, "turnout_tokens_total", **d1, kind="prompt") == 17
    assert value(metrics, "turnout_tokens_total", **d1, kind="completion") == 8
    assert value(metrics, "turnout_cost_usd_total", **d1) == pytest.approx(0.003)
    d2 = {"model_group": "chat", "deployment": "d2"}
    assert value(metrics, "turnout_tokens_total", **d2, kind="prompt") == 0
    assert value(metrics, "turnout_cost_usd_total", **d2) == 0


def test_in_flight_goes_up_on_start_and_down_on_finish() -> None:
    metrics = GatewayMetrics()
    metrics.on_event(started())
    metrics.on_event(started())
    metrics.on_event(started("d2"))
    assert value(metrics, "turnout_in_flight", deployment="d1") == 2
    assert value(metrics, "turnout_in_flight", deployment="d2") == 1
    metrics.on_event(finished())
    assert value(metrics, "turnout_in_flight", deployment="d1") == 1
    metrics.on_event(finished(error=FailureKind.SERVER_ERROR))
    metrics.on_event(finished("d2"))
    assert value(metrics, "turnout_in_flight", deployment="d1") == 0
    assert value(metrics, "turnout_in_flight", deployment="d2") == 0


def test_in_flight_never_goes_below_zero() -> None:
    metrics = GatewayMetrics()
    metrics.deployments([("d1", "chat", "openai")])
    metrics.on_event(finished())  # its start was never seen
    assert value(metrics, "turnout_in_flight", deployment="d1") == 0


def test_fallbacks_and_retries_are_counted_with_their_kinds() -> None:
    metrics = GatewayMetrics()
    metrics.on_event(
        FallbackTaken("r", "gpt", "claude", FallbackKind.GENERAL, FailureKind.SERVER_ERROR)
    )
    metrics.on_event(
        FallbackTaken("r", "gpt", "big", FallbackKind.CONTEXT_WINDOW, FailureKind.CONTEXT_WINDOW)
    )
    metrics.on_event(FallbackTaken("r", "gpt", "claude", FallbackKind.GENERAL, FailureKind.TIMEOUT))
    assert series(metrics, "turnout_fallbacks_total") == {
        key(from_group="gpt", to_group="claude", kind="general"): 2,
        key(from_group="gpt", to_group="big", kind="context_window"): 1,
    }
    metrics.on_event(RetryScheduled("r", "gpt", "d1", 0.0, FailureKind.RATE_LIMITED))
    metrics.on_event(RetryScheduled("r", "gpt", "d2", 1.5, FailureKind.RATE_LIMITED))
    metrics.on_event(RetryScheduled("r", "gpt", "d1", 0.0, FailureKind.CONNECTION))
    assert series(metrics, "turnout_retries_total") == {
        key(model_group="gpt", reason="rate_limited"): 2,
        key(model_group="gpt", reason="connection"): 1,
    }


def test_a_cooldown_is_counted_and_its_gauge_goes_to_one_and_back() -> None:
    metrics = GatewayMetrics()
    metrics.on_event(CooldownEntered("d1", CooldownReason.RATE_LIMITED, until=60.0, seconds=60.0))
    assert value(metrics, "turnout_deployment_cooling_down", deployment="d1") == 1
    assert value(metrics, "turnout_cooldowns_total", deployment="d1", reason="rate_limited") == 1
    metrics.on_event(CooldownLeft("d1", CooldownReason.RATE_LIMITED))
    assert value(metrics, "turnout_deployment_cooling_down", deployment="d1") == 0
    metrics.on_event(
        CooldownEntered("d1", CooldownReason.FAILURES, until=90.0, seconds=30.0, ejections=3)
    )
    assert value(metrics, "turnout_deployment_cooling_down", deployment="d1") == 1
    assert value(metrics, "turnout_deployment_ejections", deployment="d1") == 3
    assert series(metrics, "turnout_cooldowns_total") == {
        key(deployment="d1", reason="rate_limited"): 1,
        key(deployment="d1", reason="failures"): 1,
    }


def test_breaker_state_follows_its_phases_and_transitions_are_counted() -> None:
    metrics = GatewayMetrics()
    closed, opened, half = BreakerPhase.CLOSED, BreakerPhase.OPEN, BreakerPhase.HALF_OPEN
    metrics.on_event(BreakerTransition("d1", closed, opened))
    assert value(metrics, "turnout_breaker_state", deployment="d1") == 1
    metrics.on_event(BreakerTransition("d1", opened, half))
    assert value(metrics, "turnout_breaker_state", deployment="d1") == 2
    metrics.on_event(BreakerTransition("d1", half, opened))
    metrics.on_event(BreakerTransition("d1", opened, half))
    metrics.on_event(BreakerTransition("d1", half, closed))
    assert value(metrics, "turnout_breaker_state", deployment="d1") == 0
    assert series(metrics, "turnout_breaker_transitions_total") == {
        key(deployment="d1", to="open"): 2,
        key(deployment="d1", to="half_open"): 2,
        key(deployment="d1", to="closed"): 1,
    }


def test_deployments_creates_zeroed_gauges_and_an_info_series() -> None:
    metrics = GatewayMetrics()
    metrics.deployments([("d1", "chat", "openai"), ("d2", "chat", "anthropic")])
    for name in (
        "turnout_in_flight",
        "turnout_deployment_cooling_down",
        "turnout_breaker_state",
        "turnout_deployment_ejections",
    ):
        assert series(metrics, name) == {
            key(deployment="d1"): 0,
            key(deployment="d2"): 0,
        }, name
    assert series(metrics, "turnout_deployment_info") == {
        key(deployment="d1", model_group="chat", provider="openai"): 1,
        key(deployment="d2", model_group="chat", provider="anthropic"): 1,
    }


def test_a_reload_removes_dropped_gauges_and_keeps_the_rest() -> None:
    metrics = GatewayMetrics()
    metrics.deployments([("d1", "chat", "openai"), ("d2", "chat", "openai")])
    metrics.on_event(started("d1"))
    metrics.on_event(started("d2"))
    metrics.on_event(CooldownEntered("d1", CooldownReason.TIMEOUT, until=5.0, seconds=5.0))
    metrics.on_event(finished("d2"))
    metrics.deployments([("d1", "fast", "openai"), ("d3", "chat", "azure")])
    assert series(metrics, "turnout_in_flight") == {
        key(deployment="d1"): 1,
        key(deployment="d3"): 0,
    }
    assert series(metrics, "turnout_deployment_cooling_down") == {
        key(deployment="d1"): 1,
        key(deployment="d3"): 0,
    }
    assert set(series(metrics, "turnout_breaker_state")) == {
        key(deployment="d1"),
        key(deployment="d3"),
    }
    assert series(metrics, "turnout_deployment_info") == {
        key(deployment="d1", model_group="fast", provider="openai"): 1,
        key(deployment="d3", model_group="chat", provider="azure"): 1,
    }
    # Counters keep what they counted.
    assert attempts(metrics, "d2", "success") == 1


def test_late_events_of_a_removed_deployment_do_not_bring_its_gauges_back() -> None:
    metrics = GatewayMetrics()
    metrics.deployments([("d1", "chat", "openai"), ("d2", "chat", "openai")])
    metrics.on_event(started("d2"))
    metrics.deployments([("d1", "chat", "openai")])
    metrics.on_event(finished("d2"))
    metrics.on_event(CooldownLeft("d2", CooldownReason.FAILURES))
    metrics.on_event(BreakerTransition("d2", BreakerPhase.OPEN, BreakerPhase.HALF_OPEN))
    for name in ("turnout_in_flight", "turnout_deployment_cooling_down", "turnout_breaker_state"):
        assert set(series(metrics, name)) == {key(deployment="d1")}, name
    # Added back, it starts from zero and counts again.
    metrics.deployments([("d1", "chat", "openai"), ("d2", "chat", "openai")])
    assert value(metrics, "turnout_in_flight", deployment="d2") == 0
    metrics.on_event(started("d2"))
    assert value(metrics, "turnout_in_flight", deployment="d2") == 1


def test_two_instances_share_nothing() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.deployments([("d1", "chat", "openai")])
    first.on_event(started())
    first.on_event(finished(usage=Usage(3, 4)))
    first.on_event(
        HttpRequestFinished(route="/r", model_group="chat", status=200, duration=1, stream=False)
    )
    second.on_event(started())
    assert value(first, "turnout_in_flight", deployment="d1") == 0
    assert value(second, "turnout_in_flight", deployment="d1") == 1
    assert attempts(first, "d1", "success") == 1
    assert series(second, "turnout_attempts_total") == {}
    assert series(second, "turnout_requests_total") == {}
    assert series(second, "turnout_deployment_info") == {}


def test_unknown_events_are_ignored() -> None:
    metrics = GatewayMetrics()
    metrics.on_event(started())
    before = metrics.render()
    strange: Any = object()
    metrics.on_event(strange)
    metrics.on_event(Usage(1, 2))  # type: ignore[arg-type]
    assert metrics.render() == before


GENAI_LABELS = (
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "server_address",
    "server_port",
    "error_type",
)


EXPECTED_LABELS = {
    "turnout_requests": {"route", "model_group", "status"},
    "turnout_request_duration_seconds": {"route", "model_group"},
    "turnout_time_to_first_token_seconds": {"model_group"},
    "turnout_attempts": {"model_group", "deployment", "outcome"},
    "turnout_attempt_duration_seconds": {"model_group", "deployment"},
    "turnout_tokens": {"model_group", "deployment", "kind"},
    "turnout_cost_usd": {"model_group", "deployment"},
    "turnout_in_flight": {"deployment"},
    "turnout_fallbacks": {"from_group", "to_group", "kind"},
    "turnout_retries": {"model_group", "reason"},
    "turnout_cooldowns": {"deployment", "reason"},
    "turnout_deployment_cooling_down": {"deployment"},
    "turnout_deployment_ejections": {"deployment"},
    "turnout_breaker_state": {"deployment"},
    "turnout_breaker_transitions": {"deployment", "to"},
    "turnout_deployment_info": {"deployment", "model_group", "provider"},
    "turnout_hedges": {"model_group", "outcome"},
    "turnout_stream_failovers": {"model_group", "method", "error"},
    "turnout_budget_exhausted": {"model_group", "kind"},
    "turnout_poison_requests": {"model_group"},
    "turnout_state_backend_up": {"backend"},
    "turnout_spend_log_queued_rows": set(),
    "turnout_spend_log_rows_written": set(),
    "turnout_spend_log_write_failures": set(),
    "turnout_spend_log_write_retries": set(),
    "turnout_spend_log_rows_spilled": set(),
    "turnout_spend_log_rows_refused": set(),
    "gen_ai_client_operation_duration_seconds": set(GENAI_LABELS),
    "gen_ai_client_token_usage": {*GENAI_LABELS, "gen_ai_token_type"},
    "gen_ai_client_operation_time_to_first_chunk_seconds": set(GENAI_LABELS),
}


def feed_everything(metrics: GatewayMetrics, deployment: str, group: str = "chat") -> None:
    """One event of every kind, and one request, about `deployment`."""
    events: list[Event] = [
        started(deployment, group),
        finished(deployment, group, usage=Usage(1, 1), cost=0.5),
        finished(deployment, group, error=FailureKind.AUTHENTICATION),
        AttemptFinished(
            "r", group, deployment, 2, 0.0, 0.3, None, 200, Usage(1, 1), None, 0.1, True
        ),
        RetryScheduled("r", group, deployment, 0.1, FailureKind.AUTHENTICATION),
        FallbackTaken("r", group, "other", FallbackKind.GENERAL, FailureKind.AUTHENTICATION),
        CooldownEntered(deployment, CooldownReason.AUTHENTICATION, until=1.0, seconds=1.0),
        CooldownLeft(deployment, CooldownReason.AUTHENTICATION),
        BreakerTransition(deployment, BreakerPhase.CLOSED, BreakerPhase.OPEN),
        HedgeFired("r", group, deployment, "other", 0.5),
        HedgeSettled("r", group, "other", True, deployment),
        StreamFailover("r", group, deployment, FailureKind.STREAM_INTERRUPTED, 10, "prefill"),
        BudgetExhausted("r", group, "retry"),
        PoisonRequest("r", group, (deployment, "other"), 2),
    ]
    for event in events:
        metrics.on_event(event)
    metrics.on_event(
        HttpRequestFinished(
            route="/v1/chat/completions",
            model_group=group,
            status=401,
            duration=0.1,
            stream=True,
            ttft=0.05,
        )
    )


def test_every_metric_has_exactly_its_fixed_label_set() -> None:
    metrics = GatewayMetrics()
    metrics.deployments([("d1", "chat", "openai")])
    feed_everything(metrics, "d1")
    body, _ = metrics.render()
    seen = set()
    for family in text_string_to_metric_families(body.decode()):
        # The text format shows a counter's or histogram's creation time as a family of its own.
        name = family.name.removesuffix("_created")
        assert name in EXPECTED_LABELS, family.name
        seen.add(name)
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == EXPECTED_LABELS[name], sample
    assert seen == set(EXPECTED_LABELS)


SENTINEL = "sk-SENTINEL-9f3c2a"


def test_no_secret_of_a_deployment_reaches_the_output() -> None:
    deployment = dep(
        "gpt-4o-eu",
        api_key=Secret(SENTINEL),
        base_url=f"https://llm.example.com/{SENTINEL}/v1",
        params={"extra_headers": {"authorization": f"Bearer {SENTINEL}"}},
    )
    metrics = GatewayMetrics()
    metrics.deployments([(deployment.id, deployment.model_name, deployment.provider)])
    feed_everything(metrics, deployment.id, deployment.model_name)
    body, _ = metrics.render()
    assert deployment.id.encode() in body  # the deployment is reported, by its id
    assert SENTINEL.encode() not in body


async def test_a_router_feeds_the_metrics_without_leaking_error_text() -> None:
    clock = ManualClock()
    scripted = Scripted(SimulatedProvider(clock, seed=7))
    metrics, recorder = GatewayMetrics(), Recorder()
    deployments = (dep("a", api_key=Secret(SENTINEL)), dep("b", api_key=Secret(SENTINEL)))
    router = Router(
        RouterConfig(model_list=deployments),
        {"sim": scripted},
        clock=clock,
        rng=random.Random(3),
        observers=[metrics, recorder],
    )
    metrics.deployments((d.id, d.model_name, d.provider) for d in router.deployments())
    scripted.fail("a", AuthenticationError(f"bad key {SENTINEL}", status=401))
    scripted.fail("b", ServerError(f"upstream said {SENTINEL}", status=500))
    await router.complete(chat())
    # a fails (and cools down), b fails, b is retried and succeeds.
    assert len(recorder.of(AttemptFinished)) == 3
    assert series(metrics, "turnout_attempts_total") == {
        key(model_group="chat", deployment="a", outcome="authentication"): 1,
        key(model_group="chat", deployment="b", outcome="server_error"): 1,
        key(model_group="chat", deployment="b", outcome="success"): 1,
    }
    assert value(metrics, "turnout_in_flight", deployment="a") == 0
    assert value(metrics, "turnout_in_flight", deployment="b") == 0
    assert value(metrics, "turnout_deployment_cooling_down", deployment="a") == 1
    assert value(metrics, "turnout_retries_total", model_group="chat", reason="server_error") == 1
    body, _ = metrics.render()
    assert SENTINEL.encode() not in body


def test_hedges_failovers_and_budgets_are_counted() -> None:
    metrics = GatewayMetrics()
    for event in (
        HedgeFired("r", "chat", "a", "b", 0.5),
        HedgeSettled("r", "chat", "b", True, "a"),
        HedgeFired("s", "chat", "a", "b", 0.5),
        HedgeSettled("s", "chat", "a", False, "b"),
        StreamFailover("t", "chat", "a", FailureKind.STREAM_INTERRUPTED, 42, "instruction"),
        BudgetExhausted("u", "chat", "hedge"),
        PoisonRequest("v", "chat", ("a", "b"), 2),
    ):
        metrics.on_event(event)
    body, _ = metrics.render()
    text = body.decode()
    assert 'turnout_hedges_total{model_group="chat",outcome="fired"} 2.0' in text
    assert 'turnout_hedges_total{model_group="chat",outcome="hedge_won"} 1.0' in text
    assert 'turnout_hedges_total{model_group="chat",outcome="primary_won"} 1.0' in text
    assert (
        'turnout_stream_failovers_total{error="stream_interrupted",method="instruction",'
        'model_group="chat"} 1.0'
    ) in text
    assert 'turnout_budget_exhausted_total{kind="hedge",model_group="chat"} 1.0' in text
    assert 'turnout_poison_requests_total{model_group="chat"} 1.0' in text
