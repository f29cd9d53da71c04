"""Claude on Vertex AI behind a real `turnout serve`: the official `openai` SDK's chat and the
official `anthropic` SDK's Messages reach the Vertex paths of the Anthropic fake, whole and
streamed, with Vertex's body and bearer token; errors in Anthropic's and Google's shapes reach
the caller classified; a failing Vertex deployment falls back to another."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import msgspec
import openai
import pytest

from fakes.fake_anthropic import FakeAnthropic, Fault
from raw_upstream import RawReply, raw_upstream
from serve_process import serving

TOKEN = "ya29.served-vertex-token"
MODEL = "claude-sonnet-4@20250514"
PATH = f"/v1/projects/acme-ml/locations/us-east5/publishers/anthropic/models/{MODEL}:rawPredict"
STREAM_PATH = PATH.replace(":rawPredict", ":streamRawPredict")
HI: Any = [{"role": "user", "content": "Say hello"}]


def _vertex(name: str, url: str) -> dict[str, Any]:
    """A vertex_anthropic deployment with no key of its own: the token is the environment's."""
    return {
        "model_name": name,
        "provider": "vertex_anthropic",
        "model": MODEL,
        "base_url": url,
        "params": {"vertex_project": "acme-ml", "vertex_location": "us-east5"},
    }


@contextlib.asynccontextmanager
async def _served(
    tmp_path: Path, *deployments: dict[str, Any], **router: Any
) -> AsyncIterator[tuple[int, list[str]]]:
    config = tmp_path / "turnout.yaml"
    config.write_text(
        json.dumps(
            {
                "server": {"shutdown_timeout": 5},
                "model_list": list(deployments),
                "retries": {"num_retries": 0},
                **router,
            }
        )
    )
    env = {"VERTEX_ACCESS_TOKEN": TOKEN}
    async with serving("--config", str(config), "--port", "0", env=env) as (process, port, lines):
        yield port, lines
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 10)
    assert TOKEN not in "".join(lines)


def _openai(port: int) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", max_retries=0, timeout=10
    )


def _anthropic(port: int) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=f"http://127.0.0.1:{port}", api_key="sk-x", max_retries=0, timeout=10
    )


def _vertex_calls(fake: FakeAnthropic) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    return [(r.path, r.json, r.headers) for r in fake.requests if ":" in r.path]


async def test_openai_chat_whole_and_streamed_reaches_vertex(tmp_path: Path) -> None:
    async with (
        FakeAnthropic(models=(MODEL,), vertex_token=TOKEN) as fake,
        _served(tmp_path, _vertex("claude", fake.url)) as (port, _),
        _openai(port) as client,
    ):
        whole = await client.chat.completions.create(model="claude", messages=HI, max_tokens=50)
        stream = await client.chat.completions.create(
            model="claude", messages=HI, max_tokens=50, stream=True
        )
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert whole.choices[0].message.content
    assert "".join(pieces) == whole.choices[0].message.content
    (path, body, headers), (stream_path, stream_body, _) = _vertex_calls(fake)
    assert (path, stream_path) == (PATH, STREAM_PATH)
    assert body == {
        "messages": HI,
        "max_tokens": 50,
        "anthropic_version": "vertex-2023-10-16",
    }
    assert stream_body["stream"] is True and "model" not in stream_body
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-api-key" not in headers


async def test_anthropic_messages_whole_and_streamed_pass_through(tmp_path: Path) -> None:
    async with (
        FakeAnthropic(models=(MODEL,), vertex_token=TOKEN) as fake,
        _served(tmp_path, _vertex("claude", fake.url)) as (port, _),
        _anthropic(port) as client,
    ):
        whole = await client.messages.create(
            model="claude",
            max_tokens=64,
            messages=HI,
            extra_body={"top_k": 4},
            extra_headers={"anthropic-beta": "context-1m-2025-08-07"},
        )
        async with client.messages.stream(model="claude", max_tokens=64, messages=HI) as s:
            streamed = await s.get_final_message()
    assert whole.content[0].type == "text" and whole.content[0].text
    assert streamed.content[0].type == "text" and streamed.content[0].text
    assert whole.usage.output_tokens > 0
    (path, body, headers), (stream_path, stream_body, _) = _vertex_calls(fake)
    assert (path, stream_path) == (PATH, STREAM_PATH)
    assert body == {
        "max_tokens": 64,
        "messages": HI,
        "top_k": 4,
        "anthropic_version": "vertex-2023-10-16",
    }
    assert headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert stream_body["stream"] is True and "model" not in stream_body


