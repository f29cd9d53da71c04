from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from turnout import Secret
from turnout.config.litellm import PROVIDERS, convert_litellm, import_litellm
from turnout.config.load import load_config, parse_config
from turnout.config.providers import AzureSettings, BedrockSettings, GeminiSettings, OpenAISettings
from turnout.config.router import Timeouts
from turnout.config.server import GatewayConfig
from turnout.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "litellm-config.yaml"

#: Only the variables of the keys turnout uses: the ignored ones (REDIS_HOST, DATABASE_URL, ...)
#: must not be needed.
EXAMPLE_ENV = {
    "AZURE_API_KEY_EU": "azure-eu-key",
    "AZURE_API_KEY_CA": "azure-ca-key",
    "OPENAI_API_KEY": "sk-openai",
    "ANTHROPIC_API_KEY": "sk-ant",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "LITELLM_MASTER_KEY": "sk-1234",
    "REDIS_HOST": "redis.internal",
    "REDIS_PASSWORD": "redis-secret-password",
    "REDIS_PORT": "6380",
}


def _paths(warnings: tuple[str, ...] | list[str]) -> list[str]:
    return [warning.split(": ", 1)[0] for warning in warnings]


def _load(data: dict[str, Any], environ: dict[str, str] | None = None) -> GatewayConfig:
    config = parse_config(data, environ=environ or {})
    assert config.format == "litellm"
    return config


def _one(params: dict[str, Any], **entry: Any) -> dict[str, Any]:
    return {"model_list": [{"model_name": "chat", "litellm_params": params, **entry}]}


# -- the realistic example --------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> GatewayConfig:
    return load_config(EXAMPLE, environ=EXAMPLE_ENV)


