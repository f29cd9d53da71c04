"""What every stream translator shares: the OpenAI chunks it builds, the usage rule, and the
failure it holds back until the good chunks before it were handed over.

- `ChunkBuilder` makes ``chat.completion.chunk`` dicts with one stream's id, created and model;
  the first delta of each choice carries ``role: "assistant"``.
- `UsagePolicy` is OpenAI's usage rule. A caller who asked for ``stream_options.include_usage``
  gets a final choices-less usage chunk; otherwise no such chunk is sent and the usage rides on
  the (last) finish chunk's `StreamChunk.usage`, which is held back until the usage is known.
- `Translator` keeps ``done`` and the pending failure that `check` raises; `SSETranslator` adds
  the loop over server-sent events that stops at the first bad one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from turnout.errors import ProviderError
from turnout.providers.sse import SSEDecoder
from turnout.wire import StreamChunk, Usage


def wants_usage(body: Mapping[str, Any]) -> bool:
    """Whether the caller asked for a usage chunk (``stream_options.include_usage``)."""
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


class ChunkBuilder:
    """OpenAI ``chat.completion.chunk`` dicts for one stream (``id`` may change until the first
    chunk is built, for upstreams that name the answer in their first event)."""

    __slots__ = ("_started", "created", "id", "model")

    def __init__(self, id: str, model: str, created: int) -> None:
        self.id = id
        self.model = model
        self.created = created
        #: Choices whose first delta (with the role) was built.
        self._started: set[int] = set()

    def started(self, index: int = 0) -> bool:
        """Whether choice `index` has had its first delta."""
        return index in self._started

    def chunk(
        self, delta: dict[str, Any], finish: str | None = None, index: int = 0
    ) -> StreamChunk:
        """A chunk with one choice's delta; ``finish`` also sets `StreamChunk.finish_reason`."""
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", **delta}
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return StreamChunk(self._envelope([choice]), finish_reason=finish)

    def usage(self, usage: Usage, body: dict[str, Any] | None = None) -> StreamChunk:
        """The choices-less usage chunk (`body` is OpenAI's usage object, when not the plain
        counts of `usage`)."""
        envelope = self._envelope([])
        envelope["usage"] = usage.to_openai() if body is None else body
        return StreamChunk(envelope, usage=usage)

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


class UsagePolicy:
    """How a stream's usage reaches the caller; see the module docstring."""

    __slots__ = ("_held", "wants")

    def __init__(self, wants: bool) -> None:
        self.wants = wants
        #: Finish chunks waiting for the usage.
        self._held: list[StreamChunk] = []

    def finish(self, chunk: StreamChunk, out: list[StreamChunk]) -> None:
        """A finish chunk before the usage: out now if a usage chunk will follow, else held."""
        if self.wants:
            out.append(chunk)
        else:
            self._held.append(chunk)

    def hold(self, chunk: StreamChunk) -> None:
        """A finish chunk held until `settle` whatever the caller asked (other choices are
        still open)."""
        self._held.append(chunk)

    def settle(
        self,
        usage: Usage | None,
        out: list[StreamChunk],
        usage_chunk: Callable[[Usage], StreamChunk],
    ) -> None:
        """The usage is known: the held chunks go out, the last carrying it unless the caller
        gets it as `usage_chunk` (sent only when there is a usage)."""
        if self._held and not self.wants:
            self._held[-1].usage = usage
        self.release(out)
        if self.wants and usage is not None:
            out.append(usage_chunk(usage))

    def release(self, out: list[StreamChunk]) -> None:
        """The held chunks go out as they are (no usage is coming)."""
        out.extend(self._held)
        self._held = []


class Translator:
    """The state every `turnout.providers.adapter.StreamTranslator` keeps: whether the answer
    is complete, and a failure met after good chunks, raised by `check` once they were returned."""

    __slots__ = ("_done", "_failure")

    def __init__(self) -> None:
        self._done = False
        #: An error event or malformed event, raised once the chunks before it were handed over.
        self._failure: ProviderError | None = None

    @property
    def done(self) -> bool:
        return self._done

    def check(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self._done = True
            raise failure


class SSETranslator(Translator):
    """A translator of server-sent events: subclasses translate one event's data in `_event`
    and may flush what they still hold, when the body ends, in `_end`."""

    __slots__ = ("_sse",)

    def __init__(self) -> None:
        super().__init__()
        self._sse = SSEDecoder()

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
        self._end(out)
        return out

    def _take(self, data: bytes, out: list[StreamChunk]) -> bool:
        """Translate one event; False (and the failure kept for `check`) when it was bad."""
        if self._failure is not None:
            return False
        if self._done:
            return True
        try:
            self._event(data, out)
        except ProviderError as failure:
            self._failure = failure
            return False
        return True

    def _event(self, data: bytes, out: list[StreamChunk]) -> None:
        raise NotImplementedError

    def _end(self, out: list[StreamChunk]) -> None:
        """The body ended after the last good event."""
