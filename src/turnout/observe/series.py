"""Counters, gauges and histograms as plain numbers, exposed through prometheus_client.

prometheus_client's own metric objects take a lock on every increment, so that threads can share
them. The gateway updates its metrics from one event loop, several times per request, and that
lock was a measurable share of its CPU. These series keep plain floats; a collector hands them to
prometheus_client's exposition as metric families when ``/metrics`` is scraped, so the text
format (names, ``_total``, buckets, escaping) is still prometheus_client's.

The same families serve a gateway of several worker processes: given a `Shared` sink (see
`turnout.observe.multiprocess`), each child also writes its number through to this worker's file
in the gateway's metrics directory, and a scrape merges every worker's files. The definitions
(names, help, labels) are one list either way.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar, Literal, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

#: prometheus_client's float format for bucket bounds (untyped there).
_go_float: Callable[[float], str] = floatToGoString


class Value:
    __slots__ = ("labels", "value")

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class Buckets:
    __slots__ = ("bounds", "counts", "labels", "total")

    def __init__(self, labels: list[str], bounds: Sequence[float]) -> None:
        self.labels = labels
        self.bounds = bounds
        #: One count per bound, plus one for +Inf; not cumulative (summed when collected).
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


#: How a gauge's values of several workers merge into one (prometheus_client's multiprocess
#: modes; the ``live`` ones forget a worker once it has exited).
GaugeMode = Literal["livesum", "livemax", "livemin", "sum", "max", "min"]


class Shared(Protocol):
    """Where the children of a multi-worker gateway's families write through to."""

    def value(self, family: _Family, labels: list[str]) -> Value: ...

    def buckets(self, family: Histogram, labels: list[str]) -> Buckets: ...

    def collect(self, series: Series) -> Iterator[Metric]: ...


class _Family:
    """One metric: its labelled children, created on first use."""

    __slots__ = ("children", "documentation", "labelnames", "name", "series")
    #: prometheus_client's type name, which also names its multiprocess files.
    kind: ClassVar[str] = "counter"

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: Series
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.children: dict[tuple[object, ...], Value | Buckets] = {}
        self.series = registry
        registry.families.append(self)

    def remove(self, *values: object) -> None:
        self.children.pop(values, None)

    def family(self) -> Metric:
        raise NotImplementedError


class Counter(_Family):
    def labels(self, *values: object) -> Value:
        child = self.children.get(values)
        if child is None:
            labels = [str(v) for v in values]
            shared = self.series.shared
            child = Value(labels) if shared is None else shared.value(self, labels)
            self.children[values] = child
        assert isinstance(child, Value)
        return child

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for child in self.children.values():
            assert isinstance(child, Value)
            family.add_metric(child.labels, child.value)
        return family


class Gauge(Counter):
    __slots__ = ("mode", "state")
    kind: ClassVar[str] = "gauge"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: Series,
        mode: GaugeMode,
        state: bool = False,
    ) -> None:
        super().__init__(name, documentation, labelnames, registry)
        #: How workers' values merge: a gauge of one process has no single right merge.
        self.mode = mode
        #: Whether the gauge mirrors routing state (a deployment's ejection): when that state
        #: is shared by every worker, the latest value written by any worker is the true one.
        self.state = state

    def remove(self, *values: object) -> None:
        child = self.children.pop(values, None)
        if isinstance(child, Value):
            child.set(0.0)  # a worker's file keeps the key: it no longer counts in a merge

    def family(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for child in self.children.values():
            assert isinstance(child, Value)
            family.add_metric(child.labels, child.value)
        return family


class Histogram(_Family):
    __slots__ = ("bounds",)
    kind: ClassVar[str] = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: Series,
        buckets: Sequence[float],
    ) -> None:
        super().__init__(name, documentation, labelnames, registry)
        self.bounds = tuple(buckets)

    def labels(self, *values: object) -> Buckets:
        child = self.children.get(values)
        if child is None:
            labels = [str(v) for v in values]
            shared = self.series.shared
            child = Buckets(labels, self.bounds) if shared is None else shared.buckets(self, labels)
            self.children[values] = child
        assert isinstance(child, Buckets)
        return child

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for child in self.children.values():
            assert isinstance(child, Buckets)
            running = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip([*self.bounds, float("inf")], child.counts, strict=True):
                running += count
                # Go's float format, as prometheus_client and the workers' files write it
                # (``1.048576e+06``), so a bound reads the same with one worker or several.
                buckets.append((_go_float(bound), running))
            family.add_metric(child.labels, buckets, child.total)
        return family


class Series(Collector):
    """The families of one gateway, collected into its own registry.

    With `shared`, children write through to the worker's files and a scrape collects what
    every worker wrote, merged; without, they are this process's plain numbers.
    """

    def __init__(self, shared: Shared | None = None) -> None:
        self.families: list[_Family] = []
        self.shared = shared
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        if self.shared is not None:
            yield from self.shared.collect(self)
            return
        for family in self.families:
            yield family.family()
