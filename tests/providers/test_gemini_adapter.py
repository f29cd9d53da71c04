"""The Gemini adapter: OpenAI requests out as Gemini bodies, Gemini answers, events and errors
back in OpenAI's shapes and turnout's error tree. Native bodies follow the Gemini API reference
(ai.google.dev/api/generate-content) and the errors it documents."""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec
import pytest

from turnout import Deployment, Request, Secret
from turnout.errors import (
    ContentPolicyError,
    InvalidRequestError,
    ServerError,
    UnsupportedParameterError,
)
from turnout.providers.gemini.adapter import GeminiAdapter, create_adapter
from turnout.providers.gemini.messages import call_id, signature_of
from turnout.providers.http import HttpProvider
from turnout.providers.registry import native_adapter
from turnout.testing import ManualClock, MockTransport
from turnout.upstream import UpstreamReply
from turnout.wire import Operation

KEY = "AIza-secret-key"
CLOCK = ManualClock(epoch=1_700_000_000.0)
DEPLOYMENT = Deployment(
    model_name="chat", provider="gemini", model="gemini-2.0-flash", api_key=Secret(KEY)
)
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def _adapter(environ: dict[str, str] | None = None) -> GeminiAdapter:
    return GeminiAdapter("gemini", environ or {}, CLOCK)


def _chat(*messages: Any, **body: Any) -> Request:
    turns = list(messages) or [{"role": "user", "content": "Hello"}]
    return Request(model="chat", body={"model": "chat", "messages": turns, **body})


def _native(request: Request, deployment: Deployment = DEPLOYMENT) -> dict[str, Any]:
    body: dict[str, Any] = msgspec.json.decode(_adapter().build(deployment, request).body)
    return body


def _deployment(**fields: Any) -> Deployment:
    base: dict[str, Any] = {
        "model_name": "chat",
        "provider": "gemini",
        "model": "gemini-2.0-flash",
        "api_key": Secret(KEY),
    }
    return Deployment(**{**base, **fields})


def _encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


# -- build: where the call goes ------------------------------------------------------------------


def test_chat_goes_to_generate_content_with_the_key_in_its_header() -> None:
    call = _adapter().build(DEPLOYMENT, _chat())
    assert call.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
    )
    assert call.headers["x-goog-api-key"] == KEY
    assert call.headers["content-type"] == "application/json"
    assert "authorization" not in call.headers


def test_streams_ask_for_server_sent_events() -> None:
    call = _adapter().build(DEPLOYMENT, _chat(stream=True))
    assert call.url.endswith("/models/gemini-2.0-flash:streamGenerateContent?alt=sse")


def test_the_key_comes_from_the_environment_when_the_deployment_has_none() -> None:
    keyless = _deployment(api_key=None)
    gemini = _adapter({"GEMINI_API_KEY": "from-gemini", "GOOGLE_API_KEY": "from-google"})
    assert gemini.build(keyless, _chat()).headers["x-goog-api-key"] == "from-gemini"
    google = _adapter({"GOOGLE_API_KEY": "from-google"})
    assert google.build(keyless, _chat()).headers["x-goog-api-key"] == "from-google"
    assert "x-goog-api-key" not in _adapter().build(keyless, _chat()).headers


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:9/", "http://127.0.0.1:9/v1beta/models/m:generateContent"),
        ("https://proxy.example/v1beta", "https://proxy.example/v1beta/models/m:generateContent"),
        ("https://proxy.example/v1", "https://proxy.example/v1/models/m:generateContent"),
    ],
)
def test_a_base_url_replaces_the_host_and_keeps_its_version(base_url: str, expected: str) -> None:
    deployment = _deployment(model="models/m", base_url=base_url)
    assert _adapter().build(deployment, _chat()).url == expected


def test_vertex_project_selects_vertex_ai_with_a_bearer_token() -> None:
    deployment = _deployment(params={"vertex_project": "proj", "vertex_location": "europe-west4"})
    call = _adapter().build(deployment, _chat(stream=True))
    assert call.url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west4"
        "/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    )
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert "x-goog-api-key" not in call.headers
    native = msgspec.json.decode(call.body)
    assert "vertex_project" not in native
    assert "vertex_location" not in native


def test_vertex_defaults_to_us_central1_and_global_has_no_region_host() -> None:
    default = _adapter().build(_deployment(params={"vertex_project": "p"}), _chat())
    assert default.url.startswith("https://us-central1-aiplatform.googleapis.com/v1/projects/p/")
    glob = _deployment(params={"vertex_project": "p", "vertex_location": "global"})
    assert (
        _adapter()
        .build(glob, _chat())
        .url.startswith("https://aiplatform.googleapis.com/v1/projects/p/locations/global/")
    )


