"""Declared capabilities, what a request needs, and upstream refusals of a parameter."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from turnout import Deployment, RouterConfig, Secret
from turnout.config.router import CAPABILITY_PARAMS
from turnout.errors import (
    BadRequestError,
    ConfigError,
    ContextWindowExceededError,
    NoDeploymentsAvailableError,
    ServerError,
    UnsupportedParameterError,
    most_informative,
)
from turnout.providers.anthropic.adapter import AnthropicAdapter
from turnout.providers.bedrock.adapter import BedrockAdapter
from turnout.providers.capabilities import PARAM_FEATURES, Feature, lacked_by, needs_of
from turnout.providers.gemini.adapter import GeminiAdapter
from turnout.providers.openai import OpenAICompatibleAdapter
from turnout.providers.registry import build_providers
from turnout.router.table import ModelTable
from turnout.testing import ManualClock, MockTransport

CLOCK = ManualClock(epoch=1_750_000_000.0)


@pytest.mark.parametrize(
    ("body", "needs"),
    [
        ({"messages": []}, set()),
        ({"n": 1, "logprobs": False, "top_logprobs": 0, "seed": None}, set()),
        ({"metadata": {}, "logit_bias": {}, "presence_penalty": 0}, set()),
        ({"response_format": {"type": "text"}}, set()),
        ({"n": 2}, {Feature.N}),
        ({"logprobs": True}, {Feature.LOGPROBS}),
        ({"top_logprobs": 3}, {Feature.LOGPROBS}),
        ({"seed": 0}, {Feature.SEED}),
        ({"metadata": {"user_id": "u"}}, {Feature.METADATA_USER_ID}),
        ({"metadata": {"user_id": "u", "team": "t"}}, {Feature.METADATA}),
        ({"response_format": {"type": "json_object"}}, {Feature.JSON_OBJECT}),
        ({"response_format": {"type": "json_schema"}}, {Feature.JSON_SCHEMA}),
        ({"logit_bias": {"1": 5}}, {Feature.LOGIT_BIAS}),
        ({"frequency_penalty": 0.2}, {Feature.PENALTIES}),
        ({"tools": [{}], "parallel_tool_calls": False}, {Feature.TOOLS, Feature.SERIAL_TOOL_CALLS}),
        ({"parallel_tool_calls": False}, set()),  # without tools it asks for nothing
    ],
)
def test_a_request_needs_only_what_asks_for_something(
    body: dict[str, Any], needs: set[Feature]
) -> None:
    assert needs_of(body) == needs


def test_features_name_the_parameter_a_400_names() -> None:
    assert Feature.JSON_SCHEMA.param == "response_format"
    assert Feature.METADATA_USER_ID.param == "metadata"
    assert Feature.N.param == "n"
    assert "`n` > 1" in Feature.N.described


def _deployment(provider: str, model: str, **fields: Any) -> Deployment:
    return Deployment(
        model_name="chat",
        provider=provider,
        model=model,
        api_key=Secret("sk-fake"),
        base_url="http://127.0.0.1:9",
        **fields,
    )


def test_declared_capabilities_per_family() -> None:
    anthropic = AnthropicAdapter("anthropic", {}, CLOCK).capabilities("claude-sonnet-4-5")
    assert {Feature.N, Feature.LOGPROBS, Feature.SEED, Feature.METADATA} <= anthropic.unsupported
    # Honoured by translation: JSON mode through a forced tool, metadata.user_id, serial tools.
    assert (
        not {
            Feature.JSON_OBJECT,
            Feature.JSON_SCHEMA,
            Feature.METADATA_USER_ID,
            Feature.SERIAL_TOOL_CALLS,
        }
        & anthropic.unsupported
    )
    claude_2 = AnthropicAdapter("anthropic", {}, CLOCK).capabilities("claude-2.1")
    assert {Feature.TOOLS, Feature.JSON_OBJECT} <= claude_2.lacking()
    openai = OpenAICompatibleAdapter("openai", {})
    assert openai.capabilities("gpt-4o-mini").unsupported == frozenset()
    assert Feature.LOGPROBS in openai.capabilities("o3-mini").unsupported
    groq = OpenAICompatibleAdapter("groq", {})
    assert {Feature.N, Feature.LOGPROBS} <= groq.capabilities("llama-3.3-70b").unsupported
    gemini = GeminiAdapter("gemini", {}, CLOCK).capabilities("gemini-2.5-flash")
    assert Feature.N not in gemini.unsupported and Feature.SEED not in gemini.unsupported
    assert Feature.LOGPROBS in gemini.unsupported
    bedrock = BedrockAdapter("bedrock", {}, CLOCK)
    llama = bedrock.capabilities("meta.llama3-1-70b-instruct-v1:0")
    assert {Feature.N, Feature.JSON_OBJECT} <= llama.unsupported
    assert Feature.JSON_SCHEMA not in llama.unsupported  # outputConfig.textFormat
    claude = bedrock.capabilities("us.anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert Feature.JSON_OBJECT not in claude.unsupported  # a forced tool, as on Anthropic


def test_the_table_lists_what_each_deployment_lacks_and_whether_it_drops_it() -> None:
    claude = _deployment("anthropic", "claude-sonnet-4-5", id="claude")
    dropping = _deployment("anthropic", "claude-sonnet-4-5", id="dropping", drop_params=True)
    gpt = _deployment("openai", "gpt-4o-mini", id="gpt")
    config = RouterConfig(model_list=(claude, dropping, gpt))
    providers = build_providers(config, MockTransport(_never), CLOCK)
    table = ModelTable(config, providers)
    assert set(table.lacks) == {"claude", "dropping"}
    assert Feature.N in table.lacks["claude"].features and not table.lacks["claude"].dropped
    assert table.lacks["dropping"].dropped
    # A config whose deployments honour everything makes the pre-filter free.
    assert ModelTable(RouterConfig(model_list=(gpt,)), providers).lacks == {}


def test_a_deployment_declares_what_its_provider_does_not_know() -> None:
    vllm = _deployment("vllm", "my-model", unsupported_params=frozenset({"n", "response_format"}))
    newer = _deployment("anthropic", "claude-next", supported_params=frozenset({"seed"}))
    config = RouterConfig(model_list=(vllm, newer))
    providers = build_providers(config, MockTransport(_never), CLOCK)
    assert lacked_by(providers["vllm"], vllm) == {
        Feature.N,
        Feature.JSON_OBJECT,
        Feature.JSON_SCHEMA,
    }
    assert Feature.SEED not in lacked_by(providers["anthropic"], newer)
    assert Feature.N in lacked_by(providers["anthropic"], newer)


def test_parameter_names_are_checked_at_load_and_match_the_pre_filter() -> None:
    assert set(CAPABILITY_PARAMS) == set(PARAM_FEATURES)
    with pytest.raises(ConfigError, match=r"unknown parameter.*'best_of'"):
        _deployment("openai", "gpt-4o", unsupported_params=frozenset({"best_of"}))


def _openai_error(status: int, error: dict[str, Any]) -> Any:
    adapter = OpenAICompatibleAdapter("openai", {})
    return adapter.error(status, msgspec.json.encode({"error": error}), {})


def _anthropic_error(message: str) -> Any:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return AnthropicAdapter("anthropic", {}, CLOCK).error(400, msgspec.json.encode(body), {})


@pytest.mark.parametrize(
    ("error", "param"),
    [
        (lambda: _anthropic_error("n: Extra inputs are not permitted"), "n"),
        (lambda: _anthropic_error("metadata.team: Extra inputs are not permitted"), "metadata"),
        (
            lambda: _openai_error(
                400,
                {
                    "message": "Unsupported parameter: 'logprobs' is not supported with this "
                    "model.",
                    "type": "invalid_request_error",
                    "param": "logprobs",
                    "code": "unsupported_parameter",
                },
            ),
            "logprobs",
        ),
        (
            lambda: _openai_error(
                400,
                {
                    "message": "Unsupported value: 'n' does not support 3 with this model.",
                    "type": "invalid_request_error",
                    "code": "unsupported_value",
                },
            ),
            "n",
        ),
        (
            lambda: _openai_error(
                400,
                {
                    "message": "Unrecognized request argument supplied: top_k",
                    "type": "invalid_request_error",
                },
            ),
            "top_k",
        ),
    ],
)
def test_an_upstream_refusal_of_a_parameter_is_its_own_kind(error: Any, param: str) -> None:
    refused = error()
    assert isinstance(refused, UnsupportedParameterError)
    assert refused.param == param
    assert refused.retryable and refused.status == 400


def test_other_rejections_stay_what_they_were() -> None:
    assert type(_anthropic_error("temperature: range: 0..1")) is BadRequestError
    assert isinstance(
        _anthropic_error("prompt is too long: 300000 tokens"), ContextWindowExceededError
    )


def test_the_capability_error_ranks_below_anything_that_could_answer() -> None:
    unsupported = UnsupportedParameterError("x", param="n", limits=["`a` on anthropic lacks n"])
    cooling = NoDeploymentsAvailableError("No deployments available for model `spare`")
    assert most_informative([unsupported, cooling]) is cooling
    assert isinstance(most_informative([unsupported, ServerError("boom")]), ServerError)
    other = UnsupportedParameterError("y", param="n", limits=["`b` on bedrock lacks n"])
    merged = most_informative([unsupported, other])
    assert merged.param == "n"
    assert merged.public_message() == (
        "No deployment can honour `n`: `a` on anthropic lacks n; `b` on bedrock lacks n"
    )


def _never(request: Any) -> Any:
    raise AssertionError("nothing is sent to build a table")
