"""What each attempt's outcome means for a deployment's health.

Failures are classified by `FailureKind`. A failure caused by the caller (bad request, context
window, content policy) or by the caller's own deadline never counts against a deployment. Some
failures cool a deployment down at once (rate limited, authentication, not found, timeout); the
rest count towards two per-minute rules, applied once ``min_requests`` were seen this minute:
more than ``allowed_fails`` consecutive failures, or a failure rate above the threshold. A 429's
Retry-After stretches the cooldown (up to ``max_cooldown``), and a new cooldown never shortens
one already running. The circuit breaker (`turnout.router.breaker`) is fed the same outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass

from turnout.config import BreakerConfig, Deployment, RouterConfig
from turnout.errors import FailureKind
from turnout.observe.events import BreakerTransition, CooldownEntered, CooldownLeft, HealthEvent
from turnout.router import breaker as breaker_rules
from turnout.state.record import CooldownReason, DeploymentState
from turnout.wire import RateLimitHints

#: Failures that take a deployment out of rotation at once, and the reason recorded.
IMMEDIATE_COOLDOWN: dict[FailureKind, CooldownReason] = {
    FailureKind.RATE_LIMITED: CooldownReason.RATE_LIMITED,
    FailureKind.AUTHENTICATION: CooldownReason.AUTHENTICATION,
    FailureKind.PERMISSION: CooldownReason.AUTHENTICATION,
    FailureKind.NOT_FOUND: CooldownReason.NOT_FOUND,
    FailureKind.TIMEOUT: CooldownReason.TIMEOUT,
}

#: Outcomes that say nothing about the deployment's health.
NEUTRAL: frozenset[FailureKind] = frozenset(
    {
        FailureKind.BAD_REQUEST,
        FailureKind.CONTEXT_WINDOW,
        FailureKind.CONTENT_POLICY,
        FailureKind.DEADLINE,
        FailureKind.UNAVAILABLE,
        FailureKind.CANCELLED,
    }
)


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """The health rules for one deployment: router defaults with its own overrides applied."""

    cooldown_time: float
    allowed_fails: int
    min_requests: int
    failure_rate_threshold: float
    max_cooldown: float
    breaker: BreakerConfig
    ewma_alpha: float

    @classmethod
    def for_deployment(cls, deployment: Deployment, config: RouterConfig) -> HealthPolicy:
        health = config.health
        cooldown = (
            deployment.cooldown_time
            if deployment.cooldown_time is not None
            else health.cooldown_time
        )
        return cls(
            cooldown_time=0.0 if health.disable_cooldowns else cooldown,
            allowed_fails=health.allowed_fails,
            min_requests=health.min_requests,
            failure_rate_threshold=health.failure_rate_threshold,
            max_cooldown=health.max_cooldown,
            breaker=config.breaker,
            ewma_alpha=config.routing.latency_ewma_alpha,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, as the health rules need to know it."""

    error: FailureKind | None
    #: Seconds the attempt took (or ran before it failed).
    duration: float
    ttft: float | None = None
    tokens: int = 0
    retry_after: float | None = None
    rate_limits: RateLimitHints | None = None
    #: Whether the attempt ran as a half-open breaker probe.
    probe: bool = False


def settle(
    state: DeploymentState, outcome: Outcome, policy: HealthPolicy, now: float, wall: float
) -> list[HealthEvent]:
    """Apply an attempt's outcome to the deployment's state; return what changed."""
    state.roll(wall)
    if state.in_flight > 0:
        state.in_flight -= 1
    state.tpm_used += outcome.tokens
    if outcome.rate_limits is not None:
        record_rate_limits(state, outcome.rate_limits, wall)
    events: list[HealthEvent] = []
    error = outcome.error
    breaker = state.breaker
    if error is None:
        state.successes += 1
        state.consecutive_failures = 0
        alpha = policy.ewma_alpha
        state.latency = _ewma(state.latency, outcome.duration, alpha)
        if outcome.ttft is not None:
            state.ttft = _ewma(state.ttft, outcome.ttft, alpha)
        transition = breaker_rules.on_success(breaker, policy.breaker, outcome.probe)
    elif error in NEUTRAL:
        breaker_rules.on_neutral(breaker, outcome.probe)
        return events
    else:
        state.failures += 1
        state.consecutive_failures += 1
        if error is FailureKind.TIMEOUT:
            # A timed-out attempt was at least this slow: let the average know.
            state.latency = _ewma(state.latency, outcome.duration, policy.ewma_alpha)
        reason = _cooldown_reason(state, error, policy)
        if reason is not None:
            entered = cool_down(state, reason, policy, now, outcome.retry_after)
            if entered is not None:
                events.append(entered)
        if error is FailureKind.RATE_LIMITED:
            # Busy is not broken: the cooldown honours the provider; the breaker stays put.
            breaker_rules.on_neutral(breaker, outcome.probe)
            transition = None
        else:
            transition = breaker_rules.on_failure(breaker, policy.breaker, outcome.probe, now)
    if transition is not None:
        events.append(BreakerTransition(state.deployment_id, *transition))
    return events


def _cooldown_reason(
    state: DeploymentState, error: FailureKind, policy: HealthPolicy
) -> CooldownReason | None:
    immediate = IMMEDIATE_COOLDOWN.get(error)
    if immediate is not None:
        return immediate
    requests = state.successes + state.failures
    if requests < policy.min_requests:
        return None
    if state.consecutive_failures > policy.allowed_fails:
        return CooldownReason.FAILURES
    if state.failures / requests > policy.failure_rate_threshold:
        return CooldownReason.FAILURE_RATE
    return None


def cool_down(
    state: DeploymentState,
    reason: CooldownReason,
    policy: HealthPolicy,
    now: float,
    retry_after: float | None = None,
    seconds: float | None = None,
) -> CooldownEntered | None:
    """Take a deployment out of rotation; never shortens a cooldown already running."""
    duration = policy.cooldown_time if seconds is None else seconds
    if duration <= 0:
        return None
    if retry_after is not None and retry_after > duration:
        duration = retry_after
    duration = min(duration, policy.max_cooldown) if seconds is None else duration
    until = now + duration
    if until <= state.cooldown_until:
        return None
    state.cooldown_until = until
    state.cooldown_reason = reason
    return CooldownEntered(state.deployment_id, reason, until, duration)


def lift_cooldown(state: DeploymentState) -> CooldownLeft | None:
    """End a cooldown now (an operator's call, or noticing that it expired)."""
    reason = state.cooldown_reason
    state.cooldown_until = 0.0
    state.cooldown_reason = None
    return CooldownLeft(state.deployment_id, reason) if reason is not None else None


def record_rate_limits(state: DeploymentState, hints: RateLimitHints, wall: float) -> None:
    """Remember the quota a provider reported, until the sooner of its reset times."""
    state.remaining_requests = hints.remaining_requests
    state.limit_requests = hints.limit_requests
    state.remaining_tokens = hints.remaining_tokens
    state.limit_tokens = hints.limit_tokens
    resets = [r for r in (hints.reset_requests, hints.reset_tokens) if r is not None]
    state.hint_expires = wall + (min(resets) if resets else 60.0)


def _ewma(current: float | None, sample: float, alpha: float) -> float:
    return sample if current is None else current + alpha * (sample - current)
