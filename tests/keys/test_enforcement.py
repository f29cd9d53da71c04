"""Budgets and rate limits enforced on the request path, and what each request is charged.

Keys are made through the management API and used through the official SDK; what was charged
is read back through `/key/info` and `/spend/logs`. The upstreams are simulated deployments
priced at one micro-dollar per input token and two per output token, so every charge can be
worked out from the usage the caller saw.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest
from enforce_harness import chat, enforcing_gateway, key_spend, micros, spend_rows

from gateway_harness import simulated
from key_harness import MASTER, MESSAGES, exact_micros
from services import free_port
from turnout.config.router import HedgeConfig
from turnout.config.state import StateConfig


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


async def _raw(gateway: Any, key: str, **body: Any) -> Any:
    async with gateway.client(api_key=key) as client:
        return await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, **body
        )


async def _refusal(gateway: Any, key: str, **body: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        await _raw(gateway, key, **body)
    return caught.value


async def test_a_budget_admits_until_it_is_spent_and_charges_exactly(tmp_path: Path) -> None:
    async with enforcing_gateway(_store(tmp_path)) as (gateway, admin):
        made = await admin.post("/key/generate", {"max_budget": 0.0002})
        key, token = made["key"], made["token"]
        served: list[Any] = []
        refusal = None
        for _ in range(40):
            try:
                raw = await _raw(gateway, key, max_tokens=10)
            except openai.APIStatusError as refused:
                refusal = refused
                break
            served.append(raw.parse().usage)
        assert refusal is not None and served, "the budget never refused"
        assert refusal.status_code == 429
        error = refusal.body
        assert isinstance(error, dict)
        assert error["type"] == "budget_exceeded" and error["code"] == "429"
        assert f"Key={made['key_id']}" in error["message"]
        assert "Max budget: 0.0002" in error["message"]
        rows = await spend_rows(admin, token, len(served))
        expected = sum(exact_micros(u.prompt_tokens, u.completion_tokens) for u in served)
        assert len(rows) == len(served)
        assert sum(micros(row["spend"]) for row in rows) == expected
        for row in rows:
            assert micros(row["spend"]) == exact_micros(
                row["prompt_tokens"], row["completion_tokens"]
            )
            assert row["status"] == "success" and row["model_id"] == "a"
        assert await key_spend(admin, key) == expected <= 200


async def test_streamed_spend_is_the_usage_the_caller_saw(tmp_path: Path) -> None:
    async with enforcing_gateway(_store(tmp_path), chat(output_tokens=7)) as (gateway, admin):
        made = await admin.post("/key/generate", {"max_budget": 1.0})
        usages = []
        async with gateway.client(api_key=made["key"]) as client:
            for _ in range(3):
                stream = await client.chat.completions.create(
                    model="chat",
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in stream:
                    if chunk.usage is not None:
                        usages.append(chunk.usage)
        assert len(usages) == 3
        rows = await spend_rows(admin, made["token"], 3)
        expected = sum(exact_micros(u.prompt_tokens, u.completion_tokens) for u in usages)
        assert sum(micros(row["spend"]) for row in rows) == expected
        assert {row["completion_tokens"] for row in rows} == {7}
        assert all(row["completionStartTime"] is not None for row in rows)
        assert await key_spend(admin, made["key"]) == expected


async def test_a_client_that_leaves_a_stream_is_charged_what_was_generated(
    tmp_path: Path,
) -> None:
    slow = chat(output_tokens=200, chunk_interval=0.02)
    async with enforcing_gateway(_store(tmp_path), slow) as (gateway, admin):
        made = await admin.post("/key/generate", {"max_budget": 1.0})
        async with gateway.client(api_key=made["key"]) as client:
            stream = await client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True, max_tokens=200
            )
            seen = 0
            async for chunk in stream:
                seen += 1 if chunk.choices and chunk.choices[0].delta.content else 0
                if seen >= 5:
                    break
            await stream.close()
        rows = await spend_rows(admin, made["token"], 1)
        row = rows[0]
        # Charged its prompt and the tokens generated before it left, never the whole answer.
        assert 5 <= row["completion_tokens"] < 200
        assert row["prompt_tokens"] > 0
        assert micros(row["spend"]) == exact_micros(row["prompt_tokens"], row["completion_tokens"])
        assert row["status"] == "failure"
        assert await key_spend(admin, made["key"]) == micros(row["spend"])


async def test_a_hedged_request_is_charged_for_both_attempts(tmp_path: Path) -> None:
    primary = chat("slow", output_tokens=3, latency=1.0)
    hedge = chat("fast", output_tokens=3)
    async with enforcing_gateway(
        _store(tmp_path), primary, hedge, hedging={"chat": HedgeConfig(delay=0.05, budget=1.0)}
    ) as (gateway, admin):
        made = await admin.post("/key/generate", {"max_budget": 1.0})
        served: list[Any] = []
        hedged: list[dict[str, Any]] = []
        for _ in range(12):  # until the slow one is picked first and hedged
            served.append((await _raw(gateway, made["key"])).parse().usage)
            rows = await spend_rows(admin, made["token"], len(served))
            hedged = [row for row in rows if "; " in row["metadata"]["attempts"]]
            if hedged:
                break
        assert hedged, "no request was hedged"
        row = hedged[0]
        usage = served[-1]
        # The winner's usage, and the cancelled duplicate's prompt.
        assert row["prompt_tokens"] == 2 * usage.prompt_tokens
        assert row["completion_tokens"] == usage.completion_tokens
        assert micros(row["spend"]) == exact_micros(row["prompt_tokens"], row["completion_tokens"])
        total = sum(micros(r["spend"]) for r in rows)
        assert await key_spend(admin, made["key"]) == total


async def test_requests_per_minute_are_limited_with_retry_after(tmp_path: Path) -> None:
    async with enforcing_gateway(_store(tmp_path)) as (gateway, admin):
        made = await admin.post("/key/generate", {"rpm_limit": 3})
        for left in (2, 1, 0):
            raw = await _raw(gateway, made["key"])
            assert raw.headers["x-ratelimit-limit-requests"] == "3"
            assert raw.headers["x-ratelimit-remaining-requests"] == str(left)
        refused = await _refusal(gateway, made["key"])
        assert refused.status_code == 429
        assert isinstance(refused.body, dict) and refused.body["type"] == "rate_limit_error"
        assert 1 <= int(refused.response.headers["retry-after"]) <= 60
        assert refused.response.headers["x-ratelimit-remaining-requests"] == "0"
        # Another key is not limited by this one's count.
        other = await admin.post("/key/generate", {})
        await _raw(gateway, other["key"])


async def test_tokens_per_minute_are_limited(tmp_path: Path) -> None:
    async with enforcing_gateway(_store(tmp_path)) as (gateway, admin):
        made = await admin.post("/key/generate", {"tpm_limit": 60})
        answered = 0
        refused = None
        for _ in range(30):
            try:
                await _raw(gateway, made["key"], max_tokens=5)
                answered += 1
            except openai.APIStatusError as error:
                refused = error
                break
        assert refused is not None and answered >= 2
        assert refused.status_code == 429
        assert refused.response.headers["x-ratelimit-limit-tokens"] == "60"
        assert "retry-after" in refused.response.headers


async def test_parallel_requests_are_limited(tmp_path: Path) -> None:
    slow = chat(output_tokens=50, chunk_interval=0.05)
    async with enforcing_gateway(_store(tmp_path), slow) as (gateway, admin):
        made = await admin.post("/key/generate", {"max_parallel_requests": 1})
        async with gateway.client(api_key=made["key"]) as client:
            stream = await client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True
            )
            async with stream:
                await anext(aiter(stream))
                refused = await _refusal(gateway, made["key"])
                assert refused.status_code == 429
                assert refused.response.headers["retry-after"] == "1"
        # The lease ends with its stream.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            try:
                await _raw(gateway, made["key"], stream=False)
                break
            except openai.APIStatusError:
                assert loop.time() < deadline, "the parallel lease was never given back"
                await asyncio.sleep(0.05)


async def test_a_team_budget_and_a_model_budget_apply(tmp_path: Path) -> None:
    async with enforcing_gateway(_store(tmp_path)) as (gateway, admin):
        team = await admin.post("/team/new", {"max_budget": 0.00005})
        key = (await admin.post("/key/generate", {"team_id": team["team_id"]}))["key"]
        await _raw(gateway, key, max_tokens=10)
        refused = None
        for _ in range(10):
            try:
                await _raw(gateway, key, max_tokens=10)
            except openai.APIStatusError as error:
                refused = error
                break
        assert refused is not None and refused.status_code == 429
        assert isinstance(refused.body, dict)
        assert f"Team={team['team_id']}" in refused.body["message"]
        limited = await admin.post(
            "/key/generate", {"model_max_budget": {"chat": {"budget_limit": 0.00001}}}
        )
        refused = await _refusal(gateway, limited["key"], max_tokens=10)
        assert refused.status_code == 429
        assert isinstance(refused.body, dict) and "model=chat" in refused.body["message"]


async def test_a_blocked_user_and_bad_estimates_are_refused(tmp_path: Path) -> None:
    unpriced = simulated("u", group="free", output_tokens=3)
    async with enforcing_gateway(_store(tmp_path), chat(), unpriced) as (gateway, admin):
        await admin.post("/user/new", {"user_id": "ann", "auto_create_key": False})
        key = (await admin.post("/key/generate", {"user_id": "ann", "max_budget": 1.0}))["key"]
        await _raw(gateway, key)
        refused = await _refusal(gateway, key, max_tokens=2**60)
        assert refused.status_code == 400
        assert isinstance(refused.body, dict) and refused.body["param"] == "max_tokens"
        async with gateway.client(api_key=key) as client:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model="free", messages=MESSAGES)
        assert "no known price" in str(caught.value)
        # The master key may use the unpriced model: it has no budget to hold.
        async with gateway.client(api_key=MASTER) as client:
            await client.chat.completions.create(model="free", messages=MESSAGES)
        await admin.post("/user/update", {"user_id": "ann", "blocked": True})
        refused = await _refusal(gateway, key)
        assert refused.status_code == 401 and "User=ann is blocked" in str(refused.body)


async def test_the_master_key_is_logged_too(tmp_path: Path) -> None:
    async with enforcing_gateway(_store(tmp_path)) as (gateway, admin):
        usage = (await _raw(gateway, MASTER)).parse().usage
        rows = await spend_rows(admin, None, 1)
        assert rows[0]["api_key"] == ""
        assert micros(rows[0]["spend"]) == exact_micros(usage.prompt_tokens, 3)


@pytest.mark.parametrize("fail_open", [False, True])
async def test_an_unreachable_ledger_fails_closed_unless_told(
    tmp_path: Path, fail_open: bool
) -> None:
    nowhere = StateConfig(backend="redis", url=f"redis://127.0.0.1:{free_port()}/0", timeout_ms=200)
    async with enforcing_gateway(_store(tmp_path), state=nowhere, fail_open=fail_open) as (
        gateway,
        admin,
    ):
        made = await admin.post("/key/generate", {"rpm_limit": 100, "max_budget": 1.0})
        if fail_open:
            await _raw(gateway, made["key"])
            return
        refused = await _refusal(gateway, made["key"])
        assert refused.status_code == 503
        assert isinstance(refused.body, dict)
        assert refused.body["type"] == "service_unavailable"
        # A key with neither budget nor limits holds nothing, and is served.
        plain = await admin.post("/key/generate", {})
        await _raw(gateway, plain["key"])


async def test_a_restarted_gateway_starts_from_the_spend_recorded_even_after_a_regenerate(
    tmp_path: Path,
) -> None:
    """A new process's ledger starts empty: the budget's seed, the store's record of this
    period's spend (under every digest the key had), keeps what was spent before."""
    async with enforcing_gateway(_store(tmp_path)) as (gateway, admin):
        made = await admin.post("/key/generate", {"max_budget": 0.0002})
        key, token = made["key"], made["token"]
        served = [(await _raw(gateway, key, max_tokens=10)).parse().usage for _ in range(3)]
        await spend_rows(admin, token, 3)
        spent = sum(exact_micros(u.prompt_tokens, u.completion_tokens) for u in served)
        fresh = await admin.post("/key/regenerate", {"key": key})
    async with enforcing_gateway(_store(tmp_path)) as (gateway, admin):
        assert await key_spend(admin, fresh["key"]) == spent
        more = 0
        status = 200
        while status == 200:
            try:
                usage = (await _raw(gateway, fresh["key"], max_tokens=10)).parse().usage
            except openai.APIStatusError as refusal:
                status = refusal.status_code
                continue
            more += exact_micros(usage.prompt_tokens, usage.completion_tokens)
            assert more < 200, "the budget never refused"
        assert status == 429
        assert spent + more <= 200
        assert await key_spend(admin, fresh["key"]) == spent + more
