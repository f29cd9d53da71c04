"""What a change of a deployment's health tells observers: an ejection entered or over (the
names say cooldown, as they always have), and each move of its phase (`BreakerTransition`:
in rotation, ejected, probing; see `turnout.health.ejection`).

The health rules return these values; the router hands them to its observers
(`turnout.observe.events` re-exports them beside the request and attempt events).
"""

from __future__ import annotations

from dataclasses import dataclass

from turnout.health.record import BreakerPhase, CooldownReason


@dataclass(frozen=True, slots=True)
class CooldownEntered:
    """The deployment was ejected (or its ejection lengthened)."""

    deployment_id: str
    reason: CooldownReason
    #: Monotonic time (on the router's clock) the ejection ends and probing begins.
    until: float
    seconds: float
    #: Consecutive ejections, this one included (429s and operators' ejections do not add).
    ejections: int = 0


@dataclass(frozen=True, slots=True)
class CooldownLeft:
    """The ejection's time is over (the deployment probes), or an operator lifted it."""

    deployment_id: str
    reason: CooldownReason


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """The deployment's phase changed: closed (in rotation), open (ejected), half-open
    (probing)."""

    deployment_id: str
    previous: BreakerPhase
    current: BreakerPhase


HealthEvent = CooldownEntered | CooldownLeft | BreakerTransition
