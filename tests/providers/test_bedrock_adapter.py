"""The Bedrock adapter: Converse requests out, answers and errors back, signed at the clock's time.

Native bodies are the shapes of the Bedrock Runtime API reference (Converse, InvokeModel) and
of the model parameter pages (Titan Text Embeddings V2, Cohere Embed).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec
import pytest

from fakes.fake_bedrock.auth import SigningKeys, check
from turnout import Deployment, Request, Secret
from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentPolicyError,
    ContextWindowExceededError,
    InvalidRequestError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UpstreamNotFoundError,
    UpstreamTimeoutError,
)
from turnout.providers.bedrock.adapter import BedrockAdapter, create_adapter
from turnout.providers.bedrock.signing import AwsCredentials
from turnout.providers.http import HttpProvider
from turnout.testing import ManualClock, MockTransport
from turnout.upstream import UpstreamReply, UpstreamRequest
from turnout.wire import Operation

CLOCK = ManualClock(epoch=1_800_000_000.0)
KEYS = SigningKeys("AKIDTESTKEY", "test-secret-value", "eu-west-1")
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5Er"
    "kJggg=="
)
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _deployment(**options: Any) -> Deployment:
    params = {
        "aws_region_name": KEYS.region,
        "aws_access_key_id": KEYS.access_key,
        "aws_secret_access_key": Secret(KEYS.secret_key),
    }
    params.update(options.pop("params", {}))
    options.setdefault("model", "anthropic.claude-3-5-sonnet-20240620-v1:0")
    return Deployment(model_name="chat", provider="bedrock", params=params, **options)


def _adapter(environ: dict[str, str] | None = None) -> BedrockAdapter:
    return create_adapter("bedrock", environ or {}, CLOCK)


def _chat(*messages: Any, **body: Any) -> Request:
    listed = list(messages) or [{"role": "user", "content": "Hello"}]
    return Request(model="chat", body={"model": "chat", "messages": listed, **body})


def _native(deployment: Deployment, request: Request, **environ: str) -> dict[str, Any]:
    body: dict[str, Any] = msgspec.json.decode(_adapter(environ).build(deployment, request).body)
    return body


# -- building requests ---------------------------------------------------------------------


def test_a_chat_is_a_signed_converse_call_in_the_deployments_region() -> None:
    call = _adapter().build(_deployment(), _chat(temperature=0.2, max_tokens=50, top_p=0.9))
    assert call.url == (
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/"
        "anthropic.claude-3-5-sonnet-20240620-v1:0/converse"
    )
    assert msgspec.json.decode(call.body) == {
        "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
        "inferenceConfig": {"temperature": 0.2, "maxTokens": 50, "topP": 0.9},
    }
    headers = dict(call.headers)
    assert headers["x-amz-date"] == "20270115T080000Z"  # the injected clock's wall time
    assert headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDTESTKEY/20270115/eu-west-1/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature="
    )
    assert headers["host"] == "bedrock-runtime.eu-west-1.amazonaws.com"
    # The signature is the one AWS computes (checked the way the fake checks it, with botocore).
    assert (
        check(
            headers["authorization"],
            method="POST",
            url=call.url,
            headers=headers,
            body=call.body,
            api_key=None,
            keys=KEYS,
        )
        == "sigv4"
    )


def test_model_ids_with_colons_and_slashes_stay_one_path_segment() -> None:
    arn = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-v2:0"
    call = _adapter().build(_deployment(model=arn), _chat(stream=True))
    assert call.url.endswith(
        "/model/arn:aws:bedrock:eu-west-1:123456789012:inference-profile%2Feu.anthropic."
        "claude-v2:0/converse-stream"
    )
    litellm_route = _adapter().build(_deployment(model="converse/meta.llama3-8b"), _chat())
    assert "/model/meta.llama3-8b/converse" in litellm_route.url


def test_session_tokens_are_sent_and_signed_and_env_credentials_are_the_fallback() -> None:
    deployment = Deployment(model_name="c", provider="bedrock", model="amazon.nova-lite-v1:0")
    environ = {
        "AWS_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_SESSION_TOKEN": "env-token",
    }
    call = _adapter(environ).build(deployment, _chat())
    assert call.url.startswith("https://bedrock-runtime.us-west-2.amazonaws.com/")
    assert call.headers["x-amz-security-token"] == "env-token"
    assert "x-amz-security-token" in call.headers["authorization"]
    assert "Credential=AKIDENV/" in call.headers["authorization"]


def test_api_keys_are_bearer_tokens_instead_of_signatures() -> None:
    deployment = _deployment(api_key=Secret("bedrock-key"))
    call = _adapter().build(deployment, _chat())
    assert call.headers["authorization"] == "Bearer bedrock-key"
    assert "x-amz-date" not in call.headers
    plain = Deployment(
        model_name="c", provider="bedrock", model="m", params={"aws_region_name": "us-east-1"}
    )
    env = _adapter({"AWS_BEARER_TOKEN_BEDROCK": "env-key"}).build(plain, _chat())
    assert env.headers["authorization"] == "Bearer env-key"


def test_missing_credentials_region_or_unsupported_settings_fail_without_revealing_keys() -> None:
    bare = Deployment(model_name="c", provider="bedrock", model="m")
    with pytest.raises(AuthenticationError, match="no credentials") as caught:
        _adapter({"AWS_REGION": "us-east-1"}).build(bare, _chat())
    assert caught.value.message.startswith("bedrock: ")
    with pytest.raises(ConfigError, match="needs a region"):
        _adapter({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}).build(bare, _chat())
    # Half a key pair is never completed with the environment's: refused when built (at load).
    with pytest.raises(ConfigError, match="aws_access_key_id is set but aws_secret_access_key"):
        Deployment(
            model_name="c",
            provider="bedrock",
            model="m",
            params={"aws_region_name": "us-east-1", "aws_access_key_id": "AKIDHALF"},
        )
    with pytest.raises(ConfigError, match="aws_role_name") as refused:
        _deployment(params={"aws_role_name": "arn:role"})
    assert KEYS.secret_key not in str(refused.value)
    credentials = AwsCredentials("AKIDX", Secret("very-secret"), Secret("very-token"))
    assert "very-secret" not in repr(credentials)
    assert "very-token" not in repr(credentials)


def test_text_completions_are_not_bedrock_operations() -> None:
    request = Request(model="c", body={"prompt": "x"}, operation=Operation.COMPLETION)
    with pytest.raises(InvalidRequestError, match="text completions"):
        _adapter().build(_deployment(), request)


def test_system_prompts_are_hoisted_and_turns_of_one_role_merged() -> None:
    body = _native(
        _deployment(),
        _chat(
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": "Still there?"},
            {"role": "assistant", "content": "Yes."},
            {"role": "user", "content": "Good."},
        ),
    )
    assert body["system"] == [{"text": "Be brief."}, {"text": "Use metric units."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "Hi"}, {"text": "Still there?"}]},
        {"role": "assistant", "content": [{"text": "Yes."}]},
        {"role": "user", "content": [{"text": "Good."}]},
    ]


def test_inline_images_become_image_blocks_and_urls_are_refused() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    body = _native(_deployment(), _chat({"role": "user", "content": parts}))
    assert body["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": PIXEL}}
    }
    by_url = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(InvalidRequestError, match="image") as caught:
        _adapter().build(_deployment(), _chat({"role": "user", "content": by_url}))
    assert caught.value.param == "messages[0].content[0].image_url"
    bmp = [{"type": "image_url", "image_url": {"url": f"data:image/bmp;base64,{PIXEL}"}}]
    with pytest.raises(InvalidRequestError, match="png, jpeg, gif or webp"):
        _adapter().build(_deployment(), _chat({"role": "user", "content": bmp}))


def test_tools_choices_calls_and_results_in_converse_shapes() -> None:
    conversation = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "tooluse_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "tooluse_1", "content": "Sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    body = _native(_deployment(), _chat(*conversation, tools=[WEATHER], tool_choice="required"))
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "inputSchema": {"json": WEATHER["function"]["parameters"]},
                }
            }
        ],
        "toolChoice": {"any": {}},
    }
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "toolUse": {
                    "toolUseId": "tooluse_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            }
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "Sunny"}]}},
            {"text": "And tomorrow?"},
        ],
    }
    named = {"type": "function", "function": {"name": "get_weather"}}
    chosen = _native(_deployment(), _chat(tools=[WEATHER], tool_choice=named))
    assert chosen["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    auto = _native(_deployment(), _chat(tools=[WEATHER], tool_choice="auto"))
    assert auto["toolConfig"]["toolChoice"] == {"auto": {}}


def test_tool_choice_none_withholds_the_tools_unless_the_history_needs_them() -> None:
    assert "toolConfig" not in _native(_deployment(), _chat(tools=[WEATHER], tool_choice="none"))
    history = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "Rain"},
    ]
    with pytest.raises(InvalidRequestError) as caught:
        _adapter().build(_deployment(), _chat(*history, tools=[WEATHER], tool_choice="none"))
    assert caught.value.param == "tool_choice"
    dropped = _native(
        _deployment(drop_params=True), _chat(*history, tools=[WEATHER], tool_choice="none")
    )
    assert "toolChoice" not in dropped["toolConfig"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("seed", 7),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 0.5),
        ("logit_bias", {"1": 1}),
        ("parallel_tool_calls", False),
        ("response_format", {"type": "json_object"}),
    ],
)
def test_parameters_converse_cannot_honour_are_refused_or_dropped(field: str, value: Any) -> None:
    with pytest.raises(InvalidRequestError, match=f"does not support `{field}`") as caught:
        _adapter().build(_deployment(), _chat(**{field: value}))
    assert caught.value.param == field
    assert caught.value.message.startswith("bedrock: ")
    body = _native(_deployment(drop_params=True), _chat(**{field: value}))
    assert body == {"messages": [{"role": "user", "content": [{"text": "Hello"}]}]}


def test_harmless_values_schemas_stops_and_metadata_are_translated() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = _native(
        _deployment(),
        _chat(
            n=1,
            parallel_tool_calls=True,
            stop="END",
            user="u-1",
            metadata={"team": "search"},
            max_completion_tokens=9,
            response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        ),
    )
    assert body["inferenceConfig"] == {"stopSequences": ["END"], "maxTokens": 9}
    assert body["requestMetadata"] == {"user": "u-1", "team": "search"}
    assert body["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {
                "jsonSchema": {"schema": msgspec.json.encode(schema).decode(), "name": "s"}
            },
        }
    }


def test_deployment_params_are_defaults_native_extras_and_signed_headers() -> None:
    deployment = _deployment(
        params={
            "temperature": 0.3,
            "extra_body": {
                "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1"}
            },
            "extra_headers": {"X-Team": "a"},
        }
    )
    call = _adapter().build(deployment, _chat())
    body = msgspec.json.decode(call.body)
    assert body["inferenceConfig"] == {"temperature": 0.3}
    assert body["guardrailConfig"] == {"guardrailIdentifier": "g1", "guardrailVersion": "1"}
    assert call.headers["x-team"] == "a"
    assert "x-team" in call.headers["authorization"]
    caller_wins = _native(deployment, _chat(temperature=0.9))
    assert caller_wins["inferenceConfig"] == {"temperature": 0.9}


def test_bad_messages_are_refused_with_the_field_named() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _adapter().build(_deployment(), _chat({"role": "critic", "content": "x"}))
    assert caught.value.param == "messages[0].role"
    call = {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    with pytest.raises(InvalidRequestError) as broken:
        _adapter().build(_deployment(), _chat({"role": "assistant", "tool_calls": [call]}))
    assert broken.value.param == "messages[0].tool_calls[0].function.arguments"


# -- embeddings -----------------------------------------------------------------------------


def _embed(model: str, **body: Any) -> Request:
    return Request(model="e", body={"model": "e", **body}, operation=Operation.EMBEDDING)


def test_titan_embeds_one_input_per_call() -> None:
    titan = _deployment(model="amazon.titan-embed-text-v2:0")
    call = _adapter().build(titan, _embed(titan.model, input=["only"], dimensions=256))
    assert call.url.endswith("/model/amazon.titan-embed-text-v2:0/invoke")
    assert msgspec.json.decode(call.body) == {"inputText": "only", "dimensions": 256}
    with pytest.raises(InvalidRequestError, match="one text per request") as caught:
        _adapter().build(titan, _embed(titan.model, input=["first", "second"]))
    assert caught.value.param == "input"
    reply = msgspec.json.encode({"embedding": [0.5, 0.25], "inputTextTokenCount": 3})
    answer = _adapter().parse(titan, _embed(titan.model, input="only"), reply, {})
    assert answer.body["data"] == [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}]
    assert answer.body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert answer.usage.prompt_tokens == 3


def test_cohere_embeds_all_inputs_at_once_and_reports_usage_from_the_header() -> None:
    cohere = _deployment(model="cohere.embed-english-v3", params={"input_type": "search_query"})
    request = _embed(cohere.model, input=["a", "b"], encoding_format="base64")
    call = _adapter().build(cohere, request)
    assert msgspec.json.decode(call.body) == {"texts": ["a", "b"], "input_type": "search_query"}
    assert call.headers["accept"] == "application/json"
    reply = msgspec.json.encode(
        {"id": "x", "embeddings": [[1.0, 0.0], [0.0, 1.0]], "response_type": "embeddings_floats"}
    )
    answer = _adapter().parse(cohere, request, reply, {"x-amzn-bedrock-input-token-count": "4"})
    first = answer.body["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(first)) == (1.0, 0.0)
    assert answer.usage.prompt_tokens == 4
    with pytest.raises(InvalidRequestError, match="`dimensions`"):
        _adapter().build(cohere, _embed(cohere.model, input="a", dimensions=8))
    plain = _deployment(model="cohere.embed-english-v3")
    assert msgspec.json.decode(_adapter().build(plain, _embed("m", input="a")).body) == {
        "texts": ["a"],
        "input_type": "search_document",
    }


def test_embedding_models_bedrock_does_not_know_here_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match=r"amazon\.titan-embed"):
        _adapter().build(_deployment(), _embed("m", input="a"))


# -- answers --------------------------------------------------------------------------------


def _converse(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> bytes:
    counts = {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17, **usage}
    return msgspec.json.encode(
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": counts,
            "metrics": {"latencyMs": 120},
        }
    )


async def test_a_text_answer_is_a_chat_completion() -> None:
    # Through its provider on a `MockTransport`, which checks the signature as Bedrock would.
    raw = _converse(
        [{"text": "Hello "}, {"text": "there"}],
        cacheReadInputTokens=10,
        cacheWriteInputTokens=3,
        totalTokens=30,
    )

    def bedrock(call: UpstreamRequest) -> UpstreamReply:
        headers = dict(call.headers)
        signed = check(
            headers["authorization"],
            method=call.method,
            url=call.url,
            headers=headers,
            body=call.body,
            api_key=None,
            keys=KEYS,
        )
        assert signed == "sigv4"
        return UpstreamReply(200, {"X-Amzn-RequestId": "req-1"}, raw)

    transport = MockTransport(bedrock)
    answer = await HttpProvider(_adapter(), transport).complete(_deployment(), _chat())
    assert len(transport.requests) == 1
    assert answer.body == {
        "id": "chatcmpl-req-1",
        "object": "chat.completion",
        "created": int(CLOCK.wall()),
        "model": "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            # Bedrock counts cache reads and writes apart from inputTokens; OpenAI includes them.
            "prompt_tokens": 25,
            "completion_tokens": 5,
            "total_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
    }
    assert answer.usage.cached_tokens == 10


def test_a_tool_use_answer_carries_openai_tool_calls() -> None:
    blocks: list[dict[str, Any]] = [
        {"text": "Let me check."},
        {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather", "input": {"city": "Oslo"}}},
        {"reasoningContent": {"reasoningText": {"text": "thinking", "signature": "s"}}},
    ]
    answer = _adapter().parse(_deployment(), _chat(), _converse(blocks, "tool_use"), {})
    choice = answer.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    assert choice["message"]["reasoning_content"] == "thinking"
    [call] = choice["message"]["tool_calls"]
    assert call == {
        "id": "tooluse_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    }
    only_call = _adapter().parse(_deployment(), _chat(), _converse(blocks[1:2], "tool_use"), {})
    assert only_call.body["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("content_filtered", "content_filter"),
    ],
)
def test_each_stop_reason_maps_to_its_finish_reason(stop: str, finish: str) -> None:
    answer = _adapter().parse(_deployment(), _chat(), _converse([{"text": "Hi"}], stop), {})
    assert answer.body["choices"][0]["finish_reason"] == finish


def test_a_refusal_with_nothing_of_the_models_own_is_a_content_policy_error() -> None:
    blocked = _converse(
        [{"text": "Sorry, the model cannot answer this question."}], "guardrail_intervened"
    )
    with pytest.raises(ContentPolicyError, match="cannot answer") as caught:
        _adapter().parse(_deployment(), _chat(), blocked, {})
    assert caught.value.to_openai()["error"]["code"] == "content_policy_violation"
    assert caught.value.status == 400
    with pytest.raises(ContentPolicyError):
        _adapter().parse(_deployment(), _chat(), _converse([], "content_filtered"), {})


@pytest.mark.parametrize("stop", ["malformed_model_output", "malformed_tool_use"])
def test_malformed_output_is_a_server_error(stop: str) -> None:
    with pytest.raises(ServerError, match=stop):
        _adapter().parse(_deployment(), _chat(), _converse([{"text": "{"}], stop), {})


def test_an_answer_that_is_not_a_converse_reply_is_a_server_error() -> None:
    with pytest.raises(ServerError, match="not a Converse reply"):
        _adapter().parse(_deployment(), _chat(), b"<html>", {})


# -- errors ---------------------------------------------------------------------------------


def _error(status: int, kind: str | None, message: str, **headers: str) -> ProviderError:
    if kind is not None:
        headers["x-amzn-ErrorType"] = f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    return _adapter().error(status, msgspec.json.encode({"message": message}), headers)


@pytest.mark.parametrize(
    ("status", "kind", "message", "expected", "client_status"),
    [
        (400, "ValidationException", "Malformed input request", BadRequestError, 400),
        (
            400,
            "ValidationException",
            "Input is too long for requested model.",
            ContextWindowExceededError,
            400,
        ),
        (
            400,
            "ValidationException",
            "The model returned the following errors: prompt is too long: 227255 tokens > "
            "200000 maximum",
            ContextWindowExceededError,
            400,
        ),
        (
            400,
            "ValidationException",
            "This request has been blocked by our content filters.",
            ContentPolicyError,
            400,
        ),
        (400, "ValidationException", "The guardrail identifier is invalid.", BadRequestError, 400),
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model.",
            PermissionDeniedError,
            502,
        ),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            AuthenticationError,
            502,
        ),
        (
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match",
            AuthenticationError,
            502,
        ),
        (
            403,
            "ExpiredTokenException",
            "The security token included in the request is expired",
            AuthenticationError,
            502,
        ),
        (404, "ResourceNotFoundException", "Model not found", UpstreamNotFoundError, 502),
        (
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
            RateLimitError,
            429,
        ),
        (400, "ServiceQuotaExceededException", "Quota exceeded", RateLimitError, 429),
        (408, "ModelTimeoutException", "Model has timed out", UpstreamTimeoutError, 504),
        (500, "InternalServerException", "Internal error", ServerError, 502),
        (
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
            ServerError,
            502,
        ),
        (424, "ModelErrorException", "The model failed", ServerError, 502),
        (429, "ModelNotReadyException", "Model is not ready", ServerError, 502),
    ],
)
def test_native_errors_map_to_turnouts_tree(
    status: int, kind: str, message: str, expected: type[ProviderError], client_status: int
) -> None:
    error = _error(status, kind, message)
    assert type(error) is expected
    assert error.status == client_status
    assert error.upstream_status == status
    assert error.message == f"bedrock: {kind}: {message}"


def test_errors_without_a_type_header_use_the_body_or_the_status() -> None:
    body = msgspec.json.encode(
        {"__type": "com.amazon.coral#ThrottlingException", "message": "slow"}
    )
    assert isinstance(_adapter().error(429, body, {}), RateLimitError)
    assert isinstance(_error(502, None, "Bad gateway"), ServerError)
    assert isinstance(_error(401, None, "who are you"), AuthenticationError)
    assert isinstance(
        _error(403, None, "Authentication failed: check your API key"), AuthenticationError
    )
    assert isinstance(_error(403, None, "Not allowed"), PermissionDeniedError)
    html = _adapter().error(503, b"<html>Service Unavailable</html>", {})
    assert isinstance(html, ServerError)
    assert html.message == "bedrock: <html>Service Unavailable</html>"


def test_a_retry_after_header_is_kept() -> None:
    error = _error(429, "ThrottlingException", "slow down", **{"retry-after": "3"})
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 3.0


def test_no_rate_limit_headers_and_capabilities_by_model_family() -> None:
    adapter = _adapter()
    assert adapter.rate_limits({"x-amzn-requestid": "r"}) is None
    claude = adapter.capabilities("us.anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert claude.vision and claude.tools and claude.assistant_prefill
    assert adapter.capabilities("amazon.titan-embed-text-v2:0").embeddings
    assert adapter.capabilities("cohere.embed-english-v3").embeddings
    assert not adapter.capabilities("cohere.command-r-v1:0").vision
    assert adapter.capabilities("amazon.nova-pro-v1:0").vision
    assert not adapter.capabilities("amazon.nova-micro-v1:0").vision
    assert not adapter.capabilities("meta.llama3-8b-instruct-v1:0").vision
    assert adapter.capabilities("meta.llama3-2-90b-instruct-v1:0").vision


def test_a_stream_exception_without_a_known_type_interrupts_the_stream() -> None:
    from turnout.providers.bedrock.errors import stream_exception

    assert isinstance(
        stream_exception("weirdException", b'{"message":"?"}'), StreamInterruptedError
    )
    throttled = stream_exception("throttlingException", b'{"message":"slow"}')
    assert isinstance(throttled, RateLimitError)
    assert throttled.message == "bedrock: throttlingException: slow"
