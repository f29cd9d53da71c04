"""The SDK's span processor that sends finished spans to the exporter process.

`PipeSpanProcessor` stands where a `BatchSpanProcessor` would: the tracer provider calls its
`on_end` with each finished span, which it copies into a `SpanRecord` (plain values, nothing of
the SDK's objects) for `SpanPipe` to batch and send. Unsampled spans are dropped here, as the
batch processor drops them.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from turnout.observe.span_pipe import SpanPipe
from turnout.observe.span_records import SpanRecord


def record_of(span: ReadableSpan) -> SpanRecord | None:
    """`span` as a record, or None when it carries no context (a span never started)."""
    context = span.context
    if context is None:
        return None
    parent = span.parent
    state = context.trace_state
    status = span.status
    return SpanRecord(
        context.trace_id.to_bytes(16, "big"),
        context.span_id,
        int(context.trace_flags),
        state.to_header() if state else "",
        0 if parent is None else parent.span_id,
        False if parent is None else parent.is_remote,
        span.name,
        span.kind.value,
        span.start_time or 0,
        span.end_time or 0,
        dict(span.attributes or {}),
        [(event.name, event.timestamp, dict(event.attributes or {})) for event in span.events],
        status.status_code.value,
        status.description,
        [
            (
                link.context.trace_id.to_bytes(16, "big"),
                link.context.span_id,
                int(link.context.trace_flags),
                dict(link.attributes or {}),
            )
            for link in span.links
        ],
    )


class PipeSpanProcessor(SpanProcessor):
    """Sends each sampled finished span down `pipe`."""

    def __init__(self, pipe: SpanPipe) -> None:
        self.pipe = pipe

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        record = record_of(span)
        if record is not None:
            self.pipe.submit(record)

    def shutdown(self) -> None:
        self.pipe.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.pipe.force_flush(timeout_millis / 1000)
