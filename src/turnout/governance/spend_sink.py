"""Where the request path hands each request's spend log row: the seam between the gateway,
which knows what a request consumed, and the writer that makes the row durable.

The request path only submits; batching, retries and flushing on shutdown are the writer's job.
`submit` is awaited so that a full queue slows the request path down (back-pressure) rather
than dropping a row: spend logs are billing data.
"""

from __future__ import annotations

from typing import Protocol

from turnout.governance.records import SpendRow


class SpendSink(Protocol):
    """Takes one row per finished request, keyed by its request id (idempotent downstream)."""

    def offer(self, row: SpendRow) -> bool:
        """Queue `row` now if there is room, without waiting (True); False when it could not
        be taken at once (the caller then awaits `submit`). The cheap path of a request whose
        end needs nothing else awaited."""
        ...

    async def submit(self, row: SpendRow) -> None:
        """Queue `row` for writing; waits only while the queue is full. Never raises for a
        store failure: the writer retries until the row is written or the gateway stops."""
        ...