def test_operations_gemini_lacks_are_rejected_before_sending() -> None:
    completion = Request(model="c", body={"prompt": "x"}, operation=Operation.COMPLETION)
    with pytest.raises(InvalidRequestError, match=r"gemini: .*completions"):
        _adapter().build(DEPLOYMENT, completion)
    embed = Request(model="e", body={"input": "x"}, operation=Operation.EMBEDDING)
    with pytest.raises(InvalidRequestError, match="Vertex AI"):
        _adapter().build(_deployment(params={"vertex_project": "p"}), embed)


def test_the_registry_builds_it() -> None:
    adapter = native_adapter("gemini", environ={}, clock=CLOCK)
    assert isinstance(adapter, GeminiAdapter)
    assert isinstance(create_adapter("gemini", {}, CLOCK), GeminiAdapter)


def test_capabilities_by_model() -> None:
    adapter = _adapter()
    chat = adapter.capabilities("gemini-2.5-pro")
    assert (chat.tools, chat.vision, chat.json_mode, chat.embeddings) == (True, True, True, False)
    assert adapter.capabilities("models/gemini-1.5-flash").vision
    assert adapter.capabilities("text-embedding-004").embeddings
    assert adapter.capabilities("gemini-embedding-001").embeddings
    assert not adapter.capabilities("gemini-embedding-001").tools


# -- build: the conversation ---------------------------------------------------------------------


def test_system_and_developer_messages_become_the_system_instruction() -> None:
    native = _native(
        _chat(
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
        )
    )
    assert native["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "No emoji."}]}
    assert native["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


def test_roles_map_and_consecutive_turns_of_one_role_merge() -> None:
    native = _native(
        _chat(
            {"role": "user", "content": "My name is Ada."},
            {"role": "user", "content": "Remember it."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "What is my name?"},
        )
    )
    assert [c["role"] for c in native["contents"]] == ["user", "model", "user"]
    assert native["contents"][0]["parts"] == [{"text": "My name is Ada."}, {"text": "Remember it."}]


def test_images_inline_and_by_url() -> None:
    pixel = base64.b64encode(b"\x89PNG").decode()
    native = _native(
        _chat(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a/cat.png"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
                ],
            }
        )
    )
    assert native["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": pixel}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a/cat.png"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
    ]


def test_audio_and_pdf_parts_become_inline_data() -> None:
    native = _native(
        _chat(
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                ],
            }
        )
    )
    assert native["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png,not-base64"}},
        {"type": "file", "file": {"file_id": "file-123"}},
        {"type": "video", "video": {}},
    ],
)
def test_parts_gemini_cannot_take_are_a_clear_400(part: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match=r"^gemini: ") as caught:
        _adapter().build(DEPLOYMENT, _chat({"role": "user", "content": [part]}))
    assert caught.value.param == "messages"


def test_tool_round_trip_becomes_function_call_and_response_parts() -> None:
    signed = call_id("seed", "c2lnbmF0dXJl+/+/")
    native = _native(
        _chat(
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": signed,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": signed, "content": "Sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "9"}]},
            tools=[WEATHER],
        )
    )
    assert native["contents"][1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": "c2lnbmF0dXJl+/+/",
            },
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    }
    assert native["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"content": "Sunny"}}},
            {"functionResponse": {"name": "get_time", "response": {"content": "9"}}},
        ],
    }


def test_a_tool_result_for_an_unknown_call_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="no earlier assistant"):
        _adapter().build(
            DEPLOYMENT,
            _chat({"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope"}),
        )


def test_tool_call_ids_carry_thought_signatures_in_a_portable_alphabet() -> None:
    signature = "ab+/cd=="
    identifier = call_id("r/0/0", signature)
    assert identifier.replace("_", "").replace("-", "").isalnum()
    assert signature_of({"id": identifier}) == signature
    assert signature_of({"id": call_id("r/0/0")}) is None
    assert call_id("r/0/0") == call_id("r/0/0") != call_id("r/0/1")
    extra = {"id": "x", "extra_content": {"google": {"thought_signature": "sig"}}}
    assert signature_of(extra) == "sig"


# -- build: parameters ---------------------------------------------------------------------------


def test_sampling_parameters_go_to_generation_config() -> None:
    native = _native(
        _chat(
            temperature=0.3,
            top_p=0.9,
            top_k=40,
            max_completion_tokens=100,
            stop="END",
            n=2,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            seed=7,
            user="someone",
        )
    )
    assert native["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "topK": 40,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
        "seed": 7,
        "maxOutputTokens": 100,
        "stopSequences": ["END"],
        "candidateCount": 2,
    }
    assert _native(_chat(max_tokens=5, n=1))["generationConfig"] == {"maxOutputTokens": 5}


