"""Immutable snapshots of deployment health: what filters, strategies and health reports read.

A state store keeps its `DeploymentState` records to itself and hands out these values, so that
nothing outside the health rules can change a record, and so that a shared store can hand out
what it read without a live object behind it. Reading a field costs what reading a record's
slot costs; a snapshot is built only when its record changed since the last one.
"""

from __future__ import annotations

from msgspec import Struct

from turnout.health.record import BreakerPhase, CooldownReason, DeploymentState


class DeploymentSnapshot(Struct, frozen=True, gc=False):
    """What the router knew about one deployment when the snapshot was taken.

    The fields mean what `DeploymentState`'s do; the per-minute counters belong to `minute`,
    so readers compare it with the minute they ask about.
    """

    deployment_id: str
    in_flight: int = 0
    latency: float | None = None
    ttft: float | None = None
    minute: int = 0
    rpm_used: int = 0
    tpm_used: int = 0
    successes: int = 0
    failures: int = 0
    prev_successes: int = 0
    prev_failures: int = 0
    consecutive_failures: int = 0
    #: The ejection (`turnout.health.ejection`).
    phase: BreakerPhase = BreakerPhase.CLOSED
    cooldown_until: float = 0.0
    cooldown_reason: CooldownReason | None = None
    ejections: int = 0
    returned_at: float = 0.0
    probes: int = 0
    remaining_requests: int | None = None
    limit_requests: int | None = None
    remaining_tokens: int | None = None
    limit_tokens: int | None = None
    hint_expires: float = 0.0
    last_success: float = 0.0
    served: int = 0

    def rolling_counts(self, wall: float) -> tuple[float, float]:
        """Successes and failures over the last sixty seconds (sliding-window estimate)."""
        minute, carry = window_position(wall)
        return self.rolling_counts_at(minute, carry)

    def rolling_counts_at(self, minute: int, carry: float) -> tuple[float, float]:
        """`rolling_counts` with the window position computed once for many deployments."""
        if minute == self.minute:
            return (
                self.successes + self.prev_successes * carry,
                self.failures + self.prev_failures * carry,
            )
        if minute == self.minute + 1:
            return self.successes * carry, self.failures * carry
        return 0.0, 0.0

    def reliability(self, wall: float) -> float:
        """Share of recent attempts that succeeded, smoothed so that no data reads as 1.0."""
        minute, carry = window_position(wall)
        return self.reliability_at(minute, carry)

    def reliability_at(self, minute: int, carry: float) -> float:
        """`reliability` with the window position computed once for many deployments."""
        successes, failures = self.rolling_counts_at(minute, carry)
        return (successes + 1.0) / (successes + failures + 1.0)

    def usage_this_minute(self, wall: float) -> tuple[int, int]:
        """Requests and tokens used in the current minute."""
        if int(wall // 60) != self.minute:
            return 0, 0
        return self.rpm_used, self.tpm_used

    def cooling(self, now: float) -> bool:
        return self.cooldown_until > now


def window_position(wall: float) -> tuple[int, float]:
    """The wall-clock minute, and how much of the previous minute still counts (1.0 -> 0.0)."""
    minute = int(wall // 60)
    return minute, 1.0 - (wall / 60.0 - minute)


def snapshot_of(state: DeploymentState) -> DeploymentSnapshot:
    """The record's current values, as an immutable snapshot."""
    return DeploymentSnapshot(
        state.deployment_id,
        state.in_flight,
        state.latency,
        state.ttft,
        state.minute,
        state.rpm_used,
        state.tpm_used,
        state.successes,
        state.failures,
        state.prev_successes,
        state.prev_failures,
        state.consecutive_failures,
        state.phase,
        state.cooldown_until,
        state.cooldown_reason,
        state.ejections,
        state.returned_at,
        state.probes,
        state.remaining_requests,
        state.limit_requests,
        state.remaining_tokens,
        state.limit_tokens,
        state.hint_expires,
        state.last_success,
        state.served,
    )
