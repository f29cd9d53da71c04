"""The built-in price table: lookups, filling deployments, and what the router does with it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from turnout import Deployment, Request, Router, RouterConfig, RoutingConfig
from turnout.errors import ContextWindowExceededError
from turnout.pricing.lookup import known_model, with_known_prices
from turnout.pricing.table import ANTHROPIC, BEDROCK, FAMILIES, GEMINI, OPENAI, ModelPrice
from turnout.testing import SimulatedProvider

#: A provider whose models each family's table prices.
FAMILY_PROVIDER = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "bedrock": "bedrock",
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "together": "together",
    "fireworks": "fireworks",
}


@pytest.mark.parametrize(
    ("provider", "model", "family", "key"),
    [
        ("openai", "gpt-4o", "openai", "gpt-4o"),
        ("openai", "GPT-4o", "openai", "gpt-4o"),
        ("openai", "gpt-4o-2024-08-06", "openai", "gpt-4o"),
        ("openai", "gpt-4o-2024-05-13", "openai", "gpt-4o-2024-05-13"),
        ("openai", "gpt-4o-mini-2024-07-18", "openai", "gpt-4o-mini"),
        ("openai", "gpt-4.1-nano-2025-04-14", "openai", "gpt-4.1-nano"),
        ("openai", "gpt-4-0613", "openai", "gpt-4"),
        ("openai", "o1-2024-12-17", "openai", "o1"),
        ("openai", "o1-preview", "openai", "o1"),
        ("openai", "gpt-5-chat-latest", "openai", "gpt-5"),
        ("anthropic", "claude-3-5-sonnet-20241022", "anthropic", "claude-3-5-sonnet"),
        ("anthropic", "claude-3-7-sonnet-latest", "anthropic", "claude-3-7-sonnet"),
        ("anthropic", "claude-opus-4-20250514", "anthropic", "claude-opus-4"),
        ("anthropic", "claude-opus-4-1-20250805", "anthropic", "claude-opus-4-1"),
        ("anthropic", "claude-sonnet-4-5@20250929", "anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-3-5-sonnet-v2@20241022", "anthropic", "claude-3-5-sonnet"),
        ("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic", "claude-3-5-sonnet"),
        ("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic", "claude-3-5-haiku"),
        (
            "bedrock",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic",
            "claude-sonnet-4-5",
        ),
        (
            "bedrock",
            "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "anthropic",
            "claude-3-7-sonnet",
        ),
        ("bedrock", "amazon.nova-pro-v1:0", "bedrock", "amazon.nova-pro"),
        ("bedrock", "apac.amazon.nova-micro-v1:0", "bedrock", "amazon.nova-micro"),
        ("bedrock", "amazon.titan-embed-text-v2:0", "bedrock", "amazon.titan-embed-text-v2"),
        ("openrouter", "openai/gpt-4o", "openai", "gpt-4o"),
        ("openrouter", "openai/gpt-4o-mini-2024-07-18", "openai", "gpt-4o-mini"),
        ("openrouter", "anthropic/claude-3.5-sonnet", "anthropic", "claude-3-5-sonnet"),
        ("openrouter", "anthropic/claude-sonnet-4.5", "anthropic", "claude-sonnet-4-5"),
        ("openrouter", "google/gemini-2.5-pro", "gemini", "gemini-2.5-pro"),
        ("azure", "gpt-4o", "azure", "gpt-4o"),
        ("gemini", "models/gemini-2.0-flash-001", "gemini", "gemini-2.0-flash"),
        ("gemini", "gemini-2.5-flash-preview-05-20", "gemini", "gemini-2.5-flash"),
        ("groq", "openai/gpt-oss-120b", "groq", "gpt-oss-120b"),
        (
            "together",
            "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo",
            "together",
            "meta-llama-3.1-70b-instruct-turbo",
        ),
        (
            "fireworks",
            "accounts/fireworks/models/llama-v3p3-70b-instruct",
            "fireworks",
            "llama-v3p3-70b-instruct",
        ),
        ("mistral", "mistral-large-2411", "mistral", "mistral-large-2411"),
    ],
)
def test_lookup_normalises_names(provider: str, model: str, family: str, key: str) -> None:
    assert known_model(provider, model) is FAMILIES[family][key]


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        # Variants are other models: never the base model's prices.
        ("openai", "gpt-4o-search-preview"),
        ("openai", "gpt-4o-mini-tts"),
        ("openai", "o1-mini"),
        ("openai", "o4-mini-deep-research"),
        ("openai", "gpt-5.4-pro"),
        ("gemini", "gemini-2.5-flash-image"),
        # Another version is another model: claude-opus-4 must not price claude-opus-4-9.
        ("anthropic", "claude-opus-4-9"),
        ("openai", "gpt-4.5-preview"),
        ("openai", "gpt-5.9"),
        ("openai", "gpt-3.5-turbo-16k"),
        # Only whole names or names at a separator: gpt-4 is not gpt-4o's prefix.
        ("openai", "gpt-4ox"),
        ("openai", "ft:gpt-4o-mini-2024-07-18:acme::abc123"),
        ("bedrock", "amazon.titan-embed-text-v1"),
        ("bedrock", "meta.llama3-70b-instruct-v1:0"),
        ("openrouter", "openai/gpt-4o:free"),
        ("openrouter", "gpt-4o"),
        ("openrouter", "meta-llama/llama-3.3-70b-instruct"),
        ("mistral", "mistral-large-latest"),
        ("azure", "my-team-gpt4o-deployment"),
        ("deepseek", "deepseek-chat"),
    ],
)
def test_unknown_models_get_no_price(provider: str, model: str) -> None:
    assert known_model(provider, model) is None


@pytest.mark.parametrize("provider", ["vllm", "ollama", "openai-compatible", "simulated", "nope"])
def test_self_hosted_and_unknown_providers_have_no_built_in_prices(provider: str) -> None:
    assert known_model(provider, "gpt-4o") is None
    assert known_model(provider, "claude-3-5-sonnet-20241022") is None


def test_a_longer_key_is_never_shadowed_by_its_prefix() -> None:
    """For every pair like gpt-4o / gpt-4o-mini, the longer name (and its dated snapshots) gets
    its own prices, and the shorter one its own."""
    pairs = 0
    for family, table in FAMILIES.items():
        provider = FAMILY_PROVIDER[family]
        for short in table:
            for long in table:
                if long != short and long.startswith(short):
                    pairs += 1
                    assert known_model(provider, long) is table[long]
                    assert known_model(provider, f"{long}-2031-01-02") is table[long]
                    assert known_model(provider, short) is table[short]
    assert pairs >= 5  # gpt-4/gpt-4o, gpt-4o/gpt-4o-mini, gpt-4.1/-mini, claude-opus-4/-4-1, ...


def test_longest_matching_key_wins() -> None:
    # Both gemini-2.5-flash and gemini-2.5-flash-lite extend to this name's prefixes.
    assert (
        known_model("gemini", "gemini-2.5-flash-lite-preview-06-17")
        is GEMINI["gemini-2.5-flash-lite"]
    )
    assert known_model("openai", "gpt-4o-mini-2024-07-18") is OPENAI["gpt-4o-mini"]
    assert OPENAI["gpt-4o-mini"] != OPENAI["gpt-4o"]


def test_every_key_finds_itself_from_its_provider() -> None:
    for family, table in FAMILIES.items():
        for key, entry in table.items():
            assert key == key.lower().strip()
            assert known_model(FAMILY_PROVIDER[family], key) is entry, (family, key)
    for key, entry in ANTHROPIC.items():
        assert known_model("bedrock", f"us.anthropic.{key}-v1:0") is entry


def test_every_table_entry_is_sane() -> None:
    count = 0
    for family, table in FAMILIES.items():
        for key, entry in table.items():
            count += 1
            where = f"{family}/{key}"
            assert isinstance(entry, ModelPrice)
            assert entry.input > 0, where
            if "embed" in key:
                assert entry.output == 0, where  # embeddings bill input only
            else:
                assert entry.output >= entry.input, where
            # Per token, not per million: no model costs a dollar a token or less than 1e-9.
            assert 1e-9 <= entry.input < 1e-3, where
            assert entry.output < 1e-3, where
            if entry.cached_input is not None:
                assert 0 < entry.cached_input <= entry.input, where
            if entry.context_window is not None:
                assert entry.context_window > 0, where
    assert count >= 60


def test_azure_prices_are_openais_where_both_list_a_model() -> None:
    for key, entry in FAMILIES["azure"].items():
        assert (entry.input, entry.output) == (OPENAI[key].input, OPENAI[key].output)


# ---- filling deployments ------------------------------------------------------------------------


def test_fills_every_unset_field_and_keeps_the_id() -> None:
    deployment = Deployment(model_name="chat", model="gpt-4o-mini-2024-07-18", provider="openai")
    filled = with_known_prices(deployment)
    assert filled is not deployment
    assert filled.id == deployment.id
    assert filled.input_cost_per_token == pytest.approx(0.15e-6)
    assert filled.output_cost_per_token == pytest.approx(0.60e-6)
    assert filled.cached_input_cost_per_token == pytest.approx(0.075e-6)
    assert filled.context_window == 128_000


@pytest.mark.parametrize(
    "field",
    [
        "input_cost_per_token",
        "output_cost_per_token",
        "cached_input_cost_per_token",
        "context_window",
    ],
)
def test_config_values_always_win(field: str) -> None:
    value = 7 if field == "context_window" else 3e-6
    fields: dict[str, Any] = {field: value}
    deployment = Deployment(model_name="chat", model="gpt-4o", provider="openai", **fields)
    filled = with_known_prices(deployment)
    assert getattr(filled, field) == value
    others = {
        "input_cost_per_token": OPENAI["gpt-4o"].input,
        "output_cost_per_token": OPENAI["gpt-4o"].output,
        "cached_input_cost_per_token": OPENAI["gpt-4o"].cached_input,
        "context_window": OPENAI["gpt-4o"].context_window,
    }
    for name, expected in others.items():
        if name != field:
            assert getattr(filled, name) == expected, name


def test_a_free_deployment_stays_free() -> None:
    deployment = Deployment(
        model_name="chat",
        model="gpt-4o",
        provider="openai",
        input_cost_per_token=0.0,
        output_cost_per_token=0.0,
    )
    filled = with_known_prices(deployment)
    assert (filled.input_cost_per_token, filled.output_cost_per_token) == (0.0, 0.0)
    # The list's cache price (1.25e-6) would exceed the configured input price: not filled.
    assert filled.cached_input_cost_per_token is None
    assert filled.context_window == 128_000


def test_same_object_when_nothing_changes() -> None:
    unknown = Deployment(model_name="chat", model="my-fine-tune", provider="openai")
    assert with_known_prices(unknown) is unknown
    self_hosted = Deployment(model_name="chat", model="gpt-4o", provider="vllm")
    assert with_known_prices(self_hosted) is self_hosted
    complete = Deployment(
        model_name="chat",
        model="gpt-4o",
        provider="openai",
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        cached_input_cost_per_token=5e-7,
        context_window=1000,
    )
    assert with_known_prices(complete) is complete
    # Known model, but the table has nothing for the one unset field.
    nova = Deployment(
        model_name="chat",
        model="amazon.nova-pro-v1:0",
        provider="bedrock",
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        cached_input_cost_per_token=5e-7,
    )
    assert BEDROCK["amazon.nova-pro"].context_window is None
    assert with_known_prices(nova) is nova


# ---- the router uses them -----------------------------------------------------------------------


def _router(*deployments: Deployment, strategy: str = "weighted-random") -> Router:
    config = RouterConfig(model_list=deployments, routing=RoutingConfig(strategy=strategy))
    return Router(config, {"openai": SimulatedProvider()})


def _chat(words: int = 5) -> Request:
    return Request(model="chat", body={"messages": [{"role": "user", "content": "word " * words}]})


async def test_reported_cost_uses_the_table_price() -> None:
    router = _router(Deployment(model_name="chat", model="gpt-4o-mini", provider="openai"))
    response = await router.complete(_chat())
    usage = response.usage
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert response.cost == pytest.approx(
        usage.prompt_tokens * 0.15e-6 + usage.completion_tokens * 0.60e-6
    )


async def test_reported_cost_uses_the_configured_price_over_the_table() -> None:
    router = _router(
        Deployment(
            model_name="chat", model="gpt-4o-mini", provider="openai", input_cost_per_token=1e-3
        )
    )
    response = await router.complete(_chat())
    usage = response.usage
    assert response.cost == pytest.approx(
        usage.prompt_tokens * 1e-3 + usage.completion_tokens * 0.60e-6
    )


async def test_lowest_cost_routing_sees_table_prices() -> None:
    router = _router(
        Deployment(model_name="chat", model="gpt-4o", provider="openai", id="big"),
        Deployment(model_name="chat", model="gpt-4o-mini", provider="openai", id="small"),
        strategy="lowest-cost",
    )
    chosen = {(await router.complete(_chat())).deployment.id for _ in range(5)}
    assert chosen == {"small"}


async def test_the_context_window_filter_uses_table_windows() -> None:
    # gpt-4's published window is 8,192 tokens; the simulated upstream itself has no limit.
    narrow = Deployment(model_name="chat", model="gpt-4-0613", provider="openai", id="narrow")
    wide = Deployment(model_name="chat", model="gpt-4.1", provider="openai", id="wide")
    long_prompt = _chat(words=12_000)
    assert long_prompt.prompt_tokens > 8_192
    router = _router(narrow, wide)
    assert {(await router.complete(long_prompt)).deployment.id for _ in range(4)} == {"wide"}
    with pytest.raises(ContextWindowExceededError):
        await _router(narrow).complete(long_prompt)
    # A configured window wins over the table's.
    roomy = Deployment(
        model_name="chat", model="gpt-4-0613", provider="openai", context_window=1_000_000
    )
    assert (await _router(roomy).complete(long_prompt)).deployment.model == "gpt-4-0613"


def test_the_router_keeps_the_configured_deployments_in_its_config() -> None:
    deployment = Deployment(model_name="chat", model="gpt-4o", provider="openai")
    router = _router(deployment)
    assert router.config.model_list == (deployment,)
    assert re.fullmatch(r"[0-9a-f]{16}", deployment.id)
