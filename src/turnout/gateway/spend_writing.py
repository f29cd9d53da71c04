"""The gateway's spend-log writer: made when the store is on, closed after requests drain.

One `SpendWriter` per process writes through the process's `StoreLink`, so a store that is
still opening (or down) only delays rows. `Gateway.close` closes it after the server has
finished the requests in flight (their rows are queued by then) and before the store closes,
so that SIGTERM, to one worker or to the parent of several, writes every queued row first.
"""

from __future__ import annotations

from turnout.config.store import StoreConfig
from turnout.gateway.store_link import StoreLink
from turnout.governance.spend_spill import SpillDir
from turnout.governance.spend_writer import SpendWriter, WriterTallies
from turnout.governance.sql import rejects_rows
from turnout.observe.spend_log_metrics import SpendLogSeries


def spend_writer_for(config: StoreConfig, link: StoreLink, series: SpendLogSeries) -> SpendWriter:
    """A writer for the configured queue, batches and drain, reporting through `series`."""
    return SpendWriter(
        link.write_spend,
        queue_size=config.spend_queue_size,
        batch_size=config.spend_batch_size,
        batch_wait=config.spend_batch_ms / 1000,
        drain_timeout=config.spend_drain_timeout,
        spill=SpillDir(config.spend_spill_dir),
        rejects=rejects_rows,
        tallies=WriterTallies(
            queued=series.queued.labels(),
            written=series.written.labels(),
            failures=series.failures.labels(),
            retries=series.retries.labels(),
            spilled=series.spilled.labels(),
            rejected=series.rejected.labels(),
        ),
    )
