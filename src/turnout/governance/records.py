"""What the governance store holds: keys, teams and users, their budgets, spend.

Settings are frozen `msgspec` structs validated where they are built (a bad ``budget_duration``
or a negative budget never reaches the database). Amounts of money are integer micro-dollars
(`turnout.governance.money`); times are aware UTC datetimes. Field names are LiteLLM's, so the
management API can pass its request fields through unchanged.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from msgspec import Meta, Struct

from turnout.governance.periods import parse_duration

#: An amount of money in micro-dollars.
Micros = Annotated[int, Meta(ge=0)]
#: A per-minute limit, or a parallel-request limit.
Count = Annotated[int, Meta(ge=0)]
#: An entity id or alias as stored.
Name = Annotated[str, Meta(min_length=1, max_length=256)]

ScopeKind = Literal["key", "team", "user"]


def _check_duration(value: str | None, field: str) -> None:
    if value is not None:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{field}: {exc}") from None


class ModelLimits(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Budget and limits of one model for one key, team or user (LiteLLM's ``model_max_budget``,
    ``model_rpm_limit`` and ``model_tpm_limit``, kept together)."""

    max_budget: Micros | None = None
    budget_duration: str | None = None
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None

    def __post_init__(self) -> None:
        _check_duration(self.budget_duration, "budget_duration")


class Limits(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Budget and limits any key, team or user may carry. None: not limited."""

    #: Requests that would spend past it are refused.
    max_budget: Micros | None = None
    #: Spending past it only alerts.
    soft_budget: Micros | None = None
    #: How often spend goes back to zero (`turnout.governance.periods`); None: never.
    budget_duration: str | None = None
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None
    max_parallel_requests: Count | None = None
    #: Model name -> that model's own budget and limits, on top of these.
    model_limits: dict[str, ModelLimits] = {}
    models: tuple[str, ...] = ()
    metadata: dict[str, Any] = {}
    blocked: bool = False

    def __post_init__(self) -> None:
        _check_duration(self.budget_duration, "budget_duration")


class KeySettings(Limits, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key_alias: Name | None = None
    #: Requested model name -> the model group it stands for.
    aliases: dict[str, str] = {}
    team_id: Name | None = None
    user_id: Name | None = None
    #: When the key stops working (None: never).
    expires: Annotated[datetime, Meta(tz=True)] | None = None


class TeamSettings(Limits, frozen=True, kw_only=True, forbid_unknown_fields=True):
    team_alias: Name | None = None


class UserSettings(Limits, frozen=True, kw_only=True, forbid_unknown_fields=True):
    user_alias: Name | None = None
    user_email: str | None = None
    user_role: str | None = None


SettingsT = TypeVar("SettingsT", KeySettings, TeamSettings, UserSettings)


class Budget(Struct, frozen=True, kw_only=True):
    """A budget counter: what one key, team, user (or one of their models) spent this period."""

    spend: int = 0
    max_budget: int | None = None
    budget_duration: str | None = None
    #: When counting for the current period began (None: never reset).
    period_start: datetime | None = None
    #: When the period ends and spend goes back to zero (None: never).
    reset_at: datetime | None = None


class Entity(Struct, Generic[SettingsT], frozen=True, kw_only=True):
    """A key, team or user as stored, with its budget counter and per-model spend."""

    id: str
    settings: SettingsT
    budget: Budget
    #: Model name -> spend this period on that model.
    model_spend: dict[str, int] = {}
    created_at: datetime
    updated_at: datetime
    #: Set when it was deleted; deleted entities are kept for audit.
    deleted_at: datetime | None = None


class Key(Entity[KeySettings], frozen=True, kw_only=True):
    """A virtual key. `id` is stable; `token_hash` changes when the key is regenerated."""

    token_hash: str
    #: The abbreviated key (``sk-...sBDQ``).
    key_name: str


Team = Entity[TeamSettings]
User = Entity[UserSettings]


class CreatedKey(Struct, frozen=True, kw_only=True):
    """A key just made: the only time the key itself is known."""

    key: str
    record: Key


EntityT = TypeVar("EntityT", Key, Team, User)


class Page(Struct, Generic[EntityT], frozen=True, kw_only=True):
    items: list[EntityT]
    total: int


class Scope(Struct, frozen=True, order=True):
    """One budget counter: a key's, team's or user's, or (with `model`) one of their models'."""

    kind: ScopeKind
    entity_id: str
    model: str = ""

    def describe(self) -> str:
        """LiteLLM's name for it in a refusal: ``Key=...``, ``Team=... model=gpt-4o``."""
        text = f"{self.kind.capitalize()}={self.entity_id}"
        return f"{text} model={self.model}" if self.model else text


class SpendRow(Struct, frozen=True, kw_only=True):
    """One request's spend log row, keyed by its request id."""

    request_id: Name
    #: The key's hash ('' when the master key made the request).
    api_key: str = ""
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    model_group: str = ""
    #: The upstream model, the deployment's id and its provider.
    model: str = ""
    deployment: str | None = None
    provider: str = ""
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    cached_tokens: Count = 0
    spend: Micros = 0
    start_time: datetime
    end_time: datetime
    #: When the first token arrived (None: not streamed, or none did).
    completion_start_time: datetime | None = None
    status: Literal["success", "failure"] = "success"
    #: One line per attempt (deployment, outcome), as the error summaries show them.
    attempts: str = ""


class DailySpend(Struct, frozen=True, kw_only=True):
    """Spend aggregated per UTC day, key, team, user, model group and provider."""

    day: date
    api_key: str
    team_id: str
    user_id: str
    model_group: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    spend: int
    api_requests: int
    successful_requests: int
    failed_requests: int