def test_example_deployments(example: GatewayConfig) -> None:
    deployments = example.router.model_list
    assert [(d.model_name, d.provider, d.model) for d in deployments] == [
        ("gpt-4o", "azure", "gpt-4o-eu"),
        ("gpt-4o", "azure", "gpt-4o-ca"),
        ("gpt-4o", "openai", "gpt-4o"),
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("claude-3-5-sonnet", "anthropic", "claude-3-5-sonnet-20240620"),
        ("bedrock-claude", "bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ]
    eu, ca, openai, mini, claude, bedrock = deployments
    assert eu.id == "gpt-4o-eu"
    assert eu.base_url == "https://my-endpoint-europe.openai.azure.com/"
    assert eu.api_key == Secret("azure-eu-key")
    assert eu.api_version == "2024-10-21"
    assert (eu.rpm, eu.tpm, eu.context_window) == (6, 240000, 128000)
    assert ca.api_key == Secret("azure-ca-key")
    assert (ca.rpm, ca.tpm) == (6, 240000)
    assert openai.api_key == Secret("sk-openai")
    assert (openai.rpm, openai.tpm) == (1440, 2000000)
    # Its own per-call limits; the others take router_settings.timeout for every call.
    assert openai.timeouts == Timeouts(request=30.0, first_token=10.0, idle=10.0)
    assert eu.timeouts == claude.timeouts == Timeouts(request=30.0, first_token=30.0, idle=30.0)
    assert mini.params == {"temperature": 0.2}
    assert mini.tags == frozenset({"free", "default"})
    assert claude.input_cost_per_token == 0.000003
    assert claude.output_cost_per_token == 0.000015
    assert bedrock.api_key is None
    assert bedrock.params == {}
    assert bedrock.settings == BedrockSettings(
        aws_region_name="us-east-1",
        aws_access_key_id=Secret("AKIAEXAMPLE"),
        aws_secret_access_key=Secret("aws-secret"),
    )
    assert "aws-secret" not in repr(bedrock)


def test_example_router_settings(example: GatewayConfig) -> None:
    router = example.router
    assert router.routing.strategy == "usage-based-routing-v2"
    assert router.retries.num_retries == 3  # router_settings wins over litellm_settings' 5
    # router_settings.timeout is a per-call limit (above); the overall deadline is turnout's.
    assert router.timeout == 600.0
    assert router.health.allowed_fails == 3
    assert router.health.cooldown_time == 30.0
    assert router.fallbacks.general == {
        "gpt-4o": ["claude-3-5-sonnet"],
        "claude-3-5-sonnet": ["gpt-4o-mini"],
    }
    assert router.fallbacks.context_window == {"gpt-4o-mini": ["gpt-4o"]}
    assert router.fallbacks.content_policy == {"claude-3-5-sonnet": ["gpt-4o"]}
    assert router.aliases == {"gpt-4": "gpt-4o", "claude": "claude-3-5-sonnet"}
    assert example.server.master_key == Secret("sk-1234")


def test_example_lists_every_ignored_key_exactly_once_with_its_path(
    example: GatewayConfig,
) -> None:
    expected = [
        "model_list[2].litellm_params.max_retries",
        "router_settings.enable_pre_call_checks",
        "router_settings.model_group_alias.claude.hidden",
        "litellm_settings.num_retries",
        "litellm_settings.request_timeout",
        "litellm_settings.callbacks",
        "litellm_settings.success_callback",
        "general_settings.database_url",
        "general_settings.alerting",
        "environment_variables.REDIS_HOST",
    ]
    assert Counter(_paths(example.warnings)) == Counter(expected)
    assert _paths(example.skipped) == ["model_list[6]"]  # the wildcard entry


def test_example_warnings_explain_themselves(example: GatewayConfig) -> None:
    by_path = dict(warning.split(": ", 1) for warning in example.warnings)
    assert "litellm_settings.drop_params" not in by_path
    assert "/metrics" in by_path["litellm_settings.callbacks"]
    assert "router_settings.num_retries" in by_path["litellm_settings.num_retries"]
    assert "wildcard" in example.skipped[0]
    assert "set them in the environment" in by_path["environment_variables.REDIS_HOST"]
    assert by_path["router_settings.model_group_alias.claude.hidden"] == (
        "not supported yet: the alias is not hidden"
    )


def test_example_needs_only_the_variables_of_the_keys_turnout_uses() -> None:
    environ = {k: v for k, v in EXAMPLE_ENV.items() if k != "AZURE_API_KEY_CA"}
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, environ=environ)
    assert str(caught.value) == (
        "model_list[1].litellm_params.api_key: environment variable AZURE_API_KEY_CA is not set"
    )


def test_convert_litellm_returns_plain_parts() -> None:
    router, server, warnings = convert_litellm(
        {
            "model_list": [{"model_name": "chat", "litellm_params": {"model": "azure/gpt-4o"}}],
            "router_settings": {"num_retries": 1, "redis_host": "localhost"},
            "general_settings": {"master_key": "sk-1234"},
        }
    )
    assert router == {
        "model_list": [{"model_name": "chat", "provider": "azure", "model": "gpt-4o"}],
        "retries": {"num_retries": 1},
        "state": {"backend": "redis", "url": "redis://localhost:6379/0"},
    }
    assert server == {"master_key": "sk-1234"}
    assert _paths(warnings) == []


# -- model_list -------------------------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "provider"), sorted(PROVIDERS.items()))
def test_provider_prefixes_map_to_turnout_providers(prefix: str, provider: str) -> None:
    # Vertex AI's models named <publisher>/<model> are partners' (skipped: not Gemini's API).
    model = "gemini-model-1" if prefix == "vertex_ai" else "some/model-1"
    params: dict[str, Any] = {"model": f"{prefix}/{model}"}
    if prefix == "vertex_ai":
        params["api_base"] = "https://us-central1-aiplatform.googleapis.com"
    config = _load(_one(params))
    deployment = config.router.model_list[0]
    assert (deployment.provider, deployment.model) == (provider, model)
    assert config.warnings == ()


def test_provider_table_covers_the_documented_prefixes() -> None:
    assert PROVIDERS == {
        "openai": "openai",
        "azure": "azure",
        "azure_ai": "azure",
        "anthropic": "anthropic",
        "gemini": "gemini",
        "vertex_ai": "gemini",
        "bedrock": "bedrock",
        "groq": "groq",
        "mistral": "mistral",
        "deepseek": "deepseek",
        "together_ai": "together",
        "fireworks_ai": "fireworks",
        "openrouter": "openrouter",
        "hosted_vllm": "vllm",
        "vllm": "vllm",
        "ollama": "ollama",
        "ollama_chat": "ollama",
        "text-completion-openai": "openai",
        "openai_like": "openai",
        "custom_openai": "openai",
    }


def test_bare_model_name_is_openai() -> None:
    config = _load(_one({"model": "gpt-4o"}))
    assert (config.router.model_list[0].provider, config.router.model_list[0].model) == (
        "openai",
        "gpt-4o",
    )
    assert config.warnings == ()


def test_bare_name_of_another_family_is_openai_with_a_warning() -> None:
    config = _load(_one({"model": "claude-3-haiku-20240307"}))
    assert config.router.model_list[0].provider == "openai"
    assert _paths(config.warnings) == ["model_list[0].litellm_params.model"]


def test_vertex_without_api_base_warns() -> None:
    config = _load(_one({"model": "vertex_ai/gemini-1.5-pro", "vertex_project": "p"}))
    assert config.router.model_list[0].provider == "gemini"
    assert config.router.model_list[0].params == {}
    assert config.router.model_list[0].settings == GeminiSettings(vertex_project="p")
    [warning] = config.warnings
    assert warning.startswith("model_list[0].litellm_params.model: vertex_ai is served by")
    assert "vertex_project" in warning


def test_an_unsupported_provider_is_skipped_naming_its_path() -> None:
    data = _one({"model": "huggingface/meta-llama/Llama-3-8B"})
    data["model_list"].append({"model_name": "b", "litellm_params": {"model": "gpt-4o"}})
    config = _load(data)
    assert [d.model_name for d in config.router.model_list] == ["b"]
    [skipped] = config.skipped
    assert skipped.startswith(
        "model_list[0].litellm_params.model: provider 'huggingface' is not supported"
    )


def test_custom_llm_provider_names_the_provider() -> None:
    config = _load(_one({"model": "my-org/my-model", "custom_llm_provider": "openai"}))
    deployment = config.router.model_list[0]
    assert (deployment.provider, deployment.model) == ("openai", "my-org/my-model")
    config = _load(_one({"model": "together_ai/llama", "custom_llm_provider": "together_ai"}))
    assert (config.router.model_list[0].provider, config.router.model_list[0].model) == (
        "together",
        "llama",
    )


def test_deployment_fields_map() -> None:
    params = {
        "model": "azure/gpt-4o",
        "api_key": "k",
        "api_base": "https://x.example",
        "api_version": "2024-10-21",
        "rpm": 10,
        "tpm": 1000,
        "weight": 2,
        "order": 1,
        "timeout": 60,
        "stream_timeout": 5,
        "max_parallel_requests": 8,
        "input_cost_per_token": 0.001,
        "output_cost_per_token": 0.002,
        "tags": ["a", "b"],
        "cooldown_time": 0,
    }
    info = {"id": "dep-1", "max_input_tokens": 8192}
    config = _load(
        {**_one(params, model_info=info), "router_settings": {"routing_strategy": "least-busy"}}
    )
    d = config.router.model_list[0]
    assert d.id == "dep-1"
    assert d.api_key == Secret("k")
    assert d.base_url == "https://x.example"
    assert d.api_version == "2024-10-21"
    assert (d.rpm, d.tpm, d.weight, d.priority) == (10, 1000, 2.0, 1)
    assert (d.timeouts.request, d.timeouts.first_token) == (60.0, 5.0)
    assert d.max_parallel_requests == 8
    assert (d.input_cost_per_token, d.output_cost_per_token) == (0.001, 0.002)
    assert d.tags == frozenset({"a", "b"})
    assert d.cooldown_time == 0.0
    assert d.context_window == 8192
    assert d.params == {}
    # order under a strategy other than simple-shuffle: the tiers are not applied
    assert _paths(config.warnings) == ["model_list[0].litellm_params.order"]


def test_request_parameters_go_to_params_and_settings_to_settings_without_warnings() -> None:
    request = {
        "temperature": 0.1,
        "max_tokens": 100,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["\n"],
        "frequency_penalty": 0.5,
        "presence_penalty": 0.5,
        "response_format": {"type": "json_object"},
        "user": "u",
    }
    provider = {
        "extra_headers": {"X-Team": "a"},
        "extra_body": {"safe": True},
        "aws_region_name": "eu-west-1",
        "aws_access_key_id": "AKIA",
        "aws_secret_access_key": "secret-1",
        "aws_session_token": "token-1",
        "aws_bedrock_runtime_endpoint": "https://bedrock.example",
    }
    config = _load(_one({"model": "bedrock/x", **request, **provider}))
    [deployment] = config.router.model_list
    assert config.warnings == ()
    assert deployment.params == request
    assert deployment.settings == BedrockSettings(
        extra_headers={"X-Team": "a"},
        extra_body={"safe": True},
        aws_region_name="eu-west-1",
        aws_access_key_id=Secret("AKIA"),
        aws_secret_access_key=Secret("secret-1"),
        aws_session_token=Secret("token-1"),
        aws_bedrock_runtime_endpoint="https://bedrock.example",
    )
    vertex = _load(
        _one(
            {
                "model": "vertex_ai/gemini-1.5-pro",
                "api_base": "https://v.example",
                "vertex_project": "p",
                "vertex_location": "europe-west4",
            }
        )
    )
    assert vertex.warnings == ()
    assert vertex.router.model_list[0].settings == GeminiSettings(
        vertex_project="p", vertex_location="europe-west4"
    )
    openai = _load(_one({"model": "openai/gpt-4o", "organization": "org-1"}))
    assert openai.router.model_list[0].settings == OpenAISettings(organization="org-1")


def test_other_litellm_params_are_ignored_with_their_paths() -> None:
    params = {
        "model": "openai/gpt-4o",
        "max_retries": 1,
        "tag_regex": ["^x"],
        "region_name": "eu",
        "max_budget": 10,
        "budget_duration": "1d",
        "mystery": 1,
    }
    config = _load(_one(params, extra_key=1, model_info={"mode": "chat", "base_model": "x"}))
    assert Counter(_paths(config.warnings)) == Counter(
        [
            "model_list[0].extra_key",
            *(f"model_list[0].litellm_params.{k}" for k in params if k != "model"),
            "model_list[0].model_info.mode",
            "model_list[0].model_info.base_model",
        ]
    )
    assert all(": ignored: " in warning for warning in config.warnings)


def test_azure_ad_tokens_are_kept_as_secrets_for_the_adapter() -> None:
    config = _load(_one({"model": "azure/gpt-4o", "azure_ad_token": "eyJ-token"}))
    [deployment] = config.router.model_list
    assert deployment.settings == AzureSettings(azure_ad_token=Secret("eyJ-token"))
    assert "eyJ-token" not in repr(deployment)
    assert config.warnings == ()


def test_model_info_costs_fill_in_but_litellm_params_win() -> None:
    config = _load(
        _one(
            {"model": "gpt-4o", "input_cost_per_token": 0.5},
            model_info={"input_cost_per_token": 0.1, "output_cost_per_token": 0.2, "id": 42},
        )
    )
    d = config.router.model_list[0]
    assert (d.input_cost_per_token, d.output_cost_per_token, d.id) == (0.5, 0.2, "42")
    assert _paths(config.warnings) == ["model_list[0].model_info.input_cost_per_token"]


def test_wildcards_are_skipped_and_indices_follow() -> None:
    data: dict[str, Any] = {
        "model_list": [
            {"model_name": "*", "litellm_params": {"model": "*"}},
            {"model_name": "chat", "litellm_params": {"model": "gpt-4o", "rpm": "lots"}},
        ]
    }
    with pytest.raises(ConfigError) as caught:
        _load(data)
    assert str(caught.value).startswith("model_list[1].litellm_params.rpm: Expected `int")
    data["model_list"][1]["litellm_params"]["rpm"] = 5
    config = _load(data)
    assert [d.model_name for d in config.router.model_list] == ["chat"]
    [skipped] = config.skipped
    assert skipped.startswith("model_list[0]: skipped: wildcard '*'")


def test_a_list_of_only_wildcards_is_an_error() -> None:
    data = {
        "model_list": [
            {"model_name": "openai/*", "litellm_params": {"model": "openai/*"}},
            {"model_name": "anthropic/*", "litellm_params": {"model": "anthropic/*"}},
        ]
    }
    with pytest.raises(ConfigError, match=r"^model_list: every entry is a wildcard \(openai/\*"):
        _load(data)


def test_missing_litellm_params_or_model_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"^model_list\[0\]\.litellm_params: missing"):
        _load({"model_list": [{"model_name": "a"}], "router_settings": {}})
    with pytest.raises(ConfigError, match=r"^model_list\[0\]\.litellm_params: missing"):
        _load(_one({"api_key": "k"}))
    with pytest.raises(ConfigError, match=r"^model_list\[0\]\.litellm_params\.model: expected"):
        _load(_one({"model": 3}))


