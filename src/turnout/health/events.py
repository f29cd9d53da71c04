"""What a change of a deployment's health tells observers: a cooldown entered or left, a
circuit breaker's transition.

The health rules return these values; the router hands them to its observers
(`turnout.observe.events` re-exports them beside the request and attempt events).
"""

from __future__ import annotations

from dataclasses import dataclass

from turnout.health.record import BreakerPhase, CooldownReason


@dataclass(frozen=True, slots=True)
class CooldownEntered:
    deployment_id: str
    reason: CooldownReason
    #: Monotonic time (on the router's clock) the cooldown ends.
    until: float
    seconds: float


@dataclass(frozen=True, slots=True)
class CooldownLeft:
    deployment_id: str
    reason: CooldownReason


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    deployment_id: str
    previous: BreakerPhase
    current: BreakerPhase


HealthEvent = CooldownEntered | CooldownLeft | BreakerTransition
