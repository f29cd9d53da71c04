"""SQL ledger benchmark: the cost of one admission and settlement on SQLite and on PostgreSQL.

Run: ``python benchmarks/bench_sql_ledger.py`` (``--requests N`` per backend, default 2000;
``--concurrency C`` requests in flight, default 1 and 32; ``--postgres URL`` to include
PostgreSQL, default ``TURNOUT_TEST_POSTGRES_URL`` when set; ``--smoke`` for 50 requests, which
only checks that it runs). PostgreSQL runs in a database of its own, created and dropped here.

Each request is what a gateway asks of the ledger for a virtual key in a team: `admit` with
three budgets (key, team, user) and two limit scopes (the key's RPM, TPM and parallel limit, the
team's RPM), then `settle` with the real cost. Reported: the mean wall time of admit plus settle
one at a time (latency), and admissions per second with C in flight through one process's store
(throughput; SQLite writes take turns on one lock, PostgreSQL's on one row per scope).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from turnout.config.store import StoreConfig
from turnout.governance.ledger import Ask, Budget, Limits
from turnout.governance.sql import SqlLedger, open_store
from turnout.governance.sql.engine import store_url

ASK = Ask(
    cost=1_000,
    tokens=500,
    budgets=(
        Budget("key:bench", max=10**15),
        Budget("team:bench", max=10**15),
        Budget("user:bench", max=10**15),
    ),
    limits=(
        Limits("key:bench", rpm=10**9, tpm=10**12, parallel=10**6),
        Limits("team:bench", rpm=10**9),
    ),
)


async def _run(url: str, requests: int, concurrency: int) -> float:
    """Seconds for `requests` admit+settle pairs with `concurrency` in flight."""
    store = await open_store(StoreConfig(url=url, pool_size=max(4, concurrency)))
    ledger = SqlLedger(store.runner)
    try:
        for _ in range(20):  # warm: connections, statement caches
            await ledger.settle(await ledger.admit(ASK), 900, 400)
        left = requests

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                ticket = await ledger.admit(ASK)
                await ledger.settle(ticket, 900, 400)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started
    finally:
        await store.aclose()


async def _postgres_database(base: str) -> tuple[str, str]:
    name = f"turnout_bench_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(store_url(base), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}")), name


async def _drop(base: str, name: str) -> None:
    engine = create_async_engine(store_url(base), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--postgres", default=os.environ.get("TURNOUT_TEST_POSTGRES_URL"))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    requests = 50 if args.smoke else args.requests
    print(f"{requests} admit+settle per run (3 budgets, 2 limit scopes)\n")
    print("| backend | in flight | ms per admit+settle | admissions/s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as directory:
        targets: list[tuple[str, str, str | None]] = [
            ("sqlite", f"sqlite:///{Path(directory) / 'bench.db'}", None)
        ]
        if args.postgres:
            made, database = await _postgres_database(args.postgres)
            targets.append(("postgresql", made, database))
        try:
            for backend, url, _ in targets:
                for concurrency in args.concurrency:
                    seconds = await _run(url, requests, concurrency)
                    each = seconds / requests * 1000
                    print(f"| {backend} | {concurrency} | {each:.3f} | {requests / seconds:.0f} |")
        finally:
            for _, _, dropped in targets:
                if dropped is not None and args.postgres:
                    await _drop(args.postgres, dropped)


if __name__ == "__main__":
    asyncio.run(main())
