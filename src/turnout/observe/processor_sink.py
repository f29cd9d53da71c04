"""Ended spans handed to an SDK span processor in process, as the exporter process would.

For tests and embedders that bring their own `SpanProcessor` (the SDK's in-memory exporter
behind a `SimpleSpanProcessor`, say): each record goes through the very path the exporter
process takes (msgpack frame, decoded, rebuilt into the SDK's `ReadableSpan`), so what such a
processor sees is what a collector would get.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import SpanProcessor

from turnout.observe.span_exporter import Rebuilder
from turnout.observe.span_records import Batch, Hello, SpanRecord, frame_decoder, frame_encoder


class ProcessorSink:
    """A `SpanSink` feeding `processor` the SDK's spans, rebuilt from records."""

    def __init__(self, processor: SpanProcessor, hello: Hello) -> None:
        self.processor = processor
        self._rebuilder = Rebuilder(hello)
        self._encoder = frame_encoder()
        self._decoder = frame_decoder()

    def submit(self, record: SpanRecord) -> None:
        frame = self._decoder.decode(self._encoder.encode(Batch([record])))
        assert isinstance(frame, Batch)
        for decoded in frame.spans:
            self.processor.on_end(self._rebuilder.span(decoded))

    def force_flush(self, timeout: float | None = None) -> bool:
        millis = 30000 if timeout is None else int(timeout * 1000)
        return self.processor.force_flush(millis)

    def shutdown(self) -> None:
        self.processor.shutdown()
