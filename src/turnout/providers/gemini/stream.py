"""Gemini's ``streamGenerateContent?alt=sse`` events into OpenAI ``chat.completion.chunk`` events.

Each event is a whole ``GenerateContentResponse`` holding the next piece of each candidate: text
becomes content deltas; a function call arrives whole and becomes two tool-call deltas (the
opening one with id, type and name, then the arguments). The first delta of each choice carries
``role: "assistant"``. A candidate's ``finishReason`` closes its choice; the stream has no
``[DONE]``, so it is complete once every candidate asked for (``n``) has finished.

Usage (``usageMetadata``, repeated on the events) is taken from the last event that had it and
follows OpenAI's rule: a choices-less usage chunk only when the caller asked for
``stream_options.include_usage``, otherwise on the finish chunk's `StreamChunk.usage`. Finish
chunks are held until every candidate has finished, so that the last one can carry it.
"""

from __future__ import annotations

import msgspec

from turnout.errors import ContentPolicyError, StreamInterruptedError
from turnout.providers.chunks import ChunkBuilder, SSETranslator, UsagePolicy
from turnout.providers.gemini.errors import classify
from turnout.providers.gemini.response import (
    FILTERED,
    GENERATE,
    PROVIDER,
    GenerateResponse,
    UsageMetadata,
    check_blocked,
    finish_reason,
    text_of,
    tool_call,
    usage_body,
    usage_of,
)
from turnout.wire import StreamChunk, Usage


class GeminiStreamTranslator(SSETranslator):
    """One streamed answer; see the module docstring."""

    __slots__ = (
        "_calls",
        "_candidates",
        "_chunks",
        "_fallback_id",
        "_finished",
        "_meta",
        "_named",
        "_usage",
    )

    def __init__(
        self, model: str, created: int, fallback_id: str, wants_usage: bool, candidates: int
    ) -> None:
        super().__init__()
        self._fallback_id = fallback_id
        self._candidates = max(1, candidates)
        self._chunks = ChunkBuilder(f"chatcmpl-{fallback_id}", model, created)
        #: Whether the id was taken from the first event.
        self._named = False
        #: Finish chunks wait for the other candidates (and for the usage).
        self._usage = UsagePolicy(wants_usage)
        #: Tool calls made so far, by choice.
        self._calls: dict[int, int] = {}
        self._finished: set[int] = set()
        self._meta: UsageMetadata | None = None

    def _end(self, out: list[StreamChunk]) -> None:
        if not self._done and self._finished:
            # Fewer candidates came than were asked for: what finished is the answer.
            self._close(out)

    def _event(self, data: bytes, out: list[StreamChunk]) -> None:
        if not data.strip():
            return
        try:
            view = GENERATE.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise StreamInterruptedError(f"{PROVIDER}: sent a malformed stream event") from None
        if view.error is not None:
            raise classify(None, view.error, None)
        check_blocked(view)
        if view.usage_metadata is not None:
            self._meta = view.usage_metadata
        seed = view.response_id or self._fallback_id
        if not self._named:
            self._named = True
            self._chunks.id = f"chatcmpl-{seed}"
        self._candidates_of(view, seed, out)
        if len(self._finished) >= self._candidates:
            self._close(out)

    def _candidates_of(self, view: GenerateResponse, seed: str, out: list[StreamChunk]) -> None:
        for candidate in view.candidates:
            index = candidate.index
            if index in self._finished:
                continue
            parts = candidate.content.parts if candidate.content is not None else []
            for part in parts:
                text = text_of(part)
                if text:
                    out.append(self._chunks.chunk({"content": text}, index=index))
                made = self._calls.get(index, 0)
                call = tool_call(part, f"{seed}/{index}/{made}")
                if call is None:
                    continue
                self._calls[index] = made + 1
                function = call["function"]
                opening = {"index": made, "id": call["id"], "type": "function"}
                opening["function"] = {"name": function["name"], "arguments": ""}
                out.append(self._chunks.chunk({"tool_calls": [opening]}, index=index))
                arguments = {"index": made, "function": {"arguments": function["arguments"]}}
                out.append(self._chunks.chunk({"tool_calls": [arguments]}, index=index))
            reason = candidate.finish_reason
            if reason is None:
                continue
            if reason in FILTERED and not self._chunks.started(index):
                raise ContentPolicyError(
                    f"{PROVIDER}: the answer was withheld by a filter ({reason})"
                )
            finish = finish_reason(reason, self._calls.get(index, 0) > 0)
            self._finished.add(index)
            self._usage.hold(self._chunks.chunk({}, finish, index))

    def _close(self, out: list[StreamChunk]) -> None:
        self._done = True
        usage = usage_of(self._meta) if self._meta is not None else None
        self._usage.settle(usage, out, self._usage_chunk)

    def _usage_chunk(self, usage: Usage) -> StreamChunk:
        return self._chunks.usage(usage, usage_body(usage, self._meta))
