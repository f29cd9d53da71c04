"""The request and access logs of a real `turnout serve`: to standard output or a file, every
line written by the time it exits on SIGTERM, and nothing secret or private in them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import msgspec
import openai

from fakes.fake_openai import FakeOpenAI, Fault
from litellm_shape import one_per_model
from serve_process import serving, stop

MASTER = "sk-gateway-master-7f3a9c1d2e4b"
UPSTREAM_KEY = "sk-upstream-secret-5b8e2f0a9d71"
PRIVATE = "purple elephants dance at midnight"
MESSAGES: Any = [{"role": "user", "content": PRIVATE}]


def _lines(text: str) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in text.splitlines() if line.startswith("{")]


async def test_a_litellm_config_logs_the_fallback_chain_to_stdout(tmp_path: Path) -> None:
    async with FakeOpenAI(api_key=None) as primary, FakeOpenAI(api_key=None) as spare:
        primary.set_default(Fault.server_error())
        config = tmp_path / "config.yaml"
        config.write_text(json.dumps(one_per_model(primary.url, spare.url, key=UPSTREAM_KEY)))
        async with serving(
            "--config", str(config), "--port", "0", stdout=asyncio.subprocess.PIPE
        ) as (process, port, stderr):
            assert process.stdout is not None
            out = asyncio.create_task(process.stdout.read())
            async with openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=MASTER, max_retries=0
            ) as client:
                raw = await client.chat.completions.with_raw_response.create(
                    model="chat", messages=MESSAGES, extra_headers={"x-request-id": "chain-1"}
                )
                assert raw.headers["x-turnout-deployment"] == "spare/openai/gpt-4o-mini"
            assert await stop(process) == 0
            stdout = (await out).decode()
    [line] = _lines(stdout)
    assert line["request_id"] == "chain-1"
    assert (line["model"], line["model_group"], line["status"]) == ("chat", "spare", 200)
    assert line["deployment"] == "spare/openai/gpt-4o-mini"
    chain = [(a["deployment"], a["reason"], a["outcome"]) for a in line["attempts"]]
    assert chain[0] == ("chat/openai/gpt-4o-mini", "primary", "error")
    assert chain[-1] == ("spare/openai/gpt-4o-mini", "fallback", "ok")
    assert all(a["reason"] == "retry" for a in line["attempts"][1:-1])
    assert all(a["upstream_request_id"].startswith("req_") for a in line["attempts"])
    assert line["attempts"][0]["error"] == "server_error"
    assert line["attempts"][0]["status"] == 500
    # The access log, on standard error, has the request's line with its id.
    access = [entry for entry in stderr if '"POST /v1/chat/completions HTTP/1.1" 200' in entry]
    assert len(access) == 1 and "id=chain-1" in access[0]
    everything = stdout + "".join(stderr)
    for secret in (MASTER, UPSTREAM_KEY, PRIVATE, "purple"):
        assert secret not in everything


def _turnout_file(path: Path, url: str, log: Path) -> Path:
    path.write_text(
        f"""
server:
  master_key: {MASTER}
  shutdown_timeout: 10
  request_log:
    path: {log}
store:
  enabled: false
model_list:
  - model_name: chat
    name: fake-east
    provider: openai-compatible
    model: gpt-4o-mini
    base_url: {url}
    api_key: {UPSTREAM_KEY}
"""
    )
    return path


async def test_a_file_gets_every_line_by_the_time_the_gateway_exits(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    async with FakeOpenAI(api_key=None, chunk_delay=0.002) as fake:
        config = _turnout_file(tmp_path / "turnout.yaml", fake.url, log)
        async with serving("--config", str(config), "--port", "0") as (process, port, stderr):
            async with openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=MASTER, max_retries=0
            ) as client:
                whole = [
                    client.chat.completions.create(model="chat", messages=MESSAGES)
                    for _ in range(40)
                ]
                await asyncio.gather(*whole)

                async def streamed() -> None:
                    stream = await client.chat.completions.create(
                        model="chat", messages=MESSAGES, stream=True
                    )
                    async for _ in stream:
                        pass

                await asyncio.gather(*(streamed() for _ in range(10)))
                refused = openai.AsyncOpenAI(
                    base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-wrong", max_retries=0
                )
                async with refused:
                    with contextlib.suppress(openai.AuthenticationError):
                        await refused.chat.completions.create(model="chat", messages=MESSAGES)
            assert await stop(process) == 0
    lines = _lines(log.read_text())
    assert len(lines) == 51
    assert len({line["request_id"] for line in lines}) == 51
    served = [line for line in lines if line["status"] == 200]
    assert len(served) == 50
    assert sum(line["stream"] for line in served) == 10
    assert all(line["deployment"] == "fake-east" and line["key"] == "master" for line in served)
    assert all(line["tokens"]["total"] > 0 for line in served)
    assert all(line["ttft_ms"] is not None for line in served if line["stream"])
    [refusal] = [line for line in lines if line["status"] == 401]
    assert refusal["attempts"] == [] and refusal["key"] is None
    access = [entry for entry in stderr if "/v1/chat/completions HTTP/1.1" in entry]
    assert len(access) == 51
    everything = log.read_text() + "".join(stderr)
    for secret in (MASTER, UPSTREAM_KEY, "sk-wrong", PRIVATE):
        assert secret not in everything