SIGNATURE = "EqQBCkYIBxgCKkB7c2lnbmF0dXJlIG9mIHRoZSB0aGlua2luZw=="
THOUGHT: Any = {"type": "thinking", "thinking": "Two and two make four.", "signature": SIGNATURE}
MESSAGE: Any = {
    "id": "msg_vrtx_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": MODEL,
    "content": [THOUGHT, {"type": "text", "text": "4"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 9},
}
EVENTS: list[tuple[str, Any]] = [
    ("message_start", {"type": "message_start", "message": {**MESSAGE, "content": []}}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": THOUGHT["thinking"]},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": SIGNATURE},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "4"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 9},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]
ASK: Any = {
    "model": "claude",
    "max_tokens": 2048,
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "messages": [{"role": "user", "content": "What is 2 + 2?"}],
}


@pytest.mark.parametrize("streamed", [False, True])
async def test_thinking_and_its_signature_come_back_as_vertex_sent_them(
    tmp_path: Path, streamed: bool
) -> None:
    sse = b"".join(
        b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"
        for name, data in EVENTS
    )
    reply = (
        RawReply(200, sse, "text/event-stream")
        if streamed
        else RawReply(200, msgspec.json.encode(MESSAGE), "application/json")
    )
    async with (
        raw_upstream(reply) as upstream,
        _served(tmp_path, _vertex("claude", upstream.url)) as (port, _),
        _anthropic(port) as client,
    ):
        if streamed:
            async with client.messages.stream(**ASK) as stream:
                message = await stream.get_final_message()
        else:
            message = await client.messages.create(**ASK)
    assert message.to_dict()["content"] == MESSAGE["content"]
    assert message.id == MESSAGE["id"]


async def test_errors_in_both_shapes_reach_the_caller_classified(tmp_path: Path) -> None:
    async with FakeAnthropic(models=(MODEL,), vertex_token=TOKEN) as fake:
        deployments = [_vertex(name, fake.url) for name in ("quota", "long", "denied")]
        async with _served(tmp_path, *deployments) as (port, _):
            message = "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests"
            fake.enqueue(Fault.vertex_error(429, "RESOURCE_EXHAUSTED", message))
            async with _openai(port) as client:
                with pytest.raises(openai.RateLimitError) as limited:
                    await client.chat.completions.create(model="quota", messages=HI)
                fake.enqueue(Fault.context_length_exceeded())
                with pytest.raises(openai.BadRequestError) as too_long:
                    await client.chat.completions.create(model="long", messages=HI)
            fake.enqueue(Fault.vertex_error(403, "PERMISSION_DENIED", "Permission denied"))
            async with _anthropic(port) as messages:
                # The gateway's credentials are refused: its fault, not the caller's.
                with pytest.raises(anthropic.InternalServerError) as denied:
                    await messages.messages.create(model="denied", max_tokens=8, messages=HI)
    assert "Quota exceeded" in str(limited.value)
    assert too_long.value.code == "context_length_exceeded"
    assert "permission 403: vertex_anthropic: Permission denied" in str(denied.value)


async def test_a_failing_vertex_deployment_falls_back_to_another(tmp_path: Path) -> None:
    async with FakeAnthropic(models=(MODEL, "claude-sonnet-4-5"), vertex_token=TOKEN) as fake:
        backup = {
            "model_name": "backup",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "base_url": fake.url,
            "api_key": "sk-ant-fake",
        }
        fallbacks = {"general": {"claude": ["backup"]}}
        async with _served(tmp_path, _vertex("claude", fake.url), backup, fallbacks=fallbacks) as (
            port,
            _,
        ):
            fake.enqueue(Fault.vertex_error(503, "UNAVAILABLE", "The service is unavailable."))
            async with _openai(port) as client:
                answer = await client.chat.completions.create(model="claude", messages=HI)
            fake.enqueue(Fault.server_error())
            async with _anthropic(port) as messages:
                relayed = await messages.messages.create(model="claude", max_tokens=8, messages=HI)
    assert answer.choices[0].message.content
    assert relayed.content[0].type == "text"
    paths = [r.path for r in fake.requests]
    assert paths == [PATH, "/v1/messages", PATH, "/v1/messages"]
