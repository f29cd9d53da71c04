from strategy_builders import WALL, deployments, make, picks, request, state, states


def test_picks_fewest_in_flight() -> None:
    strategy = make("least-busy")
    candidates = deployments(4)
    records = [state(i, in_flight=n) for i, n in enumerate([3, 1, 4, 2])]
    for _ in range(20):
        assert strategy.choose("g", candidates, records, request(), WALL) == 1


def test_ties_are_shared_and_busier_never_chosen() -> None:
    candidates = deployments(3)
    records = [state(0, in_flight=2), state(1, in_flight=2), state(2, in_flight=5)]
    counts = picks(make("least-busy"), candidates, records, 2000)
    assert counts[2] == 0
    assert 850 < counts[0] < 1150
    assert counts[0] + counts[1] == 2000


def test_all_idle_is_uniform() -> None:
    counts = picks(make("least-busy", seed=3), deployments(4), states(4), 4000)
    assert all(850 < count < 1150 for count in counts)
