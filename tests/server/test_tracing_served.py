"""Traces end to end: a real ``turnout serve`` exporting to a real OTLP/HTTP receiver.

A LiteLLM-style config (one deployment per model, and fallbacks): the primary fails, the
fallback streams and breaks mid-stream, and the stream continues on the next group. The
receiver must get one trace: the SERVER span a child of the client's ``traceparent``, one CLIENT
span per attempt under it, and each fake upstream must have seen a ``traceparent`` whose parent
is the span of the attempt that called it. Without the OpenTelemetry environment, nothing is
exported and OpenTelemetry is not even imported.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import openai

from fakes.fake_openai import FakeOpenAI, Fault
from otlp_receiver import OtlpReceiver, ReceivedSpan
from serve_process import serving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_PARENT}-01"
SERVER, CLIENT = 2, 3  # OTLP's span kinds
STATUS_ERROR = 2


def _config(path: Path, primary: str, fallback: str, last: str) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""
            model_list:
              - model_name: gpt
                litellm_params:
                  model: openai/gpt-4o
                  api_base: {primary}
                  api_key: os.environ/FAKE_KEY
              - model_name: claude
                litellm_params:
                  model: openai/claude-like
                  api_base: {fallback}
                  api_key: os.environ/FAKE_KEY
              - model_name: mini
                litellm_params:
                  model: openai/gpt-4o-mini
                  api_base: {last}
                  api_key: os.environ/FAKE_KEY
            router_settings:
              num_retries: 0
              fallbacks: [{{"gpt": ["claude"]}}, {{"claude": ["mini"]}}]
            """
        )
    )
    return path


@asynccontextmanager
async def _fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI]]:
    async with AsyncExitStack() as stack:
        fakes = [await stack.enter_async_context(FakeOpenAI(models=None)) for _ in range(3)]
        yield fakes[0], fakes[1], fakes[2]


async def _stream(port: int) -> str:
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="sk-x",
        max_retries=0,
        timeout=20,
        default_headers={"traceparent": TRACEPARENT},
    )
    text = ""
    async with client:
        stream = await client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "one two three four"}], stream=True
        )
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    return text


async def _stopped(process: asyncio.subprocess.Process) -> None:
    """A clean stop: the gateway flushes its spans on the way out."""
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(20):
        await process.wait()


async def test_one_trace_for_a_request_that_falls_back_and_continues(tmp_path: Path) -> None:
    async with _fakes() as (primary, fallback, last), OtlpReceiver() as receiver:
        primary.set_default(Fault.server_error())
        fallback.enqueue(Fault("cut", after_chunks=3))
        config = _config(tmp_path / "config.yaml", primary.url, fallback.url, last.url)
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_SERVICE_NAME": "gateway-under-test",
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_METRICS_EXPORTER": "otlp",
        }
        async with serving("--config", str(config), "--port", "0", env=env) as (process, port, _):
            text = await _stream(port)
            await _stopped(process)
        assert text
        spans = receiver.spans
        assert {s.trace_id for s in spans} == {TRACE_ID}
        [server] = [s for s in spans if s.kind == SERVER]
        assert server.parent_span_id == CLIENT_PARENT
        assert server.name == "POST /v1/chat/completions"
        assert server.attributes["http.response.status_code"] == 200
        assert server.attributes["turnout.request_id"]
        assert server.service_name == "gateway-under-test"
        assert "turnout.fallback" in server.events
        assert "turnout.stream_failover" in server.events
        attempts = sorted(
            (s for s in spans if s.kind == CLIENT), key=lambda s: s.attributes["turnout.attempt"]
        )
        assert all(s.parent_span_id == server.span_id for s in attempts)
        assert [(s.name, s.attributes["turnout.attempt.reason"]) for s in attempts] == [
            ("chat gpt-4o", "primary"),
            ("chat claude-like", "fallback"),
            ("chat gpt-4o-mini", "failover"),
        ]
        first, broken, continued = attempts
        assert first.status_code == STATUS_ERROR
        assert first.attributes["error.type"] == "server_error"
        assert broken.attributes["error.type"] == "stream_interrupted"
        assert "error.type" not in continued.attributes
        for span in attempts:
            assert span.attributes["gen_ai.provider.name"] == "openai"
            assert span.attributes["server.address"] == "127.0.0.1"
            assert span.attributes["turnout.upstream_request_id"]
            assert "gen_ai.input.messages" not in span.attributes
            # No secret on any span.
            assert "sk-fake" not in json.dumps(span.attributes, default=str)
        assert continued.attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert continued.attributes["gen_ai.usage.output_tokens"] > 0
        # Each upstream saw the traceparent of the attempt that called it.
        for fake, span in ((primary, first), (fallback, broken), (last, continued)):
            [seen] = [r.headers["traceparent"] for r in fake.requests]
            assert seen.split("-")[1:3] == [TRACE_ID, span.span_id]
        # The GenAI metrics reached the receiver too, on shutdown at the latest.
        assert "gen_ai.client.operation.duration" in receiver.metric_names


