"""LiteLLM's management API over plain HTTP: who may call it, what it refuses, what it answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from gateway_harness import gateway_config, running_gateway, simulated
from governance_stores import StoreKit
from key_harness import MASTER, keyed_gateway
from turnout.config.store import StoreConfig
from turnout.gateway.management_schema import GenerateKeyRequest
from turnout.gateway.openapi import ENDPOINTS
from turnout.governance import SpendRow


def _filled(path: str) -> str:
    return path.replace("{key}", "sk-some-key")


async def test_only_the_master_key_may_manage(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (_, admin):
        key = (await admin.post("/key/generate", {}))["key"]
        for endpoint in ENDPOINTS:
            path = _filled(endpoint.path)
            options: dict[str, Any] = {"json": {}} if endpoint.method == "POST" else {}
            if endpoint.path != "/key/info":
                status, answer = await admin.call(endpoint.method, path, key=key, **options)
                assert status == 403, (path, answer)
                assert answer["error"]["type"] == "auth_error"
                assert endpoint.path in answer["error"]["message"]
            status, answer = await admin.call(endpoint.method, path, key="sk-wrong", **options)
            assert status == 401, (path, answer)
            async with admin.session.request(endpoint.method, admin.url + path) as response:
                assert response.status == 401
                assert (await response.json())["error"]["message"].startswith("Missing API key")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/key/generate", {"max_budget": -1}, "max_budget"),
        ("/key/generate", {"rpm_limit": "many"}, "rpm_limit"),
        ("/key/generate", {"models": "chat"}, "models"),
        ("/key/generate", {"duration": "soon"}, "duration"),
        ("/key/generate", {"budget_duration": "weekly"}, "budget_duration"),
        ("/key/generate", {"guardrails": ["pii"]}, "guardrails"),
        ("/key/generate", {"team_id": "no-such-team"}, "team_id"),
        ("/key/generate", {"key_alias": ""}, "key_alias"),
        (
            "/key/generate",
            {"model_max_budget": {"chat": {"budget_limit": "ten"}}},
            "model_max_budget[...].budget_limit",
        ),
        (
            "/key/generate",
            {"model_max_budget": {"chat": {"budget_limit": 1, "time_period": "x"}}},
            "model_max_budget.chat.time_period",
        ),
        ("/key/generate", {"key": "my-own-key"}, "key"),
        ("/key/generate", {"key": MASTER}, "key"),
        ("/key/regenerate", {"key": "x", "new_key": "sk-"}, "new_key"),
        ("/key/update", {"max_budget": 1}, "key"),
        ("/key/regenerate", {"grace_period": "1h"}, "key"),
        ("/key/delete", {}, "keys"),
        ("/key/block", {"keys": ["x"]}, "keys"),
        ("/team/new", {"tpm_limit": -5}, "tpm_limit"),
        ("/team/update", {"team_alias": "x"}, "team_id"),
        ("/user/new", {"user_email": 7}, "user_email"),
        ("/user/delete", {"user_ids": "u1"}, "user_ids"),
    ],
)
async def test_invalid_input_is_a_400_naming_the_field(
    tmp_path: Any, path: str, body: Any, field: str
) -> None:
    async with keyed_gateway(f"sqlite:///{tmp_path / 'keys.db'}") as (_, admin):
        status, answer = await admin.call("POST", path, json=body)
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == field
    assert answer["error"]["message"].startswith(f"{field}: ")


async def test_bad_queries_and_bodies_that_are_not_json(tmp_path: Any) -> None:
    async with keyed_gateway(f"sqlite:///{tmp_path / 'keys.db'}") as (_, admin):
        status, answer = await admin.call("GET", "/key/list", params={"page": "0"})
        assert (status, answer["error"]["param"]) == (400, "page")
        status, answer = await admin.call("GET", "/spend/logs", params={"start_date": "May"})
        assert (status, answer["error"]["param"]) == (400, "start_date")
        status, answer = await admin.call("POST", "/key/generate", data=b"{not json")
        assert status == 400 and "not valid JSON" in answer["error"]["message"]
        status, answer = await admin.call("GET", "/team/info")
        assert (status, answer["error"]["param"]) == (400, "team_id")


async def test_amounts_are_dollars_outside_and_exact(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (_, admin):
        made = await admin.post(
            "/key/generate",
            {
                "max_budget": 0.1,
                "soft_budget": 0.07,
                "budget_duration": "30d",
                "model_max_budget": {"chat": {"budget_limit": 0.3, "time_period": "1d"}},
                "model_rpm_limit": {"chat": 5},
                "model_tpm_limit": {"other": 1000},
            },
        )
        info = (await admin.get("/key/info", key=made["key"]))["info"]
        assert (info["max_budget"], info["soft_budget"]) == (0.1, 0.07)
        assert info["model_max_budget"] == {"chat": {"budget_limit": 0.3, "time_period": "1d"}}
        assert info["model_rpm_limit"] == {"chat": 5}
        assert info["model_tpm_limit"] == {"other": 1000}
        assert info["budget_reset_at"] is not None
        # Setting one aspect of the per-model limits leaves the others.
        updated = await admin.post(
            "/key/update", {"key": made["token"], "model_rpm_limit": {"other": 9}}
        )
        assert updated["model_rpm_limit"] == {"other": 9}
        assert updated["model_max_budget"] == {"chat": {"budget_limit": 0.3, "time_period": "1d"}}
        # Only the fields sent change; null clears.
        updated = await admin.post("/key/update", {"key": made["key_id"], "max_budget": None})
        assert updated["max_budget"] is None and updated["soft_budget"] == 0.07


async def test_teams_and_users(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (gateway, admin):
        team = await admin.post("/team/new", {"team_id": "ml", "max_budget": 100, "models": []})
        assert team["team_id"] == "ml" and team["max_budget"] == 100.0
        status, answer = await admin.call("POST", "/team/new", json={"team_id": "ml"})
        assert (status, answer["error"]["param"]) == (400, "team_id")
        user = await admin.post("/user/new", {"user_id": "ana", "user_email": "ana@example.com"})
        assert user["key"].startswith("sk-") and user["user_email"] == "ana@example.com"
        async with gateway.client(api_key=user["key"]) as client:
            await client.models.list()
        await admin.post("/key/generate", {"team_id": "ml", "user_id": "ana", "key_alias": "k"})
        info = await admin.get("/team/info", team_id="ml")
        assert [key["key_alias"] for key in info["keys"]] == ["k"]
        info = await admin.get("/user/info", user_id="ana")
        assert sorted(str(key["key_alias"]) for key in info["keys"]) == ["None", "k"]
        assert [t["team_id"] for t in await admin.get("/team/list")] == ["ml"]
        listed = await admin.get("/key/list", team_id="ml")
        assert listed["total_count"] == 1 and listed["total_pages"] == 1
        assert len(listed["keys"][0]) == 64  # digests, not keys
        # LiteLLM makes the user a key names when it does not exist yet.
        await admin.post("/key/generate", {"user_id": "newcomer"})
        assert (await admin.get("/user/info", user_id="newcomer"))["user_id"] == "newcomer"
        updated = await admin.post("/user/update", {"user_id": "ana", "max_budget": 5})
        assert updated["max_budget"] == 5.0
        assert (await admin.post("/team/delete", {"team_ids": ["ml"]})) == {"deleted_teams": ["ml"]}
        status, _ = await admin.call("GET", "/team/info", params={"team_id": "ml"})
        assert status == 404
        assert (await admin.post("/user/delete", {"user_ids": ["ana"]})) == {
            "deleted_users": ["ana"]
        }
        status, _ = await admin.call("GET", "/user/info", params={"user_id": "ana"})
        assert status == 404


async def test_spend_logs_and_global_spend(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (_, admin):
        made = await admin.post("/key/generate", {"key_alias": "spender"})
        writer = await kit.open()
        start = datetime.now(UTC).replace(microsecond=0)
        rows = [
            SpendRow(
                request_id=f"r{n}",
                api_key=made["token"],
                key_alias="spender",
                model_group="chat",
                model="gpt-4o-mini",
                deployment="a",
                provider="openai",
                prompt_tokens=10,
                completion_tokens=5,
                spend=150_000,
                start_time=start + timedelta(seconds=n),
                end_time=start + timedelta(seconds=n + 1),
            )
            for n in range(3)
        ]
        await writer.write_spend(rows)
        logs = await admin.get("/spend/logs", api_key=made["key"])
        assert [row["request_id"] for row in logs] == ["r0", "r1", "r2"]
        assert logs[0]["spend"] == 0.15 and logs[0]["total_tokens"] == 15
        assert logs[0]["api_key"] == made["token"]
        assert logs[0]["metadata"]["user_api_key_alias"] == "spender"
        today = start.date().isoformat()
        days = await admin.get("/spend/logs", start_date=today, end_date=today)
        assert days == [
            {
                "startTime": today,
                "spend": 0.45,
                "models": {"chat": 0.45},
                "users": {"": 0.45},
                "api_requests": 3,
            }
        ]
        single = await admin.get(
            "/spend/logs", start_date=today, end_date=today, summarize="false", request_id="r1"
        )
        assert [row["request_id"] for row in single] == ["r1"]
        assert await admin.get("/global/spend") == {"spend": 0.45, "max_budget": None}


async def test_the_openapi_document_describes_every_route(tmp_path: Any) -> None:
    async with keyed_gateway(f"sqlite:///{tmp_path / 'keys.db'}") as (_, admin):
        status, document = await admin.call("GET", "/openapi.json", key="")
        assert status == 200
    served = {(endpoint.method.lower(), endpoint.path) for endpoint in ENDPOINTS}
    described = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    assert described == served
    generate = document["components"]["schemas"]["GenerateKeyRequest"]
    assert set(generate["properties"]) == set(GenerateKeyRequest.__struct_fields__)
    parameters = document["paths"]["/spend/logs"]["get"]["parameters"]
    assert {p["name"] for p in parameters} >= {"api_key", "start_date", "summarize"}


async def test_with_the_store_off_the_api_says_so(tmp_path: Any) -> None:
    config = gateway_config(simulated("a"), master_key=MASTER, store=StoreConfig(enabled=False))
    async with running_gateway(config) as gateway, aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {MASTER}"}
        async with session.post(gateway.url + "/key/generate", json={}, headers=headers) as got:
            assert got.status == 400
            assert (await got.json())["error"]["code"] == "store_off"