def test_missing_model_name_is_named_in_litellm_terms() -> None:
    data = {"model_list": [{"litellm_params": {"model": "gpt-4o"}}]}
    with pytest.raises(ConfigError, match=r"^model_list\[0\]: Object missing required field"):
        _load(data)


# -- credential_list --------------------------------------------------------------------------


def test_credentials_fill_the_deployment_and_its_own_values_win() -> None:
    data = {
        "credential_list": [
            {
                "credential_name": "azure-eu",
                "credential_values": {
                    "api_key": "os.environ/AZURE_KEY",
                    "api_base": "https://cred.example",
                    "api_version": "2024-02-01",
                    "aws_region_name": "eu-west-1",
                    "tenant_id": "t",
                },
                "credential_info": {"description": "EU"},
            },
            {"credential_name": "unused", "credential_values": {"api_key": "x"}},
        ],
        "model_list": [
            {
                "model_name": "chat",
                "litellm_params": {
                    "model": "azure/gpt-4o",
                    "litellm_credential_name": "azure-eu",
                    "api_version": "2025-01-01",
                },
            },
            {
                "model_name": "chat",
                "litellm_params": {"model": "azure/gpt-4o-2", "litellm_credential_name": "nope"},
            },
        ],
    }
    config = _load(data, environ={"AZURE_KEY": "from-env"})
    first, second = config.router.model_list
    assert first.api_key == Secret("from-env")
    assert first.base_url == "https://cred.example"
    assert first.api_version == "2025-01-01"
    # The credential's Bedrock setting is not one of Azure's: a credential may serve several.
    assert first.params == {}
    assert first.settings == AzureSettings()
    assert second.api_key is None
    assert Counter(_paths(config.warnings)) == Counter(
        [
            "credential_list[0].credential_values.tenant_id",
            "credential_list[0].credential_info",
            "credential_list[1]",
            "model_list[1].litellm_params.litellm_credential_name",
        ]
    )


