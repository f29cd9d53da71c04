"""Issue 12, "Virtual keys, budgets, rate limits and spend", checked from the issue's text and
LiteLLM's documented API alone.

Every scenario runs a gateway from a LiteLLM ``config.yaml`` (master key, database, one model
priced in ``model_info``), makes keys and teams through LiteLLM's management API, and calls the
model with the official `openai` SDK, not retrying. The upstream is a fake whose answers are
deterministic (10 prompt tokens, 8 completion tokens: 26 micro-dollars at the prices used), so
the spend expected is computed from what the upstream actually received. Spend is written off
the request path: it is polled for, within a bound, before anything is asserted about it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import openai
import pytest
from issue12_rig import (
    MASTER,
    MESSAGES,
    MODEL,
    MODES,
    SPEND_WAIT,
    Mode,
    Outcome,
    Rig,
    ask,
    away_from_minute_edge,
    dollars,
    eventually,
    governed_gateway,
    micros,
    price,
    worst_case,
)

from services import RedisServer

#: What one request costs here: 10 prompt and 8 completion tokens at 1 and 2 micro-dollars.
COST = 26
#: The prompt the fake counts for MESSAGES.
PROMPT = 10
WORST = worst_case(PROMPT)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store: a SQLite file, or a PostgreSQL database of this test's own."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_kit").url
        return url
    return f"sqlite:///{tmp_path / 'store' / 'turnout.db'}"


def assert_budget_exceeded(outcome: Outcome, what: str) -> None:
    """LiteLLM's refusal of a spent budget: HTTP 429, ``type: budget_exceeded``."""
    assert outcome.status == 429, f"{what}: expected 429 budget_exceeded, got {outcome.describe()}"
    error = outcome.error
    assert error.get("type") == "budget_exceeded", (
        f"{what}: expected error type budget_exceeded, got {outcome.describe()}"
    )
    message = str(error.get("message", ""))
    assert message.startswith("Budget has been exceeded"), (
        f"{what}: expected LiteLLM's message 'Budget has been exceeded! ...', got {message!r}"
    )
    assert str(error.get("code")) == "429", f"{what}: expected code '429', got {error!r}"
    assert "param" in error, f"{what}: an OpenAI error object has a param field: {error!r}"


async def spend_until_refused(
    client: openai.AsyncOpenAI, limit: int, modes: tuple[Mode, ...] = ("whole",)
) -> tuple[list[Outcome], Outcome | None]:
    """Requests one after another (cycling through `modes`) until one is refused or `limit`
    were sent: the served ones, and the refusal."""
    served: list[Outcome] = []
    for index in range(limit):
        outcome = await ask(client, modes[index % len(modes)])
        if not outcome.served:
            return served, outcome
        assert outcome.text, f"request {index} was answered with no text"
        served.append(outcome)
    return served, None


async def settled_spend(rig: Rig, key: str, expected: int, seconds: float = SPEND_WAIT) -> int:
    """The key's spend in micro-dollars once it reaches `expected` (or the bound passes)."""
    return await eventually(lambda: rig.key_spend(key), lambda spend: spend == expected, seconds)


# ---- 1. max_budget: served until used, then 429 budget_exceeded; spend priced exactly ------


