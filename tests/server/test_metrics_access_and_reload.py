"""Who may read /metrics, and what a reload does to the server's own settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from raw_http import closed_after, connection, read_response, request

from gateway_harness import RunningGateway, gateway_config, running_gateway, simulated
from turnout import Secret
from turnout.config.load import load_config
from turnout.config.server import ServerConfig
from turnout.errors import ConfigError

MASTER = "sk-gateway-master"
SCRAPER = "prometheus-scrape-token"


def with_server(**server: Any) -> Any:
    config = gateway_config(simulated("a"))
    secrets = {k: Secret(v) for k, v in server.items() if k in ("master_key", "metrics_token")}
    return msgspec.structs.replace(config, server=ServerConfig(port=0, **{**server, **secrets}))


async def metrics_status(gw: RunningGateway, key: str | None) -> int:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gw.url}/metrics", headers=headers) as response,
    ):
        if response.status == 200:
            assert "turnout_" in await response.text()
        else:
            assert "error" in msgspec.json.decode(await response.read())
        return response.status


async def test_metrics_need_the_master_key_when_one_is_set() -> None:
    async with running_gateway(with_server(master_key=MASTER)) as gw:
        assert await metrics_status(gw, None) == 401
        assert await metrics_status(gw, "sk-wrong") == 401
        assert await metrics_status(gw, MASTER) == 200


async def test_a_metrics_token_reads_metrics_and_nothing_else() -> None:
    async with running_gateway(with_server(master_key=MASTER, metrics_token=SCRAPER)) as gw:
        assert await metrics_status(gw, None) == 401
        assert await metrics_status(gw, SCRAPER) == 200
        assert await metrics_status(gw, MASTER) == 200
        async with aiohttp.ClientSession() as session:
            headers = {"authorization": f"Bearer {SCRAPER}"}
            async with session.get(f"{gw.url}/v1/models", headers=headers) as models:
                assert models.status == 401


async def test_a_metrics_token_alone_guards_metrics_of_an_open_gateway() -> None:
    async with running_gateway(with_server(metrics_token=SCRAPER)) as gw:
        assert await metrics_status(gw, None) == 401
        assert await metrics_status(gw, SCRAPER) == 200


async def test_metrics_public_leaves_them_open_despite_the_master_key() -> None:
    async with running_gateway(with_server(master_key=MASTER, metrics_public=True)) as gw:
        assert await metrics_status(gw, None) == 200


def test_an_empty_metrics_token_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="metrics_token must not be empty"):
        load_config(_write(tmp_path / "turnout.yaml", metrics_token='""'))


def _write(path: Path, **server: Any) -> Path:
    settings = {"port": 4000, "master_key": MASTER, **server}
    lines = "".join(f"  {name}: {value}\n" for name, value in settings.items())
    path.write_text(
        "server:\n"
        + lines
        + "model_list:\n  - model_name: chat\n    provider: simulated\n    model: a\n"
    )
    return path


async def _reload(gw: RunningGateway) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gw.url}/admin/reload", headers={"authorization": f"Bearer {MASTER}"}
        ) as response,
    ):
        assert response.status == 200
        answer: dict[str, Any] = msgspec.json.decode(await response.read())
        return answer


async def test_a_reload_applies_server_settings_live_and_names_those_needing_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="turnout.gateway")
    path = _write(tmp_path / "turnout.yaml", max_body_bytes=5000, header_timeout=30)
    async with running_gateway(load_config(path)) as gw:
        async with connection(gw) as (reader, writer):
            writer.write(request(body=b" " * 3000 + b"{}", Authorization=f"Bearer {MASTER}"))
            status, _, _ = await read_response(reader)
            assert status == 400  # under the limit: parsed (and found wanting)

        _write(
            tmp_path / "turnout.yaml",
            port=4001,
            max_body_bytes=1000,
            header_timeout=0.3,
            metrics_public="true",
        )
        answer = await _reload(gw)
        assert answer["restart_required"] == ["server.port"]
        assert set(answer["applied"]) == {
            "server.max_body_bytes",
            "server.header_timeout",
            "server.metrics_public",
        }
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("server.port" in line and "restart" in line for line in warnings)

        async with connection(gw) as (reader, writer):
            writer.write(request(body=b" " * 3000 + b"{}", Authorization=f"Bearer {MASTER}"))
            status, _, body = await read_response(reader)
            assert status == 413
            assert "limit of 1000 bytes" in msgspec.json.decode(body)["error"]["message"]
        assert await metrics_status(gw, None) == 200
        async with connection(gw) as (reader, _):
            _, received = await closed_after(reader)
            assert received == b""

        # The running port is still the old one: the next reload says so again.
        again = await _reload(gw)
        assert again["restart_required"] == ["server.port"]
        assert again["applied"] == []
