"""The spend-log writer on real stores: batches, back-pressure, retries that never double a row,
a database connection killed under load, and rows spilled at shutdown then written at start.

SQLite and PostgreSQL through the `kit` fixture (a file of the test's own; a database of the
test's own). Conditions are waited on with generous bounds; nothing depends on how long a write
takes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest

from governance_stores import StoreKit, terminate_connections
from turnout.config.store import StoreConfig
from turnout.governance import SpendRow
from turnout.governance.spend_spill import SpillDir
from turnout.governance.spend_writer import Count, SpendWriter
from turnout.governance.sql import SqlGovernanceStore, open_runner, rejects_rows
from turnout.governance.sql import engine as engine_module

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def row(index: int, spend: int = 1_000) -> SpendRow:
    at = T0 + timedelta(milliseconds=index)
    return SpendRow(
        request_id=f"req-{index:06d}",
        api_key="a" * 64,
        model_group="chat",
        model="gpt-4o-mini",
        provider="openai",
        prompt_tokens=10,
        completion_tokens=5,
        spend=spend + index % 7,
        start_time=at,
        end_time=at + timedelta(seconds=1),
    )


async def wait_until(predicate: Callable[[], bool], bound: float = 60.0) -> None:
    deadline = time.monotonic() + bound
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def written(writer: SpendWriter) -> float:
    tally = writer.tallies.written
    assert isinstance(tally, Count)
    return tally.value


def tally(writer: SpendWriter, name: str) -> float:
    value = getattr(writer.tallies, name)
    assert isinstance(value, Count)
    return float(value.value)


async def exactly_once(store: SqlGovernanceStore, rows: Sequence[SpendRow]) -> None:
    """Every row stored once, and counted once in the daily aggregate."""
    stored = await store.spend_logs(limit=len(rows) + 10)
    assert sorted(r.request_id for r in stored) == sorted(r.request_id for r in rows)
    days = await store.daily_spend()
    assert sum(day.api_requests for day in days) == len(rows)
    assert await store.total_spend() == sum(r.spend for r in rows)


async def test_rows_go_in_batches_of_the_configured_size(store: SqlGovernanceStore) -> None:
    batches: list[int] = []

    async def write(rows: Sequence[SpendRow]) -> int:
        batches.append(len(rows))
        return await store.write_spend(rows)

    writer = SpendWriter(write, batch_size=10, batch_wait=300.0)
    writer.start()
    rows = [row(i) for i in range(25)]
    for each in rows:
        await writer.submit(each)
    await wait_until(lambda: written(writer) == 20)
    # The last five wait for more rows (the batch wait is long) until the writer closes.
    assert batches == [10, 10]
    assert len(await store.spend_logs()) == 20
    await writer.aclose()
    assert batches == [10, 10, 5]
    await exactly_once(store, rows)


async def test_a_full_queue_makes_submit_wait_and_drops_nothing(store: SqlGovernanceStore) -> None:
    gate = asyncio.Event()

    async def write(rows: Sequence[SpendRow]) -> int:
        await gate.wait()
        return await store.write_spend(rows)

    writer = SpendWriter(write, queue_size=2, batch_size=1, batch_wait=0)
    writer.start()
    rows = [row(i) for i in range(6)]
    await writer.submit(rows[0])
    await wait_until(lambda: writer.depth == 0)  # taken: its write waits at the gate
    await writer.submit(rows[1])
    await writer.submit(rows[2])
    blocked = asyncio.ensure_future(writer.submit(rows[3]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not blocked.done() and writer.depth == 2
    gate.set()
    await blocked
    for each in rows[4:]:
        await writer.submit(each)
    await writer.aclose()
    await exactly_once(store, rows)


async def test_a_batch_whose_answer_was_lost_is_retried_without_doubling(
    store: SqlGovernanceStore,
) -> None:
    failures = 0

    async def write(rows: Sequence[SpendRow]) -> int:
        nonlocal failures
        stored = await store.write_spend(rows)
        if failures < 2:
            failures += 1  # committed, but the writer never hears so
            raise ConnectionResetError("connection lost during commit")
        return stored

    writer = SpendWriter(write, batch_size=50, batch_wait=0.05, backoff=(0.01, 0.05))
    writer.start()
    rows = [row(i) for i in range(40)]
    for each in rows:
        await writer.submit(each)
    await writer.aclose()
    assert tally(writer, "failures") == 2 and tally(writer, "retries") == 2
    await exactly_once(store, rows)


async def _stream(writer: SpendWriter, rows: Sequence[SpendRow]) -> None:
    for index, each in enumerate(rows):
        await writer.submit(each)
        if index % 20 == 0:
            await asyncio.sleep(0.001)  # rows arrive over time, as requests end


@pytest.mark.services
async def test_killing_the_writers_postgres_connections_under_load_loses_and_doubles_nothing(
    postgres_kit: StoreKit,
) -> None:
    store = await postgres_kit.open()
    database = urlsplit(postgres_kit.url).path.lstrip("/")
    writer = SpendWriter(store.write_spend, batch_size=25, batch_wait=0.01, backoff=(0.01, 0.2))
    writer.start()
    rows = [row(i) for i in range(3000)]
    streaming = asyncio.create_task(_stream(writer, rows))
    killed = 0
    for mark in (300, 1000, 1800):
        await wait_until(lambda mark=mark: written(writer) >= mark)  # type: ignore[misc]
        killed += await terminate_connections(database)
    await streaming
    await writer.aclose()
    assert killed >= 3  # the writer's backends were there to kill, each time
    await exactly_once(store, rows)


async def test_sqlite_writes_locked_out_for_a_while_are_retried_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short busy timeout: a locked database fails the writer's transaction at once (the
    # default waits 30 s for the lock), as a lost connection fails it on a server.
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT", 0.1)
    path = tmp_path / "turnout.db"
    kit = StoreKit("sqlite", f"sqlite:///{path}")
    try:
        store = await kit.open()
        writer = SpendWriter(store.write_spend, batch_size=25, batch_wait=0.01, backoff=(0.01, 0.1))
        writer.start()
        rows = [row(i) for i in range(1500)]
        streaming = asyncio.create_task(_stream(writer, rows))
        await wait_until(lambda: written(writer) >= 200)
        other = sqlite3.connect(path, timeout=30, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            await wait_until(lambda: tally(writer, "failures") >= 3)
        finally:
            other.execute("ROLLBACK")
            other.close()
        await streaming
        await writer.aclose()
        await exactly_once(store, rows)
    finally:
        await kit.close()


async def test_rows_that_cannot_be_written_by_shutdown_are_spilled_then_written_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT", 0.1)
    path = tmp_path / "turnout.db"
    spill = SpillDir(tmp_path / "spill")
    kit = StoreKit("sqlite", f"sqlite:///{path}")
    try:
        store = await kit.open()
        rows = [row(i) for i in range(120)]
        await store.write_spend(rows[:10])  # some were written before: never doubled
        other = sqlite3.connect(path, timeout=30, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            writer = SpendWriter(store.write_spend, batch_size=50, drain_timeout=0.5, spill=spill)
            writer.start()
            for each in rows:
                await writer.submit(each)
            await writer.aclose()
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert tally(writer, "spilled") == 120
        files = list((tmp_path / "spill").glob("spend-*.jsonl"))
        assert len(files) == 1
        assert len(await store.spend_logs()) == 10

        again = SpendWriter(store.write_spend, batch_size=50, spill=spill)
        again.start()
        await wait_until(lambda: written(again) == 120)
        await again.aclose()
        assert list((tmp_path / "spill").iterdir()) == []
        await exactly_once(store, rows)
    finally:
        await kit.close()


async def test_a_claim_left_by_a_process_that_died_is_claimed_again(tmp_path: Path) -> None:
    spill = SpillDir(tmp_path)
    written_file = spill.spill([row(1), row(2)])
    dead = tmp_path / f"claimed-999999999-{written_file.name}"
    written_file.rename(dead)  # no process has that id
    (tmp_path / "spend-torn.jsonl").write_bytes(b'{"request_id": "req-x"')  # cut short
    claimed = spill.claim()
    rows: list[Any] = [r.request_id for _, found in claimed for r in found]
    assert rows == ["req-000001", "req-000002"]
    assert all(path.name.startswith("claimed-") for path, _ in claimed)


def _refused_rows(directory: Path) -> list[SpendRow]:
    (kept,) = directory.glob("refused-*.jsonl")
    return [msgspec.json.decode(line, type=SpendRow) for line in kept.read_bytes().splitlines()]


@pytest.mark.services
async def test_a_row_the_database_refuses_is_set_aside_and_the_rest_written(
    postgres_kit: StoreKit, tmp_path: Path
) -> None:
    store = await postgres_kit.open()
    spill = SpillDir(tmp_path)
    writer = SpendWriter(store.write_spend, batch_size=16, spill=spill, rejects=rejects_rows)
    writer.start()
    rows = [row(i) for i in range(40)]
    refused = msgspec.structs.replace(rows[13], provider="p" * 100)  # longer than its column
    for each in [*rows[:13], refused, *rows[14:]]:
        await writer.submit(each)
    await writer.aclose()
    assert tally(writer, "rejected") == 1
    written_rows = [r for r in rows if r.request_id != refused.request_id]
    await exactly_once(store, written_rows)
    assert _refused_rows(tmp_path) == [refused]
    assert spill.claim() == []  # refused rows are not read back at start


async def test_an_outage_is_logged_once_and_never_with_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: every write fails with the driver's connection error.
    config = StoreConfig(url="postgresql://turnout:s3cret-pw@127.0.0.1:1/spend")
    store = SqlGovernanceStore(open_runner(config))
    writer = SpendWriter(
        store.write_spend,
        backoff=(0.01, 0.02),
        drain_timeout=0.1,
        spill=SpillDir(tmp_path),
        batch_wait=0,
    )
    caplog.set_level("INFO", logger="turnout.governance")
    try:
        writer.start()
        await writer.submit(row(1))
        await wait_until(lambda: tally(writer, "failures") >= 5)
        await writer.aclose()
    finally:
        await store.aclose()
    outages = [r for r in caplog.records if "writing failed" in r.getMessage()]
    assert len(outages) == 1
    assert "s3cret-pw" not in caplog.text
    assert tally(writer, "spilled") == 1
