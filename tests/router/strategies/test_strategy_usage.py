from msgspec.structs import replace
from strategy_builders import MINUTE, WALL, deployment, make, picks, request, state


def test_lowest_fraction_of_tpm_wins() -> None:
    strategy = make("usage-based")
    candidates = [deployment(0, tpm=1000), deployment(1, tpm=10_000)]
    # 500 tokens is half of the first budget but a twentieth of the second's 1000.
    records = [state(0, tpm_used=500), state(1, tpm_used=1000)]
    assert strategy.choose("g", candidates, records, request(), WALL) == 1


def test_usage_of_a_past_minute_counts_as_none() -> None:
    strategy = make("usage-based")
    candidates = [deployment(0, tpm=1000), deployment(1, tpm=1000)]
    records = [state(0, tpm_used=900, minute=MINUTE - 1), state(1, tpm_used=10)]
    assert strategy.choose("g", candidates, records, request(), WALL) == 0


def test_unlimited_is_measured_against_the_largest_limit() -> None:
    strategy = make("usage-based")
    candidates = [deployment(0, tpm=100), deployment(1, tpm=1000), deployment(2)]
    # Scores: 0.2, 0.3, and 250 / 1000 = 0.25.
    records = [state(0, tpm_used=20), state(1, tpm_used=300), state(2, tpm_used=250)]
    assert strategy.choose("g", candidates, records, request(), WALL) == 0
    # Scores: 0.5, 0.3, 0.25.
    records[0] = replace(records[0], tpm_used=50)
    assert strategy.choose("g", candidates, records, request(), WALL) == 2


def test_without_any_limit_raw_usage_decides() -> None:
    strategy = make("usage-based")
    candidates = [deployment(0), deployment(1), deployment(2)]
    records = [state(0, tpm_used=700), state(1, tpm_used=300), state(2, tpm_used=500)]
    assert strategy.choose("g", candidates, records, request(), WALL) == 1


def test_ties_are_shared() -> None:
    candidates = [deployment(0, tpm=1000), deployment(1, tpm=2000), deployment(2, tpm=1000)]
    records = [state(0, tpm_used=100), state(1, tpm_used=200), state(2, tpm_used=300)]
    counts = picks(make("usage-based", seed=4), candidates, records, 2000)
    assert counts[2] == 0
    assert 850 < counts[0] < 1150
