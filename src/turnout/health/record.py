"""Per-deployment runtime state: compact, O(1) to read and update.

One `DeploymentState` exists per deployment id for the life of the router (it survives hot
reloads while the id does). Every field is a slot, so the record costs a few hundred bytes.
Only the health rules change a record, inside a state store; everything else reads immutable
snapshots of it (`turnout.health.snapshot`).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class BreakerPhase(IntEnum):
    """Where a deployment stands in its ejection cycle (`turnout.health.ejection`).

    The names are a circuit breaker's, as users and dashboards know them: ``CLOSED`` in
    rotation, ``OPEN`` ejected until its expiry, ``HALF_OPEN`` probing (a bounded number of
    requests at a time, until one succeeds).
    """

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


#: The same phases, under the name the ejection policy gives them.
EjectionPhase = BreakerPhase


class CooldownReason(StrEnum):
    RATE_LIMITED = "rate_limited"
    AUTHENTICATION = "auth"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    FAILURES = "failures"
    FAILURE_RATE = "failure_rate"
    #: ``breaker.failure_threshold`` consecutive failures (what opened the old circuit).
    CONSECUTIVE_FAILURES = "consecutive_failures"
    MANUAL = "manual"


class DeploymentState:
    """What the router knows about one deployment right now."""

    __slots__ = (
        "consecutive_failures",
        "cooldown_reason",
        "cooldown_until",
        "deployment_id",
        "dropped",
        "ejections",
        "failures",
        "held",
        "held_streak",
        "hint_expires",
        "hold_seq",
        "in_flight",
        "last_success",
        "latency",
        "limit_requests",
        "limit_tokens",
        "minute",
        "phase",
        "prev_failures",
        "prev_successes",
        "probe_successes",
        "probes",
        "remaining_requests",
        "remaining_tokens",
        "returned_at",
        "rpm_used",
        "served",
        "streak",
        "successes",
        "tpm_used",
        "ttft",
    )

    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        self.in_flight = 0
        #: Averages (EWMA) in seconds; None until the first sample.
        self.latency: float | None = None
        self.ttft: float | None = None
        #: The wall-clock minute the counters below belong to.
        self.minute = 0
        self.rpm_used = 0
        self.tpm_used = 0
        self.successes = 0
        self.failures = 0
        self.prev_successes = 0
        self.prev_failures = 0
        self.consecutive_failures = 0
        #: Consecutive counted failures, across minutes (reset by a success or an ejection):
        #: what the consecutive-failures trigger reads.
        self.streak = 0
        #: The ejection (`turnout.health.ejection`): its phase; while ejected, the monotonic
        #: time it ends (0 otherwise); its reason, kept while probing; consecutive ejections
        #: (decaying while in rotation, from `returned_at`); probes in flight and probes
        #: that succeeded in this probing phase.
        self.phase = BreakerPhase.CLOSED
        self.cooldown_until = 0.0
        self.cooldown_reason: CooldownReason | None = None
        self.ejections = 0
        self.returned_at = 0.0
        self.probes = 0
        self.probe_successes = 0
        #: Quota the provider reported in rate-limit headers, valid until hint_expires (wall).
        self.remaining_requests: int | None = None
        self.limit_requests: int | None = None
        self.remaining_tokens: int | None = None
        self.limit_tokens: int | None = None
        self.hint_expires = 0.0
        #: Monotonic time of the last successful attempt (0: none yet).
        self.last_success = 0.0
        #: Successful attempts ever: another deployment compares it with what it was when a
        #: request was judged the cause of failures on both (see `turnout.health.poison`).
        self.served = 0
        #: Server errors held until their request's verdict (see `turnout.health.poison`):
        #: hold token -> whether a later failure has already made it count.
        self.held: dict[int, bool] | None = None
        #: Tokens of the failures held (or dropped as the request's fault) since the last
        #: success: they count all at once when the next failure would take the deployment out.
        self.held_streak: list[int] | None = None
        #: The failures of the streak dropped as their requests' fault and not yet explained:
        #: hold token -> each deployment the verdict was given on, with its `served` then.
        self.dropped: dict[int, tuple[tuple[str, int], ...]] | None = None
        self.hold_seq = 0

    def roll(self, wall: float) -> None:
        """Move the per-minute counters to the minute `wall` falls in."""
        minute = int(wall // 60)
        if minute == self.minute:
            return
        if minute == self.minute + 1:
            self.prev_successes, self.prev_failures = self.successes, self.failures
        else:
            self.prev_successes = self.prev_failures = 0
        self.minute = minute
        self.successes = self.failures = self.rpm_used = self.tpm_used = 0
        self.consecutive_failures = 0

    def cooling(self, now: float) -> bool:
        return self.cooldown_until > now
