"""The corpus: LiteLLM configs in the shapes LiteLLM's documentation gives, each loaded as
written through ``turnout check-config`` (with its secrets set, and without) and through the
gateway's loader, with what each one maps to in turnout's terms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from turnout import Secret
from turnout.cli import main
from turnout.config.load import load_config
from turnout.config.providers import VertexAnthropicSettings
from turnout.config.server import GatewayConfig

CORPUS = Path(__file__).parent
_KEYS = (
    "OPENAI_API_KEY AZURE_API_KEY ANTHROPIC_API_KEY GEMINI_API_KEY VERTEX_TOKEN GROQ_API_KEY "
    "AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY TOGETHER_API_KEY REDIS_PASSWORD LITELLM_MASTER_KEY "
    "COHERE_API_KEY"
)
ENV = {name: f"corpus-{name.lower()}" for name in _KEYS.split()} | {
    "AZURE_API_BASE": "https://corpus.example.openai.azure.com",
    "REDIS_HOST": "redis.internal",
    "DATABASE_URL": "postgresql://turnout@db.internal/turnout",
}


def _deployments(config: GatewayConfig) -> list[tuple[str, str, str]]:
    return [(d.model_name, d.provider, d.model) for d in config.router.model_list]


def _ignored(config: GatewayConfig) -> set[str]:
    return {w.split(": ", 1)[0] for w in config.warnings if ": ignored: " in w}


def _providers(config: GatewayConfig) -> None:
    assert _deployments(config) == [
        ("gpt-4o", "openai", "gpt-4o"),
        ("gpt-4o", "azure", "gpt-4o-eu"),
        ("claude-sonnet", "anthropic", "claude-3-5-sonnet-20241022"),
        ("gemini-flash", "gemini", "gemini-1.5-flash"),
        ("gemini-pro", "gemini", "gemini-1.5-pro"),
        ("claude-vertex", "vertex_anthropic", "claude-sonnet-4@20250514"),
        ("claude-bedrock", "bedrock", "anthropic.claude-3-sonnet-20240229-v1:0"),
        ("llama", "groq", "llama-3.1-70b-versatile"),
        ("llama", "ollama", "llama3.1"),
        ("llama", "vllm", "meta-llama/Llama-3.1-8B-Instruct"),
        ("mixtral", "together", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
        ("text-embedding-3-small", "openai", "text-embedding-3-small"),
    ]
    deployments = config.router.model_list
    assert deployments[0].api_key == Secret(ENV["OPENAI_API_KEY"])
    assert (deployments[1].base_url, deployments[1].api_version) == (
        ENV["AZURE_API_BASE"],
        "2024-10-21",
    )
    assert deployments[2].params == {"max_tokens": 1024}
    assert deployments[5].settings == VertexAnthropicSettings(
        vertex_project="corpus-project", vertex_location="us-east5"
    )
    assert deployments[8].base_url == "http://127.0.0.1:11434"
    assert _ignored(config) == {"model_list[11].model_info.mode"}


def _load_balancing(config: GatewayConfig) -> None:
    east, west, openai = config.router.model_list
    assert (east.rpm, east.tpm, east.priority, west.max_parallel_requests) == (600, 100000, 1, 20)
    assert (openai.priority, openai.weight) == (2, 2)
    assert config.router.routing.strategy == "priority"  # simple-shuffle with order tiers
    assert config.router.retries.num_retries == 2


def _latency(config: GatewayConfig) -> None:
    anthropic, bedrock = config.router.model_list
    assert config.router.routing.strategy == "latency-based-routing"
    assert config.router.routing.latency_buffer == 0.5
    assert anthropic.tpm == 400000
    assert anthropic.timeouts != bedrock.timeouts  # each its own, the router's as default
    assert _ignored(config) == {"router_settings.routing_strategy_args.ttl"}


def _reliability(config: GatewayConfig) -> None:
    router = config.router
    assert router.retries.num_retries == 3
    assert router.fallbacks.general == {
        "gpt-4o": ["claude-3-5-sonnet", "gpt-4o-mini"],
        "*": ["gpt-4o-mini"],
    }
    assert router.fallbacks.context_window == {"gpt-4o-mini": ["gpt-4o-long"]}
    assert router.fallbacks.content_policy == {"claude-3-5-sonnet": ["gpt-4o"]}
    assert router.fallbacks.max_depth == 3
    assert (router.health.cooldown_time, router.health.allowed_fails) == (30.0, 2)
    assert router.model_list[2].cooldown_time == 0
    assert router.model_list[3].context_window == 128000
    policies = {"router_settings.retry_policy", "router_settings.allowed_fails_policy"}
    assert _ignored(config) == policies


def _litellm_settings(config: GatewayConfig) -> None:
    groq, o1, gpt = config.router.model_list
    assert (groq.drop_params, o1.drop_params, gpt.drop_params) == (True, False, True)
    assert gpt.unsupported_params == frozenset({"logit_bias"})
    assert config.router.retries.num_retries == 4
    assert config.router.fallbacks.general == {"o1": ["gpt-4o"]}
    assert _ignored(config) == {
        "litellm_settings.success_callback",
        "litellm_settings.callbacks",
        "litellm_settings.set_verbose",
    }


def _redis(config: GatewayConfig) -> None:
    state = config.router.state
    assert (state.backend, state.url) == ("redis", "redis://redis.internal:6379/0")
    assert state.password == Secret(ENV["REDIS_PASSWORD"])
    assert config.router.routing.strategy == "usage-based-routing-v2"
    assert _ignored(config) == {"litellm_settings.cache", "litellm_settings.cache_params"}


def _proxy(config: GatewayConfig) -> None:
    assert _deployments(config) == [("gpt-4o-mini", "openai", "gpt-4o-mini")]
    assert config.server.master_key == Secret(ENV["LITELLM_MASTER_KEY"])
    assert config.store.url == ENV["DATABASE_URL"]
    assert _ignored(config) == {
        "general_settings.alerting",
        "general_settings.background_health_checks",
        "general_settings.health_check_interval",
        "general_settings.disable_spend_logs",
        "environment_variables.SLACK_WEBHOOK_URL",
    }


def _aliases_tags(config: GatewayConfig) -> None:
    paid, free = config.router.model_list
    assert (paid.id, free.id) == ("gpt-4o-paid", "17")
    assert (paid.tags, free.tags) == (frozenset({"paid"}), frozenset({"free", "default"}))
    assert paid.context_window == 128000
    assert paid.input_cost_per_token == 0.0000025
    assert free.unsupported_params == frozenset({"tools"})
    assert config.router.aliases == {"gpt-4": "gpt-4o", "gpt-4-hidden": "gpt-4o"}
    assert _ignored(config) == {
        "model_list[0].model_info.mode",
        "model_list[0].model_info.base_model",
        "model_list[1].model_info.supports_vision",
    }


def _wildcards(config: GatewayConfig) -> None:
    assert _deployments(config) == [("gpt-4o", "openai", "gpt-4o")]
    assert [line.split(": ")[0] for line in config.skipped] == [
        "model_list[0]",
        "model_list[1].litellm_params.model",
    ]
    assert "provider 'cohere' is not supported" in config.skipped[1]
    assert config.router.fallbacks.general == {}


def _credentials(config: GatewayConfig) -> None:
    big, mini = config.router.model_list
    assert big.base_url == mini.base_url == "https://eu.example.openai.azure.com"
    assert big.api_key == mini.api_key == Secret(ENV["AZURE_API_KEY"])
    assert (big.api_version, mini.api_version) == ("2024-10-21", "2025-01-01-preview")


#: file -> (deployments, model groups, strategy as check-config reports them, what it maps to)
EXPECTED: dict[str, tuple[int, int, str, Callable[[GatewayConfig], None]]] = {
    "providers.yaml": (12, 9, "weighted-random", _providers),
    "load_balancing.yaml": (3, 1, "priority", _load_balancing),
    "latency_routing.yaml": (2, 1, "latency-based-routing", _latency),
    "reliability.yaml": (4, 4, "weighted-random", _reliability),
    "litellm_settings.yaml": (3, 3, "weighted-random", _litellm_settings),
    "redis_and_cache.yaml": (1, 1, "usage-based-routing-v2", _redis),
    "proxy_settings.yaml": (1, 1, "weighted-random", _proxy),
    "aliases_tags_model_info.yaml": (2, 1, "weighted-random", _aliases_tags),
    "wildcards_and_unsupported.yaml": (1, 1, "weighted-random", _wildcards),
    "credentials.yaml": (2, 2, "weighted-random", _credentials),
}


#: The variables each file needs where turnout uses the value (those of keys it ignores or
#: of skipped deployments are not needed: no note names them).
NEEDED: dict[str, list[str]] = {
    "providers.yaml": [
        "OPENAI_API_KEY",
        "AZURE_API_BASE",
        "AZURE_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "VERTEX_TOKEN",
        "VERTEX_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GROQ_API_KEY",
        "TOGETHER_API_KEY",
        "OPENAI_API_KEY",
    ],
    "load_balancing.yaml": ["AZURE_API_KEY", "AZURE_API_KEY", "OPENAI_API_KEY"],
    "latency_routing.yaml": ["ANTHROPIC_API_KEY"],
    "reliability.yaml": ["OPENAI_API_KEY"] * 2 + ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"],
    "litellm_settings.yaml": ["GROQ_API_KEY", "OPENAI_API_KEY", "OPENAI_API_KEY"],
    "redis_and_cache.yaml": ["OPENAI_API_KEY", "REDIS_HOST", "REDIS_PASSWORD"],
    # An unset DATABASE_URL is a warning: the key store stays where it was (litellm_store).
    "proxy_settings.yaml": ["OPENAI_API_KEY", "LITELLM_MASTER_KEY"],
    "aliases_tags_model_info.yaml": ["OPENAI_API_KEY", "OPENAI_API_KEY"],
    "wildcards_and_unsupported.yaml": ["OPENAI_API_KEY"],
    "credentials.yaml": ["AZURE_API_KEY"],
}


def test_the_corpus_is_covered() -> None:
    assert sorted(path.name for path in CORPUS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_config_loads_as_written(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployments, groups, strategy, check = EXPECTED[name]
    path = str(CORPUS / name)
    summary = f"OK (litellm format): {deployments} deployments in {groups} model groups, "
    summary += f"strategy {strategy}"
    for variable in ENV:
        monkeypatch.delenv(variable, raising=False)
    # Without its secrets: it checks, each variable it uses named in a note.
    assert main(["check-config", path]) == 0
    out, err = capsys.readouterr()
    assert summary in out
    assert "error:" not in err
    assert all(f"environment variable {variable} is not set" in out for variable in NEEDED[name])
    assert out.count("note: ") == len(NEEDED[name])
    # With them: no note, and the gateway's loader gives what the file says.
    for variable, value in ENV.items():
        monkeypatch.setenv(variable, value)
    assert main(["check-config", "--require-env", path]) == 0
    out, _ = capsys.readouterr()
    assert summary in out and "note:" not in out
    check(load_config(path))
