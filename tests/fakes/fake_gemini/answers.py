"""What the fake answers, decided from a Gemini request before a byte is sent.

The conventions of every fake (see `tests/conformance/conformance_kit.py`): a text answer is
"Fake answer to: <the last user text>" (or the configured ``reply``), one token per word, cut at
``maxOutputTokens``; a request that declares functions and whose last turn is the user's own
text gets a call of the allowed (else the first) function, with placeholder arguments for its
required parameters; after a ``functionResponse`` the answer is text again. Usage counts are
positive and consistent.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from fakes.fake_gemini.validation import ApiError
from fakes.fake_openai.answers import quote
from turnout.tokens import CHARS_PER_TOKEN, TOKENS_PER_MESSAGE

_PLACEHOLDERS = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A ``generateContent`` answer: whole, or as the events of a stream."""

    model: str
    response_id: str
    tokens: tuple[str, ...]
    #: The called function's name and arguments, when the answer is a function call.
    tool: tuple[str, dict[str, Any]] | None
    finish_reason: str
    prompt_tokens: int
    candidates: int

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) if self.tool is None else 1 + len(self.tool[1])

    def whole(self) -> dict[str, Any]:
        parts = [{"text": "".join(self.tokens)}] if self.tool is None else [self._call()]
        return self._response(parts, self.finish_reason, self.completion_tokens)

    def events(self, *, finish: bool = True) -> list[dict[str, Any]]:
        """The stream's events; the last carries the finish reason (unless `finish` is False)."""
        pieces: list[list[dict[str, Any]]]
        if self.tool is not None:
            pieces = [[self._call()]]
        else:
            pieces = [[{"text": token}] for token in self.tokens] or [[{"text": ""}]]
        events = []
        for number, parts in enumerate(pieces, 1):
            last = number == len(pieces)
            reason = self.finish_reason if last and finish else None
            done = self.completion_tokens if last else number
            events.append(self._response(parts, reason, done))
        return events

    def blocked(self, reason: str) -> dict[str, Any]:
        """No candidates: the prompt itself was refused."""
        ratings = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]
        return {
            "promptFeedback": {"blockReason": reason, "safetyRatings": ratings},
            "usageMetadata": self._usage(0),
            "modelVersion": self.model,
            "responseId": self.response_id,
        }

    def _response(
        self, parts: list[dict[str, Any]], reason: str | None, completion: int
    ) -> dict[str, Any]:
        candidates = []
        for index in range(self.candidates):
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            if reason is not None:
                candidate["finishReason"] = reason
            candidate["index"] = index
            candidates.append(candidate)
        return {
            "candidates": candidates,
            "usageMetadata": self._usage(completion * self.candidates),
            "modelVersion": self.model,
            "responseId": self.response_id,
        }

    def _usage(self, completion: int) -> dict[str, Any]:
        usage = {"promptTokenCount": self.prompt_tokens}
        if completion:
            usage["candidatesTokenCount"] = completion
        usage["totalTokenCount"] = self.prompt_tokens + completion
        details = [{"modality": "TEXT", "tokenCount": self.prompt_tokens}]
        return {**usage, "promptTokensDetails": details}

    def _call(self) -> dict[str, Any]:
        assert self.tool is not None
        return {"functionCall": {"name": self.tool[0], "args": self.tool[1]}}


def build_answer(body: dict[str, Any], model: str, reply: str | None) -> Answer:
    contents: list[dict[str, Any]] = body["contents"]
    config = _field(body, "generationConfig") or {}
    cap = _count(config, "maxOutputTokens")
    candidates = _count(config, "candidateCount") or 1
    tool = _tool_call(body, contents)
    text = reply if reply is not None else f"Fake answer to: {quote(last_user_text(contents))}"
    tokens = tuple(re.findall(r"\s*\S+", text))
    finish = "STOP"
    if tool is None and cap is not None and cap < len(tokens):
        tokens, finish = tokens[:cap], "MAX_TOKENS"
    return Answer(
        model=model,
        response_id=uuid.uuid4().hex[:22],
        tokens=tokens,
        tool=tool,
        finish_reason=finish,
        prompt_tokens=prompt_tokens(body),
        candidates=candidates,
    )


def last_user_text(contents: list[dict[str, Any]]) -> str:
    """The text of the last user turn that has any (function results are not the user's)."""
    for content in reversed(contents):
        if content.get("role", "user") != "user":
            continue
        texts = [p["text"] for p in content["parts"] if isinstance(p.get("text"), str)]
        if texts:
            return " ".join(texts)
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """A prompt size in the spirit of `turnout.tokens`: four characters a token."""
    contents = list(body["contents"])
    system = _field(body, "systemInstruction")
    if isinstance(system, dict):
        contents.append(system)
    total = 0
    for content in contents:
        total += TOKENS_PER_MESSAGE
        for part in content.get("parts", ()):
            total += len(str(part.get("text", part))) // CHARS_PER_TOKEN
    return max(1, total)


def _tool_call(
    body: dict[str, Any], contents: list[dict[str, Any]]
) -> tuple[str, dict[str, Any]] | None:
    declarations = [
        declaration
        for tool in body.get("tools") or ()
        for declaration in _field(tool, "functionDeclarations") or ()
    ]
    last = contents[-1]
    spoke = last.get("role", "user") == "user" and any("text" in p for p in last["parts"])
    answered = any(_field(p, "functionResponse") is not None for p in last["parts"])
    config = _field(_field(body, "toolConfig") or {}, "functionCallingConfig") or {}
    if not declarations or not spoke or answered or config.get("mode") == "NONE":
        return None
    allowed = _field(config, "allowedFunctionNames") or ()
    chosen = next((d for d in declarations if d.get("name") in allowed), declarations[0])
    schema = chosen.get("parameters") or {}
    properties = schema.get("properties") or {}
    arguments = {name: _placeholder(properties.get(name)) for name in schema.get("required") or ()}
    return str(chosen["name"]), arguments


def _placeholder(schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return _PLACEHOLDERS.get(kind.lower(), "fake") if isinstance(kind, str) else "fake"


def _field(value: dict[str, Any], camel: str) -> Any:
    """A field by its lowerCamelCase or its snake_case name."""
    if camel in value:
        return value[camel]
    return value.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))


def _count(config: dict[str, Any], name: str) -> int | None:
    value = _field(config, name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        where = f"GenerateContentRequest.generation_config.{name}"
        raise ApiError(400, f"* {where}: must be a positive integer\n")
    return value