@pytest.mark.parametrize("mode", MODES)
async def test_1_key_budget_is_enforced_and_spend_is_the_upstream_usage_priced(
    tmp_path: Path, mode: Mode
) -> None:
    budget = 10 * COST
    async with governed_gateway(tmp_path) as rig:
        key = await rig.generate_key(max_budget=dollars(budget))
        served, refusal = await spend_until_refused(rig.client(key), 30, (mode,))
        assert refusal is not None, (
            f"a key with max_budget {dollars(budget)} (about 10 requests of {dollars(COST)}) "
            f"was never refused: {len(served)} requests served"
        )
        assert_budget_exceeded(refusal, f"request {len(served) + 1} past the budget")
        assert served, "the very first request was refused, with the whole budget left"
        assert len(rig.fake.requests) == len(served), (
            f"the refused request reached the upstream: {len(rig.fake.requests)} upstream "
            f"requests for {len(served)} served"
        )
        expected = rig.served_cost()
        spend = await settled_spend(rig, key, expected)
        assert spend == expected, (
            f"/key/info spend after {len(served)} {mode} requests: expected the upstream usage "
            f"{rig.served_usage()} priced exactly, {expected} micro-dollars; got {spend}"
        )
        assert spend <= budget + WORST, (
            f"spend {spend} passed max_budget {budget} by more than one request's worst case"
        )
        assert budget - spend < 2 * WORST, (
            f"refused with {budget - spend} of {budget} micro-dollars left, while one request "
            f"costs at most {WORST}"
        )


# ---- 2. concurrency: a tenth of 40 streams fit; the rest are 429, spend within budget ------


async def test_2_concurrent_streams_never_overspend_a_key(
    database_url: str, tmp_path: Path
) -> None:
    count, budget = 40, 4 * COST
    async with governed_gateway(tmp_path, database_url=database_url) as rig:
        key = await rig.generate_key(max_budget=dollars(budget))
        client = rig.client(key, timeout=60.0)
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(ask(client, "stream_usage") for _ in range(count))), 120
        )
        others = [outcome.describe() for outcome in outcomes if outcome.status not in (200, 429)]
        assert not others, f"every request must be answered or refused with 429; got {others}"
        served = [outcome for outcome in outcomes if outcome.served]
        refused = [outcome for outcome in outcomes if not outcome.served]
        incomplete = [outcome.text for outcome in served if outcome.text != rig.reply]
        assert not incomplete, f"served streams cut short: {incomplete}"
        for outcome in refused:
            assert_budget_exceeded(outcome, "a concurrent stream past the budget")
        assert served, f"none of {count} streams was served with a budget for about 4"
        assert refused, f"all {count} streams were served with a budget for about 4"
        assert len(rig.fake.requests) == len(served), (
            f"{len(rig.fake.requests)} requests reached the upstream, {len(served)} were served"
        )
        expected = rig.served_cost()
        spend = await settled_spend(rig, key, expected)
        assert spend == expected, (
            f"spend after {len(served)} served streams: expected {expected}, got {spend}"
        )
        assert spend <= budget, f"spend {spend} micro-dollars is over max_budget {budget}"


# ---- 3. rpm_limit, tpm_limit, max_parallel_requests ----------------------------------------


def assert_rate_limited(outcome: Outcome, what: str) -> None:
    """429 with ``Retry-After`` (seconds, within the minute) and ``x-ratelimit-*`` headers."""
    assert outcome.status == 429, f"{what}: expected 429, got {outcome.describe()}"
    assert isinstance(outcome.error.get("message"), str), (
        f"{what}: expected an OpenAI error object, got {outcome.body!r}"
    )
    retry_after = outcome.headers.get("retry-after")
    assert retry_after is not None, f"{what}: no Retry-After header in {outcome.headers}"
    assert 0 <= float(retry_after) <= 61, f"{what}: Retry-After {retry_after!r} is not seconds"
    limits = [name for name in outcome.headers if name.startswith("x-ratelimit-")]
    assert limits, f"{what}: no x-ratelimit-* header in {sorted(outcome.headers)}"


async def test_3_rpm_limit_refuses_the_next_request_in_the_minute(tmp_path: Path) -> None:
    async with governed_gateway(tmp_path) as rig:
        key = await rig.generate_key(rpm_limit=3)
        client = rig.client(key)
        await away_from_minute_edge()
        outcomes = [await ask(client) for _ in range(4)]
        firsts = [outcome.describe() for outcome in outcomes[:3] if not outcome.served]
        assert not firsts, f"rpm_limit 3: the first three requests must be served, got {firsts}"
        assert_rate_limited(outcomes[3], "the 4th request in a minute at rpm_limit 3")
        assert len(rig.fake.requests) == 3, (
            f"the refused request reached the upstream ({len(rig.fake.requests)} requests)"
        )


