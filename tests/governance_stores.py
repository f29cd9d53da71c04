"""Governance stores for the contract suite: a real SQLite file, and a real PostgreSQL database.

Loaded as a pytest plugin by the root conftest. Each PostgreSQL test gets a database of its own,
created from ``TURNOUT_TEST_POSTGRES_URL`` and dropped afterwards, so tests never see each
other's rows and may run against a server other tests use too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services import missing_service
from turnout.config.store import StoreConfig
from turnout.governance.sql import SqlGovernanceStore, open_store
from turnout.governance.sql.engine import store_url

#: Where the clock of every store in a test starts: a Tuesday, one minute before a month ends.
START = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)


class ManualNow:
    """The stores' wall clock, moved by the test."""

    def __init__(self, moment: datetime = START) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


class StoreKit:
    """Opens stores on one test database (several, for races between engines)."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url
        self.now = ManualNow()
        self.opened: list[SqlGovernanceStore] = []

    async def open(self, **config: Any) -> SqlGovernanceStore:
        store = await open_store(StoreConfig(url=self.url, **config), now=self.now)
        self.opened.append(store)
        return store

    async def close(self) -> None:
        for store in self.opened:
            await store.aclose()


def postgres_url() -> str:
    url = os.environ.get("TURNOUT_TEST_POSTGRES_URL")
    if not url:
        missing_service("TURNOUT_TEST_POSTGRES_URL is not set")
        raise AssertionError("unreachable")
    return url


async def _admin(url: str, statement: str, **params: object) -> int:
    """Run `statement` on the server outside any transaction; the rows it returned."""
    engine: AsyncEngine = create_async_engine(store_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(statement), params)
            return len(result.all()) if result.returns_rows else 0
    except (OSError, DBAPIError) as exc:
        missing_service(f"PostgreSQL at TURNOUT_TEST_POSTGRES_URL is unusable: {exc}")
        raise AssertionError("unreachable") from None
    finally:
        await engine.dispose()


async def terminate_connections(database: str) -> int:
    """Close every server connection to `database` (as a restart would); how many."""
    return await _admin(
        postgres_url(),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = :name AND pid <> pg_backend_pid()",
        name=database,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
async def kit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreKit]:
    if request.param == "postgresql":
        async with _postgres_kit() as made:
            yield made
        return
    made = StoreKit("sqlite", f"sqlite:///{tmp_path / 'store' / 'turnout.db'}")
    yield made
    await made.close()


@pytest.fixture
async def postgres_kit() -> AsyncIterator[StoreKit]:
    """For what only a database server can show (its connections closed under the store)."""
    async with _postgres_kit() as made:
        yield made


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """The URL of a PostgreSQL database of the caller's own, dropped afterwards."""
    async with _postgres_kit() as made:
        yield made.url


@asynccontextmanager
async def _postgres_kit() -> AsyncIterator[StoreKit]:
    base = postgres_url()
    name = f"turnout_test_{uuid.uuid4().hex[:16]}"
    await _admin(base, f'CREATE DATABASE "{name}"')
    made = StoreKit("postgresql", _with_database(base, name))
    try:
        yield made
    finally:
        await made.close()
        await _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
async def store(kit: StoreKit) -> SqlGovernanceStore:
    return await kit.open()
