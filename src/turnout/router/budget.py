"""Budgets: how many extra attempts (retries, fallback hops, hedges) the router may spend.

Extra attempts are what turns a provider's trouble into a storm: every failing request retried
twice triples the load on whatever is still up. A budget allows extra attempts only up to a share
of the requests seen over a sliding window (plus a small floor), as gRPC's retry throttling and
Finagle's retry budgets do. Counting is O(1): one bucket per second in a ring.
"""

from __future__ import annotations

import math


class WindowBudget:
    """Spends allowed while ``spent < ratio * requests + floor`` over the last `window` seconds."""

    __slots__ = ("_buckets", "_floor", "_ratio", "_requests", "_seconds", "_spent", "_stamp")

    def __init__(self, ratio: float, window: float, floor_per_second: float = 0.0) -> None:
        self._ratio = ratio
        self._seconds = max(1, math.ceil(window))
        self._floor = floor_per_second * self._seconds
        #: Per bucket: (requests, spent); `_stamp[i]` is the second bucket i holds.
        self._buckets = [[0, 0] for _ in range(self._seconds)]
        self._stamp = [-1] * self._seconds
        self._requests = 0
        self._spent = 0

    def _bucket(self, now: float) -> list[int]:
        second = int(now)
        index = second % self._seconds
        if self._stamp[index] != second:
            self._expire(second)
            self._stamp[index] = second
            bucket = self._buckets[index]
            self._requests -= bucket[0]
            self._spent -= bucket[1]
            bucket[0] = bucket[1] = 0
        return self._buckets[index]

    def _expire(self, second: int) -> None:
        """Drop buckets older than the window (after a quiet spell several may be stale)."""
        oldest = second - self._seconds
        for index, stamp in enumerate(self._stamp):
            if 0 <= stamp <= oldest:
                bucket = self._buckets[index]
                self._requests -= bucket[0]
                self._spent -= bucket[1]
                bucket[0] = bucket[1] = 0
                self._stamp[index] = -1

    def record_request(self, now: float) -> None:
        self._bucket(now)[0] += 1
        self._requests += 1

    def try_spend(self, now: float) -> bool:
        """Take one extra attempt from the budget if it allows; False when exhausted."""
        bucket = self._bucket(now)
        if self._spent + 1 > self._ratio * self._requests + self._floor:
            return False
        bucket[1] += 1
        self._spent += 1
        return True

    def counts(self, now: float) -> tuple[int, int]:
        """(requests, spent) over the window."""
        self._bucket(now)
        return self._requests, self._spent
