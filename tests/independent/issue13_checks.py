"""What the issue 13 tests check, over and over: request ids, request log lines, traceparents,
spans without content, Prometheus samples and the status page's snapshot and events. Every
check states the rule it holds the gateway to in its failure message."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import datetime
from typing import Any

import aiohttp
from issue13_otlp import OtlpReceiver, ReceivedSpan
from issue13_rig import (
    FAKE_UPSTREAM_ID,
    HASH_ONLY,
    MASTER_KEY,
    MESSAGES,
    PROMPT_MARKER,
    REPLY_MARKER,
    UPSTREAM_KEY,
    VALID_REQUEST_ID,
    WRONG_KEY,
    Topology,
    http,
    numbers,
    objects_naming,
    sse_lines,
)

from fakes.fake_openai import FakeOpenAI, ReceivedRequest

CHAT_PATH = "/v1/chat/completions"
SECRETS = (MASTER_KEY, UPSTREAM_KEY, WRONG_KEY)
CONTENT = (PROMPT_MARKER, REPLY_MARKER)
#: The spare deployment's explicit LiteLLM id, which is then its name.
SPARE_ID = "spare-east"


def fresh_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def chat_body(model: str = "chat", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, "max_tokens": 16, **extra}


def master_headers(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {MASTER_KEY}", **extra}


def assert_generated(request_id: str | None, what: str, *, not_equal: str | None = None) -> str:
    assert request_id, f"{what}: no x-request-id on the response"
    assert VALID_REQUEST_ID.fullmatch(request_id), (
        f"{what}: a generated x-request-id must itself be 1..128 printable ASCII characters "
        f"without spaces, got {request_id!r}"
    )
    if not_equal is not None:
        assert request_id != not_equal and not_equal not in request_id, (
            f"{what}: the invalid x-request-id was reflected: {request_id[:200]!r}"
        )
    return request_id


def assert_openai_error(text: str, what: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        raise AssertionError(f"{what}: the body is not JSON: {text[:300]!r}") from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict) and isinstance(error.get("message"), str), (
        f"{what}: expected OpenAI's error shape {{'error': {{'message': ...}}}}, got {text[:300]}"
    )
    return error


def upstream_ids(top: Topology) -> list[str | None]:
    """The x-request-id every upstream request carried, all fakes together."""
    fakes = (top.primary, top.spare, top.solo, top.broken, top.limited, top.fragile)
    return [request.headers.get("x-request-id") for fake in fakes for request in fake.requests]


async def streamed_raw(
    url: str, model: str, request_id: str, **headers: str
) -> tuple[int, dict[str, str], list[str]]:
    body = chat_body(model, stream=True, stream_options={"include_usage": True})
    status, got, text = await http(
        "POST", url + CHAT_PATH, headers={"x-request-id": request_id, **headers}, json_body=body
    )
    return status, got, sse_lines(text)


def usage_of(lines: list[str]) -> dict[str, Any]:
    for line in lines:
        if line.startswith("data: {"):
            event = json.loads(line[len("data: ") :])
            if isinstance(event.get("usage"), dict):
                usage: dict[str, Any] = event["usage"]
                return usage
    raise AssertionError(f"no usage chunk in the stream: {lines}")


LINE_FIELDS = (
    "time", "request_id", "key", "route", "model", "model_group", "deployment", "provider",
    "status", "error", "stream", "latency_ms", "ttft_ms", "tokens", "cost", "attempts",
)  # fmt: skip
ATTEMPT_FIELDS = (
    "deployment", "provider", "reason", "outcome", "error", "status", "start_ms",
    "duration_ms", "ttft_ms", "upstream_request_id",
)  # fmt: skip


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def assert_line_shape(line: dict[str, Any]) -> None:
    what = f"request log line {line.get('request_id')!r}"
    missing = [name for name in LINE_FIELDS if name not in line]
    assert not missing, f"{what} lacks {missing}: {line}"
    stamp = datetime.fromisoformat(str(line["time"]).replace("Z", "+00:00"))
    offset = stamp.utcoffset()
    assert offset is not None and offset.total_seconds() == 0, f"{what}: time not UTC {line}"
    assert is_number(line["latency_ms"]) and line["latency_ms"] >= 0, line
    assert isinstance(line["attempts"], list), line
    for attempt in line["attempts"]:
        gone = [name for name in ATTEMPT_FIELDS if name not in attempt]
        assert not gone, f"{what}: an attempt lacks {gone}: {attempt}"
        assert attempt["outcome"] in ("ok", "error", "cancelled", "lost_race"), attempt
        assert is_number(attempt["start_ms"]) and is_number(attempt["duration_ms"]), attempt
        assert not HASH_ONLY.fullmatch(str(attempt["deployment"])), (
            f"{what}: an attempt names its deployment by hash only: {attempt}"
        )
    if line["deployment"] is not None:
        assert not HASH_ONLY.fullmatch(str(line["deployment"])), line


def assert_upstream_id(attempt: dict[str, Any], gateway_id: str) -> None:
    upstream = attempt["upstream_request_id"]
    assert isinstance(upstream, str) and FAKE_UPSTREAM_ID.fullmatch(upstream), (
        f"the upstream's own x-request-id (req_<32 hex> from the fake) must be recorded per "
        f"attempt, got {upstream!r} in {attempt}"
    )
    assert upstream != gateway_id


TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
CONTENT_ATTRIBUTES = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.prompt")


def tracing_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    }


def upstream_parent(headers: dict[str, str], what: str) -> tuple[str, str]:
    """(trace id, parent span id) of the traceparent an upstream request carried."""
    value = headers.get("traceparent", "")
    found = TRACEPARENT.fullmatch(value)
    assert found, f"{what}: the upstream request carried no valid traceparent: {value!r}"
    return found.group(1), found.group(2)


def assert_attempt_spans(
    root: ReceivedSpan,
    clients: list[ReceivedSpan],
    upstream: list[tuple[FakeOpenAI, ReceivedRequest]],
    trace_id: str,
) -> list[tuple[ReceivedSpan, ReceivedRequest, int]]:
    """Each CLIENT span an attempt of the request under `root`, with the GenAI attributes,
    and the parent of exactly one of the `upstream` requests (each with the fake it reached):
    (span, request, the fake's port) in the order of `upstream`."""
    shown = "\n".join(span.describe() for span in [root, *clients])
    for span in clients:
        attributes = span.attributes
        assert span.parent_id == root.span_id, f"not a child of the SERVER span:\n{shown}"
        assert span.name == f"chat {attributes.get('gen_ai.request.model')}", shown
        assert attributes.get("gen_ai.operation.name") == "chat", span.describe()
        assert attributes.get("gen_ai.provider.name") == "openai", span.describe()
        assert attributes.get("server.address") == "127.0.0.1", span.describe()
        assert isinstance(attributes.get("server.port"), int), span.describe()
        reason = attributes.get("turnout.attempt.reason")
        assert reason in ("primary", "retry", "fallback"), span.describe()
    by_id = {span.span_id: span for span in clients}
    attempts: list[tuple[ReceivedSpan, ReceivedRequest, int]] = []
    for fake, request in upstream:
        port = int(fake.url.split(":")[2].split("/")[0])
        seen_trace, parent = upstream_parent(request.headers, f"the upstream on port {port}")
        assert seen_trace == trace_id, f"the upstream saw trace {seen_trace}, not {trace_id}"
        assert parent in by_id, (
            f"the upstream's traceparent names parent {parent}, no attempt span:\n{shown}"
        )
        span = by_id[parent]
        assert span.attributes.get("gen_ai.request.model") == request.json["model"], (
            f"gen_ai.request.model must be the model the upstream was asked for, "
            f"{request.json['model']!r}: {span.describe()}"
        )
        attempts.append((span, request, port))
    assert len({span.span_id for span, _, _ in attempts}) == len(clients) == len(upstream), (
        f"one attempt span per upstream request ({len(upstream)}):\n{shown}"
    )
    return attempts


def assert_no_content(spans: list[ReceivedSpan]) -> None:
    for span in spans:
        captured = [name for name in CONTENT_ATTRIBUTES if name in span.attributes]
        assert not captured, f"message content captured by default: {captured} on {span.name}"
        text = json.dumps(span.attributes, default=str)
        for secret in SECRETS + CONTENT:
            assert secret not in text, f"{secret!r} in the attributes of {span.describe()}"


def ident_of(raw: Any) -> str | None:
    value = raw.headers.get("x-request-id")
    return value if isinstance(value, str) else None


def samples(text: str, name: str) -> list[float]:
    """Values of the samples of metric `name` (exact name, any labels)."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+|NaN)", re.MULTILINE)
    return [float(value) for value in pattern.findall(text)]


async def first_event(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    """The status, content type and first data event (parsed) of an event stream."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=headers) as response,
    ):
        kind = response.headers.get("Content-Type", "")
        if response.status != 200:
            return response.status, kind, None
        data: list[str] = []
        async with asyncio.timeout(6):
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[len("data:") :].strip())
                elif not line and data:
                    break
        return response.status, kind, json.loads("\n".join(data))


async def snapshot(url: str, headers: dict[str, str] | None = None) -> Any:
    status, kind, text = await http("GET", url + "/status/snapshot", headers=headers)
    assert status == 200, f"/status/snapshot: {status} {text[:300]}"
    assert "json" in kind.get("content-type", ""), kind
    return json.loads(text)


def grew(before: Any, after: Any, name: str) -> list[str]:
    """Paths of request counters of deployment `name` that grew from `before` to `after`."""
    old = {p: v for entry in objects_naming(before, name) for p, v in numbers(entry).items()}
    new = {p: v for entry in objects_naming(after, name) for p, v in numbers(entry).items()}
    counters = [p for p in new if any(w in p.lower() for w in ("request", "count", "total"))]
    return [path for path in counters if new[path] > old.get(path, 0.0)]
