"""What a simulated model answers, and that answer in OpenAI's exact shapes, whole or streamed.

An answer has ``n`` choices, each either text or tool calls, as an OpenAI model would give:

- with ``tools`` (and a ``tool_choice`` other than ``none``) a choice calls a tool: the one
  ``tool_choice`` names, else those the user's last message mentions by name (one unless
  ``parallel_tool_calls`` allows more), else one picked by the prompt; its arguments are built
  from the function's JSON schema. Under ``auto``, once tool results follow the user's last
  message, the model answers in words instead;
- ``response_format`` ``json_schema`` makes the content a JSON document valid against the
  schema, ``json_object`` a small JSON object;
- otherwise the content is ``Simulated answer from <model>:`` and ``output_tokens`` words.

Every choice is drawn from a hash of the model, the prompt, ``seed`` and the choice's index:
the same request gets the same answer, and the choices of one request differ. ``stop`` cuts
the content before the first stop sequence (finish reason ``stop``, and ``stop_reason`` naming
the sequence, as vLLM does); ``max_tokens`` or ``max_completion_tokens`` cut every choice at
that many tokens (finish reason ``length``).
A stream sends each choice's tokens as OpenAI does: content deltas, or per tool call a first
delta with its index, id and name, then its arguments in pieces; ``logprobs`` go with them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.config.router import Deployment
from turnout.config.simulated import Behaviour
from turnout.providers.simulated_logprobs import Logprobs
from turnout.providers.simulated_prompt import last_turn, prompt_text
from turnout.providers.simulated_schema import SchemaValues
from turnout.wire import Operation, Request, Usage

#: Words the simulated answers are made of, one per output token.
WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
#: How text is cut into tokens: a word with the space before it, or one other character.
_TOKEN = re.compile(r"\s*[A-Za-z0-9_]+|\s*[^\sA-Za-z0-9_]|\s+")
#: The words of a function's name (snake, kebab or camel case) and the verbs that say nothing.
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_VERBS = frozenset(
    [
        "get",
        "set",
        "list",
        "fetch",
        "find",
        "create",
        "update",
        "delete",
        "search",
        "lookup",
        "look",
        "up",
        "make",
        "do",
        "run",
        "call",
        "read",
        "write",
        "check",
        "compute",
    ]
)
#: Tries at drawing a choice that differs from the ones before it.
_REDRAWS = 8


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    #: The arguments (a JSON object), token by token.
    pieces: list[str]


@dataclass(slots=True)
class Choice:
    index: int
    #: The content, token by token (empty for a choice that calls tools).
    pieces: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    logprobs: Logprobs | None = None
    #: The stop sequence the content was cut at, named as vLLM names it (``stop_reason``).
    stop_sequence: str | None = None

    @property
    def tokens(self) -> int:
        return len(self.pieces) + sum(len(call.pieces) for call in self.calls)


class Answer:
    """One successful answer: its choices, usage, and OpenAI body or stream chunks."""

    def __init__(
        self,
        number: int,
        behaviour: Behaviour,
        deployment: Deployment,
        request: Request,
        created: int,
    ) -> None:
        body = request.body
        self.chat = request.operation is Operation.CHAT
        self.id = f"{'chatcmpl' if self.chat else 'cmpl'}-sim-{number}"
        self.created = created
        self.model = deployment.model
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        wanted = body.get("n")
        count = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) else 1
        # Not the model: every deployment of a group answers a prompt alike.
        seed = f"{body.get('seed')}|{prompt_text(request)}"
        canonical = body.get("seed") is None
        self.choices: list[Choice] = []
        seen: set[str] = set()
        for index in range(max(1, count)):
            choice = self._choice(index, request, behaviour, seed, canonical and index == 0)
            for retry in range(_REDRAWS):
                shown = _shown(choice)
                if shown not in seen:
                    break
                choice = self._choice(index, request, behaviour, f"{seed}|{retry}", False)
            seen.add(_shown(choice))
            self.choices.append(choice)
        self.usage = Usage(
            prompt_tokens=request.prompt_tokens,
            completion_tokens=sum(choice.tokens for choice in self.choices),
        )

    def _choice(
        self, index: int, request: Request, behaviour: Behaviour, seed: str, canonical: bool
    ) -> Choice:
        body = request.body
        key = f"{seed}|{index}"
        choice = Choice(index, logprobs=_logprobs(body, self.chat, key))
        cap = request.max_completion_tokens
        if self.chat:
            choice.calls = _tool_calls(body, key)
        if choice.calls:
            choice.finish_reason = "tool_calls"
            if cap is not None and choice.tokens > cap:
                _cut_calls(choice.calls, cap)
                choice.finish_reason = "length"
            return choice
        pieces = self._content(body, behaviour, key, canonical)
        stops = body.get("stop")
        pieces, choice.stop_sequence = _before_stop(
            pieces, [stops] if isinstance(stops, str) else stops
        )
        if cap is not None and len(pieces) > cap:
            pieces = pieces[:cap]
            choice.finish_reason = "length"
        choice.pieces = pieces
        return choice

    def _content(
        self, body: Mapping[str, Any], behaviour: Behaviour, key: str, canonical: bool
    ) -> list[str]:
        count = behaviour.output_tokens
        if canonical:
            words = [WORDS[index % len(WORDS)] for index in range(count)]
        else:
            draws = _draw(key, "words")
            words = [WORDS[(draws >> (3 * (i % 20)) ^ i) % len(WORDS)] for i in range(count)]
        pieces = [f" {word}" for word in words]
        if pieces:
            pieces[0] = f"Simulated answer from {self.model}:{pieces[0]}"
        spec = body.get("response_format") if self.chat else None
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        if kind == "json_object":
            document = {"model": self.model, "answer": " ".join(words)}
            return tokenize(json.dumps(document))
        if kind == "json_schema" and isinstance(spec, Mapping):
            schema = (spec.get("json_schema") or {}).get("schema")
            value = SchemaValues(schema if isinstance(schema, Mapping) else {}, key).build()
            return tokenize(json.dumps(value))
        return pieces

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [self._whole(choice) for choice in self.choices],
            "usage": self.usage.to_openai(),
        }

    def _whole(self, choice: Choice) -> dict[str, Any]:
        text = "".join(choice.pieces)
        shaped: dict[str, Any] = {"index": choice.index}
        if not self.chat:
            shaped["text"] = text
        elif choice.calls:
            calls = [_call(call, "".join(call.pieces)) for call in choice.calls]
            shaped["message"] = {"role": "assistant", "content": None, "tool_calls": calls}
        else:
            shaped["message"] = {"role": "assistant", "content": text}
        shaped["logprobs"] = self._logprobs(choice, choice.pieces)
        shaped["finish_reason"] = choice.finish_reason
        if choice.stop_sequence is not None:
            shaped["stop_reason"] = choice.stop_sequence
        return shaped

    def _logprobs(self, choice: Choice, pieces: list[str], start: int = 0) -> Any:
        source = choice.logprobs
        if source is None:
            return None
        if not self.chat:
            offset = len("".join(choice.pieces[:start]))
            return source.legacy(pieces, start, offset)
        if choice.calls:
            return {"content": None, "refusal": None}
        return source.chat(pieces, start)

    def openings(self) -> list[dict[str, Any]]:
        """A stream's first chunk of each choice: the role, before any content."""
        chunks = []
        for choice in self.choices:
            if self.chat:
                content = None if choice.calls else ""
                shaped = {"index": choice.index, "delta": {"role": "assistant", "content": content}}
            else:
                shaped = {"index": choice.index, "text": ""}
            chunks.append(self._chunk(shaped))
        return chunks

    def contents(self) -> list[dict[str, Any]]:
        """A stream's content chunks, one token each, the choices' interleaved."""
        lanes = [self._lane(choice) for choice in self.choices]
        longest = max((len(lane) for lane in lanes), default=0)
        return [lane[step] for step in range(longest) for lane in lanes if step < len(lane)]

    def _lane(self, choice: Choice) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        for position, piece in enumerate(choice.pieces):
            shaped: dict[str, Any] = {"index": choice.index}
            if self.chat:
                shaped["delta"] = {"content": piece}
            else:
                shaped["text"] = piece
            shaped["logprobs"] = self._logprobs(choice, [piece], position)
            shaped["finish_reason"] = None
            chunks.append(self._chunk(shaped))
        for number, call in enumerate(choice.calls):
            first = {"index": number, **_call(call, "")}
            deltas = [first] + [
                {"index": number, "function": {"arguments": piece}} for piece in call.pieces
            ]
            for delta in deltas:
                shaped = {"index": choice.index, "delta": {"tool_calls": [delta]}}
                chunks.append(self._chunk(shaped))
        return chunks

    def finishes(self) -> list[tuple[dict[str, Any], str]]:
        """A stream's last chunk of each choice, with its finish reason."""
        finished = []
        for choice in self.choices:
            shaped: dict[str, Any] = {"index": choice.index}
            if self.chat:
                shaped["delta"] = {}
            else:
                shaped["text"] = ""
            shaped["finish_reason"] = choice.finish_reason
            if choice.stop_sequence is not None:
                shaped["stop_reason"] = choice.stop_sequence
            finished.append((self._chunk(shaped), choice.finish_reason))
        return finished

    def usage_chunk(self) -> dict[str, Any]:
        """OpenAI's extra last chunk when the caller asked for usage: no choices, only usage."""
        chunk = self._envelope([])
        chunk["usage"] = self.usage.to_openai()
        return chunk

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        choice.setdefault("logprobs", None)
        choice.setdefault("finish_reason", None)
        return self._envelope([choice])

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            # OpenAI sends an explicit null usage on every chunk before the usage chunk.
            chunk["usage"] = None
        return chunk


