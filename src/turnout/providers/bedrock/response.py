"""Bedrock answers in OpenAI's shapes: a Converse reply as a ``chat.completion``, an
InvokeModel embedding reply as an embedding list.

Converse answers ``{"output": {"message": {"role", "content": [blocks]}}, "stopReason",
"usage": {"inputTokens", "outputTokens", "totalTokens", "cacheReadInputTokens"?,
"cacheWriteInputTokens"?}}``. Text
blocks join into the message's content, ``toolUse`` blocks become ``tool_calls`` (the input
re-encoded as a JSON string), and reasoning text, which OpenAI's schema lacks, goes in
``reasoning_content`` as other OpenAI-compatible servers put it.

Stop reasons map to OpenAI's finish reasons (`FINISH_REASONS`). Two kinds of stop are errors
instead of answers: a refusal that leaves nothing of the model's own (a guardrail replaces the
whole answer with its configured "blocked" message, and a content filter that cut everything)
is a `ContentPolicyError`, so that callers get OpenAI's ``content_policy_violation`` and the
router can use its content-policy fallbacks; and output Bedrock itself calls malformed is a
`ServerError`, since another attempt may well succeed.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec

from turnout.errors import ContentPolicyError, ServerError
from turnout.providers.bedrock.messages import PROVIDER
from turnout.wire import Usage

#: Converse's stop reasons (API reference, ``StopReason``) as OpenAI's finish reasons.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
#: Stop reasons that mean the model's output could not be used.
MALFORMED = frozenset({"malformed_model_output", "malformed_tool_use"})


class UsageView(msgspec.Struct):
    """Converse's ``TokenUsage`` (the fields turnout reads)."""

    inputTokens: int = 0
    outputTokens: int = 0
    cacheReadInputTokens: int = 0
    cacheWriteInputTokens: int = 0


class _MessageView(msgspec.Struct):
    content: list[dict[str, Any]] = []


class _OutputView(msgspec.Struct):
    message: _MessageView | None = None


class _ConverseView(msgspec.Struct):
    output: _OutputView | None = None
    stopReason: str | None = None
    usage: UsageView | None = None


_CONVERSE = msgspec.json.Decoder(_ConverseView)
_ENCODE = msgspec.json.Encoder().encode


def usage_of(view: UsageView | None) -> Usage:
    """Converse's token usage (from a reply or a stream's metadata event) as turnout's.

    Bedrock counts prompt-cache reads and writes apart from ``inputTokens``; OpenAI's (and
    turnout's) prompt tokens include the cached ones, with the reads also named as cached.
    """
    if view is None:
        return Usage()
    cached = view.cacheReadInputTokens
    prompt = view.inputTokens + cached + view.cacheWriteInputTokens
    return Usage(prompt, view.outputTokens, cached)


def finish_reason(stop_reason: str | None, *, useful: bool, said: str = "") -> str:
    """OpenAI's finish reason for a stop reason, or the error that stop reason means.

    ``said`` is the text that came with a refusal (a guardrail's blocked message), quoted in
    the error.
    """
    if stop_reason in MALFORMED:
        raise ServerError(f"{PROVIDER}: the model's output was malformed ({stop_reason})")
    finish = FINISH_REASONS.get(stop_reason or "end_turn", "stop")
    if finish == "content_filter" and not useful:
        quoted = f": {said.strip()}" if said.strip() else ""
        raise ContentPolicyError(
            f"{PROVIDER}: the answer was blocked by a content filter or guardrail "
            f"({stop_reason}){quoted}"
        )
    return finish


def chat_completion(
    body: bytes, model: str, response_id: str, created: int, json_tool: str | None = None
) -> tuple[dict[str, Any], Usage]:
    """A Converse reply as a ``chat.completion`` body, and its usage. `json_tool`: the tool
    forced for JSON mode, whose input is the answer's content (finishing with ``stop``)."""
    try:
        view = _CONVERSE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ServerError(f"{PROVIDER} sent an answer that is not a Converse reply") from None
    blocks = view.output.message.content if view.output and view.output.message else []
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    forced = False
    for block in blocks:
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            call = tool_call(block["toolUse"])
            if json_tool is not None and call["function"]["name"] == json_tool:
                texts.append(call["function"]["arguments"])
                forced = True
            else:
                calls.append(call)
        elif isinstance(block.get("reasoningContent"), dict):
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if isinstance(text, str):
                reasoning.append(text)
    stop_reason = view.stopReason
    if forced and not calls and stop_reason == "tool_use":
        stop_reason = "end_turn"
    # A guardrail's whole answer is its own canned message: nothing useful of the model's.
    useful = bool(calls) or (bool("".join(texts)) and stop_reason != "guardrail_intervened")
    finish = finish_reason(stop_reason, useful=useful, said="".join(texts))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    usage = usage_of(view.usage)
    answer = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage.to_openai(),
    }
    return answer, usage


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A ``toolUse`` block as an OpenAI tool call."""
    arguments = _ENCODE(block.get("input") if block.get("input") is not None else {}).decode()
    function = {"name": block.get("name"), "arguments": arguments}
    return {"id": block.get("toolUseId"), "type": "function", "function": function}


def embedding_list(
    vectors: list[list[float]], model: str, prompt_tokens: int, encoding: Any
) -> dict[str, Any]:
    """OpenAI's embedding list; base64 is the little-endian float32 bytes, as OpenAI sends."""
    data = []
    for index, vector in enumerate(vectors):
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


class _TitanView(msgspec.Struct):
    embedding: list[float]
    inputTextTokenCount: int = 0


class _CohereView(msgspec.Struct):
    embeddings: list[list[float]] | dict[str, list[list[float]]]


_TITAN = msgspec.json.Decoder(_TitanView)
_COHERE = msgspec.json.Decoder(_CohereView)


def titan_embeddings(body: bytes) -> tuple[list[list[float]], int]:
    """Titan's ``{"embedding", "inputTextTokenCount"}``: the vector and its token count."""
    try:
        view = _TITAN.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ServerError(f"{PROVIDER} sent a Titan embedding reply it could not read") from None
    return [view.embedding], view.inputTextTokenCount


def cohere_embeddings(body: bytes) -> list[list[float]]:
    """Cohere's ``{"embeddings": [[...]]}`` (or ``{"embeddings": {"float": [[...]]}}``)."""
    try:
        view = _COHERE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ServerError(f"{PROVIDER} sent a Cohere embedding reply it could not read") from None
    if isinstance(view.embeddings, dict):
        floats = view.embeddings.get("float")
        if floats is None:
            raise ServerError(f"{PROVIDER} sent Cohere embeddings without float vectors")
        return floats
    return view.embeddings
