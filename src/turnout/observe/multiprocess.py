"""Metrics of a gateway of several worker processes: one exposition, whichever worker answers.

`turnout serve --workers N` runs N processes on one port, and a scrape reaches whichever one the
kernel hands the connection to. Each worker therefore writes every series through to its own
files in the gateway's private metrics directory, in prometheus_client's multiprocess format
(one memory-mapped file per worker and metric type, named ``<type>_<pid>.db``), and a scrape
merges the files of every worker, as prometheus_client's `MultiProcessCollector` does:

- counters and histograms are summed over every worker that ever ran in this gateway (a worker
  that has exited keeps its totals), so N requests spread over the workers read N from any one;
- each gauge merges by its own mode (`turnout.observe.series.GaugeMode`): in-flight attempts
  add up over live workers, a deployment's cooldown, phase and ejection count take the highest
  value any live worker holds (each worker has its own routing state: ejected by one is
  ejected). With `shared_state` (every worker reads one state store) those three take the
  value written last by any worker instead, since one worker may see an ejection begin and
  another see it end. The parent removes an exited worker's live gauges (`mark_process_dead`).

A write is one ``pack`` into a mapped page: no lock, no system call. Gauges show only the
series of deployments the answering worker has configured, so a reload that removes a
deployment removes its gauges from the merged view as it does in one process.
"""

from __future__ import annotations

import glob
import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.utils import floatToGoString

from turnout.observe.series import Buckets, Gauge, Histogram, Series, Value, _Family


class _File(Protocol):
    """What is used of prometheus_client's `MmapedDict` (which has no annotations)."""

    def read_value(self, key: str) -> tuple[float, float]: ...

    def write_value(self, key: str, value: float, timestamp: float) -> None: ...

    def close(self) -> None: ...


_open: Callable[[str], _File] = MmapedDict
_merge: Callable[[list[str]], Iterable[Metric]] = MultiProcessCollector.merge
_go_float: Callable[[float], str] = floatToGoString
_mark_dead: Callable[[int, str], None] = mark_process_dead


class SharedValue(Value):
    """A number that is also this worker's entry in its metrics file."""

    __slots__ = ("_file", "_key")

    def __init__(self, labels: list[str], file: _File, key: str, value: float) -> None:
        super().__init__(labels)
        self._file = file
        self._key = key
        self.set(value)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount
        self._file.write_value(self._key, self.value, 0.0)

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount
        self._file.write_value(self._key, self.value, 0.0)

    def set(self, value: float) -> None:
        self.value = value
        self._file.write_value(self._key, value, 0.0)


class StampedValue(SharedValue):
    """A gauge merged by the latest write: each write carries its wall-clock time."""

    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        self.set(self.value + amount)

    def dec(self, amount: float = 1.0) -> None:
        self.set(self.value - amount)

    def set(self, value: float) -> None:
        self.value = value
        self._file.write_value(self._key, value, time.time())


class SharedBuckets(Buckets):
    """A histogram child whose bucket counts and sum are also entries in the worker's file.

    Buckets are stored per bucket, not cumulative, as prometheus_client's multiprocess
    histograms are: the scrape sums them over workers and accumulates them.
    """

    __slots__ = ("_file", "_keys", "_sum")

    def __init__(
        self,
        labels: list[str],
        bounds: tuple[float, ...],
        file: _File,
        keys: list[str],
        sum_key: str,
    ) -> None:
        super().__init__(labels, bounds)
        self._file = file
        self._keys = keys
        self._sum = sum_key
        for index, key in enumerate(keys):
            self.counts[index] = int(file.read_value(key)[0])
        self.total = file.read_value(sum_key)[0]

    def observe(self, value: float) -> None:
        index = bisect_left(self.bounds, value)
        count = self.counts[index] = self.counts[index] + 1
        self.total += value
        file = self._file
        file.write_value(self._keys[index], count, 0.0)
        file.write_value(self._sum, self.total, 0.0)


class WorkerFiles:
    """This worker's metric files in a gateway's metrics directory; implements `Shared`.

    `worker` names the files (the process id unless a test gives another): two live workers
    must never share one. `shared_state`: every worker routes on one shared state store.
    """

    def __init__(
        self, directory: str, worker: int | None = None, *, shared_state: bool = False
    ) -> None:
        if not os.path.isdir(directory):
            raise ValueError(f"metrics directory {directory!r} does not exist")
        self.directory = directory
        self.shared_state = shared_state
        self.worker = os.getpid() if worker is None else worker
        self._files: dict[str, _File] = {}

    def _file(self, prefix: str) -> _File:
        file = self._files.get(prefix)
        if file is None:
            path = os.path.join(self.directory, f"{prefix}_{self.worker}.db")
            file = self._files[prefix] = _open(path)
        return file

    def value(self, family: _Family, labels: list[str]) -> Value:
        if isinstance(family, Gauge):
            latest = family.state and self.shared_state
            file = self._file(f"gauge_{'livemostrecent' if latest else family.mode}")
            key = mmap_key(
                family.name, family.name, family.labelnames, labels, family.documentation
            )
            # A gauge made (again) starts at 0, as a new child does in one process.
            return (StampedValue if latest else SharedValue)(labels, file, key, 0.0)
        file = self._file(family.kind)
        key = mmap_key(
            family.name, family.name + "_total", family.labelnames, labels, family.documentation
        )
        return SharedValue(labels, file, key, file.read_value(key)[0])

    def buckets(self, family: Histogram, labels: list[str]) -> Buckets:
        file = self._file(family.kind)
        names = [*family.labelnames, "le"]
        keys = [
            mmap_key(
                family.name,
                family.name + "_bucket",
                names,
                [*labels, _go_float(le)],
                family.documentation,
            )
            for le in (*family.bounds, float("inf"))
        ]
        sum_key = mmap_key(
            family.name, family.name + "_sum", family.labelnames, labels, family.documentation
        )
        return SharedBuckets(labels, family.bounds, file, keys, sum_key)

    def collect(self, series: Series) -> Iterator[Metric]:
        """Every worker's files, merged; gauges limited to this worker's configured series."""
        files = glob.glob(os.path.join(self.directory, "*.db"))
        merged = {metric.name: metric for metric in _merge(files)}
        for family in series.families:
            metric = merged.get(family.name)
            if metric is None:
                continue
            if isinstance(family, Gauge):
                names = family.labelnames
                present = {tuple(child.labels) for child in family.children.values()}
                metric.samples = [
                    sample
                    for sample in metric.samples
                    if tuple(sample.labels.get(name, "") for name in names) in present
                ]
            metric.documentation = family.documentation
            yield metric

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()


def forget_worker(directory: str, worker: int) -> None:
    """A worker has exited: drop its live gauges (its counters and histograms stay counted)."""
    _mark_dead(worker, directory)
