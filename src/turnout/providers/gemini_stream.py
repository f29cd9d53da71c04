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

from typing import Any

import msgspec

from turnout.errors import ContentPolicyError, ProviderError, StreamInterruptedError
from turnout.providers.gemini_errors import classify
from turnout.providers.gemini_response import (
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
from turnout.providers.sse import SSEDecoder
from turnout.wire import StreamChunk


class GeminiStreamTranslator:
    """One streamed answer; see the module docstring."""

    __slots__ = (
        "_calls",
        "_candidates",
        "_created",
        "_done",
        "_failure",
        "_fallback_id",
        "_finished",
        "_held",
        "_id",
        "_meta",
        "_model",
        "_sse",
        "_started",
        "_wants_usage",
    )

    def __init__(
        self, model: str, created: int, fallback_id: str, wants_usage: bool, candidates: int
    ) -> None:
        self._model = model
        self._created = created
        self._fallback_id = fallback_id
        self._wants_usage = wants_usage
        self._candidates = max(1, candidates)
        self._sse = SSEDecoder()
        self._id: str | None = None
        #: Choices whose first delta (with the role) was sent.
        self._started: set[int] = set()
        #: Tool calls made so far, by choice.
        self._calls: dict[int, int] = {}
        self._finished: set[int] = set()
        #: Finish chunks waiting for the other candidates (and for the usage).
        self._held: list[StreamChunk] = []
        self._meta: UsageMetadata | None = None
        self._done = False
        self._failure: ProviderError | None = None

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, piece: bytes) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        for event in self._sse.feed(piece):
            if not self._take(event.data, out):
                break
        return out

    def finish(self) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        for event in self._sse.finish():
            if not self._take(event.data, out):
                return out
        if not self._done and self._finished:
            # Fewer candidates came than were asked for: what finished is the answer.
            self._close(out)
        return out

    def check(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self._done = True
            raise failure

    def _take(self, data: bytes, out: list[StreamChunk]) -> bool:
        """Translate one event; False (and the failure kept for `check`) when it was bad."""
        if self._failure is not None:
            return False
        try:
            self._event(data, out)
        except ProviderError as failure:
            self._failure = failure
            return False
        return True

    def _event(self, data: bytes, out: list[StreamChunk]) -> None:
        if self._done or not data.strip():
            return
        try:
            view = GENERATE.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise StreamInterruptedError(f"{PROVIDER}: sent a malformed stream event") from None
        if view.error is not None:
            raise classify(None, view.error, {})
        check_blocked(view)
        if view.usage_metadata is not None:
            self._meta = view.usage_metadata
        seed = view.response_id or self._fallback_id
        if self._id is None:
            self._id = f"chatcmpl-{seed}"
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
                    out.append(self._chunk(index, {"content": text}))
                made = self._calls.get(index, 0)
                call = tool_call(part, f"{seed}/{index}/{made}")
                if call is None:
                    continue
                self._calls[index] = made + 1
                function = call["function"]
                opening = {"index": made, "id": call["id"], "type": "function"}
                opening["function"] = {"name": function["name"], "arguments": ""}
                out.append(self._chunk(index, {"tool_calls": [opening]}))
                arguments = {"index": made, "function": {"arguments": function["arguments"]}}
                out.append(self._chunk(index, {"tool_calls": [arguments]}))
            reason = candidate.finish_reason
            if reason is None:
                continue
            if reason in FILTERED and index not in self._started:
                raise ContentPolicyError(
                    f"{PROVIDER}: the answer was withheld by a filter ({reason})"
                )
            finish = finish_reason(reason, self._calls.get(index, 0) > 0)
            self._finished.add(index)
            self._held.append(self._chunk(index, {}, finish))

    def _close(self, out: list[StreamChunk]) -> None:
        self._done = True
        usage = usage_of(self._meta) if self._meta is not None else None
        if self._wants_usage or not self._held:
            out.extend(self._held)
            if usage is not None and self._wants_usage:
                envelope = self._envelope([])
                envelope["usage"] = usage_body(usage, self._meta)
                out.append(StreamChunk(data=envelope, usage=usage))
        else:
            self._held[-1].usage = usage
            out.extend(self._held)
        self._held = []

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> StreamChunk:
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", **delta}
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return StreamChunk(data=self._envelope([choice]), finish_reason=finish)

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self._id or f"chatcmpl-{self._fallback_id}",
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