async def test_a_malformed_traceparent_starts_a_trace_of_its_own(tmp_path: Path) -> None:
    async with FakeOpenAI(models=None) as fake, OtlpReceiver() as receiver:
        config = _config(tmp_path / "config.yaml", fake.url, fake.url, fake.url)
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        async with serving("--config", str(config), "--port", "0", env=env) as (process, port, _):
            client = openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1",
                api_key="sk-x",
                max_retries=0,
                timeout=20,
                default_headers={"traceparent": "00-not-a-trace-01"},
            )
            async with client:
                await client.chat.completions.create(
                    model="gpt", messages=[{"role": "user", "content": "hi"}]
                )
            await _stopped(process)
        [server] = [s for s in receiver.spans if s.kind == SERVER]
        assert server.parent_span_id == ""
        [attempt] = [s for s in receiver.spans if s.kind == CLIENT]
        assert attempt.trace_id == server.trace_id
        _check_sampled(fake.requests[0].headers["traceparent"], attempt)


def _check_sampled(traceparent: str, span: ReceivedSpan) -> None:
    version, trace_id, parent, flags = traceparent.split("-")
    assert (version, trace_id, parent) == ("00", span.trace_id, span.span_id)
    assert int(flags, 16) & 1  # sampled


async def test_without_the_environment_nothing_is_traced_or_imported(tmp_path: Path) -> None:
    async with FakeOpenAI(models=None) as fake, OtlpReceiver() as receiver:
        config = _config(tmp_path / "config.yaml", fake.url, fake.url, fake.url)
        # The receiver listens, but nothing names it: no span may reach it.
        async with serving("--config", str(config), "--port", "0") as (process, port, _):
            async with openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", max_retries=0
            ) as client:
                await client.chat.completions.create(
                    model="gpt",
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"traceparent": TRACEPARENT},
                )
            await _stopped(process)
        assert receiver.requests == 0
        assert "traceparent" not in fake.requests[0].headers


def test_a_gateway_serving_without_tracing_never_imports_opentelemetry(tmp_path: Path) -> None:
    config = _config(tmp_path / "config.yaml", *["http://127.0.0.1:9"] * 3)
    program = textwrap.dedent(
        f"""
        import asyncio, os, sys
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                del os.environ[name]
        os.environ["FAKE_KEY"] = "sk-fake"
        import turnout
        from aiohttp import web
        from turnout.config.load import load_config
        from turnout.gateway.app import create_app
        from turnout.gateway.gateway import Gateway

        async def main():
            gateway = Gateway(load_config({str(config)!r}))
            runner = web.AppRunner(create_app(gateway))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = b'{{"model": "gpt", "messages": [{{"role": "user", "content": "hi"}}]}}'
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n"
                b"traceparent: {TRACEPARENT}\\r\\ncontent-type: application/json\\r\\n"
                b"content-length: %d\\r\\n\\r\\n%s" % (len(body), body)
            )
            answer = await reader.read()
            assert answer.startswith(b"HTTP/1.1 502 "), answer
            writer.close()
            await runner.cleanup()
            await gateway.close()

        asyncio.run(main())
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(loaded)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
