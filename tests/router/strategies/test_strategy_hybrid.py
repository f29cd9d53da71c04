import pytest
from strategy_builders import WALL, deployment, make, picks, request, state, states

from turnout.config.router import HybridWeights

CHEAP_SLOW = deployment(0, input_cost_per_token=1e-6)
DEAR_FAST = deployment(1, input_cost_per_token=2e-6)


def weights(cost: float, latency: float, reliability: float) -> HybridWeights:
    return HybridWeights(cost=cost, latency=latency, reliability=reliability)


@pytest.mark.parametrize(
    ("hybrid", "expected"),
    [
        (weights(1, 0, 0), 0),
        (weights(0, 1, 0), 1),
        (weights(0.6, 0.4, 0), 0),
        (weights(0.4, 0.6, 0), 1),
        (weights(6, 4, 0), 0),
        (weights(4, 6, 0), 1),
    ],
)
def test_weights_trade_cost_against_latency(hybrid: HybridWeights, expected: int) -> None:
    strategy = make("hybrid", hybrid=hybrid)
    records = [state(0, latency=10.0), state(1, latency=1.0)]
    assert strategy.choose("g", [CHEAP_SLOW, DEAR_FAST], records, request(), WALL) == expected


def test_reliability_weight_prefers_the_reliable() -> None:
    strategy = make("hybrid", hybrid=weights(0, 0, 1))
    records = [state(0, successes=5, failures=5), state(1, successes=9, failures=1)]
    assert strategy.choose("g", [CHEAP_SLOW, DEAR_FAST], records, request(), WALL) == 1


def test_unreliability_outweighs_a_small_latency_edge() -> None:
    strategy = make("hybrid")
    candidates = [deployment(0), deployment(1), deployment(2)]
    records = [
        state(0, latency=1.0, successes=1, failures=20),
        state(1, latency=1.1),
        state(2, latency=5.0),
    ]
    # Values: 0.4 + 0.4 + 0.2 * 2/22; 0.4 + 0.4 * 0.975 + 0.2; 0.4 + 0 + 0.2.
    assert strategy.choose("g", candidates, records, request(), WALL) == 1


def test_unpriced_counts_as_the_dearest_priced() -> None:
    strategy = make("hybrid", hybrid=weights(1, 0, 3))
    candidates = [deployment(0), CHEAP_SLOW, DEAR_FAST]
    # The cheap one fails too often to win. The unpriced one ties with the dearest: were it
    # counted as free it would always win, were it dearer than the dearest it would never win.
    records = [state(0), state(1, failures=20), state(2)]
    counts = picks(strategy, candidates, records, 2000, request(prompt_tokens=1000))
    assert counts[1] == 0
    assert 850 < counts[0] < 1150


def test_one_priced_candidate_gives_no_cost_advantage() -> None:
    strategy = make("hybrid", hybrid=weights(1, 0, 0))
    counts = picks(strategy, [deployment(0), DEAR_FAST], states(2), 2000)
    assert 850 < counts[0] < 1150


def test_equal_dimension_contributes_equally() -> None:
    # All costs equal (here: all unpriced); latency alone decides despite the cost weight.
    strategy = make("hybrid", hybrid=weights(100, 1, 0))
    records = [state(0, latency=3.0), state(1, latency=2.0), state(2, latency=4.0)]
    candidates = [deployment(0), deployment(1), deployment(2)]
    assert picks(strategy, candidates, records, 100) == [0, 100, 0]


def test_streaming_uses_time_to_first_token() -> None:
    strategy = make("hybrid", hybrid=weights(0, 1, 0))
    records = [state(0, latency=1.0, ttft=0.5), state(1, latency=2.0, ttft=0.1)]
    candidates = [deployment(0), deployment(1)]
    assert strategy.choose("g", candidates, records, request(stream=True), WALL) == 1
    assert strategy.choose("g", candidates, records, request(stream=False), WALL) == 0


def test_all_equal_is_uniform() -> None:
    counts = picks(make("hybrid", seed=8), [deployment(0), deployment(1)], states(2), 2000)
    assert 850 < counts[0] < 1150
