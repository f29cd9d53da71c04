"""A native Responses API stream as `NativeResponseEvent` chunks.

Each upstream event becomes one chunk that carries both shapes: its chat translation (what the
router reads: text deltas, tool-call fragments, and on the terminal event the finish reason and
usage) and the event itself, as it came (what the gateway relays, and follows so that a
continuation on another deployment goes on in the same output item). Events with no chat
counterpart (reasoning, ``response.in_progress``...) translate to a chunk with no choices.

A terminal ``response.completed`` or ``response.incomplete`` ends the answer; an ``error``
event or ``response.failed`` is a provider error, raised after the events before it were
handed over, so that the router may continue the answer elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from turnout.errors import ProviderError, ServerError, StreamInterruptedError
from turnout.providers.chunks import SSETranslator
from turnout.providers.openai_responses import finish_reason, usage_of
from turnout.wire import StreamChunk

_DECODE = msgspec.json.Decoder(type=dict[str, Any]).decode
#: The events that end a response well.
TERMINAL = frozenset({"response.completed", "response.incomplete"})


class NativeResponseEvent(StreamChunk):
    """One upstream event of a native Responses stream: its chat translation (`data`) and the
    event, decoded (`event`) and as it came (`frame`)."""

    __slots__ = ("event", "frame", "kind")

    def __init__(self, translated: dict[str, Any], frame: bytes, event: dict[str, Any]) -> None:
        super().__init__(translated)
        self.frame = frame
        self.event = event
        #: The event's type (``response.output_text.delta``...).
        self.kind: str = event["type"]


class ResponsesStreamTranslator(SSETranslator):
    """The events of one native Responses stream, translated as they arrive."""

    __slots__ = ("_calls", "_classify", "_name")

    def __init__(self, name: str, classify: Callable[[Mapping[str, Any]], ProviderError]) -> None:
        """`classify`: the provider's error for an ``error`` event (OpenAI's error fields)."""
        super().__init__()
        self._name = name
        self._classify = classify
        #: Function-call item id to its chat tool-call index.
        self._calls: dict[str, int] = {}

    def _event(self, data: bytes, out: list[StreamChunk]) -> None:
        try:
            event = _DECODE(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise StreamInterruptedError(f"{self._name}: sent a malformed stream event") from None
        kind = event.get("type")
        if not isinstance(kind, str):
            raise StreamInterruptedError(f"{self._name}: sent a stream event with no type")
        if kind == "error":
            raise self._classify(event)
        if kind == "response.failed":
            failed = event.get("response")
            error = failed.get("error") if isinstance(failed, dict) else None
            said = error.get("message") if isinstance(error, dict) else None
            raise ServerError(f"{self._name}: {said or 'the response failed'}")
        frame = b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
        chunk = NativeResponseEvent(self._translate(kind, event), frame, event)
        if kind in TERMINAL:
            response = event.get("response")
            response = response if isinstance(response, dict) else {}
            chunk.usage = usage_of(response.get("usage"))
            chunk.finish_reason = finish_reason(response)
            chunk.data["choices"] = [
                {"index": 0, "delta": {}, "finish_reason": chunk.finish_reason}
            ]
            self._done = True
        out.append(chunk)

    def _translate(self, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        """The chat chunk saying what the event says (no choices when nothing)."""
        delta: dict[str, Any] | None = None
        if kind == "response.output_text.delta":
            delta = {"content": str(event.get("delta") or "")}
        elif kind == "response.refusal.delta":
            delta = {"refusal": str(event.get("delta") or "")}
        elif kind == "response.output_item.added":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                index = self._calls[str(item.get("id"))] = len(self._calls)
                function = {"name": item.get("name"), "arguments": item.get("arguments") or ""}
                call = {"index": index, "id": item.get("call_id"), "type": "function"}
                delta = {"tool_calls": [{**call, "function": function}]}
        elif kind == "response.function_call_arguments.delta":
            index = self._calls.get(str(event.get("item_id")), 0)
            arguments = str(event.get("delta") or "")
            delta = {"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": None}]
        return {"object": "chat.completion.chunk", "choices": choices}
