"""Between the management API's fields and the store's records: dollars in, micro-dollars out.

`changes` turns a validated body into the settings changes the store applies (only the fields
the body set); the ``render_*`` functions turn records into the answers LiteLLM's clients read,
with amounts as the float of dollars LiteLLM shows and times in ISO 8601.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec
from msgspec import UNSET

from turnout.errors import InvalidRequestError
from turnout.gateway.management_schema import (
    KeyInfo,
    LimitFields,
    LimitsInfo,
    ModelBudget,
    TeamInfo,
    UserInfo,
)
from turnout.governance import Key, ModelLimits, Team, User, to_dollars, to_micros
from turnout.governance.periods import expires_at, parse_duration
from turnout.governance.records import Entity, Limits

#: Fields passed to the store as they are.
_PLAIN: Final = (
    "key_alias",
    "team_alias",
    "user_alias",
    "user_email",
    "user_role",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "blocked",
    "user_id",
    "team_id",
)
#: Fields whose ``null`` means empty.
_EMPTY_WHEN_NULL: Final[dict[str, Any]] = {"metadata": {}, "aliases": {}, "models": ()}
_DURATIONS: Final = ("budget_duration",)


def changes(
    body: LimitFields,
    now: datetime,
    current: Limits | None = None,
    *,
    ident: str | None = None,
) -> dict[str, Any]:
    """The settings `body` sets, in the store's terms (`current`: what the entity has now, for
    per-model limits set one aspect at a time; `ident`: the field naming the entity itself,
    which is no setting)."""
    out: dict[str, Any] = {}
    for name in body.__struct_fields__:
        value = getattr(body, name)
        if value is UNSET or name == ident:
            continue
        if name in _PLAIN:
            out[name] = value
        elif name in _EMPTY_WHEN_NULL:
            out[name] = _EMPTY_WHEN_NULL[name] if value is None else value
        elif name in ("max_budget", "soft_budget"):
            out[name] = None if value is None else to_micros(value)
        elif name == "duration":
            out["expires"] = None if value is None else expires_at(_duration(name, value), now)
    for name in _DURATIONS:
        if out.get(name) is not None:
            _duration(name, out[name])
    limits = _model_limits(body, current.model_limits if current else {})
    if limits is not None:
        out["model_limits"] = limits
    return out


def _duration(field: str, text: str) -> Any:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidRequestError(f"{field}: {exc}", param=field) from None


def _model_limits(
    body: LimitFields, current: dict[str, ModelLimits]
) -> dict[str, ModelLimits] | None:
    budgets, rpm, tpm = body.model_max_budget, body.model_rpm_limit, body.model_tpm_limit
    if budgets is UNSET and rpm is UNSET and tpm is UNSET:
        return None
    data = {model: msgspec.structs.asdict(limits) for model, limits in current.items()}
    if budgets is not UNSET:
        for entry in data.values():
            entry.update(max_budget=None, budget_duration=None)
        for model, budget in (budgets or {}).items():
            if budget.time_period is not None:
                _duration(f"model_max_budget.{model}.time_period", budget.time_period)
            data.setdefault(model, {}).update(
                max_budget=to_micros(budget.budget_limit), budget_duration=budget.time_period
            )
    for field, given in (("rpm_limit", rpm), ("tpm_limit", tpm)):
        if given is UNSET:
            continue
        for entry in data.values():
            entry[field] = None
        for model, count in (given or {}).items():
            data.setdefault(model, {})[field] = count
    return {
        model: ModelLimits(**entry)
        for model, entry in data.items()
        if any(value is not None for value in entry.values())
    }


# -- answers -------------------------------------------------------------------------------------


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _dollars(micros: int | None) -> float | None:
    return None if micros is None else to_dollars(micros)


def _limits(entity: Entity[Any]) -> dict[str, Any]:
    settings: Limits = entity.settings
    budget = entity.budget
    per_model = settings.model_limits
    models = per_model.items()
    return {
        "spend": to_dollars(budget.spend),
        "max_budget": _dollars(settings.max_budget),
        "soft_budget": _dollars(settings.soft_budget),
        "budget_duration": settings.budget_duration,
        "budget_reset_at": _time(budget.reset_at),
        "models": list(settings.models),
        "rpm_limit": settings.rpm_limit,
        "tpm_limit": settings.tpm_limit,
        "max_parallel_requests": settings.max_parallel_requests,
        "model_max_budget": {
            model: ModelBudget(
                budget_limit=to_dollars(limits.max_budget), time_period=limits.budget_duration
            )
            for model, limits in per_model.items()
            if limits.max_budget is not None
        },
        "model_rpm_limit": {m: v.rpm_limit for m, v in models if v.rpm_limit is not None},
        "model_tpm_limit": {m: v.tpm_limit for m, v in models if v.tpm_limit is not None},
        "model_spend": {model: to_dollars(spent) for model, spent in entity.model_spend.items()},
        "metadata": settings.metadata,
        "blocked": settings.blocked,
        "created_at": entity.created_at.isoformat(),
        "updated_at": entity.updated_at.isoformat(),
    }


def key_fields(key: Key) -> dict[str, Any]:
    settings = key.settings
    return {
        **_limits(key),
        "token": key.token_hash,
        "key_id": key.id,
        "key_name": key.key_name,
        "key_alias": settings.key_alias,
        "aliases": settings.aliases,
        "user_id": settings.user_id,
        "team_id": settings.team_id,
        "expires": _time(settings.expires),
    }


def render_key(key: Key) -> KeyInfo:
    return KeyInfo(**key_fields(key))


def render_team(team: Team) -> TeamInfo:
    return TeamInfo(**_limits(team), team_id=team.id, team_alias=team.settings.team_alias)


def user_fields(user: User) -> dict[str, Any]:
    settings = user.settings
    return {
        **_limits(user),
        "user_id": user.id,
        "user_alias": settings.user_alias,
        "user_email": settings.user_email,
        "user_role": settings.user_role,
    }


def render_user(user: User) -> UserInfo:
    return UserInfo(**user_fields(user))


__all__ = ["LimitsInfo", "changes", "key_fields", "render_key", "render_team", "render_user"]