def test_a_credential_variable_that_is_not_set_names_the_credential() -> None:
    data = {
        "credential_list": [
            {"credential_name": "c", "credential_values": {"api_key": "os.environ/K"}}
        ],
        **_one({"model": "gpt-4o", "litellm_credential_name": "c"}),
    }
    with pytest.raises(
        ConfigError,
        match=r"^credential_list\[0\]\.credential_values\.api_key: environment variable K is",
    ):
        _load(data)


# -- router_settings and litellm_settings -----------------------------------------------------


def _groups(**settings: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": name, "litellm_params": {"model": f"openai/{name}"}}
            for name in ("a", "b", "c")
        ],
        **settings,
    }


def test_router_settings_map() -> None:
    config = _load(
        _groups(
            router_settings={
                "routing_strategy": "latency-based-routing",
                "routing_strategy_args": {"lowest_latency_buffer": 0.5, "ttl": 60},
                "num_retries": 4,
                "allowed_fails": 2,
                "cooldown_time": 9,
                "disable_cooldowns": True,
                "fallbacks": [{"a": ["b", "c"]}, {"b": ["c"]}],
                "default_fallbacks": ["c"],
                "context_window_fallbacks": [{"a": ["c"]}],
                "content_policy_fallbacks": [{"b": ["a"]}],
                "max_fallbacks": 3,
                "timeout": 45,
                "model_group_alias": {"x": "a", "y": {"model": "b", "hidden": False}},
                "enable_tag_filtering": True,
                "tag_filtering_match_any": True,
            }
        )
    )
    router = config.router
    assert router.routing.strategy == "latency-based-routing"
    assert router.routing.latency_buffer == 0.5
    assert router.retries.num_retries == 4
    assert router.health.allowed_fails == 2
    assert router.health.cooldown_time == 9.0
    assert router.health.disable_cooldowns is True
    assert router.fallbacks.general == {"a": ["b", "c"], "b": ["c"], "*": ["c"]}
    assert router.fallbacks.context_window == {"a": ["c"]}
    assert router.fallbacks.content_policy == {"b": ["a"]}
    assert router.fallbacks.max_depth == 3
    assert router.timeout == 600.0  # turnout's own deadline: LiteLLM's timeout is per call
    assert {d.timeouts for d in router.model_list} == {
        Timeouts(request=45.0, first_token=45.0, idle=45.0)
    }
    assert router.aliases == {"x": "a", "y": "b"}
    assert _paths(config.warnings) == ["router_settings.routing_strategy_args.ttl"]


