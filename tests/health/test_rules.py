from __future__ import annotations

import sys

import pytest

from turnout.config.router import Deployment, HealthConfig, RouterConfig
from turnout.errors import FailureKind
from turnout.health.record import BreakerPhase, CooldownReason, DeploymentState
from turnout.health.rules import HealthPolicy, Outcome, cool_down, settle
from turnout.health.snapshot import snapshot_of
from turnout.observe.events import BreakerTransition, CooldownEntered
from turnout.wire import RateLimitHints

WALL = 1_800_000_000.0  # the start of a minute


def _policy(**health: object) -> HealthPolicy:
    deployment = Deployment(model_name="g", model="m", id="d")
    config = RouterConfig(model_list=(deployment,), health=HealthConfig(**health))  # type: ignore[arg-type]
    return HealthPolicy.for_deployment(deployment, config)


def _fail(
    state: DeploymentState,
    kind: FailureKind,
    policy: HealthPolicy,
    now: float = 0.0,
    retry_after: float | None = None,
) -> list[object]:
    state.in_flight += 1
    return list(settle(state, Outcome(kind, 0.1, retry_after=retry_after), policy, now, WALL + now))


def _entered(events: list[object]) -> list[object]:
    """The ejections among `events` (each also moves the phase: a `BreakerTransition`)."""
    return [e for e in events if isinstance(e, CooldownEntered)]


def _ok(state: DeploymentState, policy: HealthPolicy, now: float = 0.0) -> None:
    state.in_flight += 1
    settle(state, Outcome(None, 0.2, ttft=0.05, tokens=10), policy, now, WALL + now)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (FailureKind.RATE_LIMITED, CooldownReason.RATE_LIMITED),
        (FailureKind.AUTHENTICATION, CooldownReason.AUTHENTICATION),
        (FailureKind.PERMISSION, CooldownReason.AUTHENTICATION),
        (FailureKind.NOT_FOUND, CooldownReason.NOT_FOUND),
        (FailureKind.TIMEOUT, CooldownReason.TIMEOUT),
    ],
)
def test_some_failures_cool_down_at_once(kind: FailureKind, reason: CooldownReason) -> None:
    state = DeploymentState("d")
    events = _fail(state, kind, _policy(cooldown_time=5))
    grows = 0 if reason is CooldownReason.RATE_LIMITED else 1
    assert events[0] == CooldownEntered("d", reason, 5.0, 5.0, grows)
    assert BreakerTransition("d", BreakerPhase.CLOSED, BreakerPhase.OPEN) in events
    assert state.cooling(4.9)
    assert not state.cooling(5.0)


@pytest.mark.parametrize(
    "kind", [FailureKind.BAD_REQUEST, FailureKind.CONTEXT_WINDOW, FailureKind.CONTENT_POLICY]
)
def test_caller_faults_never_count_against_the_deployment(kind: FailureKind) -> None:
    state = DeploymentState("d")
    policy = _policy(min_requests=1, allowed_fails=0)
    for _ in range(20):
        assert _fail(state, kind, policy) == []
    assert state.failures == 0
    assert state.phase is BreakerPhase.CLOSED
    assert not state.cooling(0)


def test_consecutive_failures_cool_down_past_allowed_fails_once_enough_requests() -> None:
    state = DeploymentState("d")
    policy = _policy(allowed_fails=2, min_requests=3)
    assert _fail(state, FailureKind.SERVER_ERROR, policy) == []
    assert _fail(state, FailureKind.SERVER_ERROR, policy) == []
    events = _fail(state, FailureKind.SERVER_ERROR, policy)
    assert _entered(events) == [CooldownEntered("d", CooldownReason.FAILURES, 5.0, 5.0, 1)]


def test_failure_rate_above_threshold_cools_down() -> None:
    state = DeploymentState("d")
    policy = _policy(allowed_fails=100, min_requests=4, failure_rate_threshold=0.5)
    _ok(state, policy)
    _fail(state, FailureKind.SERVER_ERROR, policy)
    _ok(state, policy)
    assert _fail(state, FailureKind.SERVER_ERROR, policy) == []  # 50% is not above 50%
    events = _fail(state, FailureKind.CONNECTION, policy)
    assert [e.reason for e in events if isinstance(e, CooldownEntered)] == [
        CooldownReason.FAILURE_RATE
    ]


def test_counters_reset_each_minute() -> None:
    state = DeploymentState("d")
    policy = _policy(allowed_fails=2, min_requests=3)
    _fail(state, FailureKind.SERVER_ERROR, policy, now=0)
    _fail(state, FailureKind.SERVER_ERROR, policy, now=0)
    assert _fail(state, FailureKind.SERVER_ERROR, policy, now=61) == []  # a new minute


def test_retry_after_stretches_the_cooldown_within_the_bound() -> None:
    state = DeploymentState("d")
    policy = _policy(cooldown_time=5, max_cooldown=60)
    events = _fail(state, FailureKind.RATE_LIMITED, policy, retry_after=30)
    assert _entered(events) == [CooldownEntered("d", CooldownReason.RATE_LIMITED, 30.0, 30.0)]
    other = DeploymentState("e")
    events = _fail(other, FailureKind.RATE_LIMITED, policy, retry_after=3600)
    assert _entered(events) == [CooldownEntered("e", CooldownReason.RATE_LIMITED, 60.0, 60.0)]


