"""The OpenTelemetry SDK, set up from the standard environment: traces, GenAI metrics, and the
pieces the gateway plugs in (the span observer, the metrics observer, the wrapping transport).

Loaded only when tracing is asked for (`turnout.observe.tracing.start_tracing`): importing this
module imports the SDK. The SDK reads its own environment: ``OTEL_TRACES_SAMPLER`` (and its
argument) through `TracerProvider`, whose sampler decides every span, the OTLP endpoint,
headers, timeout and compression through the OTLP/HTTP exporters, ``OTEL_RESOURCE_ATTRIBUTES``
and ``OTEL_SERVICE_NAME`` through `Resource.create` (the service is ``turnout`` unless named).

Spans are turnout's lean spans (`turnout.observe.lean_spans`), which leave as plain records
through a pipe to an exporter process of their own (`turnout.observe.span_pipe`): recording,
encoding and sending them take as little as can be of the event loop's core. `Tracing.shutdown`
flushes them, so a gateway that stops loses none. A `processor` given to `build_tracing` (tests:
the SDK's in-memory exporter) gets the same records rebuilt in process instead. The tracer and
meter are the gateway's own, not the process-global ones: two gateways (or tests) in one process
never mix their spans.
"""

from __future__ import annotations

import logging
import os

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from turnout.observe.bus import Bus, Observer
from turnout.observe.genai_otel_metrics import GenAiMeter
from turnout.observe.lean_spans import LeanTracer, SpanSink
from turnout.observe.processor_sink import ProcessorSink
from turnout.observe.span_pipe import BatchSettings, SpanPipe
from turnout.observe.span_records import Hello
from turnout.observe.trace_spans import SpanObserver
from turnout.observe.trace_transport import TracingTransport
from turnout.upstream import Transport

logger = logging.getLogger("turnout.observe")

_SCOPE = "turnout"


class Tracing:
    """A gateway's tracing: its tracer and where spans go, the meter provider, the observers
    and the transport wrapper."""

    def __init__(
        self,
        tracer: LeanTracer,
        meter_provider: MeterProvider | None,
        *,
        capture_content: bool = False,
    ) -> None:
        self.tracer = tracer
        self.meter_provider = meter_provider
        #: Whether message content goes on attempt spans (explicitly configured only).
        self.capture_content = capture_content
        self.spans = SpanObserver(self.tracer)
        self.meters: GenAiMeter | None = None
        if meter_provider is not None:
            self.meters = GenAiMeter(meter_provider.get_meter(_SCOPE))
        self._closed = False

    @property
    def observers(self) -> list[Observer]:
        found: list[Observer] = [self.spans]
        if self.meters is not None:
            found.append(self.meters)
        return found

    def attach(self, bus: Bus, strategy: str = "") -> None:
        """Subscribe the observers to `bus`, and ask it for what spans need of an answer (and
        for content, only when capture was configured)."""
        self.spans.strategy = strategy
        for observer in self.observers:
            bus.subscribe(observer)
        bus.details = True
        bus.content = self.capture_content

    def wrap(self, transport: Transport) -> Transport:
        """`transport` with the attempt span's ``traceparent`` added to every call."""
        return TracingTransport(transport)

    def shutdown(self) -> None:
        """Export what is buffered and stop (blocking: run it off the event loop). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.tracer.sink.shutdown()
        finally:
            if self.meter_provider is not None:
                self.meter_provider.shutdown()


def resource() -> Resource:
    """The environment's resource, named ``turnout`` unless it names the service."""
    found = Resource.create()
    name = found.attributes.get("service.name")
    if not isinstance(name, str) or name.startswith("unknown_service"):
        found = found.merge(Resource({"service.name": "turnout"}))
    return found


def build_tracing(
    *,
    capture_content: bool = False,
    export_metrics: bool = False,
    processor: SpanProcessor | None = None,
    metric_reader: MetricReader | None = None,
) -> Tracing:
    """Tracing as the environment configures it, the GenAI metrics exported over OTLP too when
    `export_metrics` (`turnout.observe.tracing.metrics_export_requested`). `processor` and
    `metric_reader` replace the exporters the environment names (tests use in-memory ones)."""
    shared = resource()
    hello = Hello(
        resource=dict(shared.attributes),
        resource_schema_url=shared.schema_url,
        scope_name=_SCOPE,
        scope_version=None,
        scope_schema_url=None,
    )
    sink: SpanSink
    if processor is not None:
        sink = ProcessorSink(processor, hello)
    else:
        sink = SpanPipe(hello, _exporter_name(), BatchSettings.from_environment())
    # The sampler the SDK configures from OTEL_TRACES_SAMPLER (and its argument).
    sampler = TracerProvider(resource=shared, shutdown_on_exit=False).sampler
    reader = metric_reader
    if reader is None and export_metrics:
        reader = _metric_reader()
    meter_provider = None
    if reader is not None:
        meter_provider = MeterProvider(metric_readers=[reader], resource=shared)
    return Tracing(LeanTracer(sink, sampler), meter_provider, capture_content=capture_content)


def _exporter_name() -> str:
    """The span exporter the environment names: ``otlp`` (the default) or ``console``."""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter == "console":
        return exporter
    if exporter != "otlp":
        logger.warning("OTEL_TRACES_EXPORTER=%s is not supported: exporting over OTLP", exporter)
    _check_protocol("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    return "otlp"


def _metric_reader() -> MetricReader:
    """The OTLP metrics reader, asked for only with ``OTEL_METRICS_EXPORTER=otlp``: the GenAI
    metrics are always on ``/metrics`` for Prometheus, and a second, in-process aggregation per
    attempt is a price to pay only when an OTLP pipeline wants them."""
    _check_protocol("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return PeriodicExportingMetricReader(OTLPMetricExporter())


def _check_protocol(specific: str) -> None:
    protocol = (
        os.environ.get(specific) or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    )
    if protocol.strip().lower() != "http/protobuf":
        logger.warning(
            "%s asks for %s; turnout exports OTLP over HTTP/protobuf only, and does so",
            specific if os.environ.get(specific) else "OTEL_EXPORTER_OTLP_PROTOCOL",
            protocol,
        )
