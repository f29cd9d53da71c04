import random

from strategy_builders import WALL, deployments, make, request, states

from turnout.config.router import RoutingConfig
from turnout.router.strategies.round_robin import RoundRobin


def test_cycles_through_candidates_in_order() -> None:
    strategy = make("round-robin")
    candidates, records = deployments(3), states(3)
    chosen = [strategy.choose("g", candidates, records, request(), WALL) for _ in range(9)]
    start = chosen[0]
    assert chosen == [(start + step) % 3 for step in range(9)]


def test_groups_have_their_own_counters() -> None:
    strategy = RoundRobin(RoutingConfig(), random.Random(1))
    candidates, records = deployments(4), states(4)
    a = [strategy.choose("a", candidates, records, request(), WALL) for _ in range(4)]
    b_first = strategy.choose("b", candidates, records, request(), WALL)
    a_next = strategy.choose("a", candidates, records, request(), WALL)
    assert sorted(a) == [0, 1, 2, 3]
    # Group b's first pick did not advance group a.
    assert a_next == (a[-1] + 1) % 4
    assert 0 <= b_first < 4


def test_start_offset_comes_from_the_rng() -> None:
    candidates, records = deployments(5), states(5)
    firsts = {
        make("round-robin", seed=seed).choose("g", candidates, records, request(), WALL)
        for seed in range(50)
    }
    assert len(firsts) > 1


def test_shrinking_candidate_list_stays_in_range() -> None:
    strategy = make("round-robin")
    for count in (5, 4, 3, 2, 1, 3):
        candidates, records = deployments(count), states(count)
        for _ in range(7):
            assert 0 <= strategy.choose("g", candidates, records, request(), WALL) < count