async def test_3_tpm_limit_refuses_once_the_minute_s_tokens_are_used(tmp_path: Path) -> None:
    """Each request is capped at its whole answer (max_tokens 8, an 8-token answer): 18 tokens,
    reserved and used alike."""
    limit, per_request = 100, PROMPT + 8
    async with governed_gateway(tmp_path) as rig:
        key = await rig.generate_key(tpm_limit=limit)
        client = rig.client(key)
        await away_from_minute_edge()
        served: list[Outcome] = []
        refusal = None
        for _ in range(12):
            outcome = await ask(client, max_tokens=8)
            if not outcome.served:
                refusal = outcome
                break
            served.append(outcome)
        used = sum(prompt + completion for prompt, completion in rig.served_usage())
        assert refusal is not None, f"tpm_limit {limit}: never refused, {used} tokens served"
        assert_rate_limited(refusal, f"a request after {used} tokens at tpm_limit {limit}")
        assert used <= limit + per_request, (
            f"tpm_limit {limit}: {used} tokens served, more than one request ({per_request}) over"
        )
        assert used > limit - 2 * per_request, (
            f"tpm_limit {limit}: refused after only {used} tokens (requests of {per_request})"
        )


async def test_3_max_parallel_requests_refuses_one_stream_too_many(tmp_path: Path) -> None:
    """Two slow streams (40 tokens, a quarter of a second apart) are held open; a third request
    meanwhile is refused. Once they are closed, the key is served again."""
    reply = " ".join(f"word{index}" for index in range(40))
    async with governed_gateway(tmp_path, reply=reply, chunk_delay=0.25) as rig:
        key = await rig.generate_key(max_parallel_requests=2)
        client = rig.client(key, timeout=60.0)
        streams: list[Any] = []
        try:
            for _ in range(2):
                stream = await client.chat.completions.create(
                    model=MODEL, messages=MESSAGES, stream=True, max_tokens=64
                )
                streams.append(stream)
                await asyncio.wait_for(stream.__anext__(), 30)
            third = await ask(client, max_tokens=64)
            assert third.status == 429, (
                f"a third request while two streams are open at max_parallel_requests 2: "
                f"expected 429, got {third.describe()}"
            )
            assert isinstance(third.error.get("message"), str), third.body
        finally:
            for stream in streams:
                await stream.close()
        after = await eventually(lambda: ask(client), lambda outcome: outcome.served, 20, 0.5)
        assert after.served, f"once the streams closed, a request was still {after.describe()}"


# ---- 4. a team's budget applies to its keys -----------------------------------------------


async def test_4_team_budget_refuses_a_key_with_budget_left(tmp_path: Path) -> None:
    team_budget = 3 * COST
    async with governed_gateway(tmp_path) as rig:
        team = await rig.new_team(team_id="ml", max_budget=dollars(team_budget))
        spender = await rig.generate_key(team_id=team, max_budget=1.0)
        other = await rig.generate_key(team_id=team, max_budget=1.0)
        served, refusal = await spend_until_refused(rig.client(spender), 15)
        assert refusal is not None, (
            f"team max_budget {dollars(team_budget)} never refused its key: {len(served)} served"
        )
        assert_budget_exceeded(refusal, "the team's key past the team's budget")
        outcome = await ask(rig.client(other))
        assert_budget_exceeded(outcome, "another key of the spent team, its own budget unused")
        expected = rig.served_cost()
        spend = await settled_spend(rig, spender, expected)
        assert spend == expected, f"spender's spend: expected {expected}, got {spend}"
        assert spend <= team_budget + WORST, f"team spend {spend} passed {team_budget} too far"
        assert await rig.key_spend(other) == 0, "the refused key was charged"


