"""Anthropic's streamed Message events into OpenAI ``chat.completion.chunk``s.

A stream is ``message_start``, then per content block ``content_block_start``, its
``content_block_delta``s and ``content_block_stop``, then ``message_delta`` (stop reason and
cumulative usage) and ``message_stop``; ``ping`` events may come anywhere, an ``error`` event may
end it early, and unknown event types are skipped as Anthropic asks. Translated:

- a text block opens with the role chunk (``{"role": "assistant", "content": ""}``), and each
  ``text_delta`` is a content chunk;
- a ``tool_use`` block opens a tool call (index counted over tool calls, not blocks; id, name,
  empty arguments), and each ``input_json_delta`` is a fragment of its arguments;
- with JSON mode (`anthropic_json_mode`), the forced tool's block is the answer's text: each of
  its ``input_json_delta``s is a content chunk, and its ``tool_use`` stop finishes with ``stop``;
- ``message_delta`` is the finish chunk. Its usage rides on that chunk's `StreamChunk.usage`,
  or, when the caller asked for ``stream_options.include_usage``, on a choices-less usage chunk
  after it; ``message_stop`` completes the answer.

Nothing is sent for ``message_start``, so that a refusal before any content (``stop_reason:
"refusal"`` with no block) can still fail the attempt as a `ContentPolicyError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from turnout.errors import StreamInterruptedError
from turnout.providers.anthropic.errors import classify, fields
from turnout.providers.anthropic.response import finish_reason, refusal, usage_of
from turnout.providers.chunks import ChunkBuilder, SSETranslator, UsagePolicy
from turnout.wire import StreamChunk

_USAGE_FIELDS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


class AnthropicStreamTranslator(SSETranslator):
    """One streamed answer's events into chunks; knows when the answer is complete."""

    __slots__ = (
        "_chunks",
        "_json_blocks",
        "_json_tool",
        "_name",
        "_now",
        "_tools",
        "_usage",
        "_usage_policy",
    )

    def __init__(
        self,
        name: str,
        model: str,
        created: int,
        wants_usage: bool,
        now: Callable[[], float],
        json_tool: str | None = None,
    ) -> None:
        super().__init__()
        self._name = name
        self._now = now
        self._chunks = ChunkBuilder("", model, created)
        self._usage_policy = UsagePolicy(wants_usage)
        #: Content block index -> OpenAI tool-call index.
        self._tools: dict[int, int] = {}
        #: The cumulative usage fields seen so far.
        self._usage: dict[str, int] = {}
        #: The tool forced for JSON mode, and the blocks of it met (their input is content).
        self._json_tool = json_tool
        self._json_blocks: set[int] = set()

    def _event(self, data: bytes, out: list[StreamChunk]) -> None:
        try:
            event = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raise StreamInterruptedError(f"{self._name}: a malformed stream event") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise StreamInterruptedError(f"{self._name}: a stream event without a type")
        kind = event["type"]
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self._chunks.id = str(message.get("id") or "")
                self._count(message.get("usage"))
        elif kind == "content_block_start":
            self._block_start(event.get("index"), event.get("content_block"), out)
        elif kind == "content_block_delta":
            self._block_delta(event.get("index"), event.get("delta"), out)
        elif kind == "message_delta":
            self._count(event.get("usage"))
            delta = event.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            self._finish(delta.get("stop_reason"), delta.get("stop_details"), out)
        elif kind == "message_stop":
            self._done = True
        elif kind == "error":
            error_type, message = fields(event)
            raise classify(self._name, None, error_type, message, {}, self._now)
        # ping, content_block_stop and event types added later carry nothing to translate.

    def _block_start(self, index: Any, block: Any, out: list[StreamChunk]) -> None:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text = block.get("text")
            if not self._chunks.started() or text:
                out.append(self._chunks.chunk({"content": text if isinstance(text, str) else ""}))
        elif (
            kind == "tool_use"
            and isinstance(index, int)
            and self._json_tool is not None
            and block.get("name") == self._json_tool
        ):
            self._json_blocks.add(index)
            if not self._chunks.started():
                out.append(self._chunks.chunk({"content": ""}))
        elif kind == "tool_use" and isinstance(index, int):
            position = self._tools[index] = len(self._tools)
            function = {"name": block.get("name"), "arguments": ""}
            call = {"index": position, "id": block.get("id"), "type": "function"}
            delta: dict[str, Any] = {"tool_calls": [{**call, "function": function}]}
            if not self._chunks.started():
                delta["content"] = None
            out.append(self._chunks.chunk(delta))

    def _block_delta(self, index: Any, delta: Any, out: list[StreamChunk]) -> None:
        kind = delta.get("type") if isinstance(delta, dict) else None
        if kind == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and (text or not self._chunks.started()):
                out.append(self._chunks.chunk({"content": text}))
        elif kind == "input_json_delta" and index in self._json_blocks:
            fragment = delta.get("partial_json")
            if isinstance(fragment, str) and fragment:
                out.append(self._chunks.chunk({"content": fragment}))
        elif kind == "input_json_delta" and index in self._tools:
            fragment = delta.get("partial_json")
            if isinstance(fragment, str) and fragment:
                function = {"arguments": fragment}
                call = {"index": self._tools[index], "function": function}
                out.append(self._chunks.chunk({"tool_calls": [call]}))

    def _finish(self, stop_reason: Any, stop_details: Any, out: list[StreamChunk]) -> None:
        if stop_reason == "refusal" and not self._chunks.started():
            raise refusal(self._name, stop_details)
        if stop_reason == "tool_use" and self._json_blocks and not self._tools:
            stop_reason = "end_turn"
        reason = finish_reason(stop_reason)
        delta: dict[str, Any] = {} if self._chunks.started() else {"content": ""}
        self._usage_policy.finish(self._chunks.chunk(delta, reason), out)
        self._usage_policy.settle(usage_of(self._usage), out, self._chunks.usage)

    def _count(self, usage: Any) -> None:
        """Keep the cumulative counts; a field a later event leaves out (or null) stays."""
        if isinstance(usage, dict):
            for name in _USAGE_FIELDS:
                value = usage.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    self._usage[name] = value
