"""Finished spans as compact plain records, and the frames that carry them to the exporter.

The gateway does not encode or export spans itself: each finished span becomes a `SpanRecord`
(ids, times, name, kind, status, attributes, events, links: plain values), batches of them
travel as msgpack frames through a pipe to the exporter process (`turnout.observe.span_exporter`),
and that process turns them back into the SDK's spans and exports them. A record is encoded as
an array, not a map, so a batch costs the gateway a few microseconds per span.

A frame on the pipe is a 4-byte big-endian length and a msgpack `Frame`: one `Hello` first
(what every span shares: the resource and the instrumentation scope), then `Batch` and `Flush`
in any order. The exporter answers each `Flush` with its token, 8 bytes big-endian, on a second
pipe, once every span sent before it was exported. Imports nothing of OpenTelemetry.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

#: Bytes of the length before each frame.
LENGTH_BYTES: Final = 4
#: Bytes of a flush acknowledgement (the flush's token).
ACK_BYTES: Final = 8

#: An attribute value as OpenTelemetry allows it: a primitive or a sequence of one kind.
Attributes = dict[str, Any]


class SpanRecord(msgspec.Struct, array_like=True, gc=False):
    """One finished span. Ids as the SDK holds them (ints); the trace id as 16 bytes, since
    msgpack integers stop at 64 bits. Times in nanoseconds since the epoch."""

    trace_id: bytes
    span_id: int
    trace_flags: int
    #: The W3C ``tracestate`` header ("" when empty).
    trace_state: str
    #: 0 for a root span.
    parent_span_id: int
    #: Whether the parent came from another process (a caller's ``traceparent``).
    parent_remote: bool
    name: str
    #: `opentelemetry.trace.SpanKind` value.
    kind: int
    start_time: int
    end_time: int
    attributes: Attributes
    #: (name, time, attributes) of each span event.
    events: list[tuple[str, int, Attributes]]
    #: `opentelemetry.trace.StatusCode` value.
    status_code: int
    status_description: str | None
    #: (trace id, span id, trace flags, attributes) of each link.
    links: list[tuple[bytes, int, int, Attributes]]


class Hello(msgspec.Struct, tag="hello", array_like=True):
    """What every span of the gateway shares, sent once before any batch."""

    resource: Attributes
    resource_schema_url: str
    scope_name: str
    scope_version: str | None
    scope_schema_url: str | None


class Batch(msgspec.Struct, tag="batch", array_like=True, gc=False):
    spans: list[SpanRecord]


class EncodedBatch(msgspec.Struct, tag="batch", array_like=True, gc=False):
    """A `Batch` as the gateway sends it: each span encoded when it ended (the same bytes on
    the pipe). Holding bytes rather than records keeps a queue of thousands of spans out of
    the garbage collector's way: no container of theirs lives on into older generations."""

    spans: list[msgspec.Raw]


class Flush(msgspec.Struct, tag="flush", array_like=True):
    """Export everything sent so far, then acknowledge `token`."""

    token: int


Frame = Hello | Batch | Flush


def frame_encoder() -> msgspec.msgpack.Encoder:
    return msgspec.msgpack.Encoder()


def frame_decoder() -> msgspec.msgpack.Decoder[Frame]:
    return msgspec.msgpack.Decoder(Frame)


def framed(encoder: msgspec.msgpack.Encoder, frame: Frame | EncodedBatch) -> bytes:
    """`frame` with its length before it, ready for the pipe."""
    body = encoder.encode(frame)
    return len(body).to_bytes(LENGTH_BYTES, "big") + body
