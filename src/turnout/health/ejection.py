"""One ejection state machine per deployment: in rotation -> ejected -> probing -> back.

A deployment that fails (by the triggers of `turnout.health.rules`) is *ejected*: out of
rotation until one expiry, for one reason. When the expiry passes it is *probing*: real
requests reach it again, at most ``probes`` at a time (one by default); the others go to the
group's other deployments or its fallbacks, as while it was ejected. The first successful
probe (``probe_successes`` of them, if configured higher) puts it back in rotation at once; a
failing probe ejects it again, for longer.

How long: the k-th consecutive ejection lasts ``base`` for k = 1 and 2, then
``base * multiplier ** (k - 2)``, never more than ``max_cooldown``. The second ejection does
not grow because the commonest failing probe follows an outage a little longer than one
cooldown: a deployment back after six seconds is then in rotation again about ten seconds
after the outage began, not twenty. From the third on, a deployment that keeps failing is
probed less and less often, so a dead upstream costs few probe requests. While in rotation,
each ``decay`` seconds take one off the count (Envoy's outlier detection decrements its
multiplier the same way, once per interval a host stays healthy), so a deployment that flaps
once a day always gets the short ejection, and one that flaps every few seconds does not.

Not every ejection grows. A 429 lasts what the provider's Retry-After asked (else the base),
bounded by ``max_cooldown``, and leaves the count as it was: busy is not broken. An operator's
ejection lasts what the operator asked. While ejected, a later failure may only lengthen the
ejection when it brings its own length (a longer Retry-After, an operator), never grow it:
the failures of requests that were already in flight belong to the same outage.

The whole state is a few fields of the deployment's record (`phase`, `cooldown_until`,
`cooldown_reason`, `ejections`, `returned_at`, `probes`, `probe_successes`), and every
transition reads and writes that record alone, so a shared store can run each one atomically.
Nothing runs on a timer: expiry and decay are computed when the record is next touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Protocol

from turnout.health.events import BreakerTransition, CooldownEntered, CooldownLeft, HealthEvent
from turnout.health.record import BreakerPhase, CooldownReason, DeploymentState

CLOSED, OPEN, HALF_OPEN = BreakerPhase.CLOSED, BreakerPhase.OPEN, BreakerPhase.HALF_OPEN

#: Reasons whose ejection lasts what was asked, without growing the count.
_FIXED = frozenset({CooldownReason.RATE_LIMITED, CooldownReason.MANUAL})


class Schedule(Protocol):
    """What the state machine needs of a deployment's policy (`rules.HealthPolicy`)."""

    @property
    def cooldown_time(self) -> float: ...
    @property
    def consecutive_base(self) -> float: ...
    @property
    def max_cooldown(self) -> float: ...
    @property
    def ejection_multiplier(self) -> float: ...
    @property
    def ejection_decay(self) -> float: ...
    @property
    def probes(self) -> int: ...
    @property
    def probe_successes(self) -> int: ...


class Ejection(Protocol):
    """The ejection fields of a record or of its snapshot."""

    @property
    def phase(self) -> BreakerPhase: ...
    @property
    def cooldown_until(self) -> float: ...
    @property
    def cooldown_reason(self) -> CooldownReason | None: ...
    @property
    def probes(self) -> int: ...
    @property
    def ejections(self) -> int: ...
    @property
    def returned_at(self) -> float: ...


class Admission(IntEnum):
    REFUSED = 0
    #: In rotation: an ordinary request.
    NORMAL = 1
    #: Probing: the request is one of the bounded probes.
    PROBE = 2


def phase_at(state: Ejection, now: float) -> BreakerPhase:
    """The phase at `now`: an ejection whose expiry has passed is probing (or, after a 429 or
    an operator's ejection, back in rotation), noticed or not."""
    phase = state.phase
    if phase is OPEN and state.cooldown_until <= now:
        return CLOSED if state.cooldown_reason in _FIXED else HALF_OPEN
    return phase


def can_admit(state: Ejection, probes: int, now: float) -> bool:
    """Whether a request may be sent now (without taking a probe slot); `probes`: the bound."""
    phase = state.phase
    if phase is CLOSED:
        return True
    if phase is OPEN:
        return state.cooldown_until <= now  # expired: probing, with no probe in flight yet
    return state.probes < probes


def count_at(state: Ejection, decay: float, now: float) -> int:
    """Consecutive ejections at `now`, after the decay of the time spent back in rotation."""
    count = state.ejections
    if count and state.phase is CLOSED and state.returned_at and decay > 0:
        count = max(0, count - int((now - state.returned_at) / decay))
    return count


def _decay(state: DeploymentState, decay: float, now: float) -> None:
    """Apply the decay earned in rotation so far; the time towards the next step carries."""
    if state.phase is CLOSED and state.ejections and state.returned_at and decay > 0:
        steps = int((now - state.returned_at) / decay)
        if steps:
            state.ejections = max(0, state.ejections - steps)
            state.returned_at += steps * decay


def duration(base: float, count: int, policy: Schedule) -> float:
    """Seconds of the `count`-th consecutive ejection starting from `base`."""
    seconds = base * policy.ejection_multiplier ** (count - 2) if count > 2 else base
    return min(seconds, policy.max_cooldown)


