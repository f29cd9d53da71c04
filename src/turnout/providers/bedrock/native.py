"""Anthropic's Messages API on Bedrock's Claude models, through InvokeModel, as the caller wrote it.

Converse has no room for what only Claude knows (thinking blocks and their signatures,
``cache_control`` markers, server tools, betas), so a Messages request (a
`NativeMessagesRequest`) for a deployment that `takes_messages` goes to ``/invoke`` or
``/invoke-with-response-stream`` with Anthropic's own body, which Bedrock's Claude models take:
the caller's body without ``model`` (the path names it) and ``stream`` (the path says it), with
``anthropic_version: "bedrock-2023-05-31"`` (the only version Bedrock accepts) and the betas as
an ``anthropic_beta`` list, Bedrock's place for what Anthropic reads from the
``anthropic-beta`` header.

A whole answer is Anthropic's Message JSON; a stream is AWS event-stream frames whose ``chunk``
events carry ``{"bytes": "<base64>"}``, each the JSON of one of Anthropic's stream events (its
``message_stop`` with Bedrock's ``amazon-bedrock-invocationMetrics`` added). Both are relayed as
they came, through the same translation as Anthropic's own native answers
(`turnout.providers.anthropic.native`); an ``exception`` frame is classified as in a
ConverseStream (`turnout.providers.bedrock.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from botocore.eventstream import EventStreamBuffer  # type: ignore[import-untyped]

from turnout.config.router import Deployment
from turnout.errors import StreamInterruptedError
from turnout.providers.anthropic.native import (
    NativeMessagesRequest,
    NativeStreamTranslator,
    takes_messages,
)
from turnout.providers.bedrock.errors import frame_error
from turnout.providers.bedrock.frames import read_frames
from turnout.providers.bedrock.messages import PROVIDER
from turnout.wire import Request, StreamChunk

#: The ``anthropic_version`` Bedrock's Claude models require in the body.
ANTHROPIC_VERSION = "bedrock-2023-05-31"
#: The caller's fields the path says instead.
_PATH_FIELDS = frozenset({"model", "stream"})


class _Chunk(msgspec.Struct):
    """A ``chunk`` event's payload; msgspec decodes the base64 of ``bytes`` itself."""

    bytes_: bytes = msgspec.field(name="bytes")


_CHUNK = msgspec.json.Decoder(_Chunk)


def native_request(deployment: Deployment, request: Request) -> NativeMessagesRequest | None:
    """`request` when it goes to `deployment` as the caller wrote it, else None (Converse)."""
    if isinstance(request, NativeMessagesRequest) and takes_messages(deployment):
        return request
    return None


def invoke_body(request: NativeMessagesRequest, extra_body: Mapping[str, Any]) -> dict[str, Any]:
    """The InvokeModel body of a Messages request: the caller's body without the fields the path
    says, the deployment's ``extra_body`` over it (as on Anthropic's own API), Bedrock's
    ``anthropic_version``, and the betas of ``extra_body`` then of the caller's
    ``anthropic-beta`` header as one ``anthropic_beta`` list."""
    body = {name: value for name, value in request.native.items() if name not in _PATH_FIELDS}
    body.update(extra_body)
    body["anthropic_version"] = ANTHROPIC_VERSION
    betas = _betas(extra_body.get("anthropic_beta"))
    betas += [b for b in _betas(request.native_headers.get("anthropic-beta")) if b not in betas]
    if betas:
        body["anthropic_beta"] = betas
    else:
        body.pop("anthropic_beta", None)
    return body


def _betas(given: Any) -> list[str]:
    """Beta names from a header (comma-separated) or a list, in order, each once."""
    names = given.split(",") if isinstance(given, str) else given
    if not isinstance(names, list):
        return []
    found: list[str] = []
    for name in names:
        text = name.strip() if isinstance(name, str) else ""
        if text and text not in found:
            found.append(text)
    return found


class InvokeStreamTranslator(NativeStreamTranslator):
    """An InvokeModelWithResponseStream body of a Claude model, frame by frame, as Anthropic's
    native stream events (`NativeEvent`), each translated as soon as its frame is whole."""

    __slots__ = ("_frames",)

    def __init__(self, model: str, created: int, now: Callable[[], float]) -> None:
        super().__init__(PROVIDER, model, created, False, now)
        self._frames = EventStreamBuffer()

    def feed(self, piece: bytes) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        if self._failure is not None or self._done:
            return out

        def take(headers: dict[str, Any], payload: bytes) -> bool:
            data = self._payload(headers, payload)
            return data is None or self._take(data, out)

        failure = read_frames(self._frames, piece, take, lambda: self.done)
        if failure is not None:
            self._failure = failure
        return out

    def finish(self) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        self._end(out)
        return out

    def _payload(self, headers: dict[str, Any], payload: bytes) -> bytes | None:
        """The Anthropic event a frame carries (None for a frame that carries none)."""
        failure = frame_error(headers, payload)
        if failure is not None:
            raise failure
        if headers.get(":event-type") != "chunk":
            return None
        try:
            return _CHUNK.decode(payload).bytes_
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise StreamInterruptedError(f"{PROVIDER} sent a malformed stream chunk") from None
