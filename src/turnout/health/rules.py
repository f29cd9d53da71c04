"""What each attempt's outcome means for a deployment's health: the triggers of an ejection.

Failures are classified by `FailureKind`. A failure caused by the caller (bad request, context
window, content policy) or by the caller's own deadline never counts against a deployment. Some
failures eject a deployment at once (rate limited, authentication, not found, timeout); the
rest count towards three rules: more than ``allowed_fails`` consecutive failures or a failure
rate above the threshold (both per minute, once ``min_requests`` were seen this minute), and
``breaker.failure_threshold`` consecutive failures whatever the minute. Whichever trips, the
deployment gets its one ejection (`turnout.health.ejection`: how long, probing, coming back);
a failing probe ejects it again. A 429 ejects for what its Retry-After asked (up to
``max_cooldown``), and counts towards neither consecutive rule: busy is not broken.

A server error on a deployment that answers other requests may be held until its request's
verdict (`turnout.health.poison`); the next failure that counts (or that would take the
deployment out) counts every held one of the streak first, so thresholds trip at the same
failure as if nothing had been held. Failures dropped as their requests' fault stay in the
streak until explained: by this deployment's next success, or by another success of a
deployment their request's verdict was given on (the store prunes them, `poison.explain`).
"""

from __future__ import annotations

from dataclasses import dataclass

from turnout.config.router import Deployment, RouterConfig
from turnout.errors import FailureKind
from turnout.health import ejection
from turnout.health.events import HealthEvent
from turnout.health.record import BreakerPhase, CooldownReason, DeploymentState
from turnout.wire import RateLimitHints

#: Length of the first ejection the consecutive-failures trigger starts when neither
#: ``breaker.open_timeout`` nor a cooldown time gives one.
DEFAULT_BASE = 5.0

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

    #: Length of the first ejection by a cooldown trigger; 0: those triggers are off.
    cooldown_time: float
    allowed_fails: int
    min_requests: int
    failure_rate_threshold: float
    #: Longest ejection.
    max_cooldown: float
    ewma_alpha: float
    #: Seconds since its last success during which a deployment counts as answering other
    #: requests, so that a server error may be held as the request's fault (0: never held).
    hold_window: float = 0.0
    #: Consecutive failures that eject, whatever the minute (0: that trigger is off).
    consecutive_failures: int = 5
    #: Length of the first ejection by the consecutive-failures trigger.
    consecutive_base: float = DEFAULT_BASE
    ejection_multiplier: float = 2.0
    ejection_decay: float = 30.0
    #: Probes let through at once, and successful probes that end the probing.
    probes: int = 1
    probe_successes: int = 1
    #: The deployment's own request limits, for a shared store to hold them atomically across
    #: instances when it starts an attempt (the filters check them on a snapshot first).
    rpm: int | None = None
    max_parallel: int | None = None

    @classmethod
    def for_deployment(cls, deployment: Deployment, config: RouterConfig) -> HealthPolicy:
        health = config.health
        breaker = config.breaker
        cooldown = (
            deployment.cooldown_time
            if deployment.cooldown_time is not None
            else health.cooldown_time
        )
        if breaker.open_timeout is not None:
            consecutive_base = breaker.open_timeout
        else:
            consecutive_base = cooldown if cooldown > 0 else DEFAULT_BASE
        return cls(
            cooldown_time=0.0 if health.disable_cooldowns else cooldown,
            allowed_fails=health.allowed_fails,
            min_requests=health.min_requests,
            failure_rate_threshold=health.failure_rate_threshold,
            max_cooldown=health.max_cooldown,
            ewma_alpha=config.routing.latency_ewma_alpha,
            hold_window=health.poison_requests.success_window
            if health.poison_requests.enabled
            else 0.0,
            consecutive_failures=breaker.failure_threshold if breaker.enabled else 0,
            consecutive_base=consecutive_base,
            ejection_multiplier=health.ejection_multiplier,
            ejection_decay=health.ejection_decay,
            probes=breaker.half_open_probes,
            probe_successes=breaker.success_threshold,
            rpm=deployment.rpm,
            max_parallel=deployment.max_parallel_requests,
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
    #: Whether the attempt ran as a probe of a deployment coming back from an ejection.
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
        ejection.on_success(state, policy, outcome.probe, now, events)
    elif error in NEUTRAL:
        ejection.on_neutral(state, outcome.probe)
    else:
        if error is FailureKind.TIMEOUT:
            # A timed-out attempt was at least this slow: let the average know.
            state.latency = _ewma(state.latency, outcome.duration, policy.ewma_alpha)
        if state.held_streak is not None:
            count_held_streak(state, policy, now, events)
        count_failure(state, error, policy, now, events, outcome.retry_after, outcome.probe)
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
    """Count one failure against the deployment: counters, then the ejection triggers.

    A failure that is not `consecutive` (a held one confirmed after a later success) counts
    towards the failure rate only.
    """
    state.failures += 1
    if probe:
        ejection.on_neutral(state, probe)  # its slot is free, whatever comes of the failure
    if error is FailureKind.RATE_LIMITED:
        if consecutive:
            state.consecutive_failures += 1
        if policy.cooldown_time > 0:
            ejection.eject(
                state, CooldownReason.RATE_LIMITED, policy, now, events, retry_after=retry_after
            )
        return
    if consecutive:
        state.consecutive_failures += 1
        state.streak += 1
    reason = _ejection_reason(state, error, policy)
    if reason is None and consecutive:
        threshold = policy.consecutive_failures
        if threshold and state.streak >= threshold:
            reason = CooldownReason.CONSECUTIVE_FAILURES
        elif ejection.phase_at(state, now) is BreakerPhase.HALF_OPEN:
            reason = ejection.probe_failure_reason(state)  # a failing probe
    if reason is not None:
        ejection.eject(state, reason, policy, now, events)


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
    """Whether `failures` more consecutive failures would eject the deployment (for a state
    in rotation, already rolled to the current minute)."""
    if policy.cooldown_time > 0:
        requests = state.successes + state.failures + failures
        if requests >= policy.min_requests and (
            state.consecutive_failures + failures > policy.allowed_fails
            or (state.failures + failures) / requests > policy.failure_rate_threshold
        ):
            return True
    threshold = policy.consecutive_failures
    return bool(threshold) and state.streak + failures >= threshold


def _ejection_reason(
    state: DeploymentState, error: FailureKind, policy: HealthPolicy
) -> CooldownReason | None:
    if policy.cooldown_time <= 0:
        return None
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
    seconds: float,
) -> list[HealthEvent]:
    """Eject a deployment for `seconds` (an operator's call): never shortens an ejection
    already running, and does not count towards the growth of the next ones."""
    events: list[HealthEvent] = []
    ejection.eject(state, reason, policy, now, events, seconds=seconds)
    return events


def lift_cooldown(state: DeploymentState) -> list[HealthEvent]:
    """Back in rotation now, with the count of consecutive ejections forgotten (an operator's
    call: whoever lifts an ejection by hand vouches for the deployment)."""
    events: list[HealthEvent] = []
    ejection.reinstate(state, 0.0, events)
    return events


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
