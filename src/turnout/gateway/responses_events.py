"""A chat completion stream retold as the Responses API's typed events.

Chat chunks carry bare deltas (text, refusal, tool-call fragments) and a finish reason; the
Responses API frames the same answer as output items, each opened, filled and closed by its own
events, between ``response.created`` and one terminal event. `ResponseEvents` keeps the one open
item and part and numbers every event from 0, so that the client sees a well-formed sequence
whatever the chunks' shape. A stream that breaks ends with ``response.failed``, never silently.

A deployment that speaks the Responses API natively streams these events itself
(`NativeResponseEvent`): they are relayed as they came (their response objects with the caller's
settings put back, `turnout.gateway.responses_native.as_sent`), and followed here, so that when
such a stream breaks and another deployment continues it, the continuation's chunks go on in the
item and part left open, under the same response id, with the numbering unbroken.
"""

from __future__ import annotations

from typing import Any

import msgspec

from turnout.errors import TurnoutError
from turnout.gateway.responses_native import as_sent
from turnout.gateway.responses_output import (
    Draft,
    call_item,
    message_item,
    new_id,
    status_of,
    text_of,
    text_part,
    token_logprobs,
)
from turnout.providers.openai_responses_stream import TERMINAL, NativeResponseEvent
from turnout.wire import StreamChunk, Usage

_ENCODE = msgspec.json.Encoder().encode
#: Each content part's kind: its delta field in a chat chunk, and its events' name.
_PART_EVENTS = {"output_text": "output_text", "refusal": "refusal"}
#: The native events that carry the response object, which is given back the caller's settings.
_ENVELOPED = frozenset({"response.created", "response.in_progress", *TERMINAL})