def test_response_format_becomes_json_mode_or_a_response_schema() -> None:
    json_object = _native(_chat(response_format={"type": "json_object"}))
    assert json_object["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {
        "type": "object",
        "properties": {"n": {"type": ["integer", "null"]}},
        "additionalProperties": False,
    }
    format_ = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    config = _native(_chat(response_format=format_))["generationConfig"]
    assert config == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "object",
            "properties": {"n": {"type": "integer", "nullable": True}},
        },
    }


def test_reasoning_effort_is_a_budget_on_gemini_2_5_and_a_level_on_gemini_3() -> None:
    config = _native(_chat(reasoning_effort="low"))["generationConfig"]
    assert config == {"thinkingConfig": {"thinkingBudget": 1024}}
    three = _deployment(model="gemini-3-pro-preview")
    config = _native(_chat(reasoning_effort="high"), three)["generationConfig"]
    assert config == {"thinkingConfig": {"thinkingLevel": "high"}}


def test_tools_and_tool_choice() -> None:
    nothing = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
    native = _native(_chat(tools=[WEATHER, nothing], tool_choice="required"))
    assert native["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
                {"name": "now"},
            ]
        }
    ]
    assert native["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert _native(_chat(tools=[WEATHER], tool_choice="none"))["toolConfig"] == {
        "functionCallingConfig": {"mode": "NONE"}
    }
    assert "toolConfig" not in _native(_chat(tools=[WEATHER]))
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert _native(_chat(tools=[WEATHER], tool_choice=named))["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("logit_bias", {"1": 2}),
        ("logprobs", True),
        ("parallel_tool_calls", False),
        ("tools", [{"type": "web_search"}]),
        ("response_format", {"type": "xml"}),
        ("reasoning_effort", "extreme"),
        ("audio", {"voice": "x"}),
    ],
)
def test_parameters_gemini_cannot_honour_are_a_400_unless_dropped(field: str, value: Any) -> None:
    with pytest.raises(UnsupportedParameterError) as caught:
        _adapter().build(DEPLOYMENT, _chat(**{field: value}))
    assert caught.value.param == field
    assert caught.value.message == f"gemini: Gemini does not support `{field}`"
    assert KEY not in caught.value.message
    native = _native(_chat(**{field: value}), _deployment(drop_params=True))
    assert field not in native
    assert native["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]


def test_harmless_openai_defaults_pass() -> None:
    native = _native(_chat(logprobs=False, parallel_tool_calls=True, store=False, stream=False))
    assert native == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}


def test_deployment_params_are_defaults_and_gemini_extras() -> None:
    deployment = _deployment(
        params={
            "temperature": 0.1,
            "max_tokens": 50,
            "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
            "extra_headers": {"x-team": "a"},
            "extra_body": {"generationConfig": {"topK": 3, "temperature": 9}, "cachedContent": "c"},
        }
    )
    call = _adapter().build(deployment, _chat(temperature=0.7))
    native = msgspec.json.decode(call.body)
    assert native["generationConfig"] == {"topK": 3, "temperature": 0.7, "maxOutputTokens": 50}
    assert native["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}
    ]
    assert native["cachedContent"] == "c"
    assert call.headers["x-team"] == "a"


def test_embeddings_go_to_batch_embed_contents() -> None:
    deployment = _deployment(model="text-embedding-004")
    request = Request(
        model="e",
        body={"model": "e", "input": ["a", "b"], "dimensions": 4, "encoding_format": "base64"},
        operation=Operation.EMBEDDING,
    )
    call = _adapter().build(deployment, request)
    assert call.url.endswith("/v1beta/models/text-embedding-004:batchEmbedContents")
    assert msgspec.json.decode(call.body) == {
        "requests": [
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "a"}]},
                "outputDimensionality": 4,
            },
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "b"}]},
                "outputDimensionality": 4,
            },
        ]
    }


def test_token_arrays_cannot_be_embedded() -> None:
    request = Request(model="e", body={"input": [[1, 2]]}, operation=Operation.EMBEDDING)
    with pytest.raises(InvalidRequestError, match="token arrays") as caught:
        _adapter().build(_deployment(model="text-embedding-004"), request)
    assert caught.value.param == "input"


# -- parse ---------------------------------------------------------------------------------------


def _answer(*candidates: dict[str, Any], usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"candidates": list(candidates), "responseId": "resp1"}
    body["usageMetadata"] = usage or {"promptTokenCount": 7, "candidatesTokenCount": 3}
    return _encode(body)


def _candidate(*parts: dict[str, Any], finish: str = "STOP", index: int = 0) -> dict[str, Any]:
    content = {"parts": list(parts), "role": "model"}
    return {"content": content, "finishReason": finish, "index": index}


