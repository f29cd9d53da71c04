"""Properties every strategy keeps, over random candidate lists."""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass
from itertools import pairwise
from typing import TypeVar

from hypothesis import given
from hypothesis import strategies as st
from strategy_builders import MINUTE, WALL, deployment, deployments, make, request, states

from turnout.config.router import Deployment, HybridWeights, RoutingConfig
from turnout.health.record import DeploymentState
from turnout.health.snapshot import DeploymentSnapshot, snapshot_of
from turnout.pricing.price import price
from turnout.router.strategies import REGISTRY
from turnout.router.strategies.round_robin import RoundRobin
from turnout.router.strategies.weighted import WeightedRandom
from turnout.wire import Request

NAMES = sorted(REGISTRY)
T = TypeVar("T")


@dataclass
class Case:
    candidates: list[Deployment]
    states: list[DeploymentSnapshot]
    request: Request


def optional(values: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | values


# Built once: hypothesis validates each strategy object the first time it draws from it.
seconds = optional(st.floats(min_value=0.001, max_value=30.0, allow_nan=False))
prices = optional(st.floats(min_value=0.0, max_value=1e-4, allow_nan=False))
tokens = optional(st.integers(min_value=0, max_value=100_000))
requests = optional(st.integers(min_value=0, max_value=1000))
weights = optional(st.floats(min_value=0.0, max_value=10.0))
priorities = st.integers(min_value=-1, max_value=3)
rpms = optional(st.integers(min_value=1, max_value=1000))
tpms = optional(st.integers(min_value=1, max_value=200_000))
minutes = st.sampled_from([MINUTE, MINUTE - 1])
small = st.integers(min_value=0, max_value=50)
in_flight = st.integers(min_value=0, max_value=20)
expiries = st.sampled_from([0.0, WALL - 1.0, WALL, WALL + 30.0])
used_requests = st.integers(min_value=0, max_value=2000)
used_tokens = st.integers(min_value=0, max_value=100_000)


@st.composite
def member(draw: st.DrawFn, index: int) -> tuple[Deployment, DeploymentSnapshot]:
    config = deployment(
        index,
        weight=draw(weights),
        priority=draw(priorities),
        rpm=draw(rpms),
        tpm=draw(tpms),
        input_cost_per_token=draw(prices),
        output_cost_per_token=draw(prices),
    )
    record = DeploymentState(config.id)
    record.minute = draw(minutes)
    record.in_flight = draw(in_flight)
    record.latency = draw(seconds)
    record.ttft = draw(seconds)
    record.rpm_used = draw(used_requests)
    record.tpm_used = draw(used_tokens)
    record.successes = draw(small)
    record.failures = draw(small)
    record.remaining_requests = draw(requests)
    record.limit_requests = draw(requests)
    record.remaining_tokens = draw(tokens)
    record.limit_tokens = draw(tokens)
    record.hint_expires = draw(expiries)
    return config, snapshot_of(record)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    size = draw(st.integers(min_value=1, max_value=20))
    members = [draw(member(index)) for index in range(size)]
    req = request(
        stream=draw(st.booleans()),
        prompt_tokens=draw(st.integers(min_value=0, max_value=10_000)),
        max_tokens=draw(optional(st.integers(min_value=1, max_value=4000))),
    )
    return Case([m[0] for m in members], [m[1] for m in members], req)


routing = st.builds(
    RoutingConfig,
    latency_buffer=st.sampled_from([0.0, 0.1, 0.5]),
    default_completion_tokens=st.integers(min_value=1, max_value=4000),
)


def choices(name: str, config: RoutingConfig, seed: int, case: Case, times: int) -> list[int]:
    strategy = REGISTRY[name](config, random.Random(seed))
    return [
        strategy.choose("g", case.candidates, case.states, case.request, WALL) for _ in range(times)
    ]


def snapshot(records: list[DeploymentSnapshot]) -> list[DeploymentSnapshot]:
    return list(records)


# One property run covers every strategy: drawing cases is what costs time, not choosing.
@given(case=cases(), config=routing, seed=st.integers(min_value=0, max_value=2**32))
def test_every_strategy_keeps_the_contract(case: Case, config: RoutingConfig, seed: int) -> None:
    before = snapshot(case.states)
    for name in NAMES:
        picked = choices(name, config, seed, case, 8)
        assert all(0 <= index < len(case.candidates) for index in picked), name
        # Deterministic given the seed.
        assert picked == choices(name, config, seed, case, 8), name
        # Read-only (snapshots are immutable): a strategy ranks, the health layer records.
        assert snapshot(case.states) == before, name


@given(case=cases(), seed=st.integers(min_value=0, max_value=2**32))
def test_least_busy_never_picks_a_busier_one(case: Case, seed: int) -> None:
    fewest = min(s.in_flight for s in case.states)
    for index in choices("least-busy", RoutingConfig(), seed, case, 5):
        assert case.states[index].in_flight == fewest


@given(case=cases(), seed=st.integers(min_value=0, max_value=2**32))
def test_priority_never_picks_a_later_tier(case: Case, seed: int) -> None:
    first = min(d.priority for d in case.candidates)
    for index in choices("priority", RoutingConfig(), seed, case, 5):
        assert case.candidates[index].priority == first


@given(case=cases(), config=routing, seed=st.integers(min_value=0, max_value=2**32))
def test_lowest_cost_never_picks_a_dearer_priced_one(
    case: Case, config: RoutingConfig, seed: int
) -> None:
    completion = case.request.max_completion_tokens or config.default_completion_tokens
    costs = [price(d, case.request.prompt_tokens, completion) for d in case.candidates]
    priced = [cost for cost in costs if cost is not None]
    for index in choices("lowest-cost", config, seed, case, 5):
        if priced:
            chosen = costs[index]
            assert chosen is not None
            assert chosen == min(priced)


def expected_latencies(case: Case) -> list[float]:
    """The lowest-latency scores, computed independently of the strategy's code."""
    use_ttft = case.request.stream and any(s.ttft is not None for s in case.states)
    raw = [s.ttft if use_ttft else s.latency for s in case.states]
    known = [value for value in raw if value is not None]
    fill = sum(known) / len(known) if known else 0.0
    return [fill if value is None else value for value in raw]


@given(
    case=cases(),
    buffer=st.floats(min_value=0.0, max_value=2.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_latency_buffer_is_respected(case: Case, buffer: float, seed: int) -> None:
    scores = expected_latencies(case)
    best = min(scores)
    config = RoutingConfig(strategy="lowest-latency", latency_buffer=buffer)
    for index in choices("lowest-latency", config, seed, case, 5):
        assert scores[index] <= best * (1 + buffer) or math.isclose(scores[index], best)
        if buffer == 0.0:
            assert math.isclose(scores[index], best)


@given(case=cases(), seed=st.integers(min_value=0, max_value=2**32))
def test_usage_based_picks_a_least_used_share(case: Case, seed: int) -> None:
    largest = max((d.tpm or 0 for d in case.candidates), default=0)
    scores = []
    for d, s in zip(case.candidates, case.states, strict=True):
        used = s.tpm_used if s.minute == MINUTE else 0
        limit = d.tpm or largest
        scores.append(used / limit if limit else float(used))
    for index in choices("usage-based", RoutingConfig(), seed, case, 5):
        assert scores[index] == min(scores)


def test_weighted_random_converges_to_the_weights() -> None:
    weights = [1.0, 2.0, 3.0, 4.0, 0.0]
    candidates = [deployment(i, weight=w) for i, w in enumerate(weights)]
    strategy = WeightedRandom(RoutingConfig(), random.Random(20_240_601))
    draws = 20_000
    observed = [0] * len(weights)
    for _ in range(draws):
        observed[strategy.choose("g", candidates, states(5), request(), WALL)] += 1
    assert observed[4] == 0
    total = sum(weights)
    expected = [draws * w / total for w in weights[:4]]
    chi_square = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=False))
    # The 0.999 quantile of chi-square with 3 degrees of freedom.
    assert chi_square < 16.27
    for o, e in zip(observed, expected, strict=False):
        assert abs(o - e) / e < 0.05


def test_weighted_random_rejects_a_skewed_draw() -> None:
    # The check above can fail: a sampler with an off-by-one share would not pass it.
    expected = [2000.0, 4000.0, 6000.0, 8000.0]
    skewed = [2500, 4000, 6000, 7500]
    chi_square = sum((o - e) ** 2 / e for o, e in zip(skewed, expected, strict=True))
    assert chi_square > 16.27


async def test_round_robin_is_fair_across_interleaved_tasks() -> None:
    strategy = RoundRobin(RoutingConfig(), random.Random(7))
    candidates, records = deployments(7), states(7)
    counts = [0] * 7
    order: list[int] = []

    async def caller(calls: int) -> None:
        for _ in range(calls):
            index = strategy.choose("g", candidates, records, request(), WALL)
            counts[index] += 1
            order.append(index)
            await asyncio.sleep(0)

    await asyncio.gather(*(caller(calls) for calls in (30, 25, 17, 9, 1)))
    assert sum(counts) == 82
    assert max(counts) - min(counts) <= 1
    # Interleaving did not break the cycle either.
    assert all(b == (a + 1) % 7 for a, b in pairwise(order))


def test_strategies_use_only_the_injected_rng() -> None:
    # Seeding the global generator differently must not change any strategy's picks.
    case = Case(deployments(6), states(6), request())
    for name in NAMES:
        random.seed(1)
        first = [make(name, seed=3).choose("g", case.candidates, case.states, case.request, WALL)]
        random.seed(2)
        second = [make(name, seed=3).choose("g", case.candidates, case.states, case.request, WALL)]
        assert first == second


def reference_headroom(d: Deployment, s: DeploymentSnapshot, prompt: int) -> float:
    """The rate-limit-aware rule, written out independently of the strategy's code."""
    used_requests, used_tokens = (s.rpm_used, s.tpm_used) if s.minute == MINUTE else (0, 0)
    hinted = s.hint_expires > WALL

    def fraction(
        remaining: int | None, limit: int | None, configured: int | None, used: int, extra: int
    ) -> float:
        if remaining is not None:
            known_limit = limit or configured
            if known_limit:
                return min(1.0, (remaining - extra) / known_limit)
            return 1.0 if remaining - extra > 0 else 0.0
        if configured:
            return 1.0 - (used + extra) / configured
        return 1.0

    return min(
        fraction(
            s.remaining_requests if hinted else None, s.limit_requests, d.rpm, used_requests, 0
        ),
        fraction(
            s.remaining_tokens if hinted else None, s.limit_tokens, d.tpm, used_tokens, prompt
        ),
    )


@given(case=cases(), seed=st.integers(min_value=0, max_value=2**32))
def test_rate_limit_aware_picks_the_largest_headroom(case: Case, seed: int) -> None:
    prompt = case.request.prompt_tokens
    rooms = [
        reference_headroom(d, s, prompt) for d, s in zip(case.candidates, case.states, strict=True)
    ]
    for index in choices("rate-limit-aware", RoutingConfig(), seed, case, 5):
        assert math.isclose(rooms[index], max(rooms))


def reference_hybrid_values(case: Case, config: RoutingConfig) -> list[float]:
    """The hybrid value of each candidate, written out independently of the strategy's code."""
    completion = case.request.max_completion_tokens or config.default_completion_tokens
    raw = [price(d, case.request.prompt_tokens, completion) for d in case.candidates]
    priced = [cost for cost in raw if cost is not None]
    costs = [max(priced) if cost is None else cost for cost in raw] if priced else [0.0] * len(raw)
    latencies = expected_latencies(case)

    def norm(values: list[float]) -> list[float]:
        low, high = min(values), max(values)
        return [(v - low) / (high - low) if high > low else 0.0 for v in values]

    weights = config.hybrid
    total = weights.cost + weights.latency + weights.reliability
    return [
        (
            weights.cost * (1 - c)
            + weights.latency * (1 - lat)
            + weights.reliability * s.reliability(WALL)
        )
        / total
        for c, lat, s in zip(norm(costs), norm(latencies), case.states, strict=True)
    ]


hybrid_weights = st.builds(
    HybridWeights,
    cost=st.sampled_from([0.0, 0.4, 1.0, 3.0]),
    latency=st.sampled_from([0.0, 0.4, 1.0]),
    reliability=st.sampled_from([0.2, 1.0]),
)


@given(case=cases(), weights=hybrid_weights, seed=st.integers(min_value=0, max_value=2**32))
def test_hybrid_picks_the_highest_value(case: Case, weights: HybridWeights, seed: int) -> None:
    config = RoutingConfig(hybrid=weights)
    values = reference_hybrid_values(case, config)
    for index in choices("hybrid", config, seed, case, 5):
        assert math.isclose(values[index], max(values), abs_tol=1e-9)
