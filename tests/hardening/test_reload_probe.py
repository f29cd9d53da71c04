"""A reload that changes ``max_body_bytes`` either applies it or says plainly that it needs a
restart; whichever it does, a 413 quotes the limit actually in force.

A real `turnout serve` process reads its config file; the test rewrites the file and asks for
``POST /admin/reload`` with the master key, as an operator would, then sends bodies between the
old and the new limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from probe_kit import ServedProcess, fake_openai_process, openai_error, turnout_serve, write_config

MASTER_KEY = "sk-master-reload-probe-3Vq"
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
SMALL = 4096
LARGE = 16384
#: A body between the two limits.
BETWEEN = 9000


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServedProcess]:
    with fake_openai_process() as process:
        yield process


def _config(path: Path, upstream: ServedProcess, limit: int) -> Path:
    server = {"master_key": MASTER_KEY, "max_body_bytes": limit}
    return write_config(path, upstream.url, server=server)


def _body_of(size: int) -> bytes:
    """A valid chat request of exactly `size` bytes."""
    shell = json.dumps({"model": "chat", "messages": [{"role": "user", "content": ""}]})
    padding = size - len(shell)
    assert padding > 0
    return json.dumps(
        {"model": "chat", "messages": [{"role": "user", "content": "x" * padding}]}
    ).encode()


async def _post_chat(url: str, size: int) -> tuple[int, bytes]:
    body = _body_of(size)
    assert len(body) == size
    headers = {**AUTH, "content-type": "application/json"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
        http.post(f"{url}/v1/chat/completions", data=body, headers=headers) as answer,
    ):
        return answer.status, await answer.read()


async def _reload(url: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
        http.post(f"{url}/admin/reload", headers=AUTH) as answer,
    ):
        return answer.status, await answer.json(content_type=None)


def _says_restart(summary: Any) -> bool:
    """Whether the reload's answer says plainly that the change needs a restart."""
    waiting = summary.get("restart_required", []) if isinstance(summary, dict) else []
    return any("max_body_bytes" in str(name) for name in waiting)


def _quotes(message: str, limit: int) -> bool:
    renderings = {str(limit), f"{limit:,}", f"{limit / 1024:g} KiB", f"{limit / 1024:g}KiB"}
    return any(rendering in message for rendering in renderings)


def _assert_413_quotes(status: int, body: bytes, limit: int) -> None:
    assert status == 413, body[:300]
    message = openai_error(body)["message"]
    assert _quotes(message, limit), (
        f"the 413 does not quote the limit in force ({limit}): {message}"
    )


async def test_the_413_quotes_the_configured_limit(tmp_path: Path, upstream: ServedProcess) -> None:
    config = _config(tmp_path / "turnout.yaml", upstream, SMALL)
    with turnout_serve(config) as gateway:
        status, body = await _post_chat(gateway.url, BETWEEN)
    _assert_413_quotes(status, body, SMALL)


@pytest.mark.parametrize(
    ("before", "after"), [(SMALL, LARGE), (LARGE, SMALL)], ids=["raised", "lowered"]
)
async def test_a_reloaded_body_limit_is_applied_or_said_to_need_a_restart(
    tmp_path: Path, upstream: ServedProcess, before: int, after: int
) -> None:
    config = _config(tmp_path / "turnout.yaml", upstream, before)
    with turnout_serve(config) as gateway:
        status, body = await _post_chat(gateway.url, BETWEEN)
        assert (status == 413) == (before < BETWEEN), body[:300]
        _config(config, upstream, after)
        reload_status, summary = await _reload(gateway.url)
        assert reload_status == 200, summary
        # The address came from the command line (--host, --port): unchanged by the file.
        assert "restart_required" not in summary, summary
        status, body = await _post_chat(gateway.url, BETWEEN)
        too_large_status, too_large = await _post_chat(gateway.url, LARGE + 1000)
    in_force = before if _says_restart(summary) else after
    if in_force < BETWEEN:
        _assert_413_quotes(status, body, in_force)
    else:
        assert status == 200, (
            f"a {BETWEEN}-byte body under the limit in force ({in_force}) was refused after a "
            f"reload that answered {summary}: {body[:300]!r}"
        )
    _assert_413_quotes(too_large_status, too_large, in_force)
