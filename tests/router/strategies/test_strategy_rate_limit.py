import pytest
from msgspec.structs import replace
from strategy_builders import WALL, deployment, make, picks, request, state, states

from turnout.router.strategies.rate_limit import headroom


def test_provider_reported_fraction_decides() -> None:
    strategy = make("rate-limit-aware")
    records = [
        state(0, remaining_requests=10, limit_requests=100),
        state(1, remaining_requests=50, limit_requests=100),
    ]
    assert strategy.choose("g", [deployment(0), deployment(1)], records, request(), WALL) == 1


def test_provider_hints_override_own_counters() -> None:
    strategy = make("rate-limit-aware")
    candidates = [deployment(0, rpm=100), deployment(1, rpm=100)]
    # Our counters say 0 is idle, but the provider (shared key) says 5 of 100 are left.
    records = [
        state(0, rpm_used=0, remaining_requests=5, limit_requests=100),
        state(1, rpm_used=50),
    ]
    assert strategy.choose("g", candidates, records, request(), WALL) == 1


def test_request_fraction_rules() -> None:
    assert headroom(deployment(rpm=100), state(remaining_requests=20), WALL, 0) == 0.2
    assert headroom(deployment(), state(remaining_requests=3), WALL, 0) == 1.0
    assert headroom(deployment(), state(remaining_requests=0), WALL, 0) == 0.0
    assert headroom(deployment(rpm=100), state(rpm_used=30), WALL, 0) == 0.7
    assert headroom(deployment(rpm=100), state(rpm_used=30, minute=0), WALL, 0) == 1.0
    assert headroom(deployment(), state(rpm_used=30), WALL, 0) == 1.0
    # A provider limit of 0 means "unknown", never a division by zero.
    hint = state(remaining_requests=4, limit_requests=0)
    assert headroom(deployment(rpm=8), hint, WALL, 0) == 0.5
    # A provider allowing more than our configured rpm is capped at "all left".
    assert headroom(deployment(rpm=100), state(remaining_requests=500), WALL, 0) == 1.0


def test_token_fraction_counts_the_prompt() -> None:
    assert headroom(deployment(tpm=1000), state(), WALL, 600) == 0.4
    assert headroom(deployment(tpm=1000), state(tpm_used=100), WALL, 600) == pytest.approx(0.3)
    hint = state(remaining_tokens=800, limit_tokens=1000)
    assert headroom(deployment(), hint, WALL, 300) == 0.5
    assert headroom(deployment(tpm=2000), state(remaining_tokens=800), WALL, 300) == 0.25
    assert headroom(deployment(), state(remaining_tokens=800), WALL, 300) == 1.0
    assert headroom(deployment(), state(remaining_tokens=300), WALL, 300) == 0.0
    assert headroom(deployment(), state(), WALL, 10**6) == 1.0


def test_prompt_size_can_change_the_winner() -> None:
    strategy = make("rate-limit-aware")
    candidates = [deployment(0, tpm=1000), deployment(1, tpm=10_000)]
    records = [state(0), state(1, tpm_used=5000)]
    # Without the prompt: 1.0 against 0.5. With 600 prompt tokens: 0.4 against 0.44.
    assert strategy.choose("g", candidates, records, request(prompt_tokens=0), WALL) == 0
    assert strategy.choose("g", candidates, records, request(prompt_tokens=600), WALL) == 1


def test_tighter_limit_decides_a_deployments_headroom() -> None:
    strategy = make("rate-limit-aware")
    candidates = [deployment(0, rpm=10, tpm=1000), deployment(1, rpm=10, tpm=1000)]
    # 0: requests 0.9, tokens 0.1. 1: requests 0.3, tokens 0.8.
    records = [state(0, rpm_used=1, tpm_used=900), state(1, rpm_used=7, tpm_used=200)]
    assert strategy.choose("g", candidates, records, request(prompt_tokens=0), WALL) == 1


def test_smaller_overshoot_ranks_higher() -> None:
    strategy = make("rate-limit-aware")
    records = [
        state(0, remaining_tokens=100, limit_tokens=1000),
        state(1, remaining_tokens=400, limit_tokens=1000),
    ]
    req = request(prompt_tokens=500)
    assert strategy.choose("g", [deployment(0), deployment(1)], records, req, WALL) == 1


def test_equal_headroom_is_shared() -> None:
    counts = picks(
        make("rate-limit-aware", seed=6), [deployment(0), deployment(1)], states(2), 2000
    )
    assert 850 < counts[0] < 1150


def test_provider_hints_and_own_counters_mix_per_dimension() -> None:
    # Requests from the provider's hint (0.9 left), tokens from our counters (0.5 left).
    record = state(remaining_requests=90, limit_requests=100, tpm_used=500)
    assert headroom(deployment(rpm=100, tpm=1000), record, WALL, 0) == 0.5
    # And the other way round: requests 0.25 from our counters, tokens 0.6 from the hint.
    record = state(rpm_used=75, remaining_tokens=600, limit_tokens=1000)
    assert headroom(deployment(rpm=100, tpm=1000), record, WALL, 0) == 0.25


def test_expired_provider_hints_are_ignored() -> None:
    strategy = make("rate-limit-aware")
    candidates = [deployment(0, rpm=100), deployment(1, rpm=100)]
    # The provider said 5 of 100 left, but that quota has reset since: our counters decide.
    stale = state(0, rpm_used=10, remaining_requests=5, limit_requests=100, hint_expires=WALL)
    records = [stale, state(1, rpm_used=50)]
    assert headroom(candidates[0], stale, WALL, 0) == 0.9
    assert strategy.choose("g", candidates, records, request(), WALL) == 0
    records[0] = replace(stale, hint_expires=WALL + 1.0)
    assert strategy.choose("g", candidates, records, request(), WALL) == 1
