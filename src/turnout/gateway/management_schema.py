"""The management API's bodies, queries and answers: LiteLLM's field names, as msgspec types.

The handlers validate every body and query with these types (a wrong field is a 400 naming it)
and encode every answer from them, and the OpenAPI document is generated from the same types
(`turnout.gateway.openapi`), so the document cannot drift from what is served. Amounts are
dollars here, as LiteLLM's API has them; they become integer micro-dollars at once
(`turnout.gateway.management_fields`). In update bodies a field left out is left alone (UNSET),
while an explicit ``null`` clears it.

Fields LiteLLM has that turnout does not enforce are refused as unknown fields rather than
accepted and ignored (a key that looks limited but is not would be worse): see docs/keys.md.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

#: An amount in dollars (floats at the edge, micro-dollars inside).
Dollars = Annotated[float, Meta(ge=0)]
Count = Annotated[int, Meta(ge=0)]
Name = Annotated[str, Meta(min_length=1, max_length=256)]


class _Body(Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class ModelBudget(_Body):
    """One model's budget (LiteLLM's ``model_max_budget`` values)."""

    budget_limit: Dollars
    time_period: str | None = None


class LimitFields(_Body):
    """Budget and limits shared by keys, teams and users."""

    models: list[str] | UnsetType | None = UNSET
    max_budget: Dollars | UnsetType | None = UNSET
    soft_budget: Dollars | UnsetType | None = UNSET
    budget_duration: str | UnsetType | None = UNSET
    rpm_limit: Count | UnsetType | None = UNSET
    tpm_limit: Count | UnsetType | None = UNSET
    max_parallel_requests: Count | UnsetType | None = UNSET
    model_max_budget: dict[str, ModelBudget] | UnsetType | None = UNSET
    model_rpm_limit: dict[str, Count] | UnsetType | None = UNSET
    model_tpm_limit: dict[str, Count] | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET
    blocked: bool | UnsetType = UNSET


class KeyFields(LimitFields):
    key_alias: Name | UnsetType | None = UNSET
    #: ``30s``, ``30m``, ``30h``, ``30d``, ``1mo``: the key expires that long from now.
    duration: str | UnsetType | None = UNSET
    #: Requested model name -> model group.
    aliases: dict[str, str] | UnsetType | None = UNSET
    user_id: Name | UnsetType | None = UNSET
    team_id: Name | UnsetType | None = UNSET


class GenerateKeyRequest(KeyFields):
    #: A key of the caller's choosing (``sk-...``); generated when left out.
    key: str | UnsetType | None = UNSET


class UpdateKeyRequest(KeyFields, kw_only=True):
    #: The key, its digest (``token``) or its id.
    key: Name


class RegenerateKeyRequest(KeyFields):
    key: Name | UnsetType = UNSET
    new_key: str | UnsetType | None = UNSET
    #: How long the old key keeps working (``24h``, ``2d``); left out: it stops at once.
    grace_period: str | UnsetType | None = UNSET


class KeyRef(_Body):
    key: Name


class DeleteKeysRequest(_Body):
    keys: list[Name] = []
    key_aliases: list[Name] = []


class TeamFields(LimitFields):
    team_alias: Name | UnsetType | None = UNSET


class NewTeamRequest(TeamFields):
    team_id: Name | UnsetType | None = UNSET


class UpdateTeamRequest(TeamFields, kw_only=True):
    team_id: Name


class DeleteTeamsRequest(_Body):
    team_ids: list[Name]


class UserFields(LimitFields):
    user_alias: Name | UnsetType | None = UNSET
    user_email: str | UnsetType | None = UNSET
    user_role: str | UnsetType | None = UNSET


class NewUserRequest(UserFields):
    user_id: Name | UnsetType | None = UNSET
    #: Create a key for the user too (LiteLLM's default), returned once as ``key``.
    auto_create_key: bool = True
    key_alias: Name | UnsetType | None = UNSET
    duration: str | UnsetType | None = UNSET


class UpdateUserRequest(UserFields, kw_only=True):
    user_id: Name


class DeleteUsersRequest(_Body):
    user_ids: list[Name]


# -- queries -------------------------------------------------------------------------------------


class KeyInfoQuery(_Body):
    #: The key, its digest or its id; left out: the calling key.
    key: Name | None = None


class KeyListQuery(_Body):
    page: Annotated[int, Meta(ge=1)] = 1
    size: Annotated[int, Meta(ge=1, le=1000)] = 10
    user_id: Name | None = None
    team_id: Name | None = None
    key_alias: Name | None = None
    #: Whole key objects instead of their digests.
    return_full_object: bool = False


class TeamInfoQuery(_Body):
    team_id: Name


class UserInfoQuery(_Body):
    user_id: Name


class PageQuery(_Body):
    page: Annotated[int, Meta(ge=1)] = 1
    size: Annotated[int, Meta(ge=1, le=1000)] = 100


class SpendLogsQuery(_Body):
    #: A key or its digest.
    api_key: Name | None = None
    user_id: Name | None = None
    team_id: Name | None = None
    request_id: Name | None = None
    start_date: date | None = None
    #: Inclusive.
    end_date: date | None = None
    #: With both dates: one row per day (LiteLLM's default); false: one row per request.
    summarize: bool = True


class GlobalSpendQuery(_Body):
    start_date: date | None = None
    end_date: date | None = None


# -- answers -------------------------------------------------------------------------------------


class _Answer(Struct, kw_only=True):
    pass


class LimitsInfo(_Answer):
    spend: float
    max_budget: float | None
    soft_budget: float | None
    budget_duration: str | None
    budget_reset_at: str | None
    models: list[str]
    rpm_limit: int | None
    tpm_limit: int | None
    max_parallel_requests: int | None
    model_max_budget: dict[str, ModelBudget]
    model_rpm_limit: dict[str, int]
    model_tpm_limit: dict[str, int]
    model_spend: dict[str, float]
    metadata: dict[str, Any]
    blocked: bool
    created_at: str
    updated_at: str


class KeyInfo(LimitsInfo):
    #: The key's digest, as LiteLLM names it (it changes when the key is regenerated).
    token: str
    #: Stable across regenerations.
    key_id: str
    key_name: str
    key_alias: str | None
    aliases: dict[str, str]
    user_id: str | None
    team_id: str | None
    expires: str | None


class GeneratedKey(KeyInfo):
    #: The key itself: shown this once.
    key: str
    token_id: str


class KeyInfoAnswer(_Answer):
    key: str
    info: KeyInfo


class KeyListAnswer(_Answer):
    keys: list[str | KeyInfo]
    total_count: int
    current_page: int
    total_pages: int


class DeletedKeys(_Answer):
    deleted_keys: list[str]


class TeamInfo(LimitsInfo):
    team_id: str
    team_alias: str | None


class TeamInfoAnswer(_Answer):
    team_id: str
    team_info: TeamInfo
    keys: list[KeyInfo]


class DeletedTeams(_Answer):
    deleted_teams: list[str]


class UserInfo(LimitsInfo):
    user_id: str
    user_alias: str | None
    user_email: str | None
    user_role: str | None


class NewUserAnswer(UserInfo):
    #: The user's first key, when ``auto_create_key``: shown this once.
    key: str | None
    token: str | None


class UserInfoAnswer(_Answer):
    user_id: str
    user_info: UserInfo
    keys: list[KeyInfo]


class DeletedUsers(_Answer):
    deleted_users: list[str]


class SpendLog(_Answer):
    """One request's spend, in LiteLLM's ``LiteLLM_SpendLogs`` column names."""

    request_id: str
    api_key: str
    spend: float
    total_tokens: int
    prompt_tokens: int
    completion_tokens: int
    startTime: str
    endTime: str
    completionStartTime: str | None
    model: str
    model_id: str | None
    model_group: str
    custom_llm_provider: str
    user: str | None
    team_id: str | None
    status: str
    metadata: dict[str, Any]


class DailySpendRow(_Answer):
    """One day's spend (``summarize``), with its split by model group and by user."""

    startTime: str
    spend: float
    models: dict[str, float]
    users: dict[str, float]
    api_requests: int


class GlobalSpend(_Answer):
    spend: float
    max_budget: float | None
