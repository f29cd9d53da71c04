from strategy_builders import deployment, make, picks, states


def test_lowest_tier_wins() -> None:
    candidates = [deployment(i, priority=p) for i, p in enumerate([1, 0, 0, 2])]
    counts = picks(make("priority"), candidates, states(4), 1000)
    assert counts[0] == counts[3] == 0
    assert counts[1] > 0
    assert counts[2] > 0


def test_single_member_tier_always_wins() -> None:
    candidates = [deployment(i, priority=p) for i, p in enumerate([3, -1, 0])]
    assert picks(make("priority"), candidates, states(3), 100) == [0, 100, 0]


def test_within_tier_weights_apply() -> None:
    candidates = [
        deployment(0, priority=0, weight=1.0),
        deployment(1, priority=1, weight=100.0),
        deployment(2, priority=0, weight=3.0),
    ]
    counts = picks(make("priority", seed=9), candidates, states(3), 8000)
    assert counts[1] == 0
    assert 1800 < counts[0] < 2200


def test_within_tier_shares_follow_rpm_when_no_weights() -> None:
    # The tier's own members decide the share rule: the other tier's weight is irrelevant.
    candidates = [
        deployment(0, rpm=100),
        deployment(1, rpm=300),
        deployment(2, priority=1, weight=5.0),
    ]
    counts = picks(make("priority", seed=9), candidates, states(3), 8000)
    assert counts[2] == 0
    assert 1800 < counts[0] < 2200


def test_one_tier_is_plain_weighted_random() -> None:
    candidates = [deployment(0, weight=1.0), deployment(1, weight=3.0), deployment(2, weight=0.0)]
    counts = picks(make("priority", seed=9), candidates, states(3), 8000)
    assert counts[2] == 0
    assert 1800 < counts[0] < 2200
