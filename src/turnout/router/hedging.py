"""Hedged requests: which groups hedge, after how long, and how often.

When a group's first attempt is slow, a duplicate races it on another deployment
(`turnout.router.race`). The delay is fixed or a quantile of the group's recent latencies
(times to first token for streams), and a budget caps duplicates to a share of the group's
requests.
"""

from __future__ import annotations

from collections.abc import Mapping

from turnout.config.router import HedgeConfig
from turnout.router.budget import WindowBudget
from turnout.router.latency_window import LatencyWindow


class _GroupHedging:
    __slots__ = ("budget", "config", "streams", "whole")

    def __init__(self, config: HedgeConfig) -> None:
        self.config = config
        self.budget = WindowBudget(config.budget, config.window)
        #: Latencies of whole answers, and times to first token of streams.
        self.whole = LatencyWindow()
        self.streams = LatencyWindow()


class Hedger:
    """Per-group hedging state; groups without a hedging config cost one dict lookup."""

    __slots__ = ("_default", "_groups", "active")

    def __init__(self, configs: Mapping[str, HedgeConfig]) -> None:
        self._groups = {name: _GroupHedging(c) for name, c in configs.items() if name != "*"}
        default = configs.get("*")
        self._default = default
        #: Whether any group hedges at all (when not, the hot path skips hedging entirely).
        self.active = bool(configs)

    def _group(self, group: str) -> _GroupHedging | None:
        state = self._groups.get(group)
        if state is None and self._default is not None:
            state = self._groups[group] = _GroupHedging(self._default)
        return state

    def record_request(self, group: str, now: float) -> None:
        state = self._group(group)
        if state is not None:
            state.budget.record_request(now)

    def observe(self, group: str, stream: bool, seconds: float) -> None:
        """A successful attempt's latency (for a stream: its time to first token)."""
        state = self._group(group)
        if state is not None:
            (state.streams if stream else state.whole).add(seconds)

    def delay(self, group: str, stream: bool) -> float | None:
        """Seconds to wait before hedging, or None: no hedging for this group (yet)."""
        state = self._group(group)
        if state is None:
            return None
        config = state.config
        if config.delay is not None:
            return config.delay
        window = state.streams if stream else state.whole
        if config.quantile is None or len(window) < config.min_samples:
            return None
        return window.quantile(config.quantile)

    def try_spend(self, group: str, now: float) -> bool:
        state = self._group(group)
        return state is not None and state.budget.try_spend(now)
