"""The OpenTelemetry SDK, set up from the standard environment: traces, GenAI metrics, and the
pieces the gateway plugs in (the span observer, the metrics observer, the wrapping transport).

Loaded only when tracing is asked for (`turnout.observe.tracing.start_tracing`): importing this
module imports the SDK. The SDK reads its own environment: ``OTEL_TRACES_SAMPLER`` (and its
argument) through `TracerProvider`, the OTLP endpoint, headers, timeout and compression through
the OTLP/HTTP exporters, ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` through
`Resource.create` (the service is ``turnout`` unless named). Spans leave through a
`BatchSpanProcessor`, off the event loop; `Tracing.shutdown` flushes them, so a gateway that
stops loses none. The providers are the gateway's own, not the process-global ones: two gateways
(or tests) in one process never mix their spans.
"""

from __future__ import annotations

import logging
import os

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import Tracer

from turnout.observe.bus import Bus, Observer
from turnout.observe.genai_otel_metrics import GenAiMeter
from turnout.observe.trace_spans import SpanObserver
from turnout.observe.trace_transport import TracingTransport
from turnout.upstream import Transport

logger = logging.getLogger("turnout.observe")

_SCOPE = "turnout"


class Tracing:
    """A gateway's tracing: its providers, tracer, observers and transport wrapper."""

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider | None,
        *,
        capture_content: bool = False,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.tracer: Tracer = tracer_provider.get_tracer(_SCOPE)
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
            self.tracer_provider.shutdown()
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
    processor: SpanProcessor | None = None,
    metric_reader: MetricReader | None = None,
) -> Tracing:
    """Tracing as the environment configures it. `processor` and `metric_reader` replace the
    exporters the environment names (tests use in-memory ones)."""
    shared = resource()
    tracer_provider = TracerProvider(resource=shared)
    tracer_provider.add_span_processor(processor or BatchSpanProcessor(_span_exporter()))
    reader = metric_reader if metric_reader is not None else _metric_reader()
    meter_provider = None
    if reader is not None:
        meter_provider = MeterProvider(metric_readers=[reader], resource=shared)
    return Tracing(tracer_provider, meter_provider, capture_content=capture_content)


def _span_exporter() -> SpanExporter:
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter == "console":
        return ConsoleSpanExporter()
    if exporter != "otlp":
        logger.warning("OTEL_TRACES_EXPORTER=%s is not supported: exporting over OTLP", exporter)
    _check_protocol("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _metric_reader() -> MetricReader | None:
    """The OTLP metrics reader, when the environment names where metrics go (the general
    endpoint or the metrics one) and does not turn them off."""
    env = os.environ
    if env.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        return None
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not (endpoint or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")):
        return None
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
