"""A ConverseStream body, in AWS's binary event-stream framing, as OpenAI chunks.

Each frame (``application/vnd.amazon.eventstream``: a prelude with its CRC, headers, a JSON
payload and a CRC of the whole) is decoded by botocore's `EventStreamBuffer`, which checks both
checksums. An ``event`` frame's ``:event-type`` names it:

- ``messageStart`` ``{"role"}``: the opening chunk (role "assistant");
- ``contentBlockStart`` ``{"contentBlockIndex", "start": {"toolUse": {"toolUseId", "name"}}}``:
  a tool call opens (id, type, name and empty arguments, at the next OpenAI tool index);
- ``contentBlockDelta`` ``{"contentBlockIndex", "delta": {"text"} | {"toolUse": {"input"}} |
  {"reasoningContent": {"text"}}}``: text, a fragment of a call's JSON arguments, or reasoning;
- ``contentBlockStop``: nothing to say;
- ``messageStop`` ``{"stopReason"}``: the finish chunk;
- ``metadata`` ``{"usage", "metrics"}``: the usage, after ``messageStop``; the answer is complete.

An ``exception`` frame (``:exception-type`` such as ``throttlingException``) is a failure after
the headers, classified like the same exception over HTTP. A frame that fails its checksum is a
`StreamInterruptedError`.

Usage follows turnout's rule: a caller who asked for ``stream_options.include_usage`` gets a
final choices-less chunk with it; otherwise the finish chunk is held until ``metadata`` and
carries the usage itself. A refusal that arrives at the end of a stream cannot take back what was
already sent, so there it is only the finish reason ``content_filter``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from botocore.eventstream import EventStreamBuffer  # type: ignore[import-untyped]

from turnout.errors import ProviderError, StreamInterruptedError
from turnout.providers.bedrock.errors import frame_error
from turnout.providers.bedrock.frames import read_frames
from turnout.providers.bedrock.messages import PROVIDER
from turnout.providers.bedrock.response import UsageView, finish_reason, usage_of
from turnout.providers.chunks import ChunkBuilder, Translator, UsagePolicy
from turnout.wire import StreamChunk


class _EventView(msgspec.Struct):
    contentBlockIndex: int = 0
    start: dict[str, Any] | None = None
    delta: dict[str, Any] | None = None
    stopReason: str | None = None
    usage: UsageView | None = None


_EVENT = msgspec.json.Decoder(_EventView)


class ConverseStreamTranslator(Translator):
    """One ConverseStream answer, frame by frame, into OpenAI chunks."""

    __slots__ = ("_buffer", "_chunks", "_json_blocks", "_json_tool", "_stopped", "_tools", "_usage")

    def __init__(
        self,
        response_id: str,
        model: str,
        created: int,
        wants_usage: bool,
        json_tool: str | None = None,
    ) -> None:
        super().__init__()
        self._buffer = EventStreamBuffer()
        self._chunks = ChunkBuilder(response_id, model, created)
        #: The finish chunk is held until the metadata event brings its usage.
        self._usage = UsagePolicy(wants_usage)
        #: Content block index -> OpenAI tool-call index, for the blocks that are tool calls.
        self._tools: dict[int, int] = {}
        self._stopped = False
        #: The tool forced for JSON mode, and its blocks met: their input is the content.
        self._json_tool = json_tool
        self._json_blocks: set[int | None] = set()

    def feed(self, piece: bytes) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        if self._failure is not None or self._done:
            return out

        def take(headers: dict[str, Any], payload: bytes) -> bool:
            self._frame(headers, payload, out)
            return True

        failure = read_frames(self._buffer, piece, take, lambda: self.done)
        if failure is not None:
            self._failure = failure
        return out

    def finish(self) -> list[StreamChunk]:
        """The body ended: a finish chunk still waiting for its usage goes out without it."""
        out: list[StreamChunk] = []
        self._usage.release(out)
        return out

    def _frame(self, headers: dict[str, Any], payload: bytes, out: list[StreamChunk]) -> None:
        failure = frame_error(headers, payload)
        if failure is not None:
            raise failure
        try:
            event = _EVENT.decode(payload) if payload else _EventView()
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise StreamInterruptedError(f"{PROVIDER} sent a malformed stream event") from None
        name = headers.get(":event-type")
        if name == "messageStart":
            self._open(out)
        elif name == "contentBlockStart":
            self._start(event, out)
        elif name == "contentBlockDelta":
            self._delta(event, out)
        elif name == "messageStop":
            self._stop(event, out)
        elif name == "metadata":
            self._metadata(event, out)

    def _open(self, out: list[StreamChunk]) -> None:
        if not self._chunks.started():
            out.append(self._chunks.chunk({"content": ""}))

    def _start(self, event: _EventView, out: list[StreamChunk]) -> None:
        tool = (event.start or {}).get("toolUse")
        if not isinstance(tool, dict):
            return
        self._open(out)
        if self._json_tool is not None and tool.get("name") == self._json_tool:
            self._json_blocks.add(event.contentBlockIndex)
            return
        index = self._tools[event.contentBlockIndex] = len(self._tools)
        function = {"name": tool.get("name"), "arguments": ""}
        call = {"index": index, "id": tool.get("toolUseId"), "type": "function"}
        out.append(self._chunks.chunk({"tool_calls": [{**call, "function": function}]}))

    def _delta(self, event: _EventView, out: list[StreamChunk]) -> None:
        delta = event.delta or {}
        self._open(out)
        if isinstance(delta.get("text"), str):
            out.append(self._chunks.chunk({"content": delta["text"]}))
        elif (
            isinstance(delta.get("toolUse"), dict) and event.contentBlockIndex in self._json_blocks
        ):
            fragment = delta["toolUse"].get("input") or ""
            if fragment:
                out.append(self._chunks.chunk({"content": fragment}))
        elif isinstance(delta.get("toolUse"), dict):
            index = self._tools.get(event.contentBlockIndex)
            if index is None:
                raise StreamInterruptedError(
                    f"{PROVIDER} sent tool input for a content block that is no tool call"
                )
            fragment = delta["toolUse"].get("input") or ""
            call = {"index": index, "function": {"arguments": fragment}}
            out.append(self._chunks.chunk({"tool_calls": [call]}))
        elif isinstance(delta.get("reasoningContent"), dict):
            text = delta["reasoningContent"].get("text")
            if isinstance(text, str):
                out.append(self._chunks.chunk({"reasoning_content": text}))

    def _stop(self, event: _EventView, out: list[StreamChunk]) -> None:
        self._open(out)
        stop_reason = event.stopReason
        if stop_reason == "tool_use" and self._json_blocks and not self._tools:
            stop_reason = "end_turn"
        try:
            finish = finish_reason(stop_reason, useful=True)
        except ProviderError as error:
            raise StreamInterruptedError(error.message) from None
        self._stopped = True
        self._usage.finish(self._chunks.chunk({}, finish), out)

    def _metadata(self, event: _EventView, out: list[StreamChunk]) -> None:
        self._usage.settle(usage_of(event.usage), out, self._chunks.usage)
        if self._stopped:
            self._done = True