class ResponseEvents:
    """The event stream of one response, fed chat chunks in order."""

    def __init__(self, draft: Draft) -> None:
        self._draft = draft
        self._sequence = 0
        self._output: list[dict[str, Any]] = []
        self._model: str | None = None
        self._finish: str | None = None
        #: The open item (its output index is the last), its open part and the part's text.
        self._item: dict[str, Any] | None = None
        self._part: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._text: list[str] = []
        #: The open text part's token logprobs, as the chunks brought them.
        self._logprobs: list[Any] = []
        self._call_index: int | None = None
        #: Whether a native stream's own terminal event went out.
        self._ended = False
        #: The `response` object as it ended (None until then).
        self.final: dict[str, Any] | None = None

    def _opening(self) -> bytes:
        """``response.created`` and ``response.in_progress`` before the first event; after
        it, nothing."""
        if self._sequence:
            return b""
        response = self._draft.envelope("in_progress", [])
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def chunk(self, chunk: StreamChunk) -> bytes:
        if isinstance(chunk, NativeResponseEvent):
            return self._native(chunk)
        return self._opening() + self._said(chunk)

    def _said(self, chunk: StreamChunk) -> bytes:
        """The events saying what one chunk says (may be empty)."""
        data = chunk.data
        model = data.get("model")
        if isinstance(model, str) and model:
            self._model = model
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return b""
        choice = choices[0]
        if choice.get("finish_reason") is not None:
            self._finish = str(choice["finish_reason"])
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return b""
        out = b""
        for kind in _PART_EVENTS:
            piece = delta.get("content" if kind == "output_text" else kind)
            if isinstance(piece, str) and piece:
                logprobs = token_logprobs(choice) if kind == "output_text" else []
                out += self._piece(kind, piece, logprobs)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    out += self._call(call)
        return out

    def closing(self, usage: Usage | None) -> bytes:
        """Close what is open and end with ``response.completed`` or ``.incomplete`` (nothing
        when a native stream's own terminal event ended it)."""
        if self._ended:
            return b""
        out = self._opening()
        out += b"" if self._output else self._open_message()
        out += self._close_item()
        status, incomplete = status_of(self._finish)
        self.final = self._draft.envelope(
            status, self._output, model=self._model, usage=usage, incomplete=incomplete
        )
        return out + self._event(f"response.{status}", response=self.final)

    def failure(self, error: TurnoutError, body: dict[str, Any]) -> bytes:
        """End a broken stream: ``response.failed`` carrying the error (as `body`, OpenAI's
        redacted error body, says it) and what was sent."""
        inner = body.get("error")
        details: dict[str, Any] = inner if isinstance(inner, dict) else body
        problem = {
            "code": details.get("code") or details.get("type") or "server_error",
            "message": details.get("message") or "The answer broke off",
        }
        item = self._item
        if item is not None:
            item["status"] = "incomplete"
            if item["type"] == "message":
                kind = self._part
                text = "".join(self._text)
                partial = [] if kind is None else [self._part_of(kind, text, self._logprobs)]
                item["content"] = [*self._parts, *partial]
        self.final = self._draft.envelope("failed", self._output, model=self._model, error=problem)
        return self._opening() + self._event("response.failed", response=self.final)

    def captured(self) -> str | None:
        """The text of a response that ended well (None for one that failed or never ended)."""
        final = self.final
        return None if final is None or final["status"] == "failed" else text_of(final)

    # ---- items -------------------------------------------------------------------------

    def _piece(self, kind: str, piece: str, logprobs: list[Any]) -> bytes:
        out = b""
        if self._item is None or self._item["type"] != "message":
            out += self._close_item() + self._open_message()
        if self._part != kind:
            out += self._close_part() + self._open_part(kind)
        self._text.append(piece)
        self._logprobs.extend(logprobs)
        name = _PART_EVENTS[kind]
        extra: dict[str, Any] = {"logprobs": logprobs} if kind == "output_text" else {}
        return out + self._event(f"response.{name}.delta", **self._where(), delta=piece, **extra)

    def _call(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = call.get("index", 0)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        item = self._item
        call_id = call.get("id")
        # A new call: another index, or (from adapters that number every call 0) another id.
        if (
            item is None
            or item["type"] != "function_call"
            or index != self._call_index
            or (isinstance(call_id, str) and call_id and call_id != item["call_id"])
        ):
            out += self._close_item()
            self._call_index = index
            item = call_item(
                new_id("fc"),
                str(call_id or new_id("call")),
                str(function.get("name") or ""),
                "",
                "in_progress",
            )
            out += self._add_item(item)
        assert self._item is not None
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._item["arguments"] += arguments
            where = {"item_id": self._item["id"], "output_index": len(self._output) - 1}
            out += self._event("response.function_call_arguments.delta", **where, delta=arguments)
        return out

    def _open_message(self) -> bytes:
        return self._add_item(message_item(new_id("msg"), [], "in_progress"))

    def _add_item(self, item: dict[str, Any]) -> bytes:
        self._item = item
        self._output.append(item)
        return self._event(
            "response.output_item.added", output_index=len(self._output) - 1, item=dict(item)
        )

    def _close_item(self) -> bytes:
        item = self._item
        if item is None:
            return b""
        out = b""
        index = len(self._output) - 1
        if item["type"] == "message":
            if not self._parts and self._part is None:
                out += self._open_part("output_text")
            out += self._close_part()
            item["content"] = self._parts
            self._parts = []
        elif item["type"] == "function_call":
            out += self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        item["status"] = "completed"
        self._item = None
        return out + self._event("response.output_item.done", output_index=index, item=item)

    # ---- native events ----------------------------------------------------------------

    def _native(self, chunk: NativeResponseEvent) -> bytes:
        """Relay one native event, renumbered only if the numbering needs it, and follow it."""
        event, kind = chunk.event, chunk.kind
        response = event.get("response")
        if kind in _ENVELOPED and isinstance(response, dict):
            event["response"] = as_sent(response, self._draft.body)
            if kind == "response.created":
                self._draft.id = str(response.get("id") or self._draft.id)
            model = response.get("model")
            self._model = model if isinstance(model, str) else self._model
            if kind in TERMINAL:
                self.final, self._ended = response, True
        else:
            self._follow(kind, event)
        if kind in _ENVELOPED or event.get("sequence_number") != self._sequence:
            fields = {name: value for name, value in event.items() if name != "type"}
            fields.pop("sequence_number", None)
            return self._event(kind, **fields)
        self._sequence += 1
        return chunk.frame

    def _follow(self, kind: str, event: dict[str, Any]) -> None:
        """Keep the open item and part as a native event leaves them."""
        item, part = event.get("item"), event.get("part")
        delta = event.get("delta")
        if kind == "response.output_item.added" and isinstance(item, dict):
            self._item = dict(item)
            self._output.append(self._item)
            self._parts, self._part, self._call_index = [], None, None
        elif kind == "response.output_item.done" and isinstance(item, dict):
            if self._output:
                self._output[-1] = item
            self._item, self._parts, self._part = None, [], None
        elif kind == "response.content_part.added" and isinstance(part, dict):
            kind_of = part.get("type")
            self._part = kind_of if kind_of in _PART_EVENTS else None
            self._text, self._logprobs = [], []
        elif kind == "response.content_part.done" and isinstance(part, dict):
            self._parts.append(part)
            self._part = None
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            self._text.append(delta if isinstance(delta, str) else "")
        elif kind == "response.function_call_arguments.delta" and isinstance(delta, str):
            item = self._item
            if item is not None and item.get("type") == "function_call":
                item["arguments"] = str(item.get("arguments") or "") + delta

    # ---- content parts -----------------------------------------------------------------

    def _open_part(self, kind: str) -> bytes:
        self._part = kind
        self._text = []
        self._logprobs = []
        return self._event(
            "response.content_part.added", **self._where(), part=self._part_of(kind, "", [])
        )

    def _close_part(self) -> bytes:
        kind = self._part
        if kind is None:
            return b""
        text = "".join(self._text)
        part = self._part_of(kind, text, self._logprobs)
        fields: dict[str, Any] = {"text": text, "logprobs": self._logprobs}
        if kind == "refusal":
            fields = {"refusal": text}
        done = self._event(f"response.{_PART_EVENTS[kind]}.done", **self._where(), **fields)
        done += self._event("response.content_part.done", **self._where(), part=part)
        self._parts.append(part)
        self._part = None
        return done

    def _part_of(self, kind: str, text: str, logprobs: list[Any]) -> dict[str, Any]:
        if kind == "output_text":
            return text_part(text, logprobs)
        return {"type": "refusal", "refusal": text}

    def _where(self) -> dict[str, Any]:
        assert self._item is not None
        return {
            "item_id": self._item["id"],
            "output_index": len(self._output) - 1,
            "content_index": len(self._parts),
        }

    def _event(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + _ENCODE(event) + b"\n\n"