# ---- 5. /spend/logs: one row per request served, priced exactly; refusals not charged ------


def charged(row: dict[str, Any]) -> bool:
    tokens = (row.get("prompt_tokens") or 0) + (row.get("completion_tokens") or 0)
    return micros(row.get("spend")) > 0 or tokens > 0


async def test_5_spend_logs_have_one_exact_row_per_request_served(
    database_url: str, tmp_path: Path
) -> None:
    budget = 5 * COST
    async with governed_gateway(tmp_path, database_url=database_url) as rig:
        key = await rig.generate_key(max_budget=dollars(budget), key_alias="logged")
        served, refusal = await spend_until_refused(rig.client(key), 15, MODES)
        assert refusal is not None, (
            f"max_budget {dollars(budget)}: {len(served)} served, none refused"
        )
        assert_budget_exceeded(refusal, "the request past the budget")
        rows = await eventually(
            lambda: rig.spend_logs(api_key=key),
            lambda found: len([row for row in found if charged(row)]) >= len(served),
        )
        rows_charged = [row for row in rows if charged(row)]
        got = sorted(
            (row.get("prompt_tokens"), row.get("completion_tokens"), micros(row.get("spend")))
            for row in rows_charged
        )
        wanted = sorted((p, c, price(p, c)) for p, c in rig.served_usage())
        assert got == wanted, (
            f"/spend/logs rows (prompt, completion, micro-dollars): expected one per request "
            f"served, {wanted}; got {got} (all rows: {json.dumps(rows)[:1500]})"
        )
        ids = [row.get("request_id") for row in rows]
        assert len(set(ids)) == len(ids), f"request ids repeat: {ids}"
        digest = (await rig.key_info(key))["token"]
        assert {row.get("api_key") for row in rows} == {digest}, (
            f"rows must name the key by its hash {digest}: {[row.get('api_key') for row in rows]}"
        )
        assert all(row.get("model_group") == MODEL for row in rows_charged), rows_charged
        spend = await settled_spend(rig, key, rig.served_cost())
        assert spend == sum(micros(row.get("spend")) for row in rows), (
            f"/key/info spend {spend} differs from the spend logs' sum"
        )


async def test_5_spend_log_row_is_found_by_the_request_id_the_caller_saw(tmp_path: Path) -> None:
    async with governed_gateway(tmp_path) as rig:
        key = await rig.generate_key(max_budget=1.0)
        client = rig.client(key)
        outcomes = [await ask(client, mode) for mode in MODES]
        assert all(outcome.served for outcome in outcomes), [o.describe() for o in outcomes]
        rows = await eventually(
            lambda: rig.spend_logs(api_key=key), lambda found: len(found) >= len(outcomes)
        )
        by_id = {row.get("request_id"): row for row in rows}
        for outcome in outcomes:
            seen = {outcome.response_id, *outcome.headers.values()} - {None}
            matching = [ident for ident in by_id if ident in seen]
            assert len(matching) == 1, (
                f"a served request (id {outcome.response_id}, headers {outcome.headers}) must "
                f"have one spend-log row under an id it was given; rows: {sorted(map(str, by_id))}"
            )
            found = await rig.spend_logs(request_id=str(matching[0]))
            assert [row.get("request_id") for row in found] == matching, (
                f"/spend/logs?request_id={matching[0]} answered {found}"
            )


# ---- 6. a client gone mid-stream is charged for what it consumed --------------------------


