"""Spans through the pipe to the exporter process, and on to a real OTLP/HTTP receiver.

The gateway hands ended spans to `SpanPipe`; a real ``python -m turnout.observe.span_exporter``
process rebuilds and exports them to the receiver on loopback. A flush is acknowledged only
once the receiver has the spans, a stop exports everything, a full queue drops and says so, an
exporter that died is replaced, and one whose gateway is gone exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanKind, StatusCode

from otlp_receiver import OtlpReceiver
from turnout.observe.lean_spans import LeanTracer
from turnout.observe.span_pipe import BatchSettings, SpanPipe
from turnout.observe.span_records import Hello

SERVER, CLIENT = 2, 3  # OTLP's span kinds
HELLO = Hello(
    resource={"service.name": "pipe-under-test"},
    resource_schema_url="",
    scope_name="turnout",
    scope_version=None,
    scope_schema_url=None,
)


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OtlpReceiver]:
    async with OtlpReceiver() as found:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", found.url)
        yield found


T = TypeVar("T")


def _pipe(*, max_batch: int = 512, max_queue: int = 2048) -> SpanPipe:
    # A delay never reached: batches leave when full, flushed or stopped.
    return SpanPipe(HELLO, "otlp", BatchSettings(60.0, max_batch, max_queue, 30.0))


async def _off_loop(call: Callable[..., T], *args: object) -> T:
    """Blocking pipe calls run off the loop: the receiver answers on it."""
    return await asyncio.to_thread(call, *args)


@contextmanager
def _no_thread_switch() -> Iterator[None]:
    """No other thread runs while the block does (it never blocks): the writer holds still."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


async def test_spans_reach_the_receiver_with_their_parentage_and_details(
    receiver: OtlpReceiver,
) -> None:
    pipe = _pipe()
    tracer = LeanTracer(pipe, ALWAYS_ON)
    server = tracer.start_span("POST /v1/chat/completions", kind=SpanKind.SERVER)
    attempt = tracer.start_span(
        "chat gpt-4o",
        context=trace.set_span_in_context(server),
        kind=SpanKind.CLIENT,
        attributes={"gen_ai.request.model": "gpt-4o", "turnout.attempt": 1},
    )
    attempt.set_attribute("gen_ai.response.finish_reasons", ["stop"])
    attempt.set_status(StatusCode.ERROR, "server_error")
    attempt.end()
    server.add_event("turnout.retry", {"error.type": "server_error"})
    server.end()
    # A flush returns once the exporter has exported everything before it.
    assert await _off_loop(pipe.force_flush, 20.0)
    assert {s.name for s in receiver.spans} == {"POST /v1/chat/completions", "chat gpt-4o"}
    [got_server] = [s for s in receiver.spans if s.kind == SERVER]
    [got_attempt] = [s for s in receiver.spans if s.kind == CLIENT]
    context = server.get_span_context()
    assert got_server.trace_id == f"{context.trace_id:032x}"
    assert got_server.parent_span_id == ""
    assert got_attempt.parent_span_id == got_server.span_id
    assert got_attempt.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert got_attempt.attributes["turnout.attempt"] == 1
    assert got_attempt.status_code == 2  # error
    assert got_server.events == ("turnout.retry",)
    assert got_server.service_name == "pipe-under-test"
    await _off_loop(pipe.shutdown)


async def test_a_stop_exports_every_span_still_queued(receiver: OtlpReceiver) -> None:
    # Batches far larger than what is sent, and a delay never reached: only the stop sends.
    pipe = _pipe(max_batch=10_000, max_queue=10_000)
    tracer = LeanTracer(pipe, ALWAYS_ON)
    for number in range(300):
        tracer.start_span(f"span {number}").end()
    await _off_loop(pipe.shutdown)
    assert receiver.span_count == 300
    assert pipe.dropped == 0


async def test_a_full_queue_drops_spans_counts_and_logs_them(
    receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    pipe = _pipe(max_batch=5, max_queue=5)
    tracer = LeanTracer(pipe, ALWAYS_ON)
    with _no_thread_switch():
        for number in range(8):
            tracer.start_span(f"span {number}").end()
    with caplog.at_level(logging.WARNING, logger="turnout.observe"):
        await _off_loop(pipe.shutdown)
    assert pipe.dropped == 3
    assert receiver.span_count == 5
    assert any("spans dropped" in r.getMessage() for r in caplog.records)


async def test_an_exporter_that_died_is_replaced(receiver: OtlpReceiver) -> None:
    pipe = _pipe()
    tracer = LeanTracer(pipe, ALWAYS_ON)
    pipe._process.kill()
    pipe._process.wait()
    for number in range(3):
        tracer.start_span(f"span {number}").end()
    await _off_loop(pipe.shutdown)
    assert receiver.span_count == 3


async def test_unsampled_spans_propagate_but_are_never_sent(receiver: OtlpReceiver) -> None:
    pipe = _pipe()
    span = LeanTracer(pipe, ALWAYS_OFF).start_span("not sampled")
    assert isinstance(span, NonRecordingSpan)
    assert span.get_span_context().is_valid
    assert not span.get_span_context().trace_flags.sampled
    span.end()
    await _off_loop(pipe.shutdown)
    assert receiver.span_count == 0


def test_the_exporter_exits_when_its_gateway_is_killed() -> None:
    program = textwrap.dedent(
        """
        import sys, time
        from turnout.observe.span_pipe import BatchSettings, SpanPipe
        from turnout.observe.span_records import Hello
        hello = Hello({"service.name": "x"}, "", "turnout", None, None)
        pipe = SpanPipe(hello, "console", BatchSettings())
        print(pipe._process.pid, flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, text=True
    ) as gateway:
        assert gateway.stdout is not None
        exporter_pid = int(gateway.stdout.readline())
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(20)
    # The exporter sees its pipe end and exits: wait for it (the killed process's child,
    # reparented, so it is polled through /proc).
    for _ in range(400):
        if not _alive(exporter_pid):
            break
        time.sleep(0.05)
    assert not _alive(exporter_pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_signals_to_the_whole_group_leave_the_exporter_to_its_pipe() -> None:
    # SIGINT/SIGTERM to the process group (Ctrl-C) must not cut the export of the last spans.
    with subprocess.Popen(
        [sys.executable, "-m", "turnout.observe.span_exporter", "console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    ) as exporter:
        assert exporter.stdin is not None
        # Wait until it has set its handlers: it answers nothing, so read its state.
        for _ in range(400):
            if _ignores_term(exporter.pid):
                break
            time.sleep(0.05)
        os.kill(exporter.pid, signal.SIGTERM)
        os.kill(exporter.pid, signal.SIGINT)
        assert exporter.poll() is None
        exporter.stdin.close()
        assert exporter.wait(30) == 0


def _ignores_term(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False
