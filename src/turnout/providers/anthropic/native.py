"""Anthropic's Messages API passed through as it came, for callers that speak it themselves.

A request to the gateway's ``/v1/messages`` route is routed as chat (its translation is the
router's `Request.body`), and carries the caller's own Messages body along, as a
`NativeMessagesRequest`. When an Anthropic deployment serves it, the adapter sends that body
(with the deployment's model, its ``extra_body`` merged in) and the caller's
``anthropic-version`` and ``anthropic-beta`` headers, instead of translating the chat body
back: every field Anthropic knows survives, thinking and its signatures included.

The answer keeps both shapes. A whole answer's `ProviderResponse.raw` is the upstream's bytes,
relayed untouched, while its decoded body is the chat translation, from which the router reads
usage and what it reports. A stream's events are `NativeEvent` chunks: the chat translation of
the event (empty when it has none, as for ``ping`` or a thinking delta), from which the router
counts usage, finish reasons and the text a continuation on another deployment starts from, and
the upstream's event itself, as it came, which the gateway writes to the caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from turnout.config.router import Deployment
from turnout.providers.anthropic.stream import AnthropicStreamTranslator
from turnout.wire import Request, StreamChunk

#: The caller's headers an Anthropic upstream reads, forwarded as they came.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
#: The providers whose deployments take a Messages body natively.
PROVIDERS = frozenset({"anthropic", "vertex_anthropic"})

_TYPE = msgspec.json.Decoder(type=dict[str, Any]).decode
#: The events a stream opens with, before its first content block.
_PREAMBLE = frozenset({"message_start", "ping"})
#: What a native event with no chat counterpart reads as to the router: no choices.
_NOTHING: dict[str, Any] = {"object": "chat.completion.chunk", "choices": []}


def takes_messages(deployment: Deployment) -> bool:
    """Whether `deployment` is sent a Messages request as the caller wrote it (and its answer
    relayed as it came), rather than the chat translation: Anthropic's own API, Claude on
    Vertex AI, and a Claude model on Bedrock (a model id containing ``anthropic.claude``, unless
    a ``converse/`` route prefix asks for Converse; see `turnout.providers.bedrock.native`)."""
    if deployment.provider == "bedrock":
        model = deployment.model
        return "anthropic.claude" in model and not model.startswith("converse/")
    return deployment.provider in PROVIDERS


@dataclass(slots=True)
class NativeMessagesRequest(Request):
    """A chat request translated from a Messages request, carrying that request along."""

    #: The caller's Messages body, as it sent it.
    native: dict[str, Any] = field(default_factory=dict)
    #: The caller's `FORWARDED_HEADERS` (lower-case names).
    native_headers: dict[str, str] = field(default_factory=dict)


def carrying(request: Request, native: dict[str, Any], headers: Mapping[str, str]) -> Request:
    """`request` as a `NativeMessagesRequest` carrying the caller's `native` body and the
    headers of it an Anthropic upstream reads."""
    fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(Request) if f.init}
    forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
    return NativeMessagesRequest(**fields, native=native, native_headers=forwarded)


class NativeEvent(StreamChunk):
    """One upstream event of a native stream: its chat translation (`data`, what the router
    reads) and the event as it came (`frame`, what the gateway relays)."""

    __slots__ = ("block", "frame", "index", "kind")

    def __init__(
        self, translated: StreamChunk | None, frame: bytes, kind: str, index: Any, block: Any
    ) -> None:
        if translated is None:
            super().__init__(_NOTHING)
        else:
            super().__init__(
                translated.data,
                usage=translated.usage,
                finish_reason=translated.finish_reason,
            )
        self.frame = frame
        #: The event's type (``message_start``, ``content_block_delta``...).
        self.kind = kind
        #: For a content block's events, its index; for its start, the block's type.
        self.index: int | None = index if isinstance(index, int) else None
        self.block: str | None = block.get("type") if isinstance(block, dict) else None


class NativeStreamTranslator(AnthropicStreamTranslator):
    """Anthropic's stream events as `NativeEvent`s: each translated as the chat stream
    translates it (without a separate usage chunk), each relayable as it came.

    The events before the first content block (``message_start``, ``ping``) are held until the
    next event, and handed over with it: a stream that fails before any content (a refusal
    with no block, an ``error`` event such as ``overloaded_error``) then fails before the
    gateway has answered, so the attempt can be retried or fall back, or its error can take the
    status it has whole, exactly as for the chat translation (which sends nothing for
    ``message_start`` either). Content is never held."""

    __slots__ = ("_held",)

    def __init__(
        self,
        name: str,
        model: str,
        created: int,
        wants_usage: bool,
        now: Callable[[], float],
        json_tool: str | None = None,
    ) -> None:
        super().__init__(name, model, created, wants_usage, now, json_tool)
        #: The events held until the first that is neither ``message_start`` nor ``ping``
        #: (None once they were handed over).
        self._held: list[StreamChunk] | None = []

    def _event(self, data: bytes, out: list[StreamChunk]) -> None:
        translated: list[StreamChunk] = []
        super()._event(data, translated)
        event = _TYPE(data)  # the translation above has checked it is an object with a type
        kind: str = event["type"]
        frame = b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
        first = translated[0] if translated else None
        if first is not None:
            for more in translated[1:]:
                first.usage = more.usage or first.usage
                first.finish_reason = more.finish_reason or first.finish_reason
        native = NativeEvent(first, frame, kind, event.get("index"), event.get("content_block"))
        held = self._held
        if held is not None:
            if kind in _PREAMBLE:
                held.append(native)
                return
            out.extend(held)
            self._held = None
        out.append(native)

    def _end(self, out: list[StreamChunk]) -> None:
        if self._held:
            out.extend(self._held)
        self._held = None
        super()._end(out)