def test_litellm_settings_apply_when_router_settings_lack_the_key() -> None:
    config = _load(
        _groups(
            litellm_settings={
                "num_retries": 6,
                "request_timeout": 120,
                "allowed_fails": 1,
                "cooldown_time": 2,
                "fallbacks": [{"a": ["b"]}],
                "default_fallbacks": ["c"],
                "context_window_fallbacks": [{"b": ["c"]}],
                "content_policy_fallbacks": [{"c": ["a"]}],
            },
            router_settings={"cooldown_time": 3},
        )
    )
    router = config.router
    assert router.retries.num_retries == 6
    assert router.timeout == 600.0
    assert {d.timeouts.request for d in router.model_list} == {120.0}
    assert router.health.allowed_fails == 1
    assert router.health.cooldown_time == 3.0
    assert router.fallbacks.general == {"a": ["b"], "*": ["c"]}
    assert router.fallbacks.context_window == {"b": ["c"]}
    assert router.fallbacks.content_policy == {"c": ["a"]}
    assert _paths(config.warnings) == ["litellm_settings.cooldown_time"]


def test_a_groups_first_fallback_entry_wins_and_star_beats_default_fallbacks() -> None:
    config = _load(
        _groups(
            router_settings={
                "fallbacks": [{"a": ["b"]}, {"*": ["c"]}, {"a": ["c"]}],
                "default_fallbacks": ["b"],
            }
        )
    )
    assert config.router.fallbacks.general == {"a": ["b"], "*": ["c"]}
    assert _paths(config.warnings) == [
        "router_settings.fallbacks[2].a",
        "router_settings.default_fallbacks",
    ]


