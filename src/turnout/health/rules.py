"""What each attempt's outcome means for a deployment's health.

Failures are classified by `FailureKind`. A failure caused by the caller (bad request, context
window, content policy) or by the caller's own deadline never counts against a deployment. Some
failures cool a deployment down at once (rate limited, authentication, not found, timeout); the
rest count towards two per-minute rules, applied once ``min_requests`` were seen this minute:
more than ``allowed_fails`` consecutive failures, or a failure rate above the threshold. A 429's
Retry-After sets the cooldown to what the provider asked (up to ``max_cooldown``), shorter or
longer than the default, which applies when it gave none; a new cooldown never shortens one
already running. The circuit breaker (`turnout.health.breaker`) is fed the same outcomes.

A server error on a deployment that answers other requests may be held until its request's
verdict (`turnout.health.poison`); the next failure that counts (or that would take the
deployment out) counts every held one of the streak first, so thresholds trip at the same
failure as if nothing had been held. Failures dropped as their requests' fault stay in the
streak until explained: by this deployment's next success, or by another success of a
deployment their request's verdict was given on (the store prunes them, `poison.explain`).
"""

from __future__ import annotations

from dataclasses import dataclass

from turnout.config.router import BreakerConfig, Deployment, RouterConfig
from turnout.errors import FailureKind
from turnout.health import breaker as breaker_rules
from turnout.health.events import BreakerTransition, CooldownEntered, CooldownLeft, HealthEvent
from turnout.health.record import BreakerPhase, CooldownReason, DeploymentState
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
        FailureKind.UNSUPPORTED_PARAMETER,
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
    #: Seconds since its last success during which a deployment counts as answering other
    #: requests, so that a server error may be held as the request's fault (0: never held).
    hold_window: float = 0.0

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
            hold_window=health.poison_requests.success_window
            if health.poison_requests.enabled
            else 0.0,
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
        state.last_success = now
        state.served += 1
        if state.held_streak is not None:
            # Held failures before a success were the requests' own; they count only if
            # their requests turn out not to be the cause.
            state.held_streak = None
            state.dropped = None
        alpha = policy.ewma_alpha
        state.latency = _ewma(state.latency, outcome.duration, alpha)
        if outcome.ttft is not None:
            state.ttft = _ewma(state.ttft, outcome.ttft, alpha)
        transition = breaker_rules.on_success(breaker, policy.breaker, outcome.probe)
    elif error in NEUTRAL:
        breaker_rules.on_neutral(breaker, outcome.probe)
        return events
    else:
        if error is FailureKind.TIMEOUT:
            # A timed-out attempt was at least this slow: let the average know.
            state.latency = _ewma(state.latency, outcome.duration, policy.ewma_alpha)
        if state.held_streak is not None:
            count_held_streak(state, policy, now, events)
        count_failure(state, error, policy, now, events, outcome.retry_after, outcome.probe)
        return events
    if transition is not None:
        events.append(BreakerTransition(state.deployment_id, *transition))
    return events


def count_failure(
    state: DeploymentState,
    error: FailureKind,
    policy: HealthPolicy,
    now: float,
    events: list[HealthEvent],
    retry_after: float | None = None,
    probe: bool = False,
    *,
    consecutive: bool = True,
) -> None:
    """Count one failure against the deployment: counters, cooldown rules, breaker.

    A failure that is not `consecutive` (a held one confirmed after a later success) counts
    towards the failure rate only.
    """
    state.failures += 1
    if consecutive:
        state.consecutive_failures += 1
    reason = _cooldown_reason(state, error, policy)
    if reason is not None:
        entered = cool_down(state, reason, policy, now, retry_after)
        if entered is not None:
            events.append(entered)
    if error is FailureKind.RATE_LIMITED or not consecutive:
        # Busy is not broken: the cooldown honours the provider; the breaker stays put.
        breaker_rules.on_neutral(state.breaker, probe)
        return
    transition = breaker_rules.on_failure(state.breaker, policy.breaker, probe, now)
    if transition is not None:
        events.append(BreakerTransition(state.deployment_id, *transition))


def count_held_streak(
    state: DeploymentState, policy: HealthPolicy, now: float, events: list[HealthEvent]
) -> None:
    """The deployment fails more than the requests it held failures for: count them all now."""
    streak = state.held_streak or []
    state.held_streak = None
    state.dropped = None
    held = state.held
    for token in streak:
        if held is not None and token in held:
            held[token] = True
        count_failure(state, FailureKind.SERVER_ERROR, policy, now, events)


def would_take_out(state: DeploymentState, policy: HealthPolicy, failures: int) -> bool:
    """Whether `failures` more consecutive failures would cool the deployment down or open its
    circuit (for a state already rolled to the current minute)."""
    if policy.cooldown_time > 0:
        requests = state.successes + state.failures + failures
        if requests >= policy.min_requests and (
            state.consecutive_failures + failures > policy.allowed_fails
            or (state.failures + failures) / requests > policy.failure_rate_threshold
        ):
            return True
    config = policy.breaker
    circuit = state.breaker
    return (
        config.enabled
        and circuit.phase is BreakerPhase.CLOSED
        and circuit.failures + failures >= config.failure_threshold
    )


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
    """Take a deployment out of rotation; never shortens a cooldown already running.

    `seconds`: an explicit length (an operator's call). Else a provider's `retry_after` is
    the length, bounded by the policy's maximum: the provider knows when it will take
    requests again, and keeping it out longer only sends traffic elsewhere for nothing.
    Without one, the policy's cooldown time. Cooldowns disabled by the policy stay off.
    """
    if seconds is not None:
        duration = seconds
    else:
        if policy.cooldown_time <= 0:
            return None
        duration = policy.cooldown_time if retry_after is None else retry_after
        duration = min(duration, policy.max_cooldown)
    if duration <= 0:
        return None
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