def admit(
    state: DeploymentState, policy: Schedule, now: float
) -> tuple[Admission, Sequence[HealthEvent]]:
    """Let one request through if the deployment's phase allows it, taking a probe slot while
    probing (an expired ejection turns into probing here). In rotation, the common case, it
    allocates nothing."""
    phase = state.phase
    if phase is CLOSED:
        return Admission.NORMAL, ()
    events: list[HealthEvent] = []
    if phase is OPEN:
        if state.cooldown_until > now:
            return Admission.REFUSED, events
        expire(state, now, events)
        if state.phase is CLOSED:
            return Admission.NORMAL, events
    if state.probes >= policy.probes:
        return Admission.REFUSED, events
    state.probes += 1
    return Admission.PROBE, events


def expire(state: DeploymentState, now: float, events: list[HealthEvent]) -> None:
    """An ejection whose expiry has passed: probing from now on (its reason is kept). After a
    429 or an operator's ejection, which say nothing of the deployment's health, back in
    rotation at once, as the provider or the operator said."""
    if state.phase is not OPEN or state.cooldown_until > now:
        return
    if state.cooldown_reason in _FIXED:
        reinstate(state, now, events)
        return
    state.phase = HALF_OPEN
    state.cooldown_until = 0.0
    state.probes = 0
    state.probe_successes = 0
    reason = state.cooldown_reason
    if reason is not None:
        events.append(CooldownLeft(state.deployment_id, reason))
    events.append(BreakerTransition(state.deployment_id, OPEN, HALF_OPEN))


def eject(
    state: DeploymentState,
    reason: CooldownReason,
    policy: Schedule,
    now: float,
    events: list[HealthEvent],
    *,
    retry_after: float | None = None,
    seconds: float | None = None,
) -> None:
    """Eject the deployment for `reason` (see the module's schedule).

    `seconds`: an operator's length, taken as given. `retry_after`: a provider's, for a 429.
    While already ejected, only a longer explicit length extends the ejection.
    """
    if state.phase is OPEN and state.cooldown_until <= now:
        expire(state, now, events)  # its time was over: say so before the next one
    previous = state.phase
    if previous is CLOSED:
        _decay(state, policy.ejection_decay, now)
    count = state.ejections
    ejected = previous is OPEN
    fixed = seconds is not None or reason in _FIXED
    if seconds is not None:
        length = seconds
    elif reason is CooldownReason.RATE_LIMITED:
        asked = policy.cooldown_time if retry_after is None else retry_after
        length = min(asked, policy.max_cooldown)
    elif ejected:
        return  # the same outage: the ejection running already stands for it
    else:
        count += 1
        length = duration(base_for(reason, policy), count, policy)
    if length <= 0:
        return
    until = now + length
    if ejected and until <= state.cooldown_until:
        return
    if not fixed:
        state.ejections = count
    state.phase = OPEN
    state.cooldown_until = until
    state.cooldown_reason = reason
    state.probes = 0
    state.probe_successes = 0
    state.streak = 0
    events.append(CooldownEntered(state.deployment_id, reason, until, length, state.ejections))
    if not ejected:
        events.append(BreakerTransition(state.deployment_id, previous, OPEN))


def base_for(reason: CooldownReason, policy: Schedule) -> float:
    """The first ejection's length for `reason`."""
    if reason is CooldownReason.CONSECUTIVE_FAILURES or policy.cooldown_time <= 0:
        return policy.consecutive_base
    return policy.cooldown_time


def on_success(
    state: DeploymentState, policy: Schedule, probe: bool, now: float, events: list[HealthEvent]
) -> None:
    """A request succeeded: a successful probe may put the deployment back in rotation."""
    state.streak = 0
    if not probe or state.phase is not HALF_OPEN:
        return
    state.probes = max(0, state.probes - 1)
    state.probe_successes += 1
    if state.probe_successes >= policy.probe_successes:
        reinstate(state, now, events)


def on_neutral(state: DeploymentState, probe: bool) -> None:
    """An attempt ended in a way that says nothing about health: free its probe slot."""
    if probe and state.phase is HALF_OPEN:
        state.probes = max(0, state.probes - 1)


def reinstate(state: DeploymentState, now: float, events: list[HealthEvent]) -> None:
    """Back in rotation now (a successful probe, or an operator's call; `now` 0 for the
    latter also forgets the count of consecutive ejections)."""
    previous = state.phase
    if previous is CLOSED:
        return
    reason = state.cooldown_reason
    if previous is OPEN and reason is not None:
        events.append(CooldownLeft(state.deployment_id, reason))
    fixed = reason in _FIXED
    state.phase = CLOSED
    state.cooldown_until = 0.0
    state.cooldown_reason = None
    state.probes = 0
    state.probe_successes = 0
    if not now:
        state.ejections = 0
    if not fixed or not state.returned_at:
        state.returned_at = now  # after a 429, the decay goes on from where it was
    events.append(BreakerTransition(state.deployment_id, previous, CLOSED))


def probe_failure_reason(state: DeploymentState) -> CooldownReason:
    """The reason a failing probe ejects the deployment again for: the ejection's own, unless
    that said nothing about its health (a provider's 429, an operator)."""
    reason = state.cooldown_reason
    if reason is None or reason in _FIXED:
        return CooldownReason.FAILURES
    return reason
