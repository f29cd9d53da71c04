"""A virtual key's budgets and rate limits, as the ledger takes them, worked out once per read.

When a key is read from the store (`turnout.gateway.virtual_keys`), its own settings, its
team's and its user's become the ledger's `Budget`s and `Limits`, each named by a scope that
holds no secret: ``key:<id>``, ``team:<id>``, ``user:<id>``, and ``<scope>:model:<name>`` for a
model's own budget and limits (LiteLLM's ``model_max_budget``, ``model_rpm_limit``,
``model_tpm_limit``). A key's team's budget and limits apply to the key's requests, as does its
user's budget (a user with keys in several teams spends one budget).

Each budget carries its `seed`: the spend the store of record already holds for it in its
current period (the entity's budget counter, which every spend-log row is charged to in its own
transaction, whatever digest the key had then), so that a ledger that starts empty (a restarted
process, a Redis that lost its data) starts from what was really spent. It comes with the key's
read, so it costs no query of its own.

Periods are the store's (`turnout.governance.periods`): calendar-aligned ones (``1d`` at
midnight UTC, ``7d`` on Mondays, ``30d`` and ``Nmo`` on the 1st) map to ledger periods of the
same instants; the others continue from the store's last reset instant, so every instance and
the store agree on when a period ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from turnout.governance import Key, Team, User
from turnout.governance.ledger import Budget, Limits, Period
from turnout.governance.periods import parse_duration
from turnout.governance.records import Limits as Settings
from turnout.governance.records import ModelLimits

#: 1970-01-05, a Monday: the anchor of weeks that start on Mondays.
_MONDAY = 4 * 86_400
_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Rules:
    """What a key's requests are held against: budgets and limits for every model, and those of
    each model named in a per-model setting."""

    budgets: tuple[Budget, ...] = ()
    limits: tuple[Limits, ...] = ()
    model_budgets: dict[str, tuple[Budget, ...]] = field(default_factory=dict)
    model_limits: dict[str, tuple[Limits, ...]] = field(default_factory=dict)
    #: The root of the key's principal chain (its team, else itself), for a partitioned ledger.
    partition: str = ""

    @property
    def empty(self) -> bool:
        return not (self.budgets or self.limits or self.model_budgets or self.model_limits)

    def for_model(self, *names: str) -> tuple[tuple[Budget, ...], tuple[Limits, ...]]:
        """The budgets and limits a request for a model known by `names` (as asked, its model
        group) is held against."""
        budgets, limits = list(self.budgets), list(self.limits)
        for name in dict.fromkeys(names):
            budgets += self.model_budgets.get(name, ())
            limits += self.model_limits.get(name, ())
        return tuple(budgets), tuple(limits)


def ledger_period(duration: str | None, reset_at: datetime | None) -> Period | None:
    """The ledger's period for a store ``budget_duration`` whose last known reset instant is
    `reset_at` (None: no period)."""
    if duration is None:
        return None
    parsed = parse_duration(duration)
    if parsed.unit == "mo":
        return Period(months=parsed.count)
    if parsed.unit == "d" and parsed.count == 30:
        return Period(months=1)
    seconds = parsed.seconds or 0
    if parsed.unit == "d" and parsed.count == 7:
        return Period(seconds=seconds, anchor=_MONDAY)
    if _DAY % seconds == 0 and (parsed.unit != "d" or parsed.count == 1):
        return Period(seconds=seconds, anchor=0)
    anchor = int((reset_at or datetime.now(UTC)).timestamp())
    return Period(seconds=seconds, anchor=anchor)


def rules_of(key: Key, team: Team | None, user: User | None) -> Rules:
    """The key's rules, every budget seeded with its counter's spend this period."""
    budgets: list[Budget] = []
    limits: list[Limits] = []
    model_budgets: dict[str, list[Budget]] = {}
    model_limits: dict[str, list[Limits]] = {}
    owners: list[tuple[str, Key | Team | User]] = [(f"key:{key.id}", key)]
    if team is not None:
        owners.append((f"team:{team.id}", team))
    if user is not None:
        owners.append((f"user:{user.id}", user))
    for scope, entity in owners:
        settings = entity.settings
        reset_at = entity.budget.reset_at
        if settings.max_budget is not None:
            period = ledger_period(settings.budget_duration, reset_at)
            budgets.append(Budget(scope, settings.max_budget, period, entity.budget.spend))
        if scope.startswith(("key:", "team:")) and _limited(settings):
            limits.append(
                Limits(
                    scope,
                    rpm=settings.rpm_limit or None,
                    tpm=settings.tpm_limit or None,
                    parallel=settings.max_parallel_requests or None,
                )
            )
        for model, own in settings.model_limits.items():
            model_scope = f"{scope}:model:{model}"
            if own.max_budget is not None:
                period = ledger_period(own.budget_duration or settings.budget_duration, reset_at)
                seed = entity.model_spend.get(model, 0)
                model_budgets.setdefault(model, []).append(
                    Budget(model_scope, own.max_budget, period, seed)
                )
            if _model_limited(own):
                model_limits.setdefault(model, []).append(
                    Limits(model_scope, rpm=own.rpm_limit or None, tpm=own.tpm_limit or None)
                )
    return Rules(
        tuple(budgets),
        tuple(limits),
        {name: tuple(items) for name, items in model_budgets.items()},
        {name: tuple(items) for name, items in model_limits.items()},
        partition=f"team:{team.id}" if team is not None else f"key:{key.id}",
    )


def _limited(settings: Settings) -> bool:
    values: Sequence[int | None] = (
        settings.rpm_limit,
        settings.tpm_limit,
        settings.max_parallel_requests,
    )
    return any(values)


def _model_limited(own: ModelLimits) -> bool:
    return bool(own.rpm_limit or own.tpm_limit)
