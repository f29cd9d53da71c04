"""Hedged requests against a heavy latency tail: p50, p99 and the extra load, with and without.

Run: ``python benchmarks/bench_hedging.py`` (``--requests N``, ``--smoke`` for a tiny run).

Three simulated deployments answer in about 200 ms, but one request in twenty takes 3 s more
(a heavy tail, as when a provider's replica is overloaded). The same request sequence is routed
without hedging and with hedging at the group's observed p95 (and at a fixed 400 ms); each row
reports latency percentiles and the extra upstream requests hedging cost. Time is virtual (the
manual clock): the figures are exact and repeatable, whatever the machine is doing.

A hedge delay must sit below the tail it is meant to cut: with 5% of requests slow, the p95 is
the tail's edge and often inside it, so hedging there fires late; p90 or a fixed delay just
above the normal latency cuts the tail.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics

from turnout import Deployment, Request, Router, RouterConfig, RouterStats, RoutingConfig
from turnout.config.router import HedgeConfig
from turnout.testing import Behaviour, ManualClock, SimulatedProvider

TAIL = Behaviour(latency=0.2, jitter=0.05, tail_probability=0.05, tail_latency=3.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(hedge: HedgeConfig | None, requests: int, seed: int) -> tuple[list[float], int, int]:
    """Latencies of `requests` sequential requests; upstream calls made; hedges fired."""
    clock = ManualClock()
    provider = SimulatedProvider(clock, seed=seed, default=TAIL)
    deployments = tuple(
        Deployment(model_name="chat", model=f"m{i}", provider="sim", id=f"d{i}") for i in range(3)
    )
    config = RouterConfig(
        model_list=deployments,
        routing=RoutingConfig(strategy="round-robin"),
        hedging={"chat": hedge} if hedge is not None else {},
    )
    stats = RouterStats()
    router = Router(
        config, {"sim": provider}, clock=clock, rng=random.Random(seed), observers=[stats]
    )
    latencies = []
    for index in range(requests):
        request = Request(
            model="chat", body={"messages": [{"role": "user", "content": f"question {index}"}]}
        )
        started = clock.now()
        await router.complete(request)
        latencies.append(clock.now() - started)
        clock.advance(0.05)  # requests arrive spaced out
    upstream = sum(len(provider.calls(d.id)) for d in deployments)
    return latencies, upstream, stats.hedges


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    requests = 60 if args.smoke else args.requests
    cases: list[tuple[str, HedgeConfig | None]] = [
        ("no hedging", None),
        ("hedge at p95, budget 5%", HedgeConfig(quantile=0.95, min_samples=50, budget=0.05)),
        ("hedge at p95, budget 10%", HedgeConfig(quantile=0.95, min_samples=50, budget=0.10)),
        ("hedge at p90, budget 10%", HedgeConfig(quantile=0.90, min_samples=50, budget=0.10)),
        ("hedge at 400 ms, budget 10%", HedgeConfig(delay=0.4, budget=0.10)),
    ]
    print(f"{requests} requests, tail: 5% take +3 s; virtual time (exact)\n")
    print("| routing | p50 ms | p90 ms | p99 ms | p99.9 ms | mean ms | extra upstream requests |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, hedge in cases:
        latencies, upstream, hedges = await run(hedge, requests, seed=7)
        row = [percentile(latencies, q) * 1000 for q in (0.5, 0.9, 0.99, 0.999)]
        extra = (upstream - requests) / requests * 100
        print(
            f"| {name} | {row[0]:.0f} | {row[1]:.0f} | {row[2]:.0f} | {row[3]:.0f} "
            f"| {statistics.fmean(latencies) * 1000:.0f} | {extra:.1f}% ({hedges} hedges) |"
        )


if __name__ == "__main__":
    asyncio.run(main())
