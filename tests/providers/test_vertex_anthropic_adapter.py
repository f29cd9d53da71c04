"""Claude on Vertex AI (provider ``vertex_anthropic``): its settings at load, in turnout's format
and LiteLLM's, and the adapter's URL, body, headers and error classification."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from turnout import Deployment, Request, Secret
from turnout.config.load import parse_config
from turnout.config.providers import AnthropicSettings, VertexAnthropicSettings
from turnout.errors import (
    AuthenticationError,
    ConfigError,
    ContextWindowExceededError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UpstreamNotFoundError,
)
from turnout.providers.anthropic.native import NativeMessagesRequest, carrying, takes_messages
from turnout.providers.registry import native_adapter, supported_providers
from turnout.providers.vertex_anthropic import VertexAnthropicAdapter, create_adapter
from turnout.testing import ManualClock
from turnout.wire import Operation

CLOCK = ManualClock(epoch=1_750_000_000.0)
TOKEN = "ya29.a0-vertex-secret"
DEPLOYMENT = Deployment(
    model_name="claude",
    provider="vertex_anthropic",
    model="claude-sonnet-4@20250514",
    api_key=Secret(TOKEN),
    params={"vertex_project": "acme-ml", "vertex_location": "us-east5"},
)
HI: Any = [{"role": "user", "content": "Hi"}]


def _adapter(environ: dict[str, str] | None = None) -> VertexAnthropicAdapter:
    return create_adapter("vertex_anthropic", environ or {}, CLOCK)


def _with(**changes: Any) -> Deployment:
    if "params" in changes:  # settings given anew, from the params
        changes["settings"] = None
    return msgspec.structs.replace(DEPLOYMENT, **changes)


def _sent(
    request: Request, deployment: Deployment = DEPLOYMENT
) -> tuple[str, dict[str, Any], dict[str, str]]:
    call = _adapter().build(deployment, request)
    body: dict[str, Any] = msgspec.json.decode(call.body)
    return call.url, body, dict(call.headers)


# -- settings -----------------------------------------------------------------------------------


def test_a_turnout_config_loads_typed_settings_and_the_provider_is_registered() -> None:
    config = parse_config(
        {
            "model_list": [
                {
                    "model_name": "claude",
                    "provider": "vertex_anthropic",
                    "model": "claude-sonnet-4@20250514",
                    "params": {
                        "vertex_project": "acme-ml",
                        "vertex_location": "global",
                        "extra_headers": {"anthropic-beta": "b1"},
                        "max_tokens": 512,
                    },
                }
            ]
        },
        environ={},
    )
    [deployment] = config.router.model_list
    assert deployment.settings == VertexAnthropicSettings(
        vertex_project="acme-ml", vertex_location="global", extra_headers={"anthropic-beta": "b1"}
    )
    assert deployment.params == {"max_tokens": 512}
    assert "vertex_anthropic" in supported_providers()
    assert isinstance(native_adapter("vertex_anthropic", {}), VertexAnthropicAdapter)


@pytest.mark.parametrize("missing", ["vertex_project", "vertex_location"])
def test_project_and_location_are_required_at_load(missing: str) -> None:
    params: dict[str, Any] = {"vertex_project": "acme-ml", "vertex_location": "us-east5"}
    del params[missing]
    entry = {
        "model_name": "c",
        "provider": "vertex_anthropic",
        "model": "claude-x",
        "params": params,
    }
    with pytest.raises(ConfigError) as raised:
        parse_config({"model_list": [entry]}, environ={})
    assert raised.value.path == f"model_list[0].params.{missing}"
    with pytest.raises(ConfigError, match=missing):
        Deployment(
            model_name="c",
            provider="vertex_anthropic",
            model="claude-x",
            settings=VertexAnthropicSettings(**params),
        )


def test_a_settings_of_another_family_is_refused_naming_it() -> None:
    entry = {
        "model_name": "c",
        "provider": "vertex_anthropic",
        "model": "claude-x",
        "params": {"vertex_project": "p", "vertex_location": "global", "aws_region_name": "x"},
    }
    with pytest.raises(ConfigError) as raised:
        parse_config({"model_list": [entry]}, environ={})
    assert raised.value.path == "model_list[0].params.aws_region_name"


@pytest.mark.parametrize("spelling", ["model", "custom_llm_provider"])
def test_litellm_vertex_claude_loads_as_vertex_anthropic(spelling: str) -> None:
    params: dict[str, Any] = {
        "model": "vertex_ai/claude-3-5-sonnet-v2@20241022",
        "vertex_project": "acme-ml",
        "vertex_location": "europe-west1",
        "api_key": TOKEN,
    }
    if spelling == "custom_llm_provider":
        params.update(model="claude-3-5-sonnet-v2@20241022", custom_llm_provider="vertex_ai")
    config = parse_config({"model_list": [{"model_name": "claude", "litellm_params": params}]})
    [deployment] = config.router.model_list
    assert (deployment.provider, deployment.model) == (
        "vertex_anthropic",
        "claude-3-5-sonnet-v2@20241022",
    )
    assert deployment.settings == VertexAnthropicSettings(
        vertex_project="acme-ml", vertex_location="europe-west1"
    )
    assert deployment.api_key == Secret(TOKEN)
    assert config.skipped == ()
    [warning] = config.warnings
    assert "vertex_anthropic provider" in warning and TOKEN not in warning


def test_litellm_vertex_claude_without_a_location_is_an_error_naming_its_path() -> None:
    params = {"model": "vertex_ai/claude-3-haiku@20240307", "vertex_project": "acme-ml"}
    with pytest.raises(ConfigError, match="vertex_location"):
        parse_config({"model_list": [{"model_name": "claude", "litellm_params": params}]})


# -- requests -----------------------------------------------------------------------------------


def test_chat_goes_to_raw_predict_translated_without_a_model_with_the_vertex_version() -> None:
    request = Request(model="claude", body={"model": "claude", "messages": HI, "stop": "END"})
    url, body, headers = _sent(request)
    assert url == (
        "https://us-east5-aiplatform.googleapis.com/v1/projects/acme-ml/locations/us-east5"
        "/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
    )
    assert body == {
        "anthropic_version": "vertex-2023-10-16",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4096,
        "stop_sequences": ["END"],
    }
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-api-key" not in headers and "anthropic-version" not in headers


def test_a_stream_goes_to_stream_raw_predict_and_global_to_the_global_host() -> None:
    deployment = _with(params={"vertex_project": "acme-ml", "vertex_location": "global"})
    request = Request(model="claude", body={"model": "claude", "messages": HI, "stream": True})
    url, body, _ = _sent(request, deployment)
    assert url == (
        "https://aiplatform.googleapis.com/v1/projects/acme-ml/locations/global"
        "/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict"
    )
    assert body["stream"] is True


@pytest.mark.parametrize("base", ["http://127.0.0.1:9/", "http://127.0.0.1:9/v1"])
def test_a_base_url_replaces_the_scheme_and_host(base: str) -> None:
    url, _, _ = _sent(Request(model="claude", body={"messages": HI}), _with(base_url=base))
    assert url.startswith("http://127.0.0.1:9/v1/projects/acme-ml/locations/us-east5/")


def test_the_token_comes_from_the_environment_when_the_deployment_has_none() -> None:
    adapter = _adapter({"VERTEX_ACCESS_TOKEN": "ya29.env", "ANTHROPIC_API_KEY": "sk-ant-x"})
    call = adapter.build(_with(api_key=None), Request(model="claude", body={"messages": HI}))
    assert call.headers["authorization"] == "Bearer ya29.env"
    assert adapter.credentials() == ("ya29.env",)
    bare = _adapter().build(_with(api_key=None), Request(model="claude", body={"messages": HI}))
    assert "authorization" not in bare.headers


def test_api_version_and_extra_body_and_headers_apply() -> None:
    deployment = _with(
        api_version="vertex-2099-01-01",
        params={
            "vertex_project": "acme-ml",
            "vertex_location": "us-east5",
            "extra_body": {"top_k": 3},
            "extra_headers": {"Anthropic-Beta": "b1"},
            "temperature": 0.5,
        },
    )
    _, body, headers = _sent(Request(model="claude", body={"messages": HI}), deployment)
    assert body["anthropic_version"] == "vertex-2099-01-01"
    assert (body["top_k"], body["temperature"]) == (3, 0.5)
    assert headers["anthropic-beta"] == "b1"


def test_a_messages_request_is_sent_as_written_its_beta_forwarded() -> None:
    native: Any = {
        "model": "claude",
        "max_tokens": 64,
        "thinking": {"type": "enabled", "budget_tokens": 32},
        "messages": HI,
        "stream": True,
    }
    routed = Request(model="claude", body={"model": "claude", "messages": HI, "stream": True})
    headers_in = {"anthropic-beta": "context-1m-2025-08-07", "anthropic-version": "2023-06-01"}
    request = carrying(routed, native, headers_in)
    assert isinstance(request, NativeMessagesRequest)
    deployment = _with(
        params={
            "vertex_project": "acme-ml",
            "vertex_location": "us-east5",
            "extra_headers": {"anthropic-beta": "b1"},
            "extra_body": {"top_k": 2},
        }
    )
    url, body, headers = _sent(request, deployment)
    assert url.endswith(":streamRawPredict")
    assert body == {
        "max_tokens": 64,
        "thinking": {"type": "enabled", "budget_tokens": 32},
        "messages": HI,
        "stream": True,
        "top_k": 2,
        "anthropic_version": "vertex-2023-10-16",
    }
    assert headers["anthropic-beta"] == "b1,context-1m-2025-08-07"
    assert "anthropic-version" not in headers
    assert takes_messages(deployment)


def test_embeddings_are_refused() -> None:
    request = Request(model="claude", body={"input": "x"}, operation=Operation.EMBEDDING)
    with pytest.raises(InvalidRequestError):
        _adapter().build(DEPLOYMENT, request)


def test_capabilities_are_the_anthropic_adapters() -> None:
    adapter = _adapter()
    modern = adapter.capabilities("claude-3-5-sonnet-v2@20241022")
    assert modern.tools and modern.vision
    assert isinstance(DEPLOYMENT.settings, AnthropicSettings)


# -- errors -------------------------------------------------------------------------------------


def _error(status: int, body: Any, headers: dict[str, str] | None = None) -> Exception:
    return _adapter().error(status, msgspec.json.encode(body), headers or {})


def test_errors_in_anthropics_shape_are_classified_as_anthropic_does() -> None:
    too_long = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long: 300000"},
    }
    assert isinstance(_error(400, too_long), ContextWindowExceededError)
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert isinstance(_error(529, overloaded), ServerError)


def test_errors_in_googles_shape_are_classified_by_status_with_their_wait() -> None:
    quota = {
        "error": {
            "code": 429,
            "message": "Quota exceeded for online_prediction_requests_per_base_model",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
        }
    }
    limited = _error(429, quota)
    assert isinstance(limited, RateLimitError) and limited.retry_after == 7.0
    assert "vertex_anthropic: Quota exceeded" in str(limited)
    unauthenticated = {"error": {"code": 401, "message": "bad token", "status": "UNAUTHENTICATED"}}
    assert isinstance(_error(401, unauthenticated), AuthenticationError)
    denied = {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}
    assert isinstance(_error(403, denied), PermissionDeniedError)
    missing = [{"error": {"code": 404, "message": "Publisher Model", "status": "NOT_FOUND"}}]
    assert isinstance(_error(404, missing), UpstreamNotFoundError)
    waited = _error(429, {"error": {"code": 429, "message": "q"}}, {"retry-after": "3"})
    assert isinstance(waited, RateLimitError) and waited.retry_after == 3.0
