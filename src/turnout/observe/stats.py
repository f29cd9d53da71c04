"""Cheap counters the router keeps itself: plain integers, read by metrics on scrape."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class RouterStats:
    requests: int = 0
    #: How often each deployment was picked (by id).
    selections: Counter[str] = field(default_factory=Counter)
    #: How often a strategy ranked more than one candidate.
    strategy_evaluations: int = 0
    retries: int = 0
    fallbacks: int = 0
    hedges: int = 0
    hedges_won: int = 0
    stream_failovers: int = 0
    #: Retries and fallback hops refused by the retry budget.
    budget_refusals: int = 0
    #: Requests failed as the cause of the server errors they met (`turnout.health.poison`).
    poison_requests: int = 0
