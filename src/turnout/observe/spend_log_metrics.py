"""The spend-log writer's metrics: its queue, the rows it wrote, its retries and its spills.

Plain families without labels: nothing about a row (its key, its team) reaches a metric, and
no error text does either, so no secret can. The gateway hands their children to the writer
(`turnout.governance.spend_writer.WriterTallies`), which updates them as it works: in a gateway
of several workers each worker writes its own, and a scrape adds them up.
"""

from __future__ import annotations

from turnout.observe.series import Counter, Gauge, Series


class SpendLogSeries:
    """The writer's families in a gateway's registry."""

    def __init__(self, registry: Series) -> None:
        self.queued = Gauge(
            "turnout_spend_log_queued_rows",
            "Spend log rows waiting to be written (a queue that stays full slows requests).",
            (),
            registry,
            mode="livesum",
        )
        self.written = Counter(
            "turnout_spend_log_rows_written",
            "Spend log rows written to the store (a row written twice is counted twice).",
            (),
            registry,
        )
        self.failures = Counter(
            "turnout_spend_log_write_failures",
            "Attempts to write a batch of spend log rows that failed (each is retried).",
            (),
            registry,
        )
        self.retries = Counter(
            "turnout_spend_log_write_retries",
            "Batches of spend log rows written again after a failure.",
            (),
            registry,
        )
        self.spilled = Counter(
            "turnout_spend_log_rows_spilled",
            "Spend log rows kept in a local file at shutdown because the store could not take "
            "them; the next start writes them.",
            (),
            registry,
        )
        self.rejected = Counter(
            "turnout_spend_log_rows_refused",
            "Spend log rows the store refused for their content (set aside in a file of the "
            "spill directory).",
            (),
            registry,
        )
