"""Attempt spans from the router's events, checked with the SDK's in-memory exporter.

One request that retries, falls back, hedges and continues a broken stream must give one trace:
one CLIENT span per attempt, each a child of the request's span, each saying why it started and
how it ended; content only when capture is asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from harness import Harness, chat, dep
from turnout import Router, RoutingConfig
from turnout.config.router import FallbackConfig, HedgeConfig
from turnout.errors import ServerError
from turnout.observe.otel_setup import Tracing, build_tracing
from turnout.observe.trace_context import SERVER_SPAN
from turnout.testing import Behaviour

FAST = Behaviour(latency=0.1, ttft=0.05, output_tokens=6)
SLOW = Behaviour(latency=5.0, ttft=5.0, output_tokens=6)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def _traced(h: Harness, exporter: InMemorySpanExporter, router: Router, **kw: Any) -> Tracing:
    tracing = build_tracing(
        processor=SimpleSpanProcessor(exporter), metric_reader=InMemoryMetricReader(), **kw
    )
    tracing.attach(router.bus, router.config.routing.strategy)
    return tracing


def _every_way(h: Harness) -> Router:
    """ "chat": a then b (both fail: a retry); fallback "backup": c slow (a hedge on d fires),
    d wins and its stream breaks after content, and the stream continues on e."""
    h.scripted.fail("a", ServerError("a is down"))
    h.scripted.fail("b", ServerError("b is down"))
    h.sim.set_behaviour("e", FAST)
    h.sim.set_behaviour(
        "d",
        Behaviour(
            latency=0.1, ttft=0.05, output_tokens=6, stream_failure="cut", fail_after_chunks=3
        ),
    )
    return h.router(
        dep("a", base_url="https://a.example:8443/v1"),
        dep("b", priority=1),
        dep("c", group="backup"),
        dep("d", group="backup", priority=1),
        dep("e", group="backup", priority=2),
        routing=RoutingConfig(strategy="priority"),
        fallbacks=FallbackConfig(general={"chat": ["backup"]}),
        hedging={"backup": HedgeConfig(delay=1.0, budget=1.0)},
    )


async def _streamed(router: Router, request: Any) -> str:
    text = ""
    async with await router.stream(request) as stream:
        async for chunk in stream:
            if chunk.data["choices"]:
                text += chunk.data["choices"][0]["delta"].get("content") or ""
    return text


async def _run_traced(tracing: Tracing, router: Router, request: Any) -> str:
    """Stream `request` under a request span made current as the gateway's middleware does."""
    server = tracing.tracer.start_span("POST /v1/chat/completions", kind=SpanKind.SERVER)
    token = SERVER_SPAN.set(server)
    try:
        with trace.use_span(server, end_on_exit=True):
            return await _streamed(router, request)
    finally:
        SERVER_SPAN.reset(token)


