"""Content in the request log: never, unless ``capture_content`` asks; then shortened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from gateway_harness import gateway_config, running_gateway, simulated
from turnout.config.server import GatewayConfig, RequestLogConfig

MESSAGES: Any = [{"role": "user", "content": "the secret recipe is cinnamon"}]


def _config(path: Path, capture: bool) -> GatewayConfig:
    config = gateway_config(simulated("sim-1"))
    server = msgspec.structs.replace(
        config.server, request_log=RequestLogConfig(path=str(path), capture_content=capture)
    )
    return msgspec.structs.replace(config, server=server)


async def _ask(config: GatewayConfig) -> None:
    async with running_gateway(config) as gw, gw.client() as client:
        await client.chat.completions.create(model="chat", messages=MESSAGES)
        stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        async for _ in stream:
            pass


async def test_content_is_logged_only_when_captured(tmp_path: Path) -> None:
    quiet, captured = tmp_path / "quiet.jsonl", tmp_path / "captured.jsonl"
    await _ask(_config(quiet, capture=False))
    await _ask(_config(captured, capture=True))
    assert "cinnamon" not in quiet.read_text()
    for line in quiet.read_text().splitlines():
        assert "messages" not in msgspec.json.decode(line)
    whole, streamed = [msgspec.json.decode(line) for line in captured.read_text().splitlines()]
    for line in (whole, streamed):
        assert "cinnamon" in line["messages"]
        assert line["answer"].startswith("Simulated answer from sim-1")
    assert streamed["stream"] is True
