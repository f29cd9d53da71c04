import pytest
from strategy_builders import WALL, deployment, make, picks, request, state, states

from turnout.pricing.price import price

#: Cheap on input, dear on output; and the reverse.
READER = deployment(0, input_cost_per_token=1e-6, output_cost_per_token=1e-5)
WRITER = deployment(1, input_cost_per_token=5e-6, output_cost_per_token=2e-6)


def test_estimated_cost_uses_both_prices() -> None:
    assert price(READER, 1000, 10) == pytest.approx(1.1e-3)
    assert price(deployment(input_cost_per_token=2e-6), 100, 50) == pytest.approx(2e-4)
    assert price(deployment(output_cost_per_token=2e-6), 100, 50) == pytest.approx(1e-4)
    assert price(deployment(), 100, 50) is None


def test_request_shape_decides_the_cheapest() -> None:
    strategy = make("lowest-cost")
    long_prompt = request(prompt_tokens=1000, max_tokens=10)
    long_answer = request(prompt_tokens=10, max_tokens=1000)
    assert strategy.choose("g", [READER, WRITER], states(2), long_prompt, WALL) == 0
    assert strategy.choose("g", [READER, WRITER], states(2), long_answer, WALL) == 1


def test_max_completion_tokens_counts_like_max_tokens() -> None:
    strategy = make("lowest-cost")
    req = request(prompt_tokens=10)
    req.body["max_completion_tokens"] = 1000
    assert strategy.choose("g", [READER, WRITER], states(2), req, WALL) == 1


@pytest.mark.parametrize(("default", "expected"), [(1, 0), (10_000, 1)])
def test_default_completion_tokens_apply_without_max_tokens(default: int, expected: int) -> None:
    strategy = make("lowest-cost", default_completion_tokens=default)
    req = request(prompt_tokens=100)
    assert strategy.choose("g", [READER, WRITER], states(2), req, WALL) == expected


def test_unpriced_ranks_after_every_priced() -> None:
    strategy = make("lowest-cost")
    candidates = [deployment(0), deployment(1, input_cost_per_token=1.0, output_cost_per_token=1.0)]
    records = [state(0, latency=0.01), state(1, latency=30.0)]
    assert picks(strategy, candidates, records, 100) == [0, 100]


def test_equal_cost_is_broken_by_latency() -> None:
    strategy = make("lowest-cost")
    candidates = [deployment(i, input_cost_per_token=1e-6) for i in range(3)]
    records = [state(0, latency=2.0), state(1, latency=1.0), state(2, latency=3.0)]
    assert picks(strategy, candidates, records, 100) == [0, 100, 0]


def test_all_unpriced_is_broken_by_latency() -> None:
    strategy = make("lowest-cost")
    records = [state(0, latency=2.0), state(1, latency=1.0)]
    assert picks(strategy, [deployment(0), deployment(1)], records, 100) == [0, 100]


def test_latency_tie_break_only_among_the_cheapest() -> None:
    strategy = make("lowest-cost")
    candidates = [
        deployment(0, input_cost_per_token=1e-6),
        deployment(1, input_cost_per_token=2e-6),
        deployment(2, input_cost_per_token=1e-6),
    ]
    # The fast one is dearer; the unknown one reads as the tied one's latency: a coin toss.
    records = [state(0, latency=1.0), state(1, latency=0.001), state(2)]
    counts = picks(strategy, candidates, records, 2000)
    assert counts[1] == 0
    assert 850 < counts[0] < 1150


def test_unknown_latency_among_tied_is_their_mean() -> None:
    strategy = make("lowest-cost")
    candidates = [deployment(i, output_cost_per_token=1e-6) for i in range(3)]
    records = [state(0), state(1, latency=1.0), state(2, latency=3.0)]
    assert picks(strategy, candidates, records, 100) == [0, 100, 0]
