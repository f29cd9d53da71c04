"""Where credentials live in a configuration, and the one redactor built from all of them."""

from __future__ import annotations

from typing import Any

from turnout import Deployment, RouterConfig, Secret
from turnout.config.server import ServerConfig
from turnout.providers.credentials import build_redactor, deployment_secrets, secrets_in
from turnout.providers.openai import OpenAICompatibleAdapter
from turnout.providers.registry import native_adapter, provider_set
from turnout.upstream.aiohttp import AiohttpTransport


def _deployment(**fields: Any) -> Deployment:
    return Deployment(model_name="chat", model="m", **fields)


def test_a_deployments_key_params_and_headers_are_found() -> None:
    deployment = _deployment(
        provider="bedrock",
        api_key=Secret("key-one-123"),
        params={
            "aws_access_key_id": "AKIDPLAINTEXT",
            "aws_secret_access_key": "plain-secret-789",
            "aws_session_token": Secret("session-token-0ab"),
            "extra_headers": {"Authorization": "Bearer hdr-token-fgh", "X-Trace": "visible"},
            "extra_body": {"nested": [{"client_secret": "deep-secret-ijk"}]},
            "max_tokens": 100,
            "max_completion_tokens_hint": "not-a-secret",
            "temperature": 0.2,
            "region": "us-east-1",
            "aws_region_name": "us-east-1",
        },
    )
    azure = _deployment(provider="azure", params={"azure_ad_token": Secret("ad-token-cde")})
    found = set(deployment_secrets(deployment)) | set(deployment_secrets(azure))
    assert {
        "key-one-123",
        "AKIDPLAINTEXT",
        "plain-secret-789",
        "session-token-0ab",
        "ad-token-cde",
        "Bearer hdr-token-fgh",
        "hdr-token-fgh",
        "deep-secret-ijk",
    } <= found
    assert not found & {"visible", "not-a-secret", "us-east-1", "m", "chat", "1"}


def test_the_gateways_own_secrets_are_found_in_its_settings() -> None:
    server = ServerConfig(master_key=Secret("gw-master-key-1"))
    assert list(secrets_in(server)) == ["gw-master-key-1"]


def test_the_redactor_knows_every_deployment_the_environment_and_extras() -> None:
    config = RouterConfig(
        model_list=(
            _deployment(id="a", api_key=Secret("deploy-a-key-1")),
            _deployment(id="b", params={"api_key": "deploy-b-key-2"}),
        )
    )
    adapter = OpenAICompatibleAdapter("openai", {"OPENAI_API_KEY": "env-openai-key-3"})
    redactor = build_redactor(config, [adapter], [Secret("gw-master-key-4")])
    text = "deploy-a-key-1 deploy-b-key-2 env-openai-key-3 gw-master-key-4"
    assert redactor.redact(text) == " ".join(["**********"] * 4)


def test_native_adapters_hand_over_the_keys_they_read_from_the_environment() -> None:
    environ = {
        "ANTHROPIC_API_KEY": "anthropic-env-1",
        "GEMINI_API_KEY": "gemini-env-2",
        "AZURE_API_KEY": "azure-env-3",
        "AWS_BEARER_TOKEN_BEDROCK": "bedrock-env-4",
        "AWS_ACCESS_KEY_ID": "AKIDENVIRONMENT",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-env-5",
        "AWS_SESSION_TOKEN": "aws-session-env-6",
    }
    held = {
        value
        for name in ("anthropic", "gemini", "azure", "bedrock")
        for value in native_adapter(name, environ).credentials()
    }
    assert held == {
        "anthropic-env-1",
        "gemini-env-2",
        "azure-env-3",
        "bedrock-env-4",
        "AKIDENVIRONMENT",
        "aws-secret-env-5",
        "aws-session-env-6",
    }
    assert native_adapter("anthropic", {}).credentials() == ()


async def test_the_provider_set_shares_one_redactor_with_the_gateways_secrets() -> None:
    config = RouterConfig(model_list=(_deployment(id="a", api_key=Secret("deploy-a-key-1")),))
    transport = AiohttpTransport()
    try:
        built = provider_set(config, transport, secrets=[Secret("gw-master-key-2")])
    finally:
        await transport.aclose()
    assert set(built.providers) == {"openai"}
    assert built.redactor.redact("deploy-a-key-1 gw-master-key-2") == "********** **********"
