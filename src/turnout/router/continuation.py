"""Continuing a stream that broke after content reached the caller, on another deployment.

What the caller saw is kept compact while the stream is relayed (`turnout.router.transcript`:
its text and a few facts, never the chunks). The continuation request asks another deployment to go
on from there: with an assistant prefill where the target supports one (it continues the text
itself), else with the partial answer followed by an instruction to continue without repeating,
and any overlap with what was already sent is trimmed. Continuation chunks are rewritten to the
original stream's id, model and creation time, without a second role delta, and the usage the
caller gets covers the whole answer.
"""

from __future__ import annotations

import copy
from typing import Any

from turnout.router.transcript import Transcript
from turnout.tokens import estimate_prompt_tokens
from turnout.wire import Request, StreamChunk, Usage

__all__ = [
    "CONTINUE_INSTRUCTION",
    "Rewriter",
    "Transcript",
    "added_prompt_tokens",
    "continuation_request",
]

#: Sent after the partial answer when the target cannot take an assistant prefill.
CONTINUE_INSTRUCTION = (
    "Your previous message was cut off. Continue it exactly where it stopped, without "
    "repeating anything and without any preamble."
)
#: A restated passage shorter than this is left alone (it may be a genuine repetition).
_MIN_OVERLAP = 12
#: Characters of a continuation held back to find an overlap with what was sent.
_LOOKAHEAD = 400


def continuation_request(original: Request, sent: str, *, prefill: bool) -> Request:
    """The request that asks another deployment to go on from `sent`."""
    body = copy.copy(original.body)
    body["stream"] = True
    options = body.get("stream_options")
    body["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    messages = list(body.get("messages") or ())
    if sent:
        if prefill:
            # Providers reject a prefill ending in white space; the trimmer restores it.
            messages.append({"role": "assistant", "content": sent.rstrip()})
        else:
            messages.append({"role": "assistant", "content": sent})
            messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
    body["messages"] = messages
    return Request(
        model=original.model,
        body=body,
        operation=original.operation,
        tags=original.tags,
        timeout=original.timeout,
        limits=original.limits,
        request_id=original.request_id,
        principal=original.principal,
        client_request_id=original.client_request_id,
    )


def added_prompt_tokens(original: Request, continuation: Request) -> int:
    """Prompt tokens the continuation added (the partial answer and any instruction)."""
    before = estimate_prompt_tokens(original.operation.value, original.body)
    after = estimate_prompt_tokens(continuation.operation.value, continuation.body)
    return max(0, after - before)


class Rewriter:
    """Turns a continuation's chunks into the next chunks of the original stream."""

    __slots__ = (
        "_added_prompt",
        "_held",
        "_pending",
        "_sent",
        "_settled",
        "_strip_space",
        "_transcript",
        "usage",
    )

    def __init__(self, transcript: Transcript, *, prefill: bool, added_prompt: int) -> None:
        self._transcript = transcript
        self._sent = transcript.text
        #: With a prefill the target continues the text itself: only white space may repeat.
        self._strip_space = prefill and transcript.text != transcript.text.rstrip()
        self._settled = not transcript.text
        self._pending = ""
        self._held: dict[str, Any] | None = None
        self._added_prompt = added_prompt
        #: The usage of the whole answer, once the continuation reported its own.
        self.usage: Usage | None = None

    def feed(self, chunk: StreamChunk) -> list[StreamChunk]:
        data = copy.deepcopy(chunk.data)
        self._stamp(data)
        usage = self._merged(chunk.usage)
        choices = data.get("choices") or []
        if not choices:
            if "usage" in data and usage is not None:
                data["usage"] = usage.to_openai()
            return [StreamChunk(data=data, usage=usage)]
        delta = choices[0].get("delta")
        if isinstance(delta, dict):
            delta.pop("role", None)
            text = delta.get("content")
            if isinstance(text, str) and not self._settled:
                text = self._trim(text, data)
                if text is None:
                    return []
                delta["content"] = text
            if not delta and choices[0].get("finish_reason") is None and usage is None:
                return []
        finish = choices[0].get("finish_reason")
        out = self._flush() if finish is not None else []
        out.append(StreamChunk(data=data, usage=usage, finish_reason=chunk.finish_reason))
        return out

    def finish(self) -> list[StreamChunk]:
        """Whatever is still held back when the continuation ends."""
        return self._flush()

    def _stamp(self, data: dict[str, Any]) -> None:
        transcript = self._transcript
        if transcript.stream_id:
            data["id"] = transcript.stream_id
        if transcript.model:
            data["model"] = transcript.model
        if transcript.created:
            data["created"] = transcript.created

    def _merged(self, usage: Usage | None) -> Usage | None:
        if usage is None:
            return None
        merged = Usage(
            prompt_tokens=max(1, usage.prompt_tokens - self._added_prompt),
            completion_tokens=usage.completion_tokens + self._transcript.content_chunks,
            cached_tokens=usage.cached_tokens,
        )
        self.usage = merged
        return merged

    def _trim(self, text: str, data: dict[str, Any]) -> str | None:
        """Hold the continuation's first characters until the overlap with what was sent is
        known; then release what is new. None: still holding."""
        if self._strip_space:
            stripped = text.lstrip()
            if not stripped:
                return None
            self._settled = True
            return stripped
        self._pending += text
        self._held = data
        if len(self._pending) < _LOOKAHEAD and len(self._pending) < len(self._sent):
            return None
        self._settled = True
        rest = _without_overlap(self._sent, self._pending)
        self._pending = ""
        self._held = None
        return rest

    def _flush(self) -> list[StreamChunk]:
        if self._settled or self._held is None:
            return []
        self._settled = True
        rest = _without_overlap(self._sent, self._pending)
        data = self._held
        self._held = None
        self._pending = ""
        if not rest:
            return []
        choice = data["choices"][0]
        choice["delta"] = {"content": rest}
        choice["finish_reason"] = None
        return [StreamChunk(data=data)]


def _without_overlap(sent: str, continuation: str) -> str:
    """`continuation` without its start that repeats the end of `sent` (when long enough)."""
    if continuation.startswith(sent):
        return continuation[len(sent) :]
    longest = min(len(sent), len(continuation))
    for size in range(longest, _MIN_OVERLAP - 1, -1):
        if sent.endswith(continuation[:size]):
            return continuation[size:]
    return continuation