def tokenize(text: str) -> list[str]:
    """`text` cut into simulated tokens, which join back into it exactly."""
    return _TOKEN.findall(text)


def _draw(*parts: str) -> int:
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _shown(choice: Choice) -> str:
    calls = ";".join(f"{call.name}{''.join(call.pieces)}" for call in choice.calls)
    return "".join(choice.pieces) + calls


def _logprobs(body: Mapping[str, Any], chat: bool, key: str) -> Logprobs | None:
    wanted = body.get("logprobs")
    if chat:
        top = body.get("top_logprobs")
        return Logprobs(key, top if isinstance(top, int) else 0) if wanted is True else None
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        return Logprobs(key, wanted)
    return None


def _before_stop(pieces: list[str], stops: Any) -> tuple[list[str], str | None]:
    """The tokens before the earliest stop sequence (the token it starts in cut short), and
    that sequence (None: none met)."""
    if not isinstance(stops, list):
        return pieces, None
    text = "".join(pieces)
    found = [(text.find(stop), stop) for stop in stops if isinstance(stop, str) and stop]
    cut, matched = min(((at, stop) for at, stop in found if at >= 0), default=(-1, None))
    if cut < 0:
        return pieces, None
    kept: list[str] = []
    length = 0
    for piece in pieces:
        if length + len(piece) > cut:
            if cut > length:
                kept.append(piece[: cut - length])
            break
        kept.append(piece)
        length += len(piece)
    return kept, matched