def test_hidden_alias_warns() -> None:
    config = _load(
        _groups(router_settings={"model_group_alias": {"x": {"model": "a", "hidden": True}}})
    )
    assert config.router.aliases == {"x": "a"}
    [warning] = config.warnings
    assert warning.startswith("router_settings.model_group_alias.x.hidden: not supported yet")


@pytest.mark.parametrize("key", ["enable_tag_filtering", "tag_filtering_match_any"])
def test_tag_settings_that_turnout_cannot_honour_warn(key: str) -> None:
    config = _load(_groups(router_settings={key: False}))
    assert _paths(config.warnings) == [f"router_settings.{key}"]


def test_retry_after_explains_turnouts_backoff() -> None:
    config = _load(_groups(router_settings={"retry_after": 5}))
    [warning] = config.warnings
    assert warning.startswith("router_settings.retry_after: ignored: ")
    assert "exponential backoff" in warning
    assert "Retry-After" in warning


def test_every_other_setting_is_ignored_once_with_its_path() -> None:
    router = {
        "redis_db": 1,
        "cache_responses": True,
        "retry_policy": {"TimeoutErrorRetries": 2},
        "allowed_fails_policy": {"RateLimitErrorAllowedFails": 100},
        "provider_budget_config": {"openai": {"budget_limit": 1, "time_period": "1d"}},
        "something_new": 1,
    }
    module = {
        "failure_callback": ["sentry"],
        "cache": True,
        "cache_params": {"type": "redis"},
        "set_verbose": True,
        "routing_strategy": "least-busy",
        "timeout": 30,
        "stream_timeout": 10,
    }
    general = {"store_model_in_db": True, "disable_spend_logs": True}
    config = _load(
        _groups(
            router_settings=router,
            litellm_settings=module,
            general_settings=general,
            include=["other.yaml"],
        )
    )
    assert Counter(_paths(config.warnings)) == Counter(
        [
            *(f"router_settings.{k}" for k in router),
            *(f"litellm_settings.{k}" for k in module),
            *(f"general_settings.{k}" for k in general),
            "include",
        ]
    )
    assert config.router.routing.strategy == "weighted-random"


def test_order_under_simple_shuffle_reads_as_the_priority_strategy() -> None:
    data = _groups()
    data["model_list"][0]["litellm_params"]["order"] = 1
    data["model_list"][1]["litellm_params"]["order"] = 2
    config = _load(data)
    assert config.router.routing.strategy == "priority"
    assert [d.priority for d in config.router.model_list] == [1, 2, 0]
    [warning] = config.warnings
    assert warning.startswith("model_list[0].litellm_params.order: read as turnout's priority")


