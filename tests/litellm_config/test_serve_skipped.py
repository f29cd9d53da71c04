"""`turnout serve` with a LiteLLM file naming a provider turnout lacks: the rest serves, the
skipped deployment is logged as an error at start with its path, and models retrieve."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import openai

from fakes.fake_openai import FakeOpenAI
from serve_process import serving


async def test_serve_logs_what_it_skipped_and_serves_the_rest(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake:
        config = tmp_path / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: chat\n"
            "    litellm_params:\n"
            f"      model: openai/gpt-4o-mini\n      api_base: {fake.url}\n"
            "      api_key: os.environ/FAKE_KEY\n"
            "  - model_name: command\n"
            "    litellm_params: {model: cohere/command-r}\n"
            "router_settings:\n"
            "  model_group_alias: {fast: chat, cmd: command}\n"
        )
        env = {"FAKE_KEY": "sk-fake"}
        async with serving("--config", str(config), "--port", "0", env=env) as (
            process,
            port,
            lines,
        ):
            client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x")
            async with client:
                assert sorted(m.id for m in (await client.models.list()).data) == ["chat", "fast"]
                assert (await client.models.retrieve("fast")).id == "fast"
                answer = await client.chat.completions.create(
                    model="fast", messages=[{"role": "user", "content": "Hi"}]
                )
            assert answer.choices[0].message.content
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 10) == 0
    log = "".join(lines)
    skipped = [line for line in lines if "provider 'cohere' is not supported" in line]
    assert len(skipped) == 1
    assert " ERROR turnout config: model_list[1].litellm_params.model: " in skipped[0]
    assert "model_group_alias.cmd" in log
    assert "sk-fake" not in log