def _tool_calls(body: Mapping[str, Any], key: str) -> list[ToolCall]:
    """The tool calls a model with these tools makes for this prompt (none: it answers)."""
    tools = body.get("tools")
    functions = [
        tool["function"]
        for tool in (tools if isinstance(tools, list) else ())
        if isinstance(tool, Mapping) and isinstance(tool.get("function"), Mapping)
    ]
    choice = body.get("tool_choice", "auto")
    if not functions or choice == "none":
        return []
    user, answered = last_turn(body.get("messages"))
    if isinstance(choice, Mapping):
        wanted = (choice.get("function") or {}).get("name")
        picked = [f for f in functions if f.get("name") == wanted][:1]
    else:
        if choice == "auto" and answered:
            return []
        picked = [f for f in functions if _mentioned(str(f.get("name")), user)]
        if not picked:
            picked = [functions[_draw(key, "tool") % len(functions)]]
        if body.get("parallel_tool_calls") is False:
            picked = picked[:1]
    calls = []
    for number, function in enumerate(picked):
        name = str(function.get("name"))
        schema = function.get("parameters")
        if not isinstance(schema, Mapping) or not schema:
            schema = {"type": "object", "properties": {}}
        arguments = SchemaValues(schema, f"{key}|{name}").build()
        call_id = f"call_{_draw(key, 'call', str(number)):016x}{number:08x}"
        calls.append(ToolCall(call_id, name, tokenize(json.dumps(arguments))))
    return calls


def _mentioned(name: str, text: str) -> bool:
    """Whether `text` asks for the function: its name, or every word of it but a generic
    verb (``get_weather`` is mentioned by "the weather in Paris")."""
    lowered = text.casefold()
    if name.casefold() in lowered:
        return True
    words = [w.casefold() for w in _NAME_WORDS.findall(name)]
    meaningful = [w for w in words if w not in _VERBS]
    return bool(meaningful) and all(re.search(rf"\b{re.escape(w)}", lowered) for w in meaningful)


def _cut_calls(calls: list[ToolCall], cap: int) -> None:
    """Cut the calls' arguments after `cap` tokens in all, as a model stopped mid-call."""
    left = cap
    for call in calls:
        call.pieces = call.pieces[:left]
        left -= len(call.pieces)
    calls[:] = [call for number, call in enumerate(calls) if number == 0 or call.pieces]


def _call(call: ToolCall, arguments: str) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }
