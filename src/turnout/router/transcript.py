"""What the caller has received of a stream, kept compact while the stream is relayed.

A continuation needs only the text sent so far, how many content chunks carried it, the
stream's id, model and creation time, and whether a tool call or several choices were under way
(those cannot be continued). `TranscriptBuilder` keeps exactly that as each chunk goes out, and
never the chunks themselves: their bytes and parsed objects weigh tens of times the text they
carry, and a long answer would otherwise pin all of them until it ends.

Chunks relayed as the upstream's own bytes are read through a narrow typed view (content
deltas, finish reasons, and the envelope's id, model and created until known), about a
microsecond per chunk; chunks already built as objects (translated providers, continuations)
are read as they are. Text is gathered in blocks: pieces are joined every `_BLOCK` of them, so
that millions of small deltas do not stay millions of small strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from turnout.wire import StreamChunk

#: Pieces of text joined into one block (bounds the per-piece overhead to a few bytes).
_BLOCK = 256


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the caller has received of a stream so far."""

    text: str
    #: Chunks relayed that carried content (an estimate of the completion tokens sent).
    content_chunks: int
    stream_id: str | None
    model: str | None
    created: int | None
    #: A tool call was being streamed when it broke (it cannot be resumed).
    in_tool_call: bool
    #: More than one choice was being streamed (continuation covers one).
    several_choices: bool

    @classmethod
    def of(cls, chunks: Iterable[StreamChunk]) -> Transcript:
        builder = TranscriptBuilder()
        for chunk in chunks:
            builder.feed(chunk)
        return builder.transcript()


class _Delta(msgspec.Struct, gc=False):
    content: str | None = None
    #: Left undecoded: only whether a tool call is under way matters.
    tool_calls: list[msgspec.Raw] | None = None


class _Choice(msgspec.Struct, gc=False):
    index: Any = 0
    delta: _Delta | None = None
    #: Legacy completions stream their text here.
    text: str | None = None
    finish_reason: Any = None


class _Choices(msgspec.Struct, gc=False):
    choices: list[_Choice] | None = None


class _Chunk(_Choices, gc=False):
    id: Any = None
    model: Any = None
    created: Any = None


#: The first chunks are read with their envelope; once it is known, only their choices.
_VIEW = msgspec.json.Decoder(_Chunk)
_CHOICES = msgspec.json.Decoder(_Choices)


class TranscriptBuilder:
    """Feed it every chunk relayed to the caller; `transcript` says what they received."""

    __slots__ = (
        "_blocks",
        "_known",
        "_pieces",
        "content_chunks",
        "created",
        "in_tool_call",
        "model",
        "several_choices",
        "stream_id",
    )

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._pieces: list[str] = []
        #: The stream's id, model and created time are all known: chunks need not say them.
        self._known = False
        self.content_chunks = 0
        self.stream_id: Any = None
        self.model: Any = None
        self.created: Any = None
        self.in_tool_call = False
        self.several_choices = False

    def feed(self, chunk: StreamChunk) -> None:
        raw = chunk.raw
        if raw is None:
            self._feed_object(chunk.data)
            return
        try:
            if self._known:
                choices = _CHOICES.decode(raw).choices
            else:
                view = _VIEW.decode(raw)
                self._envelope(view.id, view.model, view.created)
                choices = view.choices
        except msgspec.ValidationError:
            self._feed_object(chunk.data)  # an unusual shape: read it whole
            return
        except msgspec.DecodeError:
            return  # not JSON: no text the caller could have read
        # The common case inline: this runs for every chunk of every failover-enabled stream.
        for choice in choices or ():
            if choice.index != 0:
                self.several_choices = True
            delta = choice.delta
            if delta is not None:
                if delta.content:
                    self._add(delta.content)
                if delta.tool_calls:
                    self.in_tool_call = True
            if choice.finish_reason:
                self.in_tool_call = False
            if choice.text:
                self._add(choice.text)

    def transcript(self) -> Transcript:
        """A snapshot of what was sent so far (feeding may go on after it)."""
        text = "".join([*self._blocks, *self._pieces])
        # Keep the joined text as the only block: the snapshot and the builder share it.
        self._blocks = [text] if text else []
        self._pieces = []
        return Transcript(
            text,
            self.content_chunks,
            self.stream_id,
            self.model,
            self.created,
            self.in_tool_call,
            self.several_choices,
        )

    def _feed_object(self, data: dict[str, Any]) -> None:
        self._envelope(data.get("id"), data.get("model"), data.get("created"))
        choices = data.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            content, text = delta.get("content"), choice.get("text")
            self._choice(
                choice.get("index", 0),
                content if isinstance(content, str) else None,
                bool(delta.get("tool_calls")),
                text if isinstance(text, str) else None,
                choice.get("finish_reason"),
            )

    def _envelope(self, stream_id: Any, model: Any, created: Any) -> None:
        self.stream_id = self.stream_id or stream_id
        self.model = self.model or model
        self.created = self.created or created
        self._known = bool(self.stream_id and self.model and self.created)

    def _choice(
        self,
        index: Any,
        content: str | None,
        tool_call: bool,
        text: str | None,
        finish_reason: Any,
    ) -> None:
        if index != 0:
            self.several_choices = True
        if content:
            self._add(content)
        if tool_call:
            self.in_tool_call = True
        if finish_reason:
            self.in_tool_call = False
        if text:
            self._add(text)

    def _add(self, piece: str) -> None:
        self.content_chunks += 1
        pieces = self._pieces
        pieces.append(piece)
        if len(pieces) >= _BLOCK:
            self._blocks.append("".join(pieces))
            pieces.clear()
