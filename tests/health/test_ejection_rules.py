"""The ejection state machine on its own: in rotation -> ejected -> probing -> back, on the
rules' own clock values (no sleeping anywhere)."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from turnout.config.router import BreakerConfig, Deployment, HealthConfig, RouterConfig
from turnout.errors import FailureKind
from turnout.health import ejection
from turnout.health.ejection import Admission
from turnout.health.events import BreakerTransition, CooldownEntered, CooldownLeft
from turnout.health.record import BreakerPhase, CooldownReason, DeploymentState
from turnout.health.rules import HealthPolicy, Outcome, cool_down, lift_cooldown, settle

WALL = 1_800_000_000.0  # the start of a minute
CLOSED, OPEN, HALF_OPEN = BreakerPhase.CLOSED, BreakerPhase.OPEN, BreakerPhase.HALF_OPEN


def _policy(breaker: BreakerConfig | None = None, **health: object) -> HealthPolicy:
    deployment = Deployment(model_name="g", model="m", id="d")
    config = RouterConfig(
        model_list=(deployment,),
        health=HealthConfig(**health),  # type: ignore[arg-type]
        breaker=breaker or BreakerConfig(),
    )
    return HealthPolicy.for_deployment(deployment, config)


#: Defaults, except that one timeout ejects (as it does by default) and the per-minute rules
#: stay out of the way of the schedule under test.
POLICY = _policy()


def _attempt(
    state: DeploymentState,
    policy: HealthPolicy,
    now: float,
    error: FailureKind | None = None,
    retry_after: float | None = None,
) -> tuple[Admission, list[object]]:
    """One attempt that ends at once: admitted (or not), then settled."""
    admission, events = ejection.admit(state, policy, now)
    found: list[object] = list(events)
    if admission is Admission.REFUSED:
        return admission, found
    state.in_flight += 1
    outcome = Outcome(error, 0.1, retry_after=retry_after, probe=admission is Admission.PROBE)
    found += settle(state, outcome, policy, now, WALL + now)
    return admission, found


def _ejections(events: Sequence[object]) -> list[CooldownEntered]:
    return [e for e in events if isinstance(e, CooldownEntered)]


def test_first_ejection_lasts_the_cooldown_time_then_one_probe_brings_it_back() -> None:
    state = DeploymentState("d")
    _, events = _attempt(state, POLICY, 10.0, FailureKind.TIMEOUT)
    assert events == [
        CooldownEntered("d", CooldownReason.TIMEOUT, 15.0, 5.0, 1),
        BreakerTransition("d", CLOSED, OPEN),
    ]
    assert ejection.admit(state, POLICY, 14.9) == (Admission.REFUSED, [])
    assert ejection.phase_at(state, 14.9) is OPEN
    assert ejection.phase_at(state, 15.0) is HALF_OPEN
    admission, events = _attempt(state, POLICY, 15.0)
    assert admission is Admission.PROBE
    assert events == [
        CooldownLeft("d", CooldownReason.TIMEOUT),
        BreakerTransition("d", OPEN, HALF_OPEN),
        BreakerTransition("d", HALF_OPEN, CLOSED),
    ]
    assert (state.phase, state.cooldown_reason, state.returned_at) == (CLOSED, None, 15.0)
    assert ejection.admit(state, POLICY, 15.0) == (Admission.NORMAL, ())


def test_failing_probes_eject_for_longer_up_to_the_cap() -> None:
    state = DeploymentState("d")
    policy = _policy(max_cooldown=60)
    now = 0.0
    lengths = []
    for _ in range(8):
        _, events = _attempt(state, policy, now, FailureKind.TIMEOUT)
        [entered] = _ejections(events)
        lengths.append(entered.seconds)
        now = entered.until  # the next request is the probe, and it fails again
    assert lengths == [5.0, 5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    assert state.ejections == 8


def test_a_failing_probe_keeps_the_ejections_reason_unless_its_own_says_more() -> None:
    state = DeploymentState("d")
    policy = _policy(breaker=BreakerConfig(failure_threshold=2))
    for _ in range(2):
        _attempt(state, policy, 0.0, FailureKind.SERVER_ERROR)
    assert state.cooldown_reason is CooldownReason.CONSECUTIVE_FAILURES
    _, events = _attempt(state, policy, 5.0, FailureKind.SERVER_ERROR)
    assert [e.reason for e in _ejections(events)] == [CooldownReason.CONSECUTIVE_FAILURES]
    _, events = _attempt(state, policy, 10.0, FailureKind.AUTHENTICATION)
    assert _ejections(events) == [
        CooldownEntered("d", CooldownReason.AUTHENTICATION, 20.0, 10.0, 3)
    ]


def test_the_count_decays_while_the_deployment_stays_in_rotation() -> None:
    state = DeploymentState("d")
    now = 0.0
    for _ in range(4):  # 5 + 5 + 10 + 20
        _, events = _attempt(state, POLICY, now, FailureKind.TIMEOUT)
        now = _ejections(events)[0].until
    _attempt(state, POLICY, now)  # the probe succeeds: back in rotation with 4 ejections
    assert (state.phase, state.ejections) == (CLOSED, 4)
    # Soon after, a failure ejects it for longer than ever: it flaps.
    flap = DeploymentState("d")
    flap.ejections, flap.returned_at = 4, now
    _, events = _attempt(flap, POLICY, now + 10.0, FailureKind.TIMEOUT)
    assert _ejections(events)[0].seconds == 40.0
    # Two decay intervals (30 s each) in rotation take two off the count: the next is the
    # third, not the fifth.
    assert ejection.count_at(state, POLICY.ejection_decay, now + 65.0) == 2
    _, events = _attempt(state, POLICY, now + 65.0, FailureKind.TIMEOUT)
    assert _ejections(events)[0] == CooldownEntered(
        "d", CooldownReason.TIMEOUT, now + 75.0, 10.0, 3
    )
    # Long enough in rotation, and the first ejection is the short one again.
    calm = DeploymentState("d")
    calm.ejections, calm.returned_at = 6, 1.0
    _, events = _attempt(calm, POLICY, 1.0 + 6 * 30.0, FailureKind.TIMEOUT)
    assert _ejections(events)[0].ejections == 1


def test_retry_after_sets_the_ejection_without_growing_it() -> None:
    state = DeploymentState("d")
    state.ejections, state.returned_at = 3, 100.0
    _, events = _attempt(state, POLICY, 100.0, FailureKind.RATE_LIMITED, retry_after=2.0)
    assert _ejections(events) == [CooldownEntered("d", CooldownReason.RATE_LIMITED, 102.0, 2.0, 3)]
    # What the provider asked is over: back in rotation at once, no probing.
    admission, moved = ejection.admit(state, POLICY, 102.0)
    assert admission is Admission.NORMAL
    assert moved == [
        CooldownLeft("d", CooldownReason.RATE_LIMITED),
        BreakerTransition("d", OPEN, CLOSED),
    ]
    # Bounded by max_cooldown, and never stretched by the growth.
    long = DeploymentState("d")
    long.ejections = 9
    _, events = _attempt(
        long, _policy(max_cooldown=30), 0.0, FailureKind.RATE_LIMITED, retry_after=3600
    )
    assert _ejections(events)[0].seconds == 30.0
    assert long.ejections == 9


def test_a_429_while_ejected_may_lengthen_but_in_flight_failures_do_not() -> None:
    state = DeploymentState("d")
    _attempt(state, POLICY, 0.0, FailureKind.TIMEOUT)
    for kind in (FailureKind.TIMEOUT, FailureKind.SERVER_ERROR, FailureKind.CONNECTION):
        state.in_flight += 1  # attempts begun before the ejection end now
        assert _ejections(settle(state, Outcome(kind, 0.1), POLICY, 1.0, WALL + 1)) == []
    assert (state.cooldown_until, state.ejections) == (5.0, 1)
    state.in_flight += 1
    late = Outcome(FailureKind.RATE_LIMITED, 0.1, retry_after=9.0)
    assert _ejections(settle(state, late, POLICY, 1.0, WALL + 1)) == [
        CooldownEntered("d", CooldownReason.RATE_LIMITED, 10.0, 9.0, 1)
    ]


def test_probes_are_bounded_and_freed_by_whatever_ends_them() -> None:
    policy = _policy(breaker=BreakerConfig(half_open_probes=2, success_threshold=2))
    state = DeploymentState("d")
    _attempt(state, policy, 0.0, FailureKind.TIMEOUT)
    assert ejection.admit(state, policy, 5.0)[0] is Admission.PROBE
    assert ejection.admit(state, policy, 5.0)[0] is Admission.PROBE
    assert ejection.admit(state, policy, 5.0)[0] is Admission.REFUSED
    assert not ejection.can_admit(state, policy.probes, 5.0)
    # A probe the caller abandoned says nothing: its slot is free again.
    settle(state, Outcome(FailureKind.CANCELLED, 0.1, probe=True), policy, 5.1, WALL + 5.1)
    assert ejection.can_admit(state, policy.probes, 5.1)
    assert ejection.admit(state, policy, 5.1)[0] is Admission.PROBE
    # Two successful probes are needed here; an ordinary request ending does not count.
    settle(state, Outcome(None, 0.1), policy, 5.2, WALL + 5.2)
    settle(state, Outcome(None, 0.1, probe=True), policy, 5.2, WALL + 5.2)
    assert state.phase is HALF_OPEN
    settle(state, Outcome(None, 0.1, probe=True), policy, 5.3, WALL + 5.3)
    assert (state.phase, state.probes) == (CLOSED, 0)


def test_consecutive_failures_eject_across_minutes_and_with_cooldowns_disabled() -> None:
    """The old breaker's trigger, now one of the ejection's: `open_timeout` is its base."""
    policy = _policy(
        breaker=BreakerConfig(failure_threshold=3, open_timeout=0.5), disable_cooldowns=True
    )
    state = DeploymentState("d")
    _attempt(state, policy, 0.0, FailureKind.SERVER_ERROR)
    _attempt(state, policy, 59.0, FailureKind.SERVER_ERROR)
    assert state.phase is CLOSED
    _attempt(state, policy, 61.0, FailureKind.SERVER_ERROR)  # a new minute: the streak stays
    assert (state.phase, state.cooldown_until, state.cooldown_reason) == (
        OPEN,
        61.5,
        CooldownReason.CONSECUTIVE_FAILURES,
    )
    # Cooldowns disabled: 429s and timeouts do not eject, and do not break a probe's phase.
    assert _attempt(state, policy, 61.5, FailureKind.RATE_LIMITED)[0] is Admission.PROBE
    assert (state.phase, state.probes) == (HALF_OPEN, 0)
    assert _attempt(state, policy, 61.6)[0] is Admission.PROBE
    assert state.phase is CLOSED
    off = _policy(breaker=BreakerConfig(enabled=False), disable_cooldowns=True)
    for now in range(20):
        _attempt(state, off, 100.0 + now, FailureKind.SERVER_ERROR)
    assert state.phase is CLOSED


def test_an_operator_ejects_for_exactly_as_long_and_lifting_forgets_the_count() -> None:
    state = DeploymentState("d")
    state.ejections = 4
    events = cool_down(state, CooldownReason.MANUAL, POLICY, 0.0, 1000.0)
    assert _ejections(list(events)) == [
        CooldownEntered("d", CooldownReason.MANUAL, 1000.0, 1000.0, 4)
    ]
    assert lift_cooldown(state) == [
        CooldownLeft("d", CooldownReason.MANUAL),
        BreakerTransition("d", OPEN, CLOSED),
    ]
    assert (state.phase, state.ejections) == (CLOSED, 0)
    assert lift_cooldown(state) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 8.0),
            st.sampled_from(
                [
                    None,
                    FailureKind.TIMEOUT,
                    FailureKind.SERVER_ERROR,
                    FailureKind.RATE_LIMITED,
                    FailureKind.CANCELLED,
                    FailureKind.AUTHENTICATION,
                ]
            ),
            st.booleans(),
        ),
        max_size=60,
    ),
    st.integers(1, 3),
)
def test_probes_never_exceed_their_bound_and_ejections_their_cap(
    steps: list[tuple[float, FailureKind | None, bool]], bound: int
) -> None:
    """Requests start and end in any order: probes in flight stay within the bound, every
    ejection within the cap, and an ejected deployment takes no request."""
    policy = _policy(breaker=BreakerConfig(half_open_probes=bound), max_cooldown=40)
    state = DeploymentState("d")
    now = 0.0
    running: list[bool] = []  # whether each attempt in flight is a probe
    for gap, error, finish in steps:
        now += gap
        if finish and running:
            probe = running.pop(0)
            outcome = Outcome(error, 0.1, retry_after=1.0, probe=probe)
            for event in settle(state, outcome, policy, now, WALL + now):
                if isinstance(event, CooldownEntered):
                    assert 0 < event.seconds <= 40
        else:
            ejected = state.phase is OPEN and state.cooldown_until > now
            admission, _ = ejection.admit(state, policy, now)
            if ejected:
                assert admission is Admission.REFUSED
            if admission is not Admission.REFUSED:
                state.in_flight += 1
                running.append(admission is Admission.PROBE)
        if state.phase is HALF_OPEN:
            assert 0 <= state.probes <= bound
