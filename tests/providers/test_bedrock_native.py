"""Claude's Messages API on Bedrock: which deployments take it, the InvokeModel body and call
built from the caller's, and the event stream's ``chunk`` frames decoded into native events.

Frames are written by the fake's encoder and read through botocore's decoder, as for
ConverseStream (`test_bedrock_stream`).
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakes.fake_bedrock.auth import SigningKeys, check
from fakes.fake_bedrock.eventstream import corrupt, event, exception, frame
from turnout import Deployment, Request, Secret
from turnout.errors import (
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from turnout.providers.anthropic.native import (
    NativeEvent,
    NativeMessagesRequest,
    carrying,
    takes_messages,
)
from turnout.providers.bedrock.adapter import create_adapter
from turnout.providers.bedrock.native import InvokeStreamTranslator, invoke_body
from turnout.providers.bedrock.stream import ConverseStreamTranslator
from turnout.testing import ManualClock
from turnout.wire import StreamChunk

CLOCK = ManualClock(epoch=1_800_000_000.0)
KEYS = SigningKeys("AKIDTESTKEY", "test-secret-value", "eu-west-1")
PROFILE = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
ASK: dict[str, Any] = {
    "model": "claude",
    "max_tokens": 1024,
    "stream": True,
    "thinking": {"type": "enabled", "budget_tokens": 512},
    "messages": [{"role": "user", "content": "hi"}],
}
EVENTS: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "h"},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "s"},
    },
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"outputTokenCount": 3}},
]


def _deployment(model: str = PROFILE, **settings: Any) -> Deployment:
    params = {
        "aws_region_name": KEYS.region,
        "aws_access_key_id": KEYS.access_key,
        "aws_secret_access_key": Secret(KEYS.secret_key),
        **settings,
    }
    return Deployment(model_name="claude", provider="bedrock", model=model, params=params)


def _messages(
    body: dict[str, Any] = ASK, headers: dict[str, str] | None = None
) -> NativeMessagesRequest:
    chat = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    request = Request(model="claude", body={**chat, "stream": body.get("stream") is True})
    native = carrying(request, body, headers or {})
    assert isinstance(native, NativeMessagesRequest)
    return native


def _chunk(data: dict[str, Any]) -> bytes:
    return event("chunk", {"bytes": base64.b64encode(msgspec.json.encode(data)).decode()})


def _run(translator: InvokeStreamTranslator, pieces: list[bytes]) -> list[StreamChunk]:
    out: list[StreamChunk] = []
    for piece in pieces:
        out += translator.feed(piece)
        translator.check()
    return out + translator.finish()


def _translator() -> InvokeStreamTranslator:
    translator = create_adapter("bedrock", {}, CLOCK).translator(_deployment(), _messages())
    assert isinstance(translator, InvokeStreamTranslator)
    return translator


@pytest.mark.parametrize(
    ("provider", "model", "native"),
    [
        ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", True),
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", True),
        ("bedrock", "global.anthropic.claude-opus-4-1-20250805-v1:0", True),
        (
            "bedrock",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            True,
        ),
        ("bedrock", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2:1", True),
        ("bedrock", "invoke/anthropic.claude-3-haiku-20240307-v1:0", True),
        # An explicit Converse route, a model of another vendor, an application profile.
        ("bedrock", "converse/anthropic.claude-3-haiku-20240307-v1:0", False),
        ("bedrock", "amazon.nova-pro-v1:0", False),
        (
            "bedrock",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1",
            False,
        ),
        ("anthropic", "claude-sonnet-4-5", True),
        ("openai", "anthropic.claude-lookalike", False),
    ],
)
def test_which_deployments_take_a_messages_request(provider: str, model: str, native: bool) -> None:
    deployment = Deployment(model_name="claude", provider=provider, model=model)
    assert takes_messages(deployment) is native


def test_the_body_is_the_callers_without_model_and_stream_with_bedrocks_version() -> None:
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    body = invoke_body(_messages({**ASK, "system": system}), {})
    assert body == {
        "max_tokens": 1024,
        "thinking": {"type": "enabled", "budget_tokens": 512},
        "messages": [{"role": "user", "content": "hi"}],
        "system": system,
        "anthropic_version": "bedrock-2023-05-31",
    }


def test_betas_join_the_deployments_then_the_callers_each_once() -> None:
    extra = {"anthropic_beta": ["context-1m-2025-08-07"], "top_k": 3, "max_tokens": 10}
    header = {"anthropic-beta": "interleaved-thinking-2025-05-14, context-1m-2025-08-07"}
    body = invoke_body(_messages({**ASK, "anthropic_version": "2023-06-01"}, header), extra)
    assert body["anthropic_beta"] == ["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"]
    # The deployment's extra_body wins, as on Anthropic's API; the version is always Bedrock's.
    assert body["top_k"] == 3 and body["max_tokens"] == 10
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert "anthropic_beta" not in invoke_body(_messages(ASK, {"anthropic-beta": " , "}), {})


@pytest.mark.parametrize("streamed", [False, True])
def test_the_call_is_invoke_on_the_model_path_signed_like_converse(streamed: bool) -> None:
    request = _messages({**ASK, "stream": streamed})
    call = create_adapter("bedrock", {}, CLOCK).build(_deployment(), request)
    action = "invoke-with-response-stream" if streamed else "invoke"
    assert call.url == (f"https://bedrock-runtime.eu-west-1.amazonaws.com/model/{PROFILE}/{action}")
    assert msgspec.json.decode(call.body)["anthropic_version"] == "bedrock-2023-05-31"
    headers = dict(call.headers)
    signed = check(
        headers["authorization"],
        method="POST",
        url=call.url,
        headers=headers,
        body=call.body,
        api_key=None,
        keys=KEYS,
    )
    assert signed == "sigv4"


def test_a_chat_request_for_claude_still_goes_through_converse() -> None:
    adapter = create_adapter("bedrock", {}, CLOCK)
    hello = [{"role": "user", "content": "hi"}]
    chat = Request(model="claude", body={"model": "claude", "messages": hello, "stream": True})
    assert adapter.build(_deployment(), chat).url.endswith("/converse-stream")
    assert isinstance(adapter.translator(_deployment(), chat), ConverseStreamTranslator)
    # A Messages request for a model that is not Claude is translated too.
    nova = _deployment("amazon.nova-pro-v1:0")
    assert adapter.build(nova, _messages()).url.endswith("/converse-stream")


def test_a_whole_answer_is_relayed_as_it_came_and_read_for_usage() -> None:
    message = (
        b'{"id":"msg_1","type":"message","role":"assistant","model":"claude",'
        b'"content":[{"type":"thinking","thinking":"h","signature":"s"},'
        b'{"type":"text","text":"Hello"}],"stop_reason":"end_turn","stop_sequence":null,'
        b'"usage":{"input_tokens":5,"cache_read_input_tokens":2,"output_tokens":3}}'
    )
    answer = create_adapter("bedrock", {}, CLOCK).parse(_deployment(), _messages(), message, {})
    assert answer.raw == message
    assert answer.body["choices"][0]["message"]["content"] == "Hello"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (7, 3)
    assert answer.usage.cached_tokens == 2


def test_each_chunk_becomes_a_native_event_relayed_as_it_came() -> None:
    chunks = _run(_translator(), [_chunk(e) for e in EVENTS])
    assert all(isinstance(c, NativeEvent) for c in chunks)
    frames = [c.frame for c in chunks if isinstance(c, NativeEvent)]
    assert frames == [
        b"event: " + e["type"].encode() + b"\ndata: " + msgspec.json.encode(e) + b"\n\n"
        for e in EVENTS
    ]
    finish = [c for c in chunks if c.finish_reason]
    assert [c.finish_reason for c in finish] == ["stop"]
    assert finish[0].usage is not None and finish[0].usage.completion_tokens == 3


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_frames_split_anywhere_give_the_same_events(cuts: list[int]) -> None:
    body = b"".join(_chunk(e) for e in EVENTS)
    pieces, at = [], 0
    for size in cuts:
        pieces.append(body[at : at + size])
        at += size
    pieces.append(body[at:])
    frames = [c.frame for c in _run(_translator(), pieces) if isinstance(c, NativeEvent)]
    assert len(frames) == len(EVENTS)


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("throttlingException", RateLimitError),
        ("modelStreamErrorException", ServerError),
        ("internalServerException", ServerError),
    ],
)
def test_an_exception_frame_fails_the_stream_after_the_events_before_it(
    member: str, expected: type[ProviderError]
) -> None:
    translator = _translator()
    good = translator.feed(b"".join(_chunk(e) for e in EVENTS[:3]) + exception(member, "boom"))
    assert len(good) == 3
    with pytest.raises(expected, match="boom"):
        translator.check()


def test_broken_frames_and_payloads_interrupt_the_stream() -> None:
    broken = [
        corrupt(_chunk(EVENTS[0])),
        event("chunk", {"bytes": "not base64!"}),
        event("chunk", {"nothing": 1}),
        _chunk({"no": "type"}),
        frame({":message-type": "event", ":event-type": "chunk"}, b"not json"),
    ]
    for piece in broken:
        translator = _translator()
        translator.feed(piece)
        with pytest.raises(StreamInterruptedError):
            translator.check()


def test_nothing_is_read_past_message_stop() -> None:
    translator = _translator()
    after = exception("throttlingException", "late")
    chunks = translator.feed(b"".join(_chunk(e) for e in EVENTS) + after)
    translator.check()
    assert len(chunks) == len(EVENTS) and translator.done
