"""The span exporter process: spans in through a pipe, out to the collector over OTLP.

Run by the gateway when tracing is on (`turnout.observe.span_pipe`), as
``python -m turnout.observe.span_exporter EXPORTER ACK_FD``: it reads frames of
`turnout.observe.span_records` on its standard input, rebuilds the SDK's `ReadableSpan` of each
record, and hands each batch to the SDK's exporter (`OTLPSpanExporter`, which reads the
``OTEL_EXPORTER_OTLP_*`` environment itself, or `ConsoleSpanExporter`). Encoding protobuf and
talking HTTP to the collector happen here, on another core, not on the gateway's event loop.

It lives exactly as long as its pipe: the end of its standard input (the gateway closed it on a
clean stop, or the gateway died) exports what is left and exits. SIGINT and SIGTERM are ignored,
so that a signal sent to the whole process group (Ctrl-C, a service manager) still lets the
gateway send its last spans and have them exported.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import BinaryIO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from turnout.observe.span_records import (
    ACK_BYTES,
    LENGTH_BYTES,
    Attributes,
    Batch,
    Flush,
    Frame,
    Hello,
    SpanRecord,
    frame_decoder,
)

logger = logging.getLogger("turnout.observe.span_exporter")

_KINDS = {kind.value: kind for kind in SpanKind}
_STATUS = {code.value: code for code in StatusCode}


class Rebuilder:
    """`SpanRecord` -> the SDK's `ReadableSpan`, with the resource and scope of `Hello`."""

    def __init__(self, hello: Hello) -> None:
        self.resource = Resource(hello.resource, hello.resource_schema_url or None)
        self.scope = InstrumentationScope(
            hello.scope_name, hello.scope_version, hello.scope_schema_url
        )

    def span(self, record: SpanRecord) -> ReadableSpan:
        trace_id = int.from_bytes(record.trace_id, "big")
        flags = TraceFlags(record.trace_flags)
        state = TraceState.from_header([record.trace_state]) if record.trace_state else None
        context = SpanContext(trace_id, record.span_id, False, flags, state)
        parent = None
        if record.parent_span_id:
            parent = SpanContext(
                trace_id, record.parent_span_id, record.parent_remote, flags, state
            )
        return ReadableSpan(
            name=record.name,
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=_attributes(record.attributes),
            events=[
                Event(name, _attributes(attributes), time)
                for name, time, attributes in record.events
            ],
            links=[
                Link(
                    SpanContext(int.from_bytes(tid, "big"), sid, False, TraceFlags(tflags)),
                    _attributes(attributes),
                )
                for tid, sid, tflags, attributes in record.links
            ],
            kind=_KINDS.get(record.kind, SpanKind.INTERNAL),
            status=Status(
                _STATUS.get(record.status_code, StatusCode.UNSET), record.status_description
            ),
            start_time=record.start_time,
            end_time=record.end_time,
            instrumentation_scope=self.scope,
        )


def _attributes(found: Attributes) -> Attributes:
    """Sequences as the SDK holds them (tuples; msgpack gives lists back)."""
    for key, value in found.items():
        if type(value) is list:
            found[key] = tuple(value)
    return found


def frames(stream: BinaryIO) -> Iterator[Frame]:
    """The frames on `stream`, until it ends (a frame cut short by the end is dropped)."""
    decoder = frame_decoder()
    while True:
        head = stream.read(LENGTH_BYTES)
        if len(head) < LENGTH_BYTES:
            return
        size = int.from_bytes(head, "big")
        body = stream.read(size)
        if len(body) < size:
            return
        yield decoder.decode(body)


def serve(stream: BinaryIO, exporter: SpanExporter, ack_fd: int | None) -> int:
    """Export every batch read from `stream`; the number of spans exported."""
    rebuilder: Rebuilder | None = None
    exported = 0
    try:
        for frame in frames(stream):
            if isinstance(frame, Hello):
                rebuilder = Rebuilder(frame)
            elif isinstance(frame, Batch):
                if rebuilder is None:
                    logger.error("spans arrived before the gateway described them: dropped")
                    continue
                exporter.export([rebuilder.span(record) for record in frame.spans])
                exported += len(frame.spans)
            elif isinstance(frame, Flush) and ack_fd is not None:
                # Each batch was exported as it came: everything before the flush is out.
                os.write(ack_fd, frame.token.to_bytes(ACK_BYTES, "big"))
    finally:
        exporter.shutdown()
    return exported


def exporter_named(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    name = argv[0] if argv else "otlp"
    ack_fd = int(argv[1]) if len(argv) > 1 else None
    serve(sys.stdin.buffer, exporter_named(name), ack_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
