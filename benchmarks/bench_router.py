"""Router benchmarks: routing decisions and full in-process calls, side by side in one run.

Run: ``python benchmarks/bench_router.py`` (``--quick`` for a short run; ``--smoke`` only checks
that it runs, and its figures mean nothing).

What it measures, all in this one process so that ratios are fair on a shared, noisy machine:

- one routing decision (`Router.pick`: resolve, pre-filter, strategy) for every strategy with
  2, 10 and 100 deployments whose runtime state (latency, usage, in-flight) has been warmed up;
- a full `Router.complete` against the simulated provider with zero latency;
- when LiteLLM is importable in the same environment, the same two things on LiteLLM's `Router`
  with 3 deployments (`async_get_available_deployment` per strategy, and `acompletion` with a
  mock response), and turnout's figures for 3 deployments beside them, with the ratio;
- the size of the per-deployment state and of a circuit breaker.

Each figure is the median over several repeats of a timed loop (microseconds per operation).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from turnout import Deployment, Request, Router, RouterConfig, RoutingConfig
from turnout.health.record import DeploymentState
from turnout.router.strategies import REGISTRY
from turnout.testing import SimulatedProvider

MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer briefly."}]


#: Set by --smoke: run every measurement with a handful of loops, to check the script works.
SMOKE = False


async def per_call_us(operation: Callable[[], Awaitable[Any]], loops: int, repeats: int) -> float:
    """Median microseconds per call of `operation`, over `repeats` timed loops."""
    if SMOKE:
        loops, repeats = 5, 1
    for _ in range(min(loops, 200)):  # warm-up
        await operation()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(loops):
            await operation()
        samples.append((time.perf_counter() - started) / loops * 1e6)
    return statistics.median(samples)


def deployments(count: int) -> tuple[Deployment, ...]:
    rng = random.Random(count)
    return tuple(
        Deployment(
            model_name="chat",
            model=f"model-{index}",
            provider="sim",
            id=f"d{index}",
            weight=rng.uniform(0.5, 2.0),
            priority=index % 3,
            rpm=100_000,
            tpm=10_000_000,
            input_cost_per_token=rng.uniform(1e-7, 1e-5),
            output_cost_per_token=rng.uniform(1e-7, 3e-5),
            context_window=128_000,
        )
        for index in range(count)
    )


def turnout_router(strategy: str, count: int) -> Router:
    config = RouterConfig(model_list=deployments(count), routing=RoutingConfig(strategy=strategy))
    return Router(config, {"sim": SimulatedProvider(seed=1)}, rng=random.Random(1))


def chat_request() -> Request:
    return Request(model="chat", body={"model": "chat", "messages": MESSAGES})


async def warm(router: Router, count: int) -> None:
    """Give every deployment some history, so strategies rank real data."""
    for _ in range(min(4 * count, 400)):
        await router.complete(chat_request())


async def bench_turnout(quick: bool) -> dict[tuple[str, int], float]:
    loops, repeats = (500, 3) if quick else (3000, 5)
    figures: dict[tuple[str, int], float] = {}
    request = chat_request()
    for strategy in REGISTRY:
        for count in (2, 3, 10, 100):
            router = turnout_router(strategy, count)
            await warm(router, count)
            figures[(strategy, count)] = await per_call_us(
                functools.partial(router.pick, request), loops, repeats
            )
    return figures


async def bench_turnout_call(quick: bool, count: int = 3) -> float:
    loops, repeats = (300, 3) if quick else (2000, 5)
    router = turnout_router("weighted-random", count)
    return await per_call_us(lambda: router.complete(chat_request()), loops, repeats)


LITELLM_STRATEGIES = {
    "weighted-random": "simple-shuffle",
    "least-busy": "least-busy",
    "lowest-latency": "latency-based-routing",
    "usage-based": "usage-based-routing-v2",
    "lowest-cost": "cost-based-routing",
}


def litellm_router(strategy: str) -> Any:
    from litellm import Router as LiteLLMRouter

    model_list = [
        {
            "model_name": "chat",
            "litellm_params": {
                "model": "openai/gpt-4o-mini",
                "api_key": f"sk-bench-{index}",
                "api_base": f"http://127.0.0.1:{9000 + index}/v1",
                "rpm": 100_000,
                "tpm": 10_000_000,
            },
        }
        for index in range(3)
    ]
    return LiteLLMRouter(model_list=model_list, routing_strategy=strategy)


async def bench_litellm(quick: bool) -> tuple[dict[str, float], float] | None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        return None
    litellm.suppress_debug_info = True
    loops, repeats = (200, 3) if quick else (1000, 5)
    picks: dict[str, float] = {}
    for ours, theirs in LITELLM_STRATEGIES.items():
        router = litellm_router(theirs)
        for _ in range(10):
            await router.acompletion(model="chat", messages=MESSAGES, mock_response="Paris.")

        async def pick(router: Any = router) -> Any:
            return await router.async_get_available_deployment(
                model="chat", messages=MESSAGES, request_kwargs={}
            )

        picks[ours] = await per_call_us(pick, loops, repeats)
    router = litellm_router("simple-shuffle")

    async def call() -> Any:
        return await router.acompletion(model="chat", messages=MESSAGES, mock_response="Paris.")

    full = await per_call_us(call, loops // 2, repeats)
    return picks, full


def state_size() -> int:
    return sys.getsizeof(DeploymentState("0123456789abcdef"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer loops")
    parser.add_argument("--smoke", action="store_true", help="a few loops: does it run at all")
    args = parser.parse_args()
    global SMOKE
    SMOKE = args.smoke

    figures = await bench_turnout(args.quick)
    full = await bench_turnout_call(args.quick)
    theirs = None if args.smoke else await bench_litellm(args.quick)

    print("## Routing decision (Router.pick), µs per decision, median of repeats\n")
    print("| strategy | 2 deployments | 10 | 100 |")
    print("|---|---:|---:|---:|")
    for strategy in REGISTRY:
        row = " | ".join(f"{figures[(strategy, n)]:.2f}" for n in (2, 10, 100))
        print(f"| {strategy} | {row} |")

    print("\n## Against LiteLLM, 3 deployments, same process\n")
    if theirs is None:
        print("LiteLLM is not installed in this environment: comparison skipped.")
    else:
        picks, their_full = theirs
        print("| strategy | turnout µs | LiteLLM µs | LiteLLM / turnout |")
        print("|---|---:|---:|---:|")
        for ours in LITELLM_STRATEGIES:
            mine = figures[(ours, 3)]
            print(f"| {ours} | {mine:.2f} | {picks[ours]:.1f} | {picks[ours] / mine:.0f}x |")
        print(
            f"| full call (complete / acompletion, mock) | {full:.1f} | {their_full:.1f} "
            f"| {their_full / full:.0f}x |"
        )
    if theirs is None:
        print(f"\nFull Router.complete, zero-latency simulated provider: {full:.1f} µs")
    print(f"\nPer-deployment state: {state_size()} bytes, ejection included")


if __name__ == "__main__":
    asyncio.run(main())
