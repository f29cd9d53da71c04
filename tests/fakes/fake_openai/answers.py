"""What the fake answers, decided from the request before a byte is sent.

Answers are deterministic: "Fake answer to: <the last user message>" (or the configured
``reply``), one token per word, cut at ``max_tokens``. A request with ``tools`` whose last
message is the user's gets a call of the first (or the chosen) tool instead, with placeholder
arguments that fit the tool's schema. ``n`` asks for that many choices, each the same answer.
Embeddings are unit vectors seeded by their input. Bad parameters are rejected with `ApiError`,
as OpenAI rejects them.
"""

from __future__ import annotations

import random
import re
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from fakes.fake_openai.errors import ApiError, missing
from turnout.tokens import estimate_prompt_tokens

#: Prompt words quoted back in the default answer.
_QUOTED_WORDS = 12
#: Characters of tool-call arguments per streamed fragment.
_ARGUMENT_FRAGMENT = 4
#: The breakdowns that today's chat usage objects carry besides the three totals.
_USAGE_DETAILS = {
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A chat or text completion, decided before a byte of it is sent."""

    chat: bool
    id: str
    model: str
    tokens: tuple[str, ...]
    finish_reason: str
    #: The called tool's name and arguments (a JSON text), when the answer is a tool call.
    tool: tuple[str, str] | None
    prompt_tokens: int
    include_usage: bool
    created: int
    call_id: str
    #: The choices asked for (``n``); each is the same answer, with its own index.
    choices: int = 1

    @property
    def pieces(self) -> tuple[str, ...]:
        """What the stream sends one event each: tokens, or fragments of the arguments."""
        if self.tool is None:
            return self.tokens
        text, step = self.tool[1], _ARGUMENT_FRAGMENT
        return tuple(text[start : start + step] for start in range(0, len(text), step))

    def usage(self) -> dict[str, Any]:
        prompt, completion = self.prompt_tokens, len(self.pieces) * self.choices
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        usage["total_tokens"] = prompt + completion
        return {**usage, **_USAGE_DETAILS} if self.chat else usage

    def body(self) -> dict[str, Any]:
        text = "".join(self.tokens)
        choice: dict[str, Any] = {"index": 0}
        if not self.chat:
            choice["text"] = text
        elif self.tool is None:
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
        else:
            calls = [self._call(self.tool[1], opening=True)]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            choice["message"] = {**message, "refusal": None}
        choice.update(logprobs=None, finish_reason=self.finish_reason)
        choices = [{**choice, "index": index} for index in range(self.choices)]
        return {**self._envelope(choices, chunk=False), "usage": self.usage()}

    def events(self) -> tuple[list[bytes], list[bytes]]:
        """The stream's JSON payloads: the content events, then the closing ones."""
        content: list[dict[str, Any]] = []
        for index in range(self.choices):
            content.extend(self._content_events(index))
        closing = [
            self._chunk({} if self.chat else {"text": ""}, self.finish_reason, index)
            for index in range(self.choices)
        ]
        if self.include_usage:
            closing.append({**self._envelope([]), "usage": self.usage()})
        encode = msgspec.json.encode
        return [encode(event) for event in content], [encode(event) for event in closing]

    def _content_events(self, index: int) -> list[dict[str, Any]]:
        """The content events of one choice."""
        events: list[dict[str, Any]] = []
        if self.chat and self.tool is None:
            opening = {"role": "assistant", "content": "", "refusal": None}
            events.append(self._chunk(opening, index=index))
        elif self.chat:
            delta = {
                "role": "assistant",
                "content": None,
                "tool_calls": [self._call("", opening=True)],
            }
            events.append(self._chunk({**delta, "refusal": None}, index=index))
        for piece in self.pieces:
            if not self.chat:
                events.append(self._chunk({"text": piece}, index=index))
            elif self.tool is None:
                events.append(self._chunk({"content": piece}, index=index))
            else:
                events.append(self._chunk({"tool_calls": [self._call(piece)]}, index=index))
        return events

    def _call(self, arguments: str, opening: bool = False) -> dict[str, Any]:
        """A tool call, whole or as the opening delta; later deltas carry only arguments."""
        if not opening:
            return {"index": 0, "function": {"arguments": arguments}}
        assert self.tool is not None
        function = {"name": self.tool[0], "arguments": arguments}
        return {"index": 0, "id": self.call_id, "type": "function", "function": function}

    def _chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, index: int = 0
    ) -> dict[str, Any]:
        choice = {"index": index, "delta": delta} if self.chat else {"index": index, **delta}
        choice.update(logprobs=None, finish_reason=finish_reason)
        return self._envelope([choice])

    def _envelope(self, choices: list[dict[str, Any]], *, chunk: bool = True) -> dict[str, Any]:
        kind = "text_completion"
        if self.chat:
            kind = "chat.completion.chunk" if chunk else "chat.completion"
        envelope = {"id": self.id, "object": kind, "created": self.created, "model": self.model}
        envelope.update(system_fingerprint="fp_fake", choices=choices)
        if chunk and self.include_usage:
            # OpenAI sends an explicit null usage on every chunk before the usage chunk.
            envelope["usage"] = None
        return envelope