def test_retry_after_shorter_than_the_default_sets_the_cooldown() -> None:
    state = DeploymentState("d")
    policy = _policy(cooldown_time=5, max_cooldown=60)
    events = _fail(state, FailureKind.RATE_LIMITED, policy, retry_after=2)
    assert _entered(events) == [CooldownEntered("d", CooldownReason.RATE_LIMITED, 2.0, 2.0)]
    assert not state.cooling(2.0)


def test_a_429_without_retry_after_cools_for_the_default() -> None:
    state = DeploymentState("d")
    events = _fail(state, FailureKind.RATE_LIMITED, _policy(cooldown_time=5))
    assert _entered(events) == [CooldownEntered("d", CooldownReason.RATE_LIMITED, 5.0, 5.0)]


def test_retry_after_does_not_turn_disabled_cooldowns_on() -> None:
    state = DeploymentState("d")
    policy = _policy(disable_cooldowns=True)
    assert _fail(state, FailureKind.RATE_LIMITED, policy, retry_after=2) == []
    assert not state.cooling(0)


def test_a_new_cooldown_never_shortens_a_running_one() -> None:
    state = DeploymentState("d")
    policy = _policy(cooldown_time=5)
    _fail(state, FailureKind.RATE_LIMITED, policy, retry_after=30)
    assert _fail(state, FailureKind.TIMEOUT, policy, now=1) == []
    assert state.cooldown_until == 30.0
    assert state.cooldown_reason is CooldownReason.RATE_LIMITED


def test_zero_cooldown_time_disables_cooldown() -> None:
    state = DeploymentState("d")
    assert _fail(state, FailureKind.RATE_LIMITED, _policy(cooldown_time=0)) == []
    assert _fail(state, FailureKind.TIMEOUT, _policy(disable_cooldowns=True)) == []
    assert not state.cooling(0)


def test_deployment_cooldown_time_overrides_the_default() -> None:
    deployment = Deployment(model_name="g", model="m", cooldown_time=0)
    config = RouterConfig(model_list=(deployment,))
    assert HealthPolicy.for_deployment(deployment, config).cooldown_time == 0


def test_rate_limits_do_not_count_as_consecutive_failures_but_errors_do() -> None:
    state = DeploymentState("d")
    policy = _policy(cooldown_time=0)
    for _ in range(10):
        _fail(state, FailureKind.RATE_LIMITED, policy)
    assert state.phase is BreakerPhase.CLOSED
    events: list[object] = []
    for _ in range(policy.consecutive_failures):
        events += _fail(state, FailureKind.SERVER_ERROR, policy)
    assert BreakerTransition("d", BreakerPhase.CLOSED, BreakerPhase.OPEN) in events
    assert state.cooldown_reason is CooldownReason.CONSECUTIVE_FAILURES


def test_success_updates_averages_usage_and_in_flight() -> None:
    state = DeploymentState("d")
    policy = _policy()
    _ok(state, policy)
    assert state.latency == pytest.approx(0.2)
    assert state.ttft == pytest.approx(0.05)
    assert state.in_flight == 0
    assert state.tpm_used == 10
    state.in_flight += 1
    settle(state, Outcome(None, 1.2), policy, 0, WALL)
    assert state.latency == pytest.approx(0.2 + 0.3 * (1.2 - 0.2))


def test_timeouts_feed_the_latency_average() -> None:
    state = DeploymentState("d")
    state.in_flight += 1
    settle(state, Outcome(FailureKind.TIMEOUT, 30.0), _policy(), 0, WALL)
    assert state.latency == 30.0


def test_rate_limit_hints_are_kept_until_they_reset() -> None:
    state = DeploymentState("d")
    state.in_flight += 1
    hints = RateLimitHints(remaining_requests=0, limit_requests=100, reset_requests=7)
    settle(state, Outcome(None, 0.1, rate_limits=hints), _policy(), 0, WALL)
    assert state.remaining_requests == 0
    assert state.hint_expires == WALL + 7


def test_manual_cooldown_is_not_capped() -> None:
    state = DeploymentState("d")
    entered = cool_down(state, CooldownReason.MANUAL, _policy(max_cooldown=10), 0, seconds=600)
    assert entered[0] == CooldownEntered("d", CooldownReason.MANUAL, 600.0, 600.0)
    assert state.ejections == 0  # an operator's ejection does not grow the next ones


def test_rolling_window_carries_the_previous_minute() -> None:
    state = DeploymentState("d")
    policy = _policy(min_requests=1000)
    for _ in range(4):
        _fail(state, FailureKind.SERVER_ERROR, policy, now=0)
    successes, failures = snapshot_of(state).rolling_counts(
        WALL + 60 + 15
    )  # a quarter into the next minute
    assert successes == 0.0
    assert failures == pytest.approx(3.0)
    assert snapshot_of(state).rolling_counts(WALL + 200) == (0.0, 0.0)


def test_deployment_state_is_compact() -> None:
    state = DeploymentState("d")
    assert not hasattr(state, "__dict__")
    assert sys.getsizeof(state) <= 400
