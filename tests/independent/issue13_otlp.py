"""A small OTLP/HTTP receiver on 127.0.0.1: what an OpenTelemetry collector is to the gateway.

It accepts ``POST /v1/traces`` (protobuf, gzip or not), decodes each export with the protocol's
own `ExportTraceServiceRequest` and keeps the spans, flattened; every other export (metrics,
logs) is accepted and counted, so that a test can also say that nothing was sent at all.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

#: OTLP's span kinds by number.
KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED",
    Span.SPAN_KIND_INTERNAL: "INTERNAL",
    Span.SPAN_KIND_SERVER: "SERVER",
    Span.SPAN_KIND_CLIENT: "CLIENT",
    Span.SPAN_KIND_PRODUCER: "PRODUCER",
    Span.SPAN_KIND_CONSUMER: "CONSUMER",
}


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span: ids in lowercase hex (`parent_id` empty for a root)."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_error: bool

    def describe(self) -> str:
        return (
            f"{self.kind} {self.name!r} trace={self.trace_id} span={self.span_id} "
            f"parent={self.parent_id or '-'} {self.attributes}"
        )


def value_of(value: AnyValue) -> Any:
    """An OTLP attribute value as plain Python."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [value_of(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, which)


def attributes_of(pairs: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        found[pair.key] = value_of(pair.value)
    return found


class OtlpReceiver:
    """``async with OtlpReceiver() as receiver``: listening at `receiver.endpoint`."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self.spans: list[ReceivedSpan] = []
        #: POSTs received, by path.
        self.posts: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self.endpoint = ""

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._receive)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        self.posts[request.path] += 1
        body = await request.read()
        encoding = request.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        if request.path == "/v1/traces":
            self._keep(ExportTraceServiceRequest.FromString(body))
            answer = ExportTraceServiceResponse().SerializeToString()
            return web.Response(body=answer, content_type="application/x-protobuf")
        return web.Response(body=b"", content_type="application/x-protobuf")

    def _keep(self, export: ExportTraceServiceRequest) -> None:
        for resource_spans in export.resource_spans:
            resource = attributes_of(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=KINDS.get(span.kind, str(span.kind)),
                            attributes=attributes_of(span.attributes),
                            resource=resource,
                            status_error=span.status.code == Status.STATUS_CODE_ERROR,
                        )
                    )

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]


#: Where an OTLP/HTTP exporter sends when no endpoint is configured.
DEFAULT_PORT = 4318


@asynccontextmanager
async def default_endpoint_receiver() -> AsyncIterator[OtlpReceiver]:
    """A receiver on the exporters' default port (localhost:4318) when it is free, so that an
    exporter started without being asked for is caught; else on a port of its own, where it
    can only show that nothing was sent to it."""
    try:
        receiver = await OtlpReceiver(port=DEFAULT_PORT).__aenter__()
    except OSError:
        receiver = await OtlpReceiver().__aenter__()
    try:
        yield receiver
    finally:
        await receiver.__aexit__(None, None, None)
