"""Routing strategies: one module each, one protocol, one name -> factory registry.

LiteLLM's strategy names are accepted as aliases, so a LiteLLM ``routing_strategy`` works as is.
"""

from __future__ import annotations

import random

from turnout.config.router import STRATEGY_ALIASES, STRATEGY_NAMES, RoutingConfig
from turnout.router.strategies.base import Strategy, StrategyFactory
from turnout.router.strategies.cost import LowestCost
from turnout.router.strategies.hybrid import Hybrid
from turnout.router.strategies.latency import LowestLatency
from turnout.router.strategies.least_busy import LeastBusy
from turnout.router.strategies.priority import Priority
from turnout.router.strategies.rate_limit import RateLimitAware
from turnout.router.strategies.round_robin import RoundRobin
from turnout.router.strategies.usage import UsageBased
from turnout.router.strategies.weighted import WeightedRandom

REGISTRY: dict[str, StrategyFactory] = {
    "weighted-random": WeightedRandom,
    "round-robin": RoundRobin,
    "least-busy": LeastBusy,
    "lowest-latency": LowestLatency,
    "lowest-cost": LowestCost,
    "usage-based": UsageBased,
    "priority": Priority,
    "rate-limit-aware": RateLimitAware,
    "hybrid": Hybrid,
}


def strategy_names() -> list[str]:
    """Every name a config may use, canonical names and aliases."""
    return sorted([*STRATEGY_NAMES, *STRATEGY_ALIASES])


def create_strategy(name: str, config: RoutingConfig, rng: random.Random) -> Strategy:
    factory = REGISTRY[STRATEGY_ALIASES.get(name, name)]
    return factory(config, rng)


__all__ = ["REGISTRY", "Strategy", "StrategyFactory", "create_strategy", "strategy_names"]