def _a(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def _attempts(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    found = [s for s in spans if s.kind is SpanKind.CLIENT]
    return sorted(found, key=lambda s: int(_a(s)["turnout.attempt"]))


async def test_every_kind_of_attempt_is_its_own_span_under_the_request(
    h: Harness, exporter: InMemorySpanExporter
) -> None:
    router = _every_way(h)
    tracing = _traced(h, exporter, router)
    # A quick request to "backup" first: its hedge budget is a share of its requests.
    h.sim.set_behaviour("c", FAST)
    await router.complete(chat(model="backup"))
    h.sim.set_behaviour("c", SLOW)
    exporter.clear()
    text = await _run_traced(tracing, router, chat(stream=True))
    assert text
    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    attempts = _attempts(spans)
    assert server.context is not None
    # One trace, every attempt a child of the request's span.
    assert {s.context.trace_id for s in spans if s.context} == {server.context.trace_id}
    assert all(
        s.parent is not None and s.parent.span_id == server.context.span_id for s in attempts
    )
    chain = [(_a(s)["turnout.deployment.id"], _a(s)["turnout.attempt.reason"]) for s in attempts]
    assert chain == [
        ("a", "primary"),
        ("b", "retry"),
        ("c", "fallback"),
        ("d", "hedge"),
        ("e", "failover"),
    ]
    a, b, c, d, cont = attempts
    # Named for the operation and the model asked of the provider; samplers' attributes.
    assert a.name == "chat a"
    assert _a(a)["gen_ai.operation.name"] == "chat"
    assert _a(a)["gen_ai.provider.name"] == "sim"
    assert _a(a)["gen_ai.request.model"] == "a"
    assert _a(a)["gen_ai.request.stream"] is True
    assert (_a(a)["server.address"], _a(a)["server.port"]) == ("a.example", 8443)
    assert _a(a)["turnout.model_group"] == "chat"
    assert _a(a)["turnout.strategy"] == "priority"
    assert _a(a)["turnout.breaker.state"] == "closed"
    # Failures say what failed; the retry of the same group counts as a resend.
    for failed in (a, b):
        assert failed.status.status_code is StatusCode.ERROR
        assert _a(failed)["error.type"] == "server_error"
    assert _a(b)["http.request.resend_count"] == 1
    # The hedge's loser was cancelled, which is no error of the deployment.
    assert _a(c)["error.type"] == "cancelled"
    assert c.status.status_code is StatusCode.UNSET
    # The hedge that won broke mid-stream; the continuation finished the answer.
    assert _a(d)["error.type"] == "stream_interrupted"
    assert _a(d)["gen_ai.response.finish_reasons"] == ("error",)
    assert "error.type" not in _a(cont)
    assert _a(cont)["gen_ai.response.finish_reasons"] == ("stop",)
    assert _a(cont)["gen_ai.usage.output_tokens"] > 0
    assert _a(cont)["gen_ai.response.time_to_first_chunk"] > 0
    assert isinstance(_a(cont)["gen_ai.response.id"], str)
    # The policies' decisions are events on the request's span.
    names = [e.name for e in server.events]
    for expected in ("turnout.retry", "turnout.fallback", "turnout.hedge"):
        assert expected in names
    assert "turnout.stream_failover" in names
    assert _a(server)["turnout.request_id"]
    # Content is never captured unless asked for.
    for span in attempts:
        assert "gen_ai.input.messages" not in _a(span)
        assert "gen_ai.output.messages" not in _a(span)
    tracing.shutdown()


async def test_content_goes_on_attempt_spans_only_when_asked(
    h: Harness, exporter: InMemorySpanExporter
) -> None:
    h.sim.set_behaviour("a", FAST)
    router = h.router(dep("a"))
    tracing = _traced(h, exporter, router, capture_content=True)
    response = await router.complete(chat(text="the secret word"))
    text = await _run_traced(tracing, router, chat(text="say it again", stream=True))
    whole, streamed = _attempts(exporter.get_finished_spans())[-2:]
    sent = json.loads(str(_a(whole)["gen_ai.input.messages"]))
    assert sent == [{"role": "user", "parts": [{"type": "text", "content": "the secret word"}]}]
    said = json.loads(str(_a(whole)["gen_ai.output.messages"]))
    answer = response.body["choices"][0]["message"]["content"]
    assert said[0]["parts"][0]["content"] == answer
    assert said[0]["finish_reason"] == "stop"
    streamed_out = json.loads(str(_a(streamed)["gen_ai.output.messages"]))
    assert streamed_out[0]["parts"][0]["content"] == text
    tracing.shutdown()


async def test_a_library_call_without_a_request_span_still_gets_one_trace(
    h: Harness, exporter: InMemorySpanExporter
) -> None:
    h.scripted.fail("a", ServerError("a is down"))
    router = h.router(dep("a"), dep("b", priority=1), routing=RoutingConfig(strategy="priority"))
    tracing = _traced(h, exporter, router)
    with tracing.tracer.start_as_current_span("caller"):
        await router.complete(chat())
    spans = exporter.get_finished_spans()
    [caller] = [s for s in spans if s.name == "caller"]
    attempts = _attempts(spans)
    assert len(attempts) == 2
    assert caller.context is not None
    assert {s.parent.span_id for s in attempts if s.parent} == {caller.context.span_id}
    assert [e.name for e in caller.events] == ["turnout.retry"] or "turnout.retry" in [
        e.name for e in caller.events
    ]
    tracing.shutdown()


async def test_an_attempt_left_open_when_its_request_ends_is_exported_as_lost(
    exporter: InMemorySpanExporter,
) -> None:
    """An attempt whose end never came (its task died unseen) still leaves one span, ended
    with the request and marked ``_OTHER``; a sampled-out request exports nothing."""
    from turnout.observe.events import AttemptStarted, RequestFinished, RequestStarted
    from turnout.observe.trace_context import ATTEMPT

    tracing = build_tracing(
        processor=SimpleSpanProcessor(exporter), metric_reader=InMemoryMetricReader()
    )
    observer = tracing.spans
    with tracing.tracer.start_as_current_span("caller") as caller:
        observer.on_event(RequestStarted("r1", "chat", None, 0.0, False))
        observer.on_event(
            AttemptStarted("r1", "chat", "dep-a", 1, 0.0, False, upstream_model="gpt-4o")
        )
        held = ATTEMPT.get()
        observer.on_event(RequestFinished("r1", "chat", None, 1.0))
    [attempt] = _attempts(exporter.get_finished_spans())
    assert held is not None and attempt.context is not None
    assert (attempt.context.trace_id, attempt.context.span_id) == (held.trace_id, held.span_id)
    assert attempt.parent is not None
    assert attempt.parent.span_id == caller.get_span_context().span_id
    assert _a(attempt)["error.type"] == "_OTHER"
    assert attempt.name == "chat gpt-4o" and attempt.kind is SpanKind.CLIENT
    assert attempt.end_time is not None and attempt.start_time is not None
    assert attempt.end_time >= attempt.start_time
    tracing.shutdown()
