"""The simplest spend sink: each row written to the store on its own, off the request path.

`submit` starts a task that writes the row (`GovernanceStore.write_spend`, idempotent per
request id) and returns at once; `aclose` waits for the writes in flight, so that rows
submitted before shutdown are written. A row whose write fails (the store unreachable) is
logged by its request id and dropped: this sink does not retry.
"""

from __future__ import annotations

import asyncio
import logging

from turnout.gateway.store_link import StoreLink, StoreUnavailableError
from turnout.governance.records import SpendRow

logger = logging.getLogger("turnout.gateway")


class DirectSpendSink:
    """Writes each submitted row with one store call, in a background task."""

    def __init__(self, link: StoreLink) -> None:
        self._link = link
        self._pending: set[asyncio.Task[None]] = set()

    async def submit(self, row: SpendRow) -> None:
        task = asyncio.get_running_loop().create_task(self._write(row))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, row: SpendRow) -> None:
        try:
            await self._link.call(lambda store: store.write_spend([row]))
        except StoreUnavailableError:
            logger.warning("spend row %s not written: the store is unreachable", row.request_id)

    async def aclose(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
