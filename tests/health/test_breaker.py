from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from turnout.config.router import BreakerConfig
from turnout.health.breaker import Admission, admit, can_admit, on_failure, on_neutral, on_success
from turnout.health.record import Breaker, BreakerPhase

CONFIG = BreakerConfig(
    failure_threshold=3, open_timeout=10, half_open_probes=2, success_threshold=2
)


def _phase(breaker: Breaker) -> BreakerPhase:
    return breaker.phase


def test_opens_after_consecutive_failures_only() -> None:
    breaker = Breaker()
    on_failure(breaker, CONFIG, False, now=0)
    on_failure(breaker, CONFIG, False, now=0)
    on_success(breaker, CONFIG, False)  # the run of failures is broken
    on_failure(breaker, CONFIG, False, now=0)
    on_failure(breaker, CONFIG, False, now=0)
    assert _phase(breaker) is BreakerPhase.CLOSED
    assert on_failure(breaker, CONFIG, False, now=1) == (BreakerPhase.CLOSED, BreakerPhase.OPEN)
    assert _phase(breaker) is BreakerPhase.OPEN


def _open_breaker() -> Breaker:
    breaker = Breaker()
    for _ in range(CONFIG.failure_threshold):
        on_failure(breaker, CONFIG, False, now=0)
    return breaker


def test_open_refuses_until_the_timeout_then_admits_bounded_probes() -> None:
    breaker = _open_breaker()
    assert not can_admit(breaker, CONFIG, 9.9)
    assert admit(breaker, CONFIG, 9.9) == (Admission.REFUSED, None)
    assert can_admit(breaker, CONFIG, 10)
    assert admit(breaker, CONFIG, 10) == (
        Admission.PROBE,
        (BreakerPhase.OPEN, BreakerPhase.HALF_OPEN),
    )
    assert admit(breaker, CONFIG, 10) == (Admission.PROBE, None)
    assert admit(breaker, CONFIG, 10) == (Admission.REFUSED, None)
    assert not can_admit(breaker, CONFIG, 10)


def test_half_open_closes_after_enough_successful_probes() -> None:
    breaker = _open_breaker()
    admit(breaker, CONFIG, 10)
    assert on_success(breaker, CONFIG, True) is None
    admit(breaker, CONFIG, 10)
    assert on_success(breaker, CONFIG, True) == (BreakerPhase.HALF_OPEN, BreakerPhase.CLOSED)
    assert admit(breaker, CONFIG, 10) == (Admission.NORMAL, None)


def test_a_failing_probe_reopens_and_restarts_the_timeout() -> None:
    breaker = _open_breaker()
    admit(breaker, CONFIG, 10)
    assert on_failure(breaker, CONFIG, True, now=12) == (BreakerPhase.HALF_OPEN, BreakerPhase.OPEN)
    assert not can_admit(breaker, CONFIG, 21)
    assert can_admit(breaker, CONFIG, 22)


def test_neutral_outcome_frees_the_probe_slot() -> None:
    breaker = _open_breaker()
    admit(breaker, CONFIG, 10)
    admit(breaker, CONFIG, 10)
    on_neutral(breaker, True)
    assert admit(breaker, CONFIG, 10)[0] is Admission.PROBE


def test_disabled_breaker_always_admits() -> None:
    config = BreakerConfig(enabled=False, failure_threshold=1)
    breaker = Breaker()
    for _ in range(5):
        on_failure(breaker, config, False, now=0)
    assert admit(breaker, config, 0) == (Admission.NORMAL, None)


def test_breaker_state_is_compact() -> None:
    import sys

    breaker = Breaker()
    assert not hasattr(breaker, "__dict__")
    assert sys.getsizeof(breaker) <= 100


_events = st.lists(
    st.tuples(
        st.sampled_from(["admit", "success", "failure", "neutral", "tick"]),
        st.floats(min_value=0, max_value=30),
    ),
    max_size=200,
)


@given(_events, st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=4))
def test_never_more_probes_in_flight_than_configured(
    events: list[tuple[str, float]], probes: int, threshold: int
) -> None:
    config = BreakerConfig(
        failure_threshold=threshold, open_timeout=5, half_open_probes=probes, success_threshold=2
    )
    breaker = Breaker()
    now = 0.0
    in_flight: list[bool] = []  # each running request: was it a probe?
    for action, value in events:
        if action == "tick":
            now += value
        elif action == "admit":
            admission, _ = admit(breaker, config, now)
            if admission is not Admission.REFUSED:
                in_flight.append(admission is Admission.PROBE)
        elif in_flight:
            probe = in_flight.pop(0)
            if action == "success":
                on_success(breaker, config, probe)
            elif action == "failure":
                on_failure(breaker, config, probe, now)
            else:
                on_neutral(breaker, probe)
        if breaker.phase is BreakerPhase.HALF_OPEN:
            assert breaker.probes <= probes
        assert breaker.probes >= 0
        # Nothing is admitted normally while open.
        if breaker.phase is BreakerPhase.OPEN:
            assert not can_admit(breaker, config, breaker.opened_at)
