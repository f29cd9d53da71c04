"""SIGTERM to `turnout serve` (one worker, and the parent of two) writes every queued spend log
row before the process exits.

The rows reach the writers the way rows an earlier stop could not write do: spilled files in
the spill directory, which each worker claims at start and queues (requests queue theirs the
same way; the writer does not tell the two apart, and these rows are known before the process
starts). The batch wait is set far longer than the test, so the rows are still queued when the
signal comes: only the flush on shutdown can write them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serve_process import serving, stop
from turnout.governance import SpendRow
from turnout.governance.spend_spill import SpillDir

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def _rows(start: int, count: int) -> list[SpendRow]:
    return [
        SpendRow(
            request_id=f"req-{index:05d}",
            api_key="b" * 64,
            model_group="chat",
            model="gpt-4o-mini",
            provider="openai",
            spend=1_000 + index,
            start_time=T0 + timedelta(seconds=index),
            end_time=T0 + timedelta(seconds=index + 1),
        )
        for index in range(start, start + count)
    ]


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.json"
    path.write_text(
        json.dumps(
            {
                "server": {"master_key": "sk-master-flush-test", "shutdown_timeout": 5},
                "store": {
                    "url": f"sqlite:///{tmp_path / 'turnout.db'}",
                    "spend_batch_ms": 300_000,
                    "spend_batch_size": 10_000,
                    "spend_spill_dir": str(tmp_path / "spill"),
                },
                "model_list": [
                    {
                        "model_name": "chat",
                        "provider": "openai-compatible",
                        "model": "gpt-4o-mini",
                        "base_url": "http://127.0.0.1:9/v1",
                        "api_key": "sk-fake",
                    }
                ],
            }
        )
    )
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _until_claimed(spill: Path, files: int) -> None:
    def claimed() -> bool:
        left = list(spill.glob("spend-*"))
        return not left and len(list(spill.glob("claimed-*"))) == files

    while True:
        if claimed():
            return
        await asyncio.sleep(0.05)


def _stored(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        found = connection.execute("SELECT request_id FROM turnout_spend_logs").fetchall()
    return sorted(request_id for (request_id,) in found)


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_writes_every_queued_spend_row_before_exiting(
    tmp_path: Path, workers: int
) -> None:
    spill = SpillDir(tmp_path / "spill")
    rows = _rows(0, 40) + _rows(40, 40)
    spill.spill(rows[:40])
    spill.spill(rows[40:])
    args = ["--config", str(_config(tmp_path))]
    # Several workers share a fixed port (SO_REUSEPORT); one may take any.
    args += (
        ["--port", str(_free_port()), "--workers", str(workers)] if workers > 1 else ["--port", "0"]
    )
    async with serving(*args, listeners=workers, within=60) as (process, _, log):
        # Every spilled file is claimed (its rows queued in a worker), none written yet.
        async with asyncio.timeout(60):
            await _until_claimed(tmp_path / "spill", files=2)
        assert _stored(tmp_path / "turnout.db") == []
        assert await stop(process, within=60) == 0, "".join(log)
    assert _stored(tmp_path / "turnout.db") == sorted(row.request_id for row in rows)
    assert list((tmp_path / "spill").iterdir()) == []
    assert "could not be written" not in "".join(log)
