"""The price of tracing on one request's own path, in microseconds: its two spans, four events
and the ``traceparent`` of its upstream call, in this one process.

Run: ``python benchmarks/bench_tracing_path.py`` (``--smoke`` only checks that it runs).

What one "request" does here is what a traced gateway does for a request answered by its first
attempt, with the gateway's own objects: the SERVER span started and made current as the
tracing middleware does (`LeanTracer`, always-on sampling), the span observer's handlers for
`RequestStarted`, `AttemptStarted`, `AttemptFinished` and `RequestFinished` called by a `Bus`,
the attempt's ``traceparent`` put on an upstream call by `TracingTransport`'s function, and both
spans ended into a sink that encodes each record as the span pipe does (msgpack, on the event
loop's thread). The export itself happens in another process and is not counted.

The figure isolates tracing's own work from the HTTP server, the router and the machine's noise
(`bench_observability.py` measures the whole gateway under load): compare two source trees by
running this script from each, in turns.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import sampling
from opentelemetry.trace import SpanKind

from turnout.observe.bus import Bus
from turnout.observe.events import AttemptFinished, AttemptStarted, RequestFinished, RequestStarted
from turnout.observe.lean_spans import LeanTracer
from turnout.observe.span_records import SpanRecord, frame_encoder
from turnout.observe.trace_context import ATTEMPT, SERVER_SPAN
from turnout.observe.trace_spans import SpanObserver
from turnout.observe.trace_transport import _traced
from turnout.upstream import UpstreamRequest
from turnout.wire import Usage


class EncodingSink:
    """Encodes each ended span as `SpanPipe.submit` does, and keeps the bytes."""

    def __init__(self) -> None:
        self._encode = frame_encoder().encode
        self.spans: list[msgspec.Raw] = []

    def submit(self, record: SpanRecord) -> None:
        self.spans.append(msgspec.Raw(self._encode(record)))

    def force_flush(self, timeout: float | None = None) -> bool:
        return True

    def shutdown(self) -> None:
        self.spans.clear()


def _request(
    tracer: LeanTracer, bus: Bus, call: UpstreamRequest, usage: Usage, number: int
) -> None:
    server = tracer.start_span(
        "POST /v1/chat/completions",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "POST",
            "http.route": "/v1/chat/completions",
            "url.path": "/v1/chat/completions",
            "url.scheme": "http",
            "network.protocol.version": "1.1",
        },
    )
    token = otel_context.attach(trace.set_span_in_context(server))
    server_token = SERVER_SPAN.set(server)
    request_id = f"req-{number}"
    bus.emit(RequestStarted(request_id, "chat", None, 0.0, False))
    bus.emit(
        AttemptStarted(
            request_id,
            "chat",
            "openai-1",
            1,
            0.0,
            False,
            deployment_name="chat/openai/gpt-4o-mini",
            provider="openai",
            upstream_model="gpt-4o-mini",
            server_address="127.0.0.1",
            server_port=18001,
        )
    )
    attempt = ATTEMPT.get()
    if attempt is not None:
        _traced(call, attempt)
    bus.emit(
        AttemptFinished(
            request_id,
            "chat",
            "openai-1",
            1,
            0.0,
            0.01,
            None,
            200,
            usage,
            0.0001,
            None,
            False,
            deployment_name="chat/openai/gpt-4o-mini",
            provider="openai",
            upstream_model="gpt-4o-mini",
            upstream_request_id="req_abc",
            response_id="chatcmpl-1",
            response_model="gpt-4o-mini",
            finish_reasons=("stop",),
        )
    )
    bus.emit(RequestFinished(request_id, "chat", None, 0.0))
    SERVER_SPAN.reset(server_token)
    otel_context.detach(token)
    server.set_attribute("turnout.request_id", request_id)
    server.set_attribute("http.response.status_code", 200)
    server.end()


def measure(requests: int, repeats: int) -> tuple[float, int]:
    """Microseconds per traced request (the median of `repeats` loops), and spans encoded."""
    sink = EncodingSink()
    tracer = LeanTracer(sink, sampling.ALWAYS_ON)
    bus = Bus([SpanObserver(tracer, "simple-shuffle")])
    call = UpstreamRequest(
        "http://127.0.0.1:18001/v1/chat/completions",
        b"{}",
        {"authorization": "Bearer not-a-key", "content-type": "application/json"},
    )
    usage = Usage(10, 20)
    for number in range(min(requests, 2000)):  # warm up
        _request(tracer, bus, call, usage, number)
    figures = []
    for _ in range(repeats):
        sink.spans.clear()
        started = time.perf_counter()
        for number in range(requests):
            _request(tracer, bus, call, usage, number)
        figures.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(figures), len(sink.spans)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: does it run")
    args = parser.parse_args()
    requests, repeats = (200, 1) if args.smoke else (20_000, 7)
    micros, spans = measure(requests, repeats)
    print(f"traced request path: {micros:.1f} µs per request ({spans} spans encoded per loop)")
    return 0 if spans == 2 * requests else 1


if __name__ == "__main__":
    sys.exit(main())
