import random

import pytest
from strategy_builders import WALL, deployments, request, states

from turnout.config.router import STRATEGY_ALIASES, STRATEGY_NAMES, RoutingConfig
from turnout.errors import ConfigError
from turnout.router.strategies import REGISTRY, create_strategy, strategy_names

CANONICAL = [
    "weighted-random",
    "round-robin",
    "least-busy",
    "lowest-latency",
    "lowest-cost",
    "usage-based",
    "priority",
    "rate-limit-aware",
    "hybrid",
]
#: LiteLLM's routing_strategy values and what each means here.
LITELLM = {
    "simple-shuffle": "weighted-random",
    "least-busy": "least-busy",
    "latency-based-routing": "lowest-latency",
    "cost-based-routing": "lowest-cost",
    "usage-based-routing": "usage-based",
    "usage-based-routing-v2": "usage-based",
}


def test_registry_holds_exactly_the_canonical_names() -> None:
    assert sorted(REGISTRY) == sorted(CANONICAL)
    # The names the config layer checks at load are the ones the router implements.
    assert sorted(STRATEGY_NAMES) == sorted(REGISTRY)


def test_aliases_point_at_canonical_names() -> None:
    assert set(STRATEGY_ALIASES.values()) <= set(REGISTRY)
    assert not set(STRATEGY_ALIASES) & set(REGISTRY)
    assert strategy_names() == sorted({*CANONICAL, *LITELLM})


@pytest.mark.parametrize("name", CANONICAL)
def test_canonical_names_resolve(name: str) -> None:
    config = RoutingConfig(strategy=name)
    strategy = create_strategy(name, config, random.Random(0))
    assert type(strategy) is REGISTRY[name]
    assert 0 <= strategy.choose("g", deployments(3), states(3), request(), WALL) < 3


@pytest.mark.parametrize(("alias", "canonical"), sorted(LITELLM.items()))
def test_litellm_names_resolve(alias: str, canonical: str) -> None:
    strategy = create_strategy(alias, RoutingConfig(strategy=alias), random.Random(0))
    assert type(strategy) is REGISTRY[canonical]


@pytest.mark.parametrize("name", CANONICAL)
def test_strategies_have_slots(name: str) -> None:
    strategy = create_strategy(name, RoutingConfig(), random.Random(0))
    assert not hasattr(strategy, "__dict__")


def test_unknown_strategy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        RoutingConfig(strategy="nope")