async def test_6_disconnect_mid_stream_is_charged_for_what_was_consumed(tmp_path: Path) -> None:
    words = 60
    reply = " ".join(f"word{index}" for index in range(words))
    async with governed_gateway(tmp_path, reply=reply, chunk_delay=0.05) as rig:
        key = await rig.generate_key(max_budget=1.0)
        client = rig.client(key)
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, max_tokens=100
        )
        received = 0
        async for chunk in stream:
            received += sum(1 for choice in chunk.choices if choice.delta.content)
            if received >= 5:
                break
        await stream.close()
        full = price(PROMPT, words)
        spend = await eventually(lambda: rig.key_spend(key), lambda spend: spend > 0, 15)
        assert 0 < spend <= full, (
            f"a stream dropped after {received} of {words} tokens: expected a charge above 0 "
            f"and at most the whole answer's {full} micro-dollars, got {spend}"
        )
        rows = await eventually(lambda: rig.spend_logs(api_key=key), lambda found: bool(found))
        assert len(rows) == 1, f"expected one spend-log row for the dropped stream, got {rows}"
        assert micros(rows[0].get("spend")) == spend, f"row {rows[0]} differs from spend {spend}"


# ---- 7. soft_budget alerts only ------------------------------------------------------------


async def test_7_soft_budget_does_not_refuse(tmp_path: Path) -> None:
    soft = COST + 4
    async with governed_gateway(tmp_path) as rig:
        key = await rig.generate_key(soft_budget=dollars(soft))
        client = rig.client(key)
        outcomes = [await ask(client, mode) for mode in (*MODES, "whole", "whole")]
        refused = [outcome.describe() for outcome in outcomes if not outcome.served]
        assert not refused, f"soft_budget {dollars(soft)} must not refuse; got {refused}"
        expected = rig.served_cost()
        spend = await settled_spend(rig, key, expected)
        assert spend == expected > soft, (
            f"spend past the soft budget: expected {expected} micro-dollars, got {spend}"
        )


# ---- 8. budget_duration: served again after the period ends -------------------------------


async def test_8_budget_resets_after_its_duration(tmp_path: Path) -> None:
    async with governed_gateway(tmp_path) as rig:
        key = await rig.generate_key(max_budget=dollars(60), budget_duration="30s")
        client = rig.client(key)
        served, refusal = await spend_until_refused(client, 8)
        assert refusal is not None, (
            f"max_budget {dollars(60)} (about two requests): {len(served)} served, none refused"
        )
        assert_budget_exceeded(refusal, "the request past the budget")
        info = await rig.key_info(key)
        assert info.get("budget_reset_at"), f"a 30s budget must report budget_reset_at: {info}"
        again = await eventually(lambda: ask(client), lambda outcome: outcome.served, 45, 1.0)
        assert again.served, (
            f"a 30s budget must let the key in again within 45 s; got {again.describe()}"
        )


# ---- 9. the master key is never refused for budget reasons --------------------------------


async def test_9_master_key_is_never_refused_for_budget(tmp_path: Path) -> None:
    async with governed_gateway(tmp_path) as rig:
        team = await rig.new_team(team_id="tight", max_budget=dollars(COST))
        key = await rig.generate_key(team_id=team, user_id="ana", max_budget=dollars(COST))
        await rig.post("/user/update", {"user_id": "ana", "max_budget": dollars(COST)})
        served, refusal = await spend_until_refused(rig.client(key), 8)
        assert refusal is not None, (
            f"precondition: the key's budget must be enforced, but {len(served)} were served"
        )
        assert_budget_exceeded(refusal, "the spent key")
        master = rig.client(MASTER)
        outcomes = [await ask(master, mode) for mode in MODES]
        outcomes += [await ask(master, mode, user="ana") for mode in MODES]
        refused = [outcome.describe() for outcome in outcomes if not outcome.served]
        assert not refused, f"the master key was refused: {refused}"


# ---- 10. two instances sharing Redis and one store: budgets and limits hold fleet-wide -----


