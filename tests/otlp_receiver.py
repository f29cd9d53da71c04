"""A real OTLP/HTTP receiver on loopback: what a collector would receive from turnout.

It accepts ``POST /v1/traces`` and ``POST /v1/metrics`` as the OTLP/HTTP protobuf encoding
(gzip or not), decodes each with the `opentelemetry-proto` messages, keeps the spans and the
metric names, and answers as a collector does. In tests::

    async with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        ...
        spans = receiver.spans

As a process for benchmarks: ``python tests/otlp_receiver.py --port 4318 --defer-decoding``
(prints the spans it received when stopped). With ``defer_decoding`` the receiver only keeps the
raw bodies while it runs and decodes them when it stops: on a loopback benchmark the receiver
shares the machine with the gateway it measures, and decoding protobuf in Python as the spans
arrive would take CPU from the gateway that a real collector (another process, usually on
another host, written in Go) never takes. Tests read spans while the gateway runs, so they
decode at once (the default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import signal
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One exported span, its ids as hex (as in a ``traceparent``)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    events: tuple[str, ...]
    status_code: int
    service_name: str


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


class OtlpReceiver:
    """An aiohttp OTLP/HTTP endpoint on 127.0.0.1; `url` is the exporter's endpoint."""

    def __init__(self, port: int = 0, *, keep: bool = True, defer_decoding: bool = False) -> None:
        self._port = port
        #: Whether to keep the spans (a benchmark only counts them).
        self._keep = keep
        #: Whether to keep raw trace bodies and decode them only at `close`.
        self._defer = defer_decoding
        #: Trace bodies kept for `close`, each with whether it is gzip-compressed.
        self._raw: list[tuple[bool, bytes]] = []
        self.spans: list[ReceivedSpan] = []
        self.span_count = 0
        self.metric_names: set[str] = set()
        self.requests = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        raw, self._raw = self._raw, []
        for compressed, body in raw:
            self._decode_traces(gzip.decompress(body) if compressed else body)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _body(self, request: web.Request) -> bytes:
        body = await request.read()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return body

    async def _traces(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self._defer:
            compressed = request.headers.get("content-encoding") == "gzip"
            self._raw.append((compressed, await request.read()))
        else:
            self._decode_traces(await self._body(request))
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type=_PROTOBUF)

    def _decode_traces(self, body: bytes) -> None:
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        for resource_spans in message.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                self.span_count += len(scope_spans.spans)
                if not self._keep:
                    continue
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            events=tuple(e.name for e in span.events),
                            status_code=span.status.code,
                            service_name=service,
                        )
                    )

    async def _metrics(self, request: web.Request) -> web.Response:
        self.requests += 1
        message = ExportMetricsServiceRequest()
        message.ParseFromString(await self._body(request))
        for resource_metrics in message.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                self.metric_names.update(m.name for m in scope_metrics.metrics)
        answer = ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type=_PROTOBUF)


async def _serve(port: int, defer_decoding: bool) -> None:
    receiver = OtlpReceiver(port, keep=False, defer_decoding=defer_decoding)
    await receiver.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"receiving on {receiver.url}", flush=True)
    await stop.wait()
    await receiver.close()
    print(f"spans received: {receiver.span_count}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument(
        "--defer-decoding",
        action="store_true",
        help="keep the raw bodies while running and decode them at stop (benchmarks)",
    )
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(options.port, options.defer_decoding))


if __name__ == "__main__":
    main()
