"""A routed chat stream as Anthropic's Messages stream events, in the order Anthropic sends them.

``message_start`` (an empty message), then for each content block ``content_block_start``, its
deltas (``text_delta`` for text, ``input_json_delta`` for a tool call's input) and
``content_block_stop``, then ``message_delta`` (the stop reason and usage) and
``message_stop``; a ``ping`` follows the opening, as Anthropic's own streams do. A chat stream
interleaves nothing Anthropic cannot: text, then each tool call in turn, so each block is
closed before the next opens. A stream that breaks after it began ends with an ``error`` event
instead of ``message_delta``, so that it cannot pass for a complete answer.

The usage in ``message_start`` is the gateway's estimate of the prompt (a chat stream reports
usage only at its end); ``message_delta`` carries the counted input and output tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from turnout.errors import TurnoutError
from turnout.gateway.messages_answer import (
    message_id,
    stop_reason,
    tool_use_block,
    usage_object,
)
from turnout.gateway.messages_errors import error_object
from turnout.providers.anthropic.native import NativeEvent
from turnout.wire import StreamChunk, Usage

_ENCODE = msgspec.json.Encoder().encode
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'


def event(kind: str, data: dict[str, Any]) -> bytes:
    """One server-sent event named `kind`, whose data says its type too (as Anthropic's do)."""
    return b"event: " + kind.encode() + b"\ndata: " + _ENCODE(data) + b"\n\n"


class MessageEvents:
    """Turns one routed stream's chunks into Messages events; one instance per stream.

    An Anthropic deployment's events (`NativeEvent`) are relayed as they came, and followed
    here only so that a continuation on another deployment, whose chunks are chat chunks,
    goes on with the right block indices; the opening and closing events are then the
    upstream's own.
    """

    __slots__ = (
        "_blocks",
        "_calls",
        "_ended",
        "_finish",
        "_matched",
        "_open",
        "_opening",
        "_stops",
        "text",
    )

    def __init__(self, stops: Sequence[str], request_id: str, model: str, prompt: int) -> None:
        self._stops = stops
        #: The opening events, until they are sent (with the first chat chunk).
        self._opening: bytes | None = _opening(request_id, model, prompt)
        #: Blocks opened so far (the next block's index).
        self._blocks = 0
        #: The index of the block open now, and whether it is text (else a tool call's).
        self._open: tuple[int, bool] | None = None
        #: Chat tool-call index to the block index it became.
        self._calls: dict[int, int] = {}
        self._finish: Any = None
        self._matched: Any = None
        #: Whether the upstream's own ``message_stop`` went out.
        self._ended = False
        #: The answer's text so far (for a request log that captures content).
        self.text: list[str] = []

    def chunk(self, chunk: StreamChunk) -> bytes:
        """The events for one chunk (often one ``content_block_delta``; nothing for a
        usage-only chunk)."""
        if isinstance(chunk, NativeEvent):
            return self._native(chunk)
        out = b""
        if self._opening is not None:
            out, self._opening = self._opening, None
        choices = chunk.data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return out
        choice = choices[0]
        if choice.get("finish_reason") is not None:
            self._finish = choice["finish_reason"]
            self._matched = choice.get("stop_reason")
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return out
        text = delta.get("content")
        if isinstance(text, str) and text:
            self.text.append(text)
            out += self._text(text)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    out += self._tool_call(call)
        return out

    def closing(self, usage: Usage | None) -> bytes:
        """The end of a complete stream: the last block's stop, ``message_delta``,
        ``message_stop`` (nothing when the upstream's own ended it)."""
        if self._ended:
            return b""
        out = self._close()
        reason, sequence = stop_reason(self._finish, self._matched, self._stops)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason or "end_turn", "stop_sequence": sequence},
            "usage": usage_object(usage),
        }
        return out + event("message_delta", delta) + event("message_stop", {"type": "message_stop"})

    def failure(self, error: TurnoutError, body: dict[str, Any]) -> bytes:
        """The ``error`` event ending a broken stream, with the redacted message of `body`."""
        return event("error", error_object(error.status, body["error"]["message"], error))

    def captured(self) -> str:
        """The text sent so far, a broken stream's too (it is what the caller saw)."""
        return "".join(self.text)

    def _native(self, chunk: NativeEvent) -> bytes:
        kind, index = chunk.kind, chunk.index
        if kind == "message_start":
            self._opening = None
        elif kind == "content_block_start" and index is not None:
            self._open = (index, chunk.block == "text")
            self._blocks = max(self._blocks, index + 1)
        elif kind == "content_block_stop":
            self._open = None
        elif kind == "message_stop":
            self._ended = True
        text = chunk.data.get("choices")
        if text:
            delta = text[0].get("delta") if isinstance(text[0], dict) else None
            piece = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(piece, str) and piece:
                self.text.append(piece)
            if text[0].get("finish_reason") is not None:
                self._finish = text[0]["finish_reason"]
        return chunk.frame

    def _text(self, text: str) -> bytes:
        out = b""
        if self._open is None or not self._open[1]:
            out = self._start({"type": "text", "text": ""}, text=True)
        assert self._open is not None
        delta = {"type": "text_delta", "text": text}
        return out + self._delta(self._open[0], delta)

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        position = call.get("index", 0)
        out = b""
        block = self._calls.get(position)
        if block is None:
            out = self._start(tool_use_block(call, decode_input=False), text=False)
            assert self._open is not None
            block = self._calls[position] = self._open[0]
        function = call.get("function")
        fragment = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(fragment, str) and fragment:
            out += self._delta(block, {"type": "input_json_delta", "partial_json": fragment})
        return out

    def _start(self, block: dict[str, Any], *, text: bool) -> bytes:
        out = self._close()
        index = self._blocks
        self._blocks += 1
        self._open = (index, text)
        start = {"type": "content_block_start", "index": index, "content_block": block}
        return out + event("content_block_start", start)

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        body = {"type": "content_block_delta", "index": index, "delta": delta}
        return event("content_block_delta", body)

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index = self._open[0]
        self._open = None
        return event("content_block_stop", {"type": "content_block_stop", "index": index})


def _opening(request_id: str, model: str, prompt_tokens: int) -> bytes:
    """``message_start`` (an empty message) and a ``ping``, as Anthropic opens a stream."""
    message: dict[str, Any] = {
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": 0},
    }
    return event("message_start", {"type": "message_start", "message": message}) + _PING
