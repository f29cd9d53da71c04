from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from turnout.router.budget import WindowBudget


def test_spends_up_to_the_share_of_requests_plus_the_floor() -> None:
    budget = WindowBudget(ratio=0.2, window=10, floor_per_second=0.0)
    for _ in range(10):
        budget.record_request(0.5)
    assert [budget.try_spend(0.5) for _ in range(4)] == [True, True, False, False]


def test_the_floor_allows_retries_when_traffic_is_light() -> None:
    budget = WindowBudget(ratio=0.0, window=10, floor_per_second=0.3)
    assert [budget.try_spend(1.0) for _ in range(4)] == [True, True, True, False]


def test_old_requests_and_spends_leave_the_window() -> None:
    budget = WindowBudget(ratio=0.5, window=10)
    for _ in range(4):
        budget.record_request(0.0)
    assert budget.try_spend(0.0)
    assert budget.try_spend(0.0)
    assert not budget.try_spend(5.0)
    assert budget.counts(10.5) == (0, 0)
    assert not budget.try_spend(10.5)


@given(
    st.lists(st.tuples(st.sampled_from(["request", "spend"]), st.floats(0, 3)), max_size=300),
    st.floats(0.0, 1.0),
)
def test_spends_never_exceed_the_budget(events: list[tuple[str, float]], ratio: float) -> None:
    budget = WindowBudget(ratio=ratio, window=5, floor_per_second=0.2)
    now = 0.0
    for action, step in events:
        now += step
        if action == "request":
            budget.record_request(now)
        elif budget.try_spend(now):
            # Whenever a spend is granted, the window holds no more spends than allowed.
            requests, spent = budget.counts(now)
            assert spent <= ratio * requests + 0.2 * 5 + 1e-9
