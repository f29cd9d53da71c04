"""Typed provider settings: parsed per family at load, with path-named errors, in every config
format; deployment ids unchanged; no secret in any repr."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from turnout import Deployment, RouterConfig, Secret
from turnout.config.load import parse_config
from turnout.config.providers import (
    AnthropicSettings,
    AzureSettings,
    BedrockSettings,
    GeminiSettings,
    OpenAISettings,
    SimulatedSettings,
    settings_type,
)
from turnout.config.simulated import Behaviour
from turnout.errors import ConfigError

#: Every family, in turnout's own format, with settings and request defaults mixed in params.
TURNOUT: dict[str, Any] = {
    "model_list": [
        {
            "model_name": "chat",
            "model": "gpt-4o",
            "api_key": "sk-one",
            "params": {
                "temperature": 0.2,
                "organization": "org-1",
                "extra_headers": {"X-Team": "a", "X-Retries": 3},
            },
        },
        {
            "model_name": "chat",
            "provider": "azure",
            "model": "gpt-4o",
            "base_url": "https://r.openai.azure.com",
            "api_version": "2024-10-21",
            "params": {"azure_ad_token": "eyJ-token", "max_tokens": 100},
        },
        {
            "model_name": "chat",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "params": {
                "extra_body": {"container": "c1"},
                "extra_headers": {"anthropic-beta": "b1"},
            },
        },
        {
            "model_name": "chat",
            "provider": "gemini",
            "model": "gemini-2.5-flash",
            "params": {
                "vertex_project": "proj",
                "vertex_location": "europe-west4",
                "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
            },
        },
        {
            "model_name": "chat",
            "provider": "bedrock",
            "model": "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "params": {
                "aws_region_name": "us-east-1",
                "aws_access_key_id": "AKIAEXAMPLE",
                "aws_secret_access_key": "aws-secret",
                "aws_session_token": "tok",
            },
        },
        {
            "model_name": "chat",
            "provider": "simulated",
            "model": "sim",
            "params": {"simulate": {"latency": 1, "error_rate": 0.1}},
        },
    ]
}

#: The same families through LiteLLM's config.yaml, with a shared credential.
LITELLM: dict[str, Any] = {
    "credential_list": [
        {
            "credential_name": "aws",
            "credential_values": {
                "aws_access_key_id": "AKIAEXAMPLE",
                "aws_secret_access_key": "aws-secret",
            },
        }
    ],
    "model_list": [
        {
            "model_name": "chat",
            "litellm_params": {
                "model": "bedrock/anthropic.claude-3",
                "aws_region_name": "eu-west-1",
                "litellm_credential_name": "aws",
                "temperature": 0.1,
            },
        },
        {
            "model_name": "chat",
            "litellm_params": {
                "model": "azure/gpt-4o",
                "api_base": "https://r.openai.azure.com",
                "api_key": "k",
                "azure_ad_token": "eyJ",
            },
        },
        {
            "model_name": "chat",
            "litellm_params": {
                "model": "vertex_ai/gemini-1.5-pro",
                "vertex_project": "p",
                "vertex_location": "us-east5",
            },
        },
        {
            "model_name": "chat",
            "litellm_params": {
                "model": "openai/gpt-4o",
                "organization": "org",
                "extra_headers": {"X-A": "b"},
            },
        },
    ],
}


def _deployments(data: dict[str, Any]) -> tuple[Deployment, ...]:
    return parse_config(data, environ={}).router.model_list


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, environ={})
    return str(caught.value)


def _one(provider: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_list": [{"model_name": "c", "model": "m", "provider": provider, "params": params}]
    }


def _litellm(model: str, **params: Any) -> dict[str, Any]:
    return {"model_list": [{"model_name": "c", "litellm_params": {"model": model, **params}}]}


# -- ids -----------------------------------------------------------------------------------------


def test_deployment_ids_are_those_the_configs_had_before_settings_were_typed() -> None:
    # Derived, before the settings moved out of params, from the same files.
    assert [d.id for d in _deployments(TURNOUT)] == [
        "106c8bd593e07b47",
        "1988e68186d80095",
        "23dcad4407b4e4a2",
        "e423c3bbde038824",
        "ba1e1897c0fb9349",
        "5c6e0f6d27a1e4fd",
    ]
    assert [d.id for d in _deployments(LITELLM)] == [
        "e46f95bc85eb2ccd",
        "a54c8d118c69f1dd",
        "4de38aa69eb595e7",
        "338b8775ab267273",
    ]


def test_settings_given_in_code_derive_the_id_their_params_would() -> None:
    common: dict[str, Any] = {"model_name": "c", "model": "m", "provider": "bedrock"}
    given = {"aws_region_name": "eu-west-1", "aws_session_token": "t", "input_type": "x"}
    keys = {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s1"}
    from_params = Deployment(**common, params={"temperature": 0.5, **given, **keys})
    typed = BedrockSettings(
        aws_region_name="eu-west-1",
        aws_access_key_id=Secret("AKIA1"),
        aws_secret_access_key=Secret("s1"),
        aws_session_token=Secret("t"),
        input_type="x",
    )
    in_code = Deployment(**common, params={"temperature": 0.5}, settings=typed)
    assert in_code.id == from_params.id
    assert in_code.settings == from_params.settings
    other = Deployment(**common, params={**given, **keys, "aws_secret_access_key": "s2"})
    assert other.id != from_params.id


# -- each family ---------------------------------------------------------------------------------


def test_each_family_gets_its_settings_and_params_keep_request_defaults_only() -> None:
    openai, azure, anthropic, gemini, bedrock, simulated = _deployments(TURNOUT)
    assert openai.settings == OpenAISettings(
        organization="org-1", extra_headers={"X-Team": "a", "X-Retries": "3"}
    )
    assert openai.params == {"temperature": 0.2}
    assert azure.settings == AzureSettings(azure_ad_token=Secret("eyJ-token"))
    assert azure.params == {"max_tokens": 100}
    assert anthropic.settings == AnthropicSettings(
        extra_body={"container": "c1"}, extra_headers={"anthropic-beta": "b1"}
    )
    assert anthropic.params == {}
    assert gemini.settings == GeminiSettings(vertex_project="proj", vertex_location="europe-west4")
    assert list(gemini.params) == ["safety_settings"]
    assert bedrock.settings == BedrockSettings(
        aws_region_name="us-east-1",
        aws_access_key_id=Secret("AKIAEXAMPLE"),
        aws_secret_access_key=Secret("aws-secret"),
        aws_session_token=Secret("tok"),
    )
    assert bedrock.params == {}
    assert simulated.settings == SimulatedSettings(simulate=Behaviour(latency=1.0, error_rate=0.1))


def test_families_are_chosen_by_provider_name() -> None:
    assert settings_type("groq") is OpenAISettings
    assert settings_type("openai-compatible") is OpenAISettings
    assert settings_type("azure") is AzureSettings
    assert settings_type("bedrock") is BedrockSettings
    bare = Deployment(model_name="c", model="m", provider="gemini")
    assert bare.settings == GeminiSettings()


@pytest.mark.parametrize(
    ("provider", "params", "expected"),
    [
        ("openai", {"organization": 3}, "params.organization: Expected `str | null`, got `int`"),
        ("groq", {"extra_headers": "x-team: a"}, "params.extra_headers: Expected `object`"),
        (
            "openai",
            {"extra_headers": {"x-a": ["b"]}},
            "params.extra_headers[...]: Expected `str`, got `array`",
        ),
        (
            "openai",
            {"aws_region_name": "us-east-1"},
            "params.aws_region_name: a setting of bedrock",
        ),
        ("azure", {"azure_ad_token": 5}, "params.azure_ad_token: Expected `str`, got `int`"),
        ("azure", {"vertex_project": "p"}, "params.vertex_project: a setting of gemini"),
        ("anthropic", {"extra_body": [1]}, "params.extra_body: Expected `object`, got `array`"),
        ("anthropic", {"azure_ad_token": "t"}, "params.azure_ad_token: a setting of azure"),
        ("gemini", {"vertex_location": 1}, "params.vertex_location: Expected `str | null`"),
        ("gemini", {"aws_region_name": "x"}, "params.aws_region_name: a setting of bedrock"),
        ("bedrock", {"aws_region_name": 1}, "params.aws_region_name: Expected `str | null`"),
        ("bedrock", {"aws_role_name": "arn:role"}, "params.aws_role_name: not supported"),
        ("bedrock", {"aws_access_key_id": "AKIA"}, "params.aws_secret_access_key: aws_access_"),
        ("bedrock", {"aws_session_token": "t"}, "params.aws_session_token: a session token goes"),
        (
            "bedrock",
            {"aws_bedrock_runtime_endpoint": "bedrock.example"},
            "params.aws_bedrock_runtime_endpoint: 'bedrock.example' has no scheme",
        ),
        ("bedrock", {"organization": "o"}, "params.organization: a setting of openai and azure"),
        (
            "simulated",
            {"simulate": {"latency": -1}},
            "params.simulate.latency: Expected `float` >=",
        ),
        (
            "simulated",
            {"simulate": {"wobble": 1}},
            "params.simulate: Object contains unknown field",
        ),
        ("simulated", {"extra_headers": {}}, "params.extra_headers: a setting of openai and azure"),
        (
            "groq",
            {"native_responses": True},
            "params.native_responses: provider 'groq' is not sent Responses requests natively",
        ),
    ],
)
def test_a_bad_setting_fails_at_load_naming_its_path(
    provider: str, params: dict[str, Any], expected: str
) -> None:
    assert _error(_one(provider, params)).startswith(f"model_list[0].{expected}")


def test_a_bad_setting_in_a_litellm_file_is_named_by_its_litellm_path() -> None:
    message = _error(_litellm("bedrock/m", aws_region_name=5))
    assert message.startswith("model_list[0].litellm_params.aws_region_name: Expected `str")
    data = {
        "credential_list": [
            {"credential_name": "az", "credential_values": {"azure_ad_token": ["not", "text"]}}
        ],
        **_litellm("azure/gpt-4o", api_base="https://r.example", litellm_credential_name="az"),
    }
    message = _error(data)
    assert message.startswith("credential_list[0].credential_values.azure_ad_token: Expected")


def test_litellm_settings_of_another_family_are_ignored_with_a_warning() -> None:
    config = parse_config(
        _litellm("anthropic/claude-3", vertex_project="p", organization="o", temperature=0.1),
        environ={},
    )
    [deployment] = config.router.model_list
    assert deployment.settings == AnthropicSettings()
    assert deployment.params == {"temperature": 0.1}
    assert sorted(config.warnings) == [
        "model_list[0].litellm_params.organization: ignored: a setting turnout's anthropic "
        "provider does not take",
        "model_list[0].litellm_params.vertex_project: ignored: a setting turnout's anthropic "
        "provider does not take",
    ]


# -- settings given in code ----------------------------------------------------------------------


def test_settings_in_code_must_be_the_providers_family_and_given_once() -> None:
    with pytest.raises(ConfigError, match=r"^settings: provider 'bedrock' takes BedrockSettings"):
        Deployment(model_name="c", model="m", provider="bedrock", settings=AzureSettings())
    with pytest.raises(ConfigError, match=r"^params\.aws_region_name: also given in settings"):
        Deployment(
            model_name="c",
            model="m",
            provider="bedrock",
            params={"aws_region_name": "x"},
            settings=BedrockSettings(),
        )
    with pytest.raises(ConfigError, match=r"^aws_secret_access_key: aws_access_key_id is set"):
        BedrockSettings(aws_access_key_id=Secret("AKIA"))


def test_a_router_config_round_trips_through_plain_data_with_its_settings() -> None:
    config = parse_config(TURNOUT, environ={}).router
    data = msgspec.to_builtins(config, enc_hook=lambda value: value.reveal())
    assert data["model_list"][4]["settings"]["family"] == "bedrock"
    again = msgspec.convert(
        data,
        RouterConfig,
        dec_hook=lambda kind, value: Secret(value) if kind is Secret else value,
        strict=False,
    )
    assert again == config


# -- no secret in any repr -----------------------------------------------------------------------

SECRETS = (
    "sk-one",
    "eyJ-token",
    "aws-secret",
    "AKIAEXAMPLE",
    "hdr-token-1",
    "body-secret-2",
    "param-secret-3",
)


def _with_credential_headers(data: dict[str, Any]) -> dict[str, Any]:
    entry = data["model_list"][0]
    params = entry.get("params", entry.get("litellm_params"))
    params["extra_headers"] = {"Authorization": "Bearer hdr-token-1", "X-Team": "shown"}
    params["extra_body"] = {"auth": [{"client_secret": "body-secret-2"}]}
    if "params" in entry:  # LiteLLM's import ignores keys it does not know
        params["client_secret"] = "param-secret-3"
    return data


def _in_code() -> tuple[Deployment, ...]:
    return (
        Deployment(
            model_name="c",
            model="m",
            api_key=Secret("sk-one"),
            params={"client_secret": "param-secret-3"},
            settings=OpenAISettings(
                extra_headers={"Authorization": "Bearer hdr-token-1", "X-Team": "shown"},
                extra_body={"auth": [{"client_secret": "body-secret-2"}]},
            ),
        ),
        Deployment(
            model_name="c",
            model="m",
            provider="azure",
            params={"azure_ad_token": "eyJ-token"},
        ),
        Deployment(
            model_name="c",
            model="m",
            provider="bedrock",
            params={"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "aws-secret"},
        ),
    )


@pytest.mark.parametrize("source", ["turnout", "litellm", "code"])
def test_no_repr_of_a_deployment_shows_a_secret(source: str) -> None:
    if source == "code":
        deployments = _in_code()
        shown = repr(RouterConfig(model_list=deployments))
    else:
        data = _with_credential_headers(copy.deepcopy(TURNOUT if source == "turnout" else LITELLM))
        if source == "litellm":
            data["model_list"][0]["litellm_params"]["api_key"] = "sk-one"
        config = parse_config(data, environ={})
        deployments = config.router.model_list
        shown = repr(config)
    shown += "".join(repr(d) + str(d) + repr(d.settings) for d in deployments)
    for secret in SECRETS:
        if source == "litellm" and secret == "eyJ-token":
            secret = "eyJ"
        assert secret not in shown, secret
    assert "X-Team" in shown and "shown" in shown
