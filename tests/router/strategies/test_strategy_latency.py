import pytest
from strategy_builders import WALL, deployments, make, picks, request, state, states

from turnout.router.strategies.latency import latency_scores


def test_picks_lowest_latency() -> None:
    strategy = make("lowest-latency")
    records = [state(i, latency=value) for i, value in enumerate([0.9, 0.3, 0.5])]
    for _ in range(20):
        assert strategy.choose("g", deployments(3), records, request(), WALL) == 1


def test_streaming_request_is_ranked_by_time_to_first_token() -> None:
    strategy = make("lowest-latency")
    records = [state(0, latency=1.0, ttft=0.2), state(1, latency=0.5, ttft=0.4)]
    assert strategy.choose("g", deployments(2), records, request(stream=True), WALL) == 0
    assert strategy.choose("g", deployments(2), records, request(stream=False), WALL) == 1


def test_streaming_without_any_ttft_falls_back_to_latency() -> None:
    strategy = make("lowest-latency")
    records = [state(0, latency=1.0), state(1, latency=0.5)]
    assert strategy.choose("g", deployments(2), records, request(stream=True), WALL) == 1


def test_streaming_never_compares_ttft_with_whole_latency() -> None:
    # Deployment 1 served only non-streaming requests: its 0.05 s whole-request latency must not
    # be set against the others' first-token times. It counts as the mean ttft (0.3) instead.
    strategy = make("lowest-latency")
    records = [state(0, ttft=0.5), state(1, latency=0.05), state(2, ttft=0.1)]
    for _ in range(20):
        assert strategy.choose("g", deployments(3), records, request(stream=True), WALL) == 2


def test_unknown_latency_is_the_mean_of_known() -> None:
    records = [state(0, latency=1.0), state(1), state(2, latency=3.0)]
    assert latency_scores(records, stream=False) == [1.0, 2.0, 3.0]
    assert latency_scores(states(2), stream=True) == [0.0, 0.0]


def test_streaming_scores_fill_missing_ttft_with_mean_ttft() -> None:
    records = [state(0, ttft=0.5), state(1, latency=0.05), state(2, ttft=0.1)]
    assert latency_scores(records, stream=True) == pytest.approx([0.5, 0.3, 0.1])


def test_no_data_is_uniform() -> None:
    counts = picks(make("lowest-latency", seed=5), deployments(3), states(3), 3000)
    assert all(850 < count < 1150 for count in counts)


def test_buffer_picks_uniformly_among_near_best() -> None:
    strategy = make("lowest-latency", seed=2, latency_buffer=0.1)
    records = [state(i, latency=value) for i, value in enumerate([1.0, 1.05, 1.2, 1.1])]
    counts = picks(strategy, deployments(4), records, 3000)
    assert counts[2] == 0
    assert all(850 < counts[index] < 1150 for index in (0, 1, 3))


@pytest.mark.parametrize("buffer", [0.0, 0.01])
def test_without_room_in_buffer_best_always_wins(buffer: float) -> None:
    strategy = make("lowest-latency", latency_buffer=buffer)
    records = [state(0, latency=1.0), state(1, latency=1.5)]
    assert picks(strategy, deployments(2), records, 200) == [200, 0]