def _parse(body: bytes, request: Request | None = None) -> Any:
    return _adapter().parse(DEPLOYMENT, request or _chat(), body, {})


async def test_a_text_answer_becomes_a_chat_completion() -> None:
    # Through its provider on a `MockTransport`: the call sent and the answer read back.
    thought = {"text": "thinking...", "thought": True}
    raw = _answer(_candidate(thought, {"text": "Hello "}, {"text": "there"}))
    transport = MockTransport(lambda call: UpstreamReply(200, {}, raw))
    answer = await HttpProvider(_adapter(), transport).complete(DEPLOYMENT, _chat())
    [sent] = transport.requests
    assert sent.url.endswith("/models/gemini-2.0-flash:generateContent")
    assert sent.headers["x-goog-api-key"] == KEY
    assert answer.body == {
        "id": "chatcmpl-resp1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gemini-2.0-flash",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (7, 3)


def test_a_function_call_becomes_a_tool_call_with_a_stable_id() -> None:
    part = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    signed = {**part, "thoughtSignature": "c2ln"}
    first = _parse(_answer(_candidate(part, signed))).body
    again = _parse(_answer(_candidate(part, signed))).body
    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] is None
    [plain, carried] = message["tool_calls"]
    assert plain["type"] == "function"
    assert plain["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert plain["id"] == again["choices"][0]["message"]["tool_calls"][0]["id"]
    assert plain["id"] != carried["id"]
    assert signature_of(carried) == "c2ln"


@pytest.mark.parametrize(
    ("native", "called", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("OTHER", False, "stop"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
    ],
)
def test_each_finish_reason(native: str, called: bool, expected: str) -> None:
    part = {"functionCall": {"name": "f", "args": {}}} if called else {"text": "partial"}
    body = _parse(_answer(_candidate(part, finish=native))).body
    assert body["choices"][0]["finish_reason"] == expected


def test_usage_counts_cached_prompt_tokens_and_thoughts_as_completion() -> None:
    usage = {
        "promptTokenCount": 100,
        "cachedContentTokenCount": 60,
        "candidatesTokenCount": 10,
        "thoughtsTokenCount": 25,
        "toolUsePromptTokenCount": 5,
        "totalTokenCount": 140,
    }
    answer = _parse(_answer(_candidate({"text": "x"}), usage=usage))
    assert answer.body["usage"] == {
        "prompt_tokens": 105,
        "completion_tokens": 35,
        "total_tokens": 140,
        "prompt_tokens_details": {"cached_tokens": 60},
        "completion_tokens_details": {"reasoning_tokens": 25},
    }
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (105, 35)
    assert answer.usage.cached_tokens == 60


def test_several_candidates_are_several_choices() -> None:
    body = _parse(
        _answer(_candidate({"text": "a"}), _candidate({"text": "b"}, finish="MAX_TOKENS", index=1))
    ).body
    assert [c["message"]["content"] for c in body["choices"]] == ["a", "b"]
    assert [c["finish_reason"] for c in body["choices"]] == ["stop", "length"]


def test_a_blocked_prompt_is_a_content_policy_error() -> None:
    blocked = _encode({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}})
    with pytest.raises(ContentPolicyError, match=r"^gemini: the prompt was blocked \(SAFETY\)"):
        _parse(blocked)


def test_an_answer_withheld_by_a_filter_is_a_content_policy_error() -> None:
    withheld = _encode({"candidates": [{"finishReason": "SAFETY", "index": 0}]})
    with pytest.raises(ContentPolicyError, match="withheld"):
        _parse(withheld)


def test_an_answer_that_is_not_json_is_a_server_error() -> None:
    with pytest.raises(ServerError, match=r"^gemini: "):
        _parse(b"<html>oops</html>")


def test_embeddings_answer_as_floats_or_base64() -> None:
    body = _encode({"embeddings": [{"values": [0.5, -0.25]}, {"values": [1.0, 0.0]}]})
    floats = Request(model="e", body={"input": ["a", "b"]}, operation=Operation.EMBEDDING)
    answer = _adapter().parse(DEPLOYMENT, floats, body, {})
    assert answer.body["data"][0] == {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}
    assert answer.body["usage"]["prompt_tokens"] == floats.prompt_tokens > 0
    assert answer.usage.prompt_tokens == floats.prompt_tokens
    packed = Request(
        model="e",
        body={"input": ["a", "b"], "encoding_format": "base64"},
        operation=Operation.EMBEDDING,
    )
    encoded = _adapter().parse(DEPLOYMENT, packed, body, {}).body["data"][1]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (1.0, 0.0)