def max_tokens(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ApiError(400, f"Invalid '{name}': expected an integer of at least 1.", param=name)
    return value


def build_answer(
    body: dict[str, Any],
    model: str,
    text: str,
    cap: int | None,
    *,
    chat: bool,
    tool: tuple[str, str] | None = None,
) -> Answer:
    tokens = tuple(re.findall(r"\s*\S+", text))
    finish = "stop" if tool is None else "tool_calls"
    if tool is None and cap is not None and cap < len(tokens):
        tokens, finish = tokens[:cap], "length"
    options = body.get("stream_options")
    choices = body.get("n", 1)
    if choices is None:
        choices = 1
    if not isinstance(choices, int) or isinstance(choices, bool) or not 1 <= choices <= 128:
        raise ApiError(400, "Invalid 'n': expected an integer from 1 to 128.", param="n")
    return Answer(
        chat=chat,
        id=f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
        model=model,
        tokens=tokens,
        finish_reason=finish,
        tool=tool,
        prompt_tokens=max(1, estimate_prompt_tokens("chat" if chat else "completion", body)),
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        created=int(time.time()),
        call_id=f"call_{uuid.uuid4().hex[:24]}",
        choices=choices,
    )


def tool_call(body: dict[str, Any], messages: list[Any]) -> tuple[str, str] | None:
    """The call to make: of the chosen (else the first) tool, when the user spoke last."""
    given = body.get("tools") or ()
    if not isinstance(given, list | tuple):
        # OpenAI's answer to a tools that is not an array (a 400), not a crash of the fake.
        raise ApiError(
            400,
            f"Invalid type for 'tools': expected an array, but got {type(given).__name__}.",
            param="tools",
            code="invalid_type",
        )
    tools = [_function(tool) for tool in given if isinstance(tool, dict)]
    last, choice = messages[-1], body.get("tool_choice")
    if not tools or choice == "none" or not isinstance(last, dict) or last.get("role") != "user":
        return None
    wanted = _function(choice).get("name") if isinstance(choice, dict) else None
    function = next((tool for tool in tools if tool.get("name") == wanted), tools[0])
    name = function.get("name")
    if not isinstance(name, str):
        raise missing("tools[0].function.name")
    schema = function.get("parameters")
    schema = schema if isinstance(schema, dict) else {}
    properties = schema.get("properties") or {}
    arguments = {
        field: _placeholder(properties.get(field))
        for field in schema.get("required") or ()
        if isinstance(field, str)
    }
    return name, msgspec.json.encode(arguments).decode()


def _function(tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    return function if isinstance(function, dict) else {}


def _placeholder(schema: Any) -> Any:
    """A value of a JSON-schema property's type, so that the arguments validate."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    defaults = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    return defaults.get(kind, "fake") if isinstance(kind, str) else "fake"


def _text_of(content: Any) -> str:
    """A message content's text: a string, or the text parts of a list of parts."""
    if isinstance(content, list):
        parts = (part.get("text") for part in content if isinstance(part, dict))
        return " ".join(part for part in parts if isinstance(part, str))
    return content if isinstance(content, str) else ""


def continued(messages: list[Any], reply: str | None = None) -> str:
    """The answer's text, as a cooperative model gives it.

    Normally "Fake answer to: <the last user text>" (or `reply`). A conversation that ends in
    a partial assistant message (a prefill), or in one followed by a request to continue, gets
    the rest of the answer it interrupted, as a model continuing its own text would.
    """
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if last.get("role") == "assistant":
        return _rest(_answer(messages[:-1], reply), _text_of(last.get("content")).rstrip())
    if (
        len(messages) >= 3
        and isinstance(messages[-2], dict)
        and messages[-2].get("role") == "assistant"
        and "continue" in _text_of(last.get("content")).lower()
    ):
        partial = _text_of(messages[-2].get("content"))
        return _rest(_answer(messages[:-2], reply), partial)
    return _answer(messages, reply)


def _answer(messages: list[Any], reply: str | None) -> str:
    return reply if reply is not None else f"Fake answer to: {quote(last_user_text(messages))}"


def _rest(full: str, partial: str) -> str:
    """What follows `partial` in `full` (all of `full` when it does not start with it)."""
    return full[len(partial) :] if partial and full.startswith(partial) else full


def last_user_text(messages: list[Any]) -> str:
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return _text_of(users[-1].get("content")) if users else ""


def quote(text: str) -> str:
    words = text.split()
    return " ".join(words[:_QUOTED_WORDS]) + ("..." if len(words) > _QUOTED_WORDS else "")


def embedding_inputs(value: Any) -> list[Any]:
    """Each input to embed: a string or a token array (one input, or a list of them)."""
    if value is None:
        raise missing("input")
    if isinstance(value, str) or (isinstance(value, list) and _all(value, int)):
        return [value]
    if isinstance(value, list) and _all(value, str | list):
        return value
    raise ApiError(400, "'input' must be a string or an array of strings or tokens.", param="input")


def _all(items: list[Any], kind: Any) -> bool:
    """Whether a non-empty list holds only values of ``kind`` (a type or a union)."""
    return bool(items) and all(isinstance(item, kind) for item in items)


def embedding(item: Any, size: int) -> list[float]:
    """A unit vector that depends only on the input: equal inputs embed equally, across runs."""
    # A string seed is hashed with SHA-512, so the vector is the same in every process.
    draw = random.Random(item if isinstance(item, str) else repr(item))
    values = [draw.gauss(0.0, 1.0) for _ in range(size)]
    norm = sum(value * value for value in values) ** 0.5 or 1.0
    # Rounded through float32, so that a base64 answer decodes to exactly the float answer.
    return list(struct.unpack(f"<{size}f", struct.pack(f"<{size}f", *(v / norm for v in values))))
