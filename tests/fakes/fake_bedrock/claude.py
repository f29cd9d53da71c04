"""Anthropic's Messages API as Bedrock's Claude models serve it through InvokeModel.

The body is Anthropic's, with Bedrock's differences checked as Bedrock checks them:
``anthropic_version`` is required and must be ``bedrock-2023-05-31``, ``anthropic_beta`` is a
list of strings, and ``model`` and ``stream`` are extraneous keys (the path says them); the rest
is validated as the Anthropic fake validates a Messages body. The answer is the Anthropic fake's
(`fakes.fake_anthropic.answers`), with the model id of the path; a request with ``thinking``
enabled gets a ``thinking`` block first, signed. Streamed, each event is a ``chunk`` frame whose
payload is ``{"bytes": "<base64 of the event's JSON>"}``, and ``message_stop`` carries
``amazon-bedrock-invocationMetrics`` as Bedrock's does.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

import msgspec

from fakes.fake_anthropic.answers import Answer, build_answer, last_user_text
from fakes.fake_anthropic.validation import ApiError, check
from fakes.fake_bedrock.answers import malformed

ANTHROPIC_VERSION = "bedrock-2023-05-31"
_Event = tuple[str, dict[str, Any]]


def is_claude(model: str) -> bool:
    """Whether InvokeModel on `model` speaks Anthropic's Messages API."""
    return "anthropic.claude" in model


def check_body(body: Any) -> dict[str, Any]:
    """The body as Anthropic's Messages API reads it, or the error Bedrock answers."""
    if not isinstance(body, dict):
        raise malformed("#: expected type: JSONObject")
    for extraneous in ("model", "stream"):
        if extraneous in body:
            raise malformed(f"#: extraneous key [{extraneous}] is not permitted")
    if "anthropic_version" not in body:
        raise malformed("#: required key [anthropic_version] not found")
    if body["anthropic_version"] != ANTHROPIC_VERSION:
        raise malformed("#/anthropic_version: invalid value")
    betas = body.get("anthropic_beta")
    if betas is not None and not (
        isinstance(betas, list) and all(isinstance(b, str) for b in betas)
    ):
        raise malformed("#/anthropic_beta: expected type: JSONArray of strings")
    messages_body = {
        k: v for k, v in body.items() if k not in ("anthropic_version", "anthropic_beta")
    }
    try:
        check({**messages_body, "model": "bedrock"}, None)
    except ApiError as error:
        raise malformed(error.message) from None
    return messages_body


@dataclass(frozen=True, slots=True)
class ClaudeAnswer:
    """A Claude Message on Bedrock, decided before a byte of it is sent."""

    answer: Answer
    #: The thinking block's text and signature, when the request enabled thinking.
    thinking: tuple[str, str] | None

    def body(self) -> dict[str, Any]:
        message = self.answer.body()
        if self.thinking is not None:
            text, signature = self.thinking
            block = {"type": "thinking", "thinking": text, "signature": signature}
            message["content"] = [block, *message["content"]]
        return message

    def events(self, latency_ms: int) -> tuple[list[_Event], list[_Event]]:
        """The stream as (event name, data): the content events, then the closing two."""
        content, closing = self.answer.events()
        if self.thinking is not None:
            content = [content[0], *self._thinking(), *map(_shifted, content[1:])]
        usage = self.answer.usage()
        metrics = {
            "inputTokenCount": usage["input_tokens"],
            "outputTokenCount": usage["output_tokens"],
            "invocationLatency": latency_ms,
            "firstByteLatency": latency_ms,
        }
        name, stop = closing[-1]
        closing = [*closing[:-1], (name, {**stop, "amazon-bedrock-invocationMetrics": metrics})]
        return content, closing

    def _thinking(self) -> list[_Event]:
        assert self.thinking is not None
        text, signature = self.thinking
        block = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [
            {"type": "thinking_delta", "thinking": text},
            {"type": "signature_delta", "signature": signature},
        ]
        return [
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            ),
            *(
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
                for d in deltas
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]


def claude_answer(body: dict[str, Any], model: str, reply: str | None) -> ClaudeAnswer:
    """The answer to a checked body (`check_body`)."""
    answer = build_answer(body, model, reply, None)
    thinking = body.get("thinking")
    signed = None
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        text = f"Thinking about: {last_user_text(body['messages'])}"
        signed = text, base64.b64encode(secrets.token_bytes(48)).decode()
    return ClaudeAnswer(answer, signed)


def chunk_payload(data: dict[str, Any]) -> dict[str, Any]:
    """A ``chunk`` frame's payload: the event's JSON, base64-encoded."""
    return {"bytes": base64.b64encode(msgspec.json.encode(data)).decode()}


def _shifted(event: _Event) -> _Event:
    """A content event moved one block on, past the thinking block."""
    name, data = event
    if "index" in data:
        data = {**data, "index": data["index"] + 1}
    return name, data
