"""Cheap counters of a router's activity, derived from its events: plain integers to read.

`RouterStats` is an observer like any other: subscribe it (``Router(..., observers=[stats])``)
and read its fields. A router nobody observes keeps no counters and builds no events.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from turnout.observe.events import (
    AttemptStarted,
    BudgetExhausted,
    Event,
    FallbackTaken,
    HedgeFired,
    HedgeSettled,
    PoisonRequest,
    RequestStarted,
    RetryScheduled,
    StreamFailover,
)


@dataclass(slots=True)
class RouterStats:
    requests: int = 0
    #: How often each deployment was picked and called (by id), retries and hedges included.
    selections: Counter[str] = field(default_factory=Counter)
    #: Retries scheduled within a model group.
    retries: int = 0
    fallbacks: int = 0
    #: Hedges fired, and those whose duplicate answered first.
    hedges: int = 0
    hedges_won: int = 0
    #: Continuations tried for streams that broke after content was sent.
    stream_failovers: int = 0
    #: Retries, fallback hops and hedges refused by their budget.
    budget_refusals: int = 0
    #: Requests failed as the cause of the server errors they met (`turnout.health.poison`).
    poison_requests: int = 0

    def on_event(self, event: Event) -> None:
        match event:
            case AttemptStarted():
                self.selections[event.deployment_id] += 1
            case RequestStarted():
                self.requests += 1
            case RetryScheduled():
                self.retries += 1
            case FallbackTaken():
                self.fallbacks += 1
            case HedgeFired():
                self.hedges += 1
            case HedgeSettled():
                self.hedges_won += event.hedge_won
            case StreamFailover():
                self.stream_failovers += 1
            case BudgetExhausted():
                self.budget_refusals += 1
            case PoisonRequest():
                self.poison_requests += 1
