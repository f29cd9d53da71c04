"""Recent latencies of a model group, for quantile-based hedge delays."""

from __future__ import annotations


class LatencyWindow:
    """The last `size` samples in a ring; quantiles are recomputed every few new samples."""

    __slots__ = ("_cached", "_cached_at", "_count", "_next", "_samples", "_size")

    #: New samples between two quantile computations (a sort of `size` floats).
    REFRESH = 16

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._samples: list[float] = []
        self._next = 0
        self._count = 0
        self._cached: dict[float, float] = {}
        self._cached_at = -1

    def add(self, seconds: float) -> None:
        if len(self._samples) < self._size:
            self._samples.append(seconds)
        else:
            self._samples[self._next] = seconds
            self._next = (self._next + 1) % self._size
        self._count += 1

    def __len__(self) -> int:
        return len(self._samples)

    def quantile(self, q: float) -> float | None:
        """The `q` quantile (nearest rank) of the samples held, or None without samples."""
        if not self._samples:
            return None
        if self._count - self._cached_at >= self.REFRESH or self._cached_at < 0:
            self._cached = {}
            self._cached_at = self._count
        value = self._cached.get(q)
        if value is None:
            ordered = sorted(self._samples)
            rank = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))
            value = self._cached[q] = ordered[rank]
        return value
