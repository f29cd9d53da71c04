"""What an answer says of itself (its id, the model that answered, its finish reasons) and, when
content capture is on, the messages an attempt sent and received: for observers that asked.

Built only when the bus says an observer wants them (`Bus.details`, `Bus.content`), so a gateway
without tracing decodes nothing more than usage from an answer. The answer's bytes are read with
a msgspec view that skips everything but the few fields wanted; a stream's id and model come from
its first chunk, its finish reasons from the chunks that carried one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from turnout.wire import Operation, ProviderResponse, Request, StreamChunk


class _Choice(msgspec.Struct):
    finish_reason: str | None = None


class _Identity(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    choices: list[_Choice] = msgspec.field(default_factory=list)


_DECODE_IDENTITY = msgspec.json.Decoder(_Identity).decode
_ENCODE = msgspec.json.Encoder().encode


class ResponseFacts(msgspec.Struct, frozen=True):
    """The facts `AttemptFinished` carries for observers that asked for them."""

    id: str | None = None
    model: str | None = None
    finish_reasons: tuple[str, ...] = ()
    #: The answer's messages as JSON; only with content capture.
    output: str | None = None


def _identity(raw: bytes | None, decoded: dict[str, Any] | None) -> _Identity:
    if raw is not None:
        try:
            return _DECODE_IDENTITY(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _Identity()
    if decoded is None:
        return _Identity()
    try:
        return msgspec.convert(decoded, _Identity)
    except msgspec.ValidationError:
        return _Identity()


def answer_facts(response: ProviderResponse, content: bool) -> ResponseFacts:
    """The facts of an answer read whole; with `content`, its choices' messages."""
    identity = _identity(response.raw, response._decoded)
    reasons = tuple(c.finish_reason for c in identity.choices if c.finish_reason is not None)
    output = None
    if content:
        body = response.body
        choices = body.get("choices")
        if isinstance(choices, list):
            output = _output_messages(choices)
    return ResponseFacts(identity.id, identity.model, reasons, output)


def stream_facts(
    first: StreamChunk, finish_reasons: list[str], texts: list[str] | None
) -> ResponseFacts:
    """The facts of a stream: id and model from its first chunk, the finish reasons seen, and
    with content capture, the text it delivered (`texts`)."""
    identity = _identity(first.raw, first._decoded)
    output = None
    if texts is not None:
        reason = finish_reasons[0] if finish_reasons else None
        output = _encode(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "".join(texts)}],
                    "finish_reason": reason,
                }
            ]
        )
    return ResponseFacts(identity.id, identity.model, tuple(finish_reasons), output)


def chunk_text(chunk: StreamChunk) -> str:
    """The content text a chunk carries (every choice's), for content capture."""
    choices = chunk.data.get("choices")
    if not isinstance(choices, list):
        return ""
    found = []
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        text = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(text, str):
            found.append(text)
    return "".join(found)


def input_messages(request: Request) -> str | None:
    """What the attempt sends, as GenAI input messages JSON (chat messages, a completion's
    prompt, an embedding's input), for content capture."""
    body = request.body
    if request.operation is Operation.CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list):
            return None
        shaped = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            shaped.append({"role": message.get("role"), "parts": _parts(message.get("content"))})
        return _encode(shaped)
    field = "prompt" if request.operation is Operation.COMPLETION else "input"
    value = body.get(field)
    if value is None:
        return None
    return _encode([{"role": "user", "parts": _parts(value)}])


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for item in content:
            if isinstance(item, dict) and item.get("type") == "text":
                parts.append({"type": "text", "content": item.get("text")})
            elif isinstance(item, str):
                parts.append({"type": "text", "content": item})
            else:
                parts.append({"type": "other"})
        return parts
    return [] if content is None else [{"type": "other"}]


def _output_messages(choices: list[Any]) -> str:
    shaped = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        text = choice.get("text")
        if isinstance(message, dict):
            parts = _parts(message.get("content"))
            role = message.get("role", "assistant")
        else:
            parts = _parts(text)
            role = "assistant"
        shaped.append({"role": role, "parts": parts, "finish_reason": choice.get("finish_reason")})
    return _encode(shaped)


def _encode(value: Any) -> str:
    return _ENCODE(value).decode()
