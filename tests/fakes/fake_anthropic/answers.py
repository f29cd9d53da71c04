"""What the fake answers, decided from the native request before a byte is sent.

The conventions every fake of the conformance suite shares: "Fake answer to: <the last user
text>" (or the configured ``reply``; after a prefill, or a partial answer and a request to
continue, the rest of that answer), one token per word, cut at ``max_tokens`` (``stop_reason:
"max_tokens"``) or before the first of the ``stop_sequences`` found (``"stop_sequence"``). A
request offering tools whose last turn is the user's own words (not tool results) gets a call of
the chosen (else the first) tool, with placeholder arguments for the schema's required
properties (a forced tool whose schema requires nothing, as for JSON mode, gets the answer's text
as ``{"answer": ...}``), streamed in fragments. A ``refusal`` fault keeps only its first words.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from fakes.fake_openai.answers import quote
from turnout.tokens import CHARS_PER_TOKEN, estimate_prompt_tokens

#: Characters of tool input JSON per ``input_json_delta``.
_ARGUMENT_FRAGMENT = 4
_Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A Message, decided before a byte of it is sent."""

    id: str
    model: str
    tokens: tuple[str, ...]
    #: The tool call as (id, name, input JSON text), when the answer is one.
    tool: tuple[str, str, str] | None
    stop_reason: str
    stop_sequence: str | None
    stop_details: dict[str, Any] | None
    input_tokens: int

    @property
    def pieces(self) -> tuple[str, ...]:
        """What the stream sends one delta each: tokens, or fragments of the tool input."""
        if self.tool is None:
            return self.tokens
        text, step = self.tool[2], _ARGUMENT_FRAGMENT
        return tuple(text[start : start + step] for start in range(0, len(text), step))

    def usage(self, output_tokens: int | None = None) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": max(1, len(self.pieces)) if output_tokens is None else output_tokens,
        }

    def content(self) -> list[dict[str, Any]]:
        if self.tool is not None:
            call_id, name, arguments = self.tool
            tool_input = msgspec.json.decode(arguments)
            return [{"type": "tool_use", "id": call_id, "name": name, "input": tool_input}]
        return [{"type": "text", "text": "".join(self.tokens)}] if self.tokens else []

    def body(self) -> dict[str, Any]:
        """The whole Message."""
        message = self._message(self.content(), self.stop_reason, self.stop_sequence)
        if self.stop_details is not None:
            message["stop_details"] = self.stop_details
        message["usage"] = self.usage()
        return message

    def events(self) -> tuple[list[_Event], list[_Event]]:
        """The stream as (event name, data): the content events, then the closing two."""
        start = self._message([], None, None)
        start["usage"] = self.usage(output_tokens=1)
        content: list[_Event] = [("message_start", {"type": "message_start", "message": start})]
        if self.tool is not None:
            call_id, name, _ = self.tool
            block: dict[str, Any] = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in ("", *self.pieces)]
        else:
            block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in self.pieces]
        if deltas:
            content.append(_event("content_block_start", index=0, content_block=block))
        content.append(("ping", {"type": "ping"}))
        content.extend(_event("content_block_delta", index=0, delta=delta) for delta in deltas)
        if deltas:
            content.append(_event("content_block_stop", index=0))
        delta: dict[str, Any] = {
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
        }
        if self.stop_details is not None:
            delta["stop_details"] = self.stop_details
        usage = {"output_tokens": self.usage()["output_tokens"]}
        closing = [
            _event("message_delta", delta=delta, usage=usage),
            _event("message_stop"),
        ]
        return content, closing

    def _message(
        self, content: list[dict[str, Any]], stop_reason: str | None, stop_sequence: str | None
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
        }


