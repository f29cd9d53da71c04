"""What a request takes from one configuration: built whole per config, pinned per request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from turnout.providers.base import Provider
from turnout.router.budget import WindowBudget
from turnout.router.hedging import Hedger
from turnout.router.limits import LearnedLimits
from turnout.router.strategies import Strategy
from turnout.router.table import ModelTable


@dataclass(frozen=True, slots=True)
class ConfigBundle:
    """Everything a request takes from one configuration, built whole per config.

    A reload swaps the router's bundle in one assignment; each request keeps the bundle it
    started with to its end, so a reload never takes away a provider that a request between
    retries (or a stream failing over) still needs, and every attempt it begins is settled.
    """

    table: ModelTable
    #: Provider name to the object that calls it: every provider the table's deployments use.
    providers: Mapping[str, Provider]
    strategy: Strategy
    #: Shared by the bundles of successive configs while the budget's settings do not change.
    retry_budget: WindowBudget | None
    #: Shared likewise while the hedging settings do not change.
    hedger: Hedger
    #: Attempt limits learned per deployment; shared likewise while their settings hold.
    limits: LearnedLimits


def retry_budget_for(table: ModelTable) -> WindowBudget | None:
    """The router-wide retry budget the table's config asks for (None: unlimited)."""
    budget = table.config.retries.budget
    if not budget.enabled:
        return None
    return WindowBudget(budget.ratio, budget.window, budget.min_per_second)
