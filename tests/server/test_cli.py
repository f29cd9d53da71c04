"""`turnout serve` and `turnout check-config` as a user runs them: real processes, real signals."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import openai
import pytest

from fakes.fake_openai import FakeOpenAI
from serve_process import TURNOUT, serving

MESSAGES: Any = [{"role": "user", "content": "Hello"}]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _config(path: Path, fake_url: str, groups: tuple[str, ...] = ("chat",)) -> Path:
    entries = "".join(
        f"""
  - model_name: {group}
    provider: openai-compatible
    model: gpt-4o-mini
    base_url: {fake_url}
    api_key: ${{FAKE_KEY}}
"""
        for group in groups
    )
    path.write_text(f"server:\n  shutdown_timeout: 10\nmodel_list:{entries}")
    return path


def _client(port: int) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", max_retries=0, timeout=10
    )


async def test_the_demo_serves_the_openai_sdk() -> None:
    async with serving("--demo", "--port", "0") as (process, port, lines):
        async with _client(port) as client:
            completion = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
            assert completion.choices[0].message.content
            embedding = await client.embeddings.create(model="embed", input="hello")
            assert len(embedding.data[0].embedding) == 1536
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    log = "".join(lines)
    assert "served group=chat" in log
    assert "stopped" in log


async def test_sigterm_finishes_streams_in_flight_then_exits(tmp_path: Path) -> None:
    async with FakeOpenAI(chunk_delay=0.05) as fake:
        config = _config(tmp_path / "turnout.yaml", fake.url)
        async with serving("--config", str(config), "--port", "0") as (process, port, _):
            async with _client(port) as client:
                stream = await client.chat.completions.create(
                    model="chat", messages=MESSAGES, stream=True
                )
                chunks = []
                async for chunk in stream:
                    chunks.append(chunk)
                    if len(chunks) == 2:
                        process.send_signal(signal.SIGTERM)
                        await asyncio.sleep(0.2)
                        with pytest.raises(ConnectionRefusedError):  # none while draining
                            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            assert chunks[-1].choices[0].finish_reason == "stop"
            assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_sighup_reloads_the_model_list(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake:
        config = _config(tmp_path / "turnout.yaml", fake.url)
        async with serving("--config", str(config), "--port", "0") as (process, port, lines):
            async with _client(port) as client:
                assert [m.id for m in (await client.models.list()).data] == ["chat"]
                _config(config, fake.url, groups=("chat", "fresh"))
                process.send_signal(signal.SIGHUP)
                for _ in range(50):
                    names = sorted(m.id for m in (await client.models.list()).data)
                    if names == ["chat", "fresh"]:
                        break
                    await asyncio.sleep(0.1)
                assert names == ["chat", "fresh"]
                completion = await client.chat.completions.create(model="fresh", messages=MESSAGES)
                assert completion.choices
                config.write_text("model_list: [")  # broken: the running config stays
                process.send_signal(signal.SIGHUP)
                await asyncio.sleep(0.5)
                assert len((await client.models.list()).data) == 2
            assert any("reload failed" in line for line in lines)


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    import os

    process = await asyncio.create_subprocess_exec(
        *TURNOUT,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_check_config_accepts_the_example_and_names_bad_paths(tmp_path: Path) -> None:
    example = EXAMPLES / "turnout.yaml"
    code, out, err = await _run(
        "check-config", str(example), env={"OPENAI_API_KEY": "sk-a", "OPENROUTER_API_KEY": "or-b"}
    )
    assert code == 0, err
    assert "OK (turnout format): 3 deployments in 2 model groups" in out
    # Without its secrets set, a file still checks: each unset variable is a note...
    code, out, err = await _run("check-config", str(EXAMPLES / "litellm-config.yaml"))
    assert code == 0, err
    assert "note: " in out and "is not set" in out
    # ...and an error when the environment is required, as it is to serve.
    code, out, err = await _run(
        "check-config", "--require-env", str(EXAMPLES / "litellm-config.yaml")
    )
    assert code == 2
    assert "is not set" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list:\n  - model_name: chat\n    model: m\n    weight: heavy\n")
    code, _, err = await _run("check-config", str(bad))
    assert code == 2
    assert "model_list[0].weight" in err
    assert err.count(str(bad)) == 1


async def test_serve_refuses_a_bad_config_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list:\n  - model_name: chat\n    model: m\n    provider: nowhere\n")
    code, _, err = await _run("serve", "--config", str(bad), "--port", "0")
    assert code == 2
    assert "model_list[0].provider: provider 'nowhere' is not supported" in err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_several_workers_share_the_port_and_stop_together() -> None:
    port = _free_port()
    async with serving("--demo", "--port", str(port), "--workers", "2") as (process, _, lines):
        async with _client(port) as client:
            for _ in range(6):
                completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
                assert completion.choices
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    log = "".join(lines)
    assert "each worker routes on its own health state" in log
    assert log.count("stopped") == 2


PROVIDER_KEYS = {
    name: f"test-{name.lower()}"
    for name in (
        "OPENAI_API_KEY",
        "AZURE_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GROQ_API_KEY",
        "MISTRAL_API_KEY",
        "DEEPSEEK_API_KEY",
        "TOGETHER_API_KEY",
        "FIREWORKS_API_KEY",
        "OPENROUTER_API_KEY",
        "VERTEX_ACCESS_TOKEN",
    )
}


async def test_a_config_naming_every_provider_loads_and_serves() -> None:
    example = str(EXAMPLES / "providers.yaml")
    code, out, err = await _run("check-config", example, env=PROVIDER_KEYS)
    assert code == 0, err
    assert "16 deployments in 2 model groups" in out
    async with serving("--config", example, "--port", "0", env=PROVIDER_KEYS) as (
        process,
        port,
        lines,
    ):
        async with _client(port) as client:
            names = sorted(model.id for model in (await client.models.list()).data)
        assert names == ["chat", "embed"]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    log = "".join(lines)
    assert "test-" not in log  # no key in the log