# -- errors in the LiteLLM file's terms -------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"router_settings": {"num_retries": "three"}},
            "router_settings.num_retries: Expected `int`, got `str`",
        ),
        (
            {"litellm_settings": {"request_timeout": -1}},
            "litellm_settings.request_timeout: Expected `float` > 0.0",
        ),
        (
            {"router_settings": {"fallbacks": [{"a": ["zz"]}]}},
            "router_settings.fallbacks[0].a: fallback target 'zz' is no model group or alias",
        ),
        (
            {"router_settings": {"model_group_alias": {"x": {"model": "zz"}}}},
            "router_settings.model_group_alias.x.model: alias 'x' resolves to 'zz'",
        ),
        (
            {"router_settings": {"routing_strategy": "fastest"}},
            "router_settings.routing_strategy: unknown strategy 'fastest'",
        ),
        (
            {"router_settings": {"fallbacks": {"a": ["b"]}}},
            "router_settings.fallbacks: expected a list, got a mapping",
        ),
        (
            {"general_settings": {"master_key": 1234}},
            "general_settings.master_key: Expected `str`, got `int`",
        ),
    ],
)
def test_errors_name_the_litellm_path(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        _load(_groups(**settings))


def test_deployment_errors_name_the_litellm_path() -> None:
    data = _groups()
    data["model_list"][2]["litellm_params"]["stream_timeout"] = "soon"
    with pytest.raises(
        ConfigError, match=r"^model_list\[2\]\.litellm_params\.stream_timeout: Expected `float"
    ):
        _load(data)
    data = _groups()
    data["model_list"][1]["model_info"] = {"max_input_tokens": 0}
    with pytest.raises(ConfigError, match=r"^model_list\[1\]\.model_info\.max_input_tokens: "):
        _load(data)


def test_variables_of_ignored_keys_are_not_needed_but_used_ones_are() -> None:
    data = _groups(
        router_settings={"redis_db": "os.environ/REDIS_DB", "num_retries": "${RETRIES}"},
        general_settings={"database_url": "os.environ/DATABASE_URL"},
    )
    with pytest.raises(
        ConfigError, match=r"^router_settings\.num_retries: environment variable RETRIES is not"
    ):
        _load(data)
    assert _load(data, environ={"RETRIES": "7"}).router.retries.num_retries == 7


def test_a_variable_only_in_environment_variables_is_explained() -> None:
    data = {
        **_one({"model": "gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"}),
        "environment_variables": {"OPENAI_API_KEY": "sk-in-file"},
    }
    with pytest.raises(ConfigError) as caught:
        _load(data)
    message = str(caught.value)
    assert message.startswith(
        "model_list[0].litellm_params.api_key: environment variable OPENAI_API_KEY is not set"
    )
    assert "set it in the environment" in message
    assert "sk-in-file" not in message


def test_origins_map_back_the_paths_of_every_converted_value() -> None:
    imported = import_litellm(
        {
            **_one({"model": "gpt-4o", "api_base": "u"}, model_info={"id": "x"}),
            "router_settings": {"num_retries": 1},
        }
    )
    assert imported.source_path("model_list[0].base_url") == (
        "model_list[0].litellm_params.api_base"
    )
    assert imported.source_path("model_list[0].id") == "model_list[0].model_info.id"
    assert imported.source_path("retries.num_retries") == "router_settings.num_retries"
    assert imported.source_path("model_list[0].tags[1]") == "model_list[0].tags[1]"
    assert imported.source_path("health.cooldown_time") == "health.cooldown_time"


def test_turnouts_server_section_may_sit_beside_litellms() -> None:
    config = _load(
        _groups(
            server={"port": 8080, "master_key": "sk-turnout"},
            general_settings={"master_key": "sk-litellm"},
        )
    )
    assert config.server.port == 8080
    assert config.server.master_key == Secret("sk-turnout")
    assert _paths(config.warnings) == ["general_settings.master_key"]
    with pytest.raises(ConfigError, match=r"^server\.port: Expected `int` <= 65535"):
        _load(_groups(server={"port": 99999}))


# -- api_base ---------------------------------------------------------------------------------


def test_an_api_base_with_credentials_is_rejected_at_its_litellm_path() -> None:
    data = _one({"model": "openai/gpt-4o", "api_base": "os.environ/PROXY_URL"})
    with pytest.raises(ConfigError) as caught:
        _load(data, environ={"PROXY_URL": "https://svc:pw-secret@proxy.example/v1"})
    message = str(caught.value)
    assert message.startswith(
        "model_list[0].litellm_params.api_base: 'https://***@proxy.example/v1' carries credentials"
    )
    assert "api_key" in message
    assert "pw-secret" not in message


def test_a_credentials_api_base_that_cannot_work_is_rejected_at_its_litellm_path() -> None:
    data = {
        "credential_list": [
            {"credential_name": "c", "credential_values": {"api_base": "proxy.example/v1"}}
        ],
        **_one({"model": "openai/gpt-4o", "litellm_credential_name": "c"}),
    }
    with pytest.raises(
        ConfigError,
        match=r"^credential_list\[0\]\.credential_values\.api_base: 'proxy\.example/v1' has no "
        "scheme",
    ):
        _load(data)


def test_a_working_api_base_is_kept() -> None:
    config = _load(_one({"model": "hosted_vllm/llama", "api_base": "http://127.0.0.1:8000/v1"}))
    assert config.router.model_list[0].base_url == "http://127.0.0.1:8000/v1"


# -- timeouts: per call, never the request's deadline ------------------------------------------


def test_timeouts_resolve_per_deployment_in_litellms_order() -> None:
    data = _groups(router_settings={"timeout": 20, "stream_timeout": 4})
    a, b, _ = (entry["litellm_params"] for entry in data["model_list"])
    a.update(timeout=60, stream_timeout=5)  # its own win over the router's
    b.update(request_timeout=45)  # LiteLLM reads it when timeout is not set
    config = _load(data)
    assert [d.timeouts for d in config.router.model_list] == [
        Timeouts(request=60.0, first_token=5.0, idle=5.0),
        # A stream's limit: the router's stream_timeout comes before the deployment's timeout.
        Timeouts(request=45.0, first_token=4.0, idle=4.0),
        Timeouts(request=20.0, first_token=4.0, idle=4.0),
    ]
    assert config.router.timeout == 600.0
    assert config.warnings == ()


def test_without_a_stream_timeout_a_stream_has_the_call_limit_for_each_wait() -> None:
    config = _load(_one({"model": "openai/x", "timeout": 30}))
    assert config.router.model_list[0].timeouts == Timeouts(
        request=30.0, first_token=30.0, idle=30.0
    )


def test_no_litellm_timeout_leaves_turnouts_own_limits() -> None:
    config = _load(_one({"model": "openai/x"}))
    assert config.router.model_list[0].timeouts == Timeouts()
    assert config.router.timeout == 600.0


def test_the_top_level_timeout_is_turnouts_overall_deadline() -> None:
    config = _load({**_groups(router_settings={"timeout": 30}), "timeout": 90})
    assert config.router.timeout == 90.0
    assert {d.timeouts.request for d in config.router.model_list} == {30.0}
    assert config.warnings == ()
    with pytest.raises(ConfigError, match=r"^timeout: Expected `float` > 0.0"):
        _load({**_groups(), "timeout": 0})


def test_timeout_keys_turnout_cannot_honour_warn_by_path() -> None:
    data = _groups(
        router_settings={"timeout": 30},
        litellm_settings={"timeout": 5, "stream_timeout": 5},
    )
    a, b, _ = (entry["litellm_params"] for entry in data["model_list"])
    a.update(timeout=0)  # 0 is no limit in LiteLLM: the router's applies
    b.update(timeout=10, request_timeout=20)
    config = _load(data)
    assert [d.timeouts.request for d in config.router.model_list] == [30.0, 10.0, 30.0]
    warnings = dict(warning.split(": ", 1) for warning in config.warnings)
    assert set(warnings) == {
        "model_list[0].litellm_params.timeout",
        "model_list[1].litellm_params.request_timeout",
        "litellm_settings.timeout",
        "litellm_settings.stream_timeout",
    }
    assert "0 sets no limit" in warnings["model_list[0].litellm_params.timeout"]
    assert warnings["model_list[1].litellm_params.request_timeout"] == (
        "ignored: timeout is set and wins"
    )


def test_a_per_call_limit_not_under_the_deadline_warns_once_by_path() -> None:
    data = _groups(litellm_settings={"request_timeout": 600})
    data["model_list"][0]["litellm_params"]["stream_timeout"] = 900
    config = _load(data)
    assert _paths(config.warnings) == [
        "litellm_settings.request_timeout",
        "model_list[0].litellm_params.stream_timeout",
    ]
    assert "leaves no time for another deployment or a fallback" in config.warnings[0]
    # Under a longer deadline of turnout's own, the same limits are fine.
    assert _load({**data, "timeout": 1200}).warnings == ()


def test_timeout_errors_name_the_litellm_path() -> None:
    with pytest.raises(ConfigError, match=r"^router_settings\.stream_timeout: Expected `float"):
        _load(_groups(router_settings={"stream_timeout": "soon"}))
    with pytest.raises(ConfigError, match=r"^model_list\[1\]\.litellm_params\.request_timeout: "):
        data = _groups()
        data["model_list"][1]["litellm_params"]["request_timeout"] = -3
        _load(data)


def test_drop_params_per_deployment_and_module_wide() -> None:
    config = parse_config(
        {
            "model_list": [
                {"model_name": "a", "litellm_params": {"model": "anthropic/claude-sonnet-4-5"}},
                {
                    "model_name": "b",
                    "litellm_params": {"model": "openai/gpt-4o", "drop_params": False},
                },
            ],
            "litellm_settings": {"drop_params": True},
        }
    )
    a, b = config.router.model_list
    assert a.drop_params is True  # LiteLLM's module-wide default
    assert b.drop_params is False  # the deployment's own wins
    assert not any("drop_params" in warning for warning in config.warnings)


def test_model_info_capability_flags_become_what_the_deployment_lacks_or_has() -> None:
    config = parse_config(
        {
            "model_list": [
                {
                    "model_name": "local",
                    "litellm_params": {
                        "model": "hosted_vllm/my-model",
                        "api_base": "http://127.0.0.1:8000/v1",
                        "unsupported_params": ["n"],
                    },
                    "model_info": {
                        "supports_function_calling": False,
                        "supports_response_schema": True,
                    },
                }
            ]
        }
    )
    (local,) = config.router.model_list
    assert local.unsupported_params == {"n", "tools"}
    assert local.supported_params == {"response_format.json_schema"}
    assert not config.warnings