def build_answer(
    body: dict[str, Any], model: str, reply: str | None, refusal: tuple[int, str] | None
) -> Answer:
    """The answer to a validated request; `refusal` is (words kept, explanation) for a
    ``refusal`` fault."""
    messages: list[Any] = body["messages"]
    text = answer_text(messages, reply)
    stop_reason, stop_sequence = "end_turn", None
    found = [(text.find(s), s) for s in body.get("stop_sequences") or () if s and s in text]
    if found:
        at, sequence = min(found)
        text, stop_reason, stop_sequence = text[:at], "stop_sequence", sequence
    # One token per word, with its leading space (and the text's trailing one, if any).
    tokens = tuple(re.findall(r"\s*\S+(?:\s+$)?", text))
    tool = tool_call(body, messages) if refusal is None else None
    cap: int = body["max_tokens"]
    details = None
    if tool is not None:
        tokens, stop_reason, stop_sequence = (), "tool_use", None
    elif refusal is not None:
        words, explanation = refusal
        tokens, stop_reason, stop_sequence = tokens[:words], "refusal", None
        details = {"type": "refusal", "category": "cyber", "explanation": explanation}
    elif cap < len(tokens):
        tokens, stop_reason, stop_sequence = tokens[:cap], "max_tokens", None
    return Answer(
        id=f"msg_{uuid.uuid4().hex[:24]}",
        model=model,
        tokens=tokens,
        tool=tool,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        stop_details=details,
        input_tokens=prompt_tokens(body),
    )


def prompt_tokens(body: dict[str, Any]) -> int:
    """An estimate in the spirit of `turnout.tokens`, system prompt included."""
    system = body.get("system")
    if isinstance(system, list):
        system = " ".join(b.get("text", "") for b in system if isinstance(b, dict))
    extra = len(system) // CHARS_PER_TOKEN if isinstance(system, str) else 0
    return max(1, estimate_prompt_tokens("chat", body) + extra)


def tool_call(body: dict[str, Any], messages: list[Any]) -> tuple[str, str, str] | None:
    """The call to make: of the chosen (else the first) tool, when the user's words came last."""
    tools = [tool for tool in body.get("tools") or () if isinstance(tool, dict)]
    choice = body.get("tool_choice") or {}
    last = messages[-1]
    if not tools or choice.get("type") == "none" or last.get("role") != "user":
        return None
    if any(block.get("type") == "tool_result" for block in _blocks(last.get("content"))):
        return None
    wanted = choice.get("name") if choice.get("type") == "tool" else None
    tool = next((tool for tool in tools if tool.get("name") == wanted), tools[0])
    schema = tool.get("input_schema") or {}
    properties = schema.get("properties") or {}
    arguments: dict[str, Any] = {
        name: _placeholder(properties.get(name))
        for name in schema.get("required") or ()
        if isinstance(name, str)
    }
    if not arguments and wanted is not None:
        arguments = {"answer": answer_text(messages, None)}
    call_id = f"toolu_{uuid.uuid4().hex[:24]}"
    return call_id, str(tool.get("name")), msgspec.json.encode(arguments).decode()


def answer_text(messages: list[Any], reply: str | None) -> str:
    """The answer's text, as a cooperative model gives it.

    Normally "Fake answer to: <the last user text>" (or `reply`). A conversation that ends in a
    partial assistant turn (a prefill), or in one followed by a request to continue, gets the
    rest of the answer it interrupted, as Claude continuing its own text would.
    """
    last = messages[-1]
    if last.get("role") == "assistant":
        return _rest(_answer(messages[:-1], reply), _text(last).rstrip())
    if (
        len(messages) >= 3
        and messages[-2].get("role") == "assistant"
        and "continue" in _text(last).lower()
    ):
        return _rest(_answer(messages[:-2], reply), _text(messages[-2]))
    return _answer(messages, reply)


def _answer(messages: list[Any], reply: str | None) -> str:
    return reply if reply is not None else f"Fake answer to: {quote(last_user_text(messages))}"


def _rest(full: str, partial: str) -> str:
    """What follows `partial` in `full` (all of `full` when it does not start with it)."""
    return full[len(partial) :] if partial and full.startswith(partial) else full


def _text(message: dict[str, Any]) -> str:
    blocks = _blocks(message.get("content"))
    return "".join(b["text"] for b in blocks if b.get("type") == "text" and "text" in b)


def last_user_text(messages: list[Any]) -> str:
    """The text of the last user turn that has any (turns of only tool results are skipped)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        texts = [b["text"] for b in _blocks(message.get("content")) if b.get("type") == "text"]
        if texts:
            return " ".join(texts)
    return ""


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or () if isinstance(block, dict)]


def _placeholder(schema: Any) -> Any:
    """A value of a JSON-schema property's type, so that the input validates."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    defaults = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    return defaults.get(kind, "fake") if isinstance(kind, str) else "fake"


def _event(name: str, **data: Any) -> _Event:
    return name, {"type": name, **data}