@pytest.mark.services
async def test_10_two_instances_never_overspend_one_key(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    per_instance, budget = 24, 5 * COST
    async with governed_gateway(tmp_path, instances=2, redis_url=redis_server.url) as rig:
        key = await rig.generate_key(max_budget=dollars(budget))
        clients = [rig.client(key, instance, timeout=60.0) for instance in (0, 1)]
        calls = [ask(client, "stream_usage") for client in clients for _ in range(per_instance)]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls), 120)
        others = [outcome.describe() for outcome in outcomes if outcome.status not in (200, 429)]
        assert not others, f"every request must be answered or refused with 429; got {others}"
        served = [outcome for outcome in outcomes if outcome.served]
        refused = [outcome for outcome in outcomes if not outcome.served]
        for outcome in refused:
            assert_budget_exceeded(outcome, "a stream past the budget on either instance")
        assert served, f"none of {len(outcomes)} streams was served with a budget for about 5"
        assert refused, f"all {len(outcomes)} streams were served with a budget for about 5"
        assert len(rig.fake.requests) == len(served), (
            f"{len(rig.fake.requests)} requests reached the upstream, {len(served)} were served"
        )
        expected = rig.served_cost()
        spend = await settled_spend(rig, key, expected)
        assert spend == expected, f"spend of {len(served)} served: expected {expected}, got {spend}"
        assert spend <= budget, f"two instances spent {spend} micro-dollars of a {budget} budget"
        rows = await eventually(
            lambda: rig.spend_logs(api_key=key),
            lambda found: len([row for row in found if charged(row)]) >= len(served),
        )
        assert len([row for row in rows if charged(row)]) == len(served), (
            f"expected one charged spend-log row per served stream ({len(served)}), got {rows}"
        )


@pytest.mark.services
async def test_10_rpm_limit_holds_across_instances(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    limit, per_instance = 5, 6
    async with governed_gateway(tmp_path, instances=2, redis_url=redis_server.url) as rig:
        key = await rig.generate_key(rpm_limit=limit)
        clients = [rig.client(key, instance) for instance in (0, 1)]
        await away_from_minute_edge()
        calls = [ask(client) for client in clients for _ in range(per_instance)]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls), 60)
        served = [outcome for outcome in outcomes if outcome.served]
        refused = [outcome for outcome in outcomes if not outcome.served]
        assert len(served) == limit, (
            f"rpm_limit {limit}, {len(outcomes)} concurrent requests over two instances: "
            f"expected exactly {limit} served, got {[outcome.status for outcome in outcomes]}"
        )
        for outcome in refused:
            assert_rate_limited(outcome, f"a request past rpm_limit {limit} on either instance")
        assert len(rig.fake.requests) == limit, f"{len(rig.fake.requests)} reached the upstream"


@pytest.mark.services
async def test_10_tpm_limit_holds_across_instances(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """18 tokens a request (max_tokens 8 caps an 8-token answer: reserved and used alike)."""
    limit, per_request, per_instance = 100, PROMPT + 8, 8
    async with governed_gateway(tmp_path, instances=2, redis_url=redis_server.url) as rig:
        key = await rig.generate_key(tpm_limit=limit)
        clients = [rig.client(key, instance) for instance in (0, 1)]
        await away_from_minute_edge()
        calls = [ask(client, max_tokens=8) for client in clients for _ in range(per_instance)]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls), 60)
        others = [outcome.describe() for outcome in outcomes if outcome.status not in (200, 429)]
        assert not others, f"every request must be answered or refused with 429; got {others}"
        used = sum(prompt + completion for prompt, completion in rig.served_usage())
        refused = [outcome for outcome in outcomes if not outcome.served]
        assert refused, f"tpm_limit {limit}: all {len(outcomes)} served, {used} tokens"
        for outcome in refused:
            assert_rate_limited(outcome, f"a request past tpm_limit {limit} on either instance")
        assert 0 < used <= limit + per_request, (
            f"tpm_limit {limit} over two instances: {used} tokens served in requests of "
            f"{per_request}; at most one request over the limit is allowed"
        )
