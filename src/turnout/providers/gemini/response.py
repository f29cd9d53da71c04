"""Gemini's ``GenerateContentResponse`` and embeddings into OpenAI's shapes.

A candidate's ``content.parts`` hold text and ``functionCall`` parts (thought parts, present
only when thoughts are asked for, are left out). Function calls get made-up stable ids (see
`turnout.providers.gemini_messages.call_id`), as Gemini has none. ``finishReason`` maps to
OpenAI's four: STOP is ``tool_calls`` when the candidate called a function, MAX_TOKENS is
``length``, the filters (SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII and their image
twins) are ``content_filter``, anything else ``stop``. A prompt blocked outright
(``promptFeedback.blockReason``, no candidates) and an answer withheld by a filter (a filter
reason, no content) raise `ContentPolicyError`.

Usage: ``promptTokenCount`` (which includes cached tokens, as OpenAI's ``prompt_tokens`` does)
plus ``toolUsePromptTokenCount``; completion tokens are ``candidatesTokenCount`` plus
``thoughtsTokenCount``, as thinking is billed as output.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec

from turnout.errors import ContentPolicyError, ServerError
from turnout.providers.gemini.messages import call_id
from turnout.wire import Usage

PROVIDER = "gemini"

#: Finish reasons that mean a filter withheld (part of) the answer.
FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)


class FunctionCall(msgspec.Struct):
    name: str = ""
    args: dict[str, Any] | None = None
    id: str | None = None


class Part(msgspec.Struct, rename="camel"):
    text: str | None = None
    thought: bool = False
    thought_signature: str | None = None
    function_call: FunctionCall | None = None


class Content(msgspec.Struct):
    parts: list[Part] = []


class Candidate(msgspec.Struct, rename="camel"):
    content: Content | None = None
    finish_reason: str | None = None
    index: int = 0


class UsageMetadata(msgspec.Struct, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    cached_content_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0


class PromptFeedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None
    block_reason_message: str | None = None


class GenerateResponse(msgspec.Struct, rename="camel"):
    candidates: list[Candidate] = []
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    response_id: str | None = None
    #: An error object, as a stream may end with one.
    error: dict[str, Any] | None = None


class _Embedding(msgspec.Struct):
    values: list[float] = []


class _Embeddings(msgspec.Struct):
    embeddings: list[_Embedding] = []


GENERATE = msgspec.json.Decoder(GenerateResponse)
_EMBEDDINGS = msgspec.json.Decoder(_Embeddings)


def completion(
    body: bytes, model: str, created: int, fallback_id: str
) -> tuple[dict[str, Any], Usage]:
    """OpenAI's ``chat.completion`` for a whole ``generateContent`` answer."""
    try:
        view = GENERATE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ServerError(
            f"{PROVIDER}: sent an answer that is not a GenerateContentResponse"
        ) from None
    check_blocked(view)
    response_id = view.response_id or fallback_id
    choices = [_choice(candidate, response_id) for candidate in view.candidates]
    if view.candidates and all(_withheld(c) for c in view.candidates):
        reason = view.candidates[0].finish_reason
        raise ContentPolicyError(f"{PROVIDER}: the answer was withheld by a filter ({reason})")
    usage = usage_of(view.usage_metadata)
    answer = {
        "id": f"chatcmpl-{response_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_body(usage, view.usage_metadata),
    }
    return answer, usage


def check_blocked(view: GenerateResponse) -> None:
    """Raise when Gemini refused the prompt itself (``promptFeedback.blockReason``)."""
    feedback = view.prompt_feedback
    if feedback is not None and feedback.block_reason and not view.candidates:
        detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
        raise ContentPolicyError(
            f"{PROVIDER}: the prompt was blocked ({feedback.block_reason}){detail}"
        )


def finish_reason(native: str | None, called: bool) -> str:
    if native in FILTERED:
        return "content_filter"
    if native == "MAX_TOKENS":
        return "length"
    return "tool_calls" if called else "stop"


def text_of(part: Part) -> str | None:
    """The answer text of a part (None for thoughts and non-text parts)."""
    return part.text if part.text is not None and not part.thought else None


def tool_call(part: Part, seed: str) -> dict[str, Any] | None:
    """The OpenAI tool call of a ``functionCall`` part; `seed` makes its id stable."""
    call = part.function_call
    if call is None:
        return None
    arguments = msgspec.json.encode(call.args or {}).decode()
    identifier = call_id(call.id or seed, part.thought_signature)
    function = {"name": call.name, "arguments": arguments}
    return {"id": identifier, "type": "function", "function": function}


def usage_of(meta: UsageMetadata | None) -> Usage:
    if meta is None:
        return Usage()
    prompt = meta.prompt_token_count + meta.tool_use_prompt_token_count
    completion = meta.candidates_token_count + meta.thoughts_token_count
    return Usage(prompt, completion, meta.cached_content_token_count)


def usage_body(usage: Usage, meta: UsageMetadata | None) -> dict[str, Any]:
    """OpenAI's usage object, with thinking tokens as ``reasoning_tokens``."""
    body = usage.to_openai()
    if meta is not None and meta.thoughts_token_count:
        body["completion_tokens_details"] = {"reasoning_tokens": meta.thoughts_token_count}
    return body


def embeddings(
    body: bytes, model: str, prompt_tokens: int, encoding: Any
) -> tuple[dict[str, Any], Usage]:
    """OpenAI's embeddings list for a ``batchEmbedContents`` answer.

    Gemini reports no usage for embeddings, so the prompt size is turnout's estimate. A base64
    answer is what OpenAI sends: the little-endian float32 bytes of the vector.
    """
    try:
        view = _EMBEDDINGS.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ServerError(
            f"{PROVIDER}: sent an answer that is not a BatchEmbedContentsResponse"
        ) from None
    data = []
    for index, item in enumerate(view.embeddings):
        vector: Any = item.values
        if encoding == "base64":
            packed = struct.pack(f"<{len(item.values)}f", *item.values)
            vector = base64.b64encode(packed).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    answer = {"object": "list", "data": data, "model": model, "usage": usage}
    return answer, Usage(prompt_tokens=prompt_tokens)


def _choice(candidate: Candidate, response_id: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    parts = candidate.content.parts if candidate.content is not None else []
    for position, part in enumerate(parts):
        text = text_of(part)
        if text is not None:
            texts.append(text)
        call = tool_call(part, f"{response_id}/{candidate.index}/{position}")
        if call is not None:
            calls.append(call)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
        message["content"] = message["content"] or None
    return {
        "index": candidate.index,
        "message": message,
        "finish_reason": finish_reason(candidate.finish_reason, bool(calls)),
        "logprobs": None,
    }


def _withheld(candidate: Candidate) -> bool:
    """Whether a filter stopped the candidate before it said anything."""
    parts = candidate.content.parts if candidate.content is not None else []
    said = any(text_of(p) or p.function_call is not None for p in parts)
    return candidate.finish_reason in FILTERED and not said
