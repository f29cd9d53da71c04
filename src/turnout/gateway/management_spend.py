"""``/spend/logs`` and ``/global/spend``: the spend ledger, in LiteLLM's column names.

Rows come from the per-request log; with both dates and ``summarize`` (LiteLLM's default) the
answer is one row per day from the daily aggregate instead, which stays small however many
requests there were. Amounts are the float of dollars LiteLLM shows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from aiohttp import web

from turnout.gateway.gateway import Gateway
from turnout.gateway.management_io import on_store, query
from turnout.gateway.management_schema import (
    DailySpendRow,
    GlobalSpend,
    GlobalSpendQuery,
    SpendLog,
    SpendLogsQuery,
)
from turnout.governance import DailySpend, GovernanceStore, SpendRow, to_dollars
from turnout.governance.keys import KEY_PREFIX

#: Rows one ``/spend/logs`` answer holds at most.
ROWS_LIMIT: Final = 1000


def _midnight(day: date | None, *, after: bool = False) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1) if after else day, time(), tzinfo=UTC)


def render_row(row: SpendRow) -> SpendLog:
    return SpendLog(
        request_id=row.request_id,
        api_key=row.api_key,
        spend=to_dollars(row.spend),
        total_tokens=row.prompt_tokens + row.completion_tokens,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        startTime=row.start_time.isoformat(),
        endTime=row.end_time.isoformat(),
        completionStartTime=(
            row.completion_start_time.isoformat() if row.completion_start_time else None
        ),
        model=row.model,
        model_id=row.deployment,
        model_group=row.model_group,
        custom_llm_provider=row.provider,
        user=row.user_id,
        team_id=row.team_id,
        status=row.status,
        metadata={
            "user_api_key_alias": row.key_alias,
            "cached_tokens": row.cached_tokens,
            "attempts": row.attempts,
        },
    )


async def spend_logs(gateway: Gateway, http: web.Request) -> list[SpendLog] | list[DailySpendRow]:
    asked = query(http, SpendLogsQuery)

    async def work(store: GovernanceStore) -> list[SpendLog] | list[DailySpendRow]:
        api_key = asked.api_key
        if api_key is not None and api_key.startswith(KEY_PREFIX):
            api_key = store.key_hash(api_key)
        if asked.summarize and asked.start_date and asked.end_date:
            days = await store.daily_spend(
                start=asked.start_date,
                end=asked.end_date,
                api_key=api_key,
                team_id=asked.team_id,
                user_id=asked.user_id,
            )
            return _by_day(days)
        rows = await store.spend_logs(
            api_key=api_key,
            user_id=asked.user_id,
            team_id=asked.team_id,
            request_id=asked.request_id,
            start=_midnight(asked.start_date),
            end=_midnight(asked.end_date, after=True),
            limit=ROWS_LIMIT,
        )
        return [render_row(row) for row in rows]

    return await on_store(gateway, work)


def _by_day(days: Sequence[DailySpend]) -> list[DailySpendRow]:
    spend: dict[date, int] = defaultdict(int)
    requests: dict[date, int] = defaultdict(int)
    models: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    users: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in days:
        spend[row.day] += row.spend
        requests[row.day] += row.api_requests
        models[row.day][row.model_group] += row.spend
        users[row.day][row.user_id] += row.spend
    return [
        DailySpendRow(
            startTime=day.isoformat(),
            spend=to_dollars(spend[day]),
            models={name: to_dollars(v) for name, v in models[day].items()},
            users={name: to_dollars(v) for name, v in users[day].items()},
            api_requests=requests[day],
        )
        for day in sorted(spend)
    ]


async def global_spend(gateway: Gateway, http: web.Request) -> GlobalSpend:
    asked = query(http, GlobalSpendQuery)
    total = await on_store(
        gateway, lambda store: store.total_spend(start=asked.start_date, end=asked.end_date)
    )
    return GlobalSpend(spend=to_dollars(total), max_budget=None)
