"""Circuit breaker rules: closed -> open -> half-open -> closed.

A deployment that keeps failing stops receiving traffic (open). After ``open_timeout`` it admits
at most ``half_open_probes`` requests at once (half-open); ``success_threshold`` consecutive
successful probes close the circuit, and any failing probe opens it again. Every check is O(1)
on the compact `Breaker` record.
"""

from __future__ import annotations

from enum import IntEnum

from turnout.config.router import BreakerConfig
from turnout.health.record import Breaker, BreakerPhase
from turnout.health.snapshot import BreakerSnapshot

Transition = tuple[BreakerPhase, BreakerPhase]


def can_admit(breaker: Breaker | BreakerSnapshot, config: BreakerConfig, now: float) -> bool:
    """Whether a request may be sent now (without taking a probe slot)."""
    phase = breaker.phase
    if phase is BreakerPhase.CLOSED or not config.enabled:
        return True
    if phase is BreakerPhase.OPEN:
        return now >= breaker.opened_at + config.open_timeout
    return breaker.probes < config.half_open_probes


class Admission(IntEnum):
    REFUSED = 0
    #: Closed circuit: an ordinary request.
    NORMAL = 1
    #: Half-open circuit: the request is one of the bounded probes.
    PROBE = 2


def admit(
    breaker: Breaker, config: BreakerConfig, now: float
) -> tuple[Admission, Transition | None]:
    """Let one request through if the circuit allows it, taking a probe slot when half-open."""
    if breaker.phase is BreakerPhase.CLOSED or not config.enabled:
        return Admission.NORMAL, None
    transition: Transition | None = None
    if breaker.phase is BreakerPhase.OPEN:
        if now < breaker.opened_at + config.open_timeout:
            return Admission.REFUSED, None
        breaker.phase = BreakerPhase.HALF_OPEN
        breaker.successes = 0
        breaker.probes = 0
        transition = (BreakerPhase.OPEN, BreakerPhase.HALF_OPEN)
    if breaker.probes >= config.half_open_probes:
        return Admission.REFUSED, transition
    breaker.probes += 1
    return Admission.PROBE, transition


def on_success(breaker: Breaker, config: BreakerConfig, probe: bool) -> Transition | None:
    breaker.failures = 0
    if not probe or breaker.phase is not BreakerPhase.HALF_OPEN:
        return None
    breaker.probes = max(0, breaker.probes - 1)
    breaker.successes += 1
    if breaker.successes >= config.success_threshold:
        breaker.phase = BreakerPhase.CLOSED
        breaker.successes = 0
        return (BreakerPhase.HALF_OPEN, BreakerPhase.CLOSED)
    return None


def on_failure(
    breaker: Breaker, config: BreakerConfig, probe: bool, now: float
) -> Transition | None:
    if not config.enabled:
        return None
    phase = breaker.phase
    if phase is BreakerPhase.HALF_OPEN:
        if probe:
            breaker.probes = max(0, breaker.probes - 1)
        return _open(breaker, now, phase)
    if phase is BreakerPhase.CLOSED:
        breaker.failures += 1
        if breaker.failures >= config.failure_threshold:
            return _open(breaker, now, phase)
    return None


def on_neutral(breaker: Breaker, probe: bool) -> None:
    """An attempt ended in a way that says nothing about health: free its probe slot."""
    if probe and breaker.phase is BreakerPhase.HALF_OPEN:
        breaker.probes = max(0, breaker.probes - 1)


def _open(breaker: Breaker, now: float, previous: BreakerPhase) -> Transition:
    breaker.phase = BreakerPhase.OPEN
    breaker.opened_at = now
    breaker.failures = 0
    breaker.successes = 0
    breaker.probes = 0
    return (previous, BreakerPhase.OPEN)
