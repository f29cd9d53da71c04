"""Virtual keys end to end: made through the management API, used through the official SDK.

Each test runs on a SQLite file and on a fresh PostgreSQL database (the `kit` fixture); the key
cache is off (TTL 0) unless the test is about the cache, so every change shows at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from governance_stores import StoreKit
from harness import Recorder
from key_harness import MASTER, MESSAGES, keyed_gateway
from turnout import Principal
from turnout.observe.events import RequestFinished, RequestStarted


async def _chat(gateway: Any, key: str, model: str = "chat") -> str:
    async with gateway.client(api_key=key) as client:
        answer = await client.chat.completions.create(model=model, messages=MESSAGES)
    return str(answer.choices[0].message.content)


async def _refused(gateway: Any, key: str, model: str = "chat") -> openai.APIStatusError:
    async with gateway.client(api_key=key) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model=model, messages=MESSAGES)
    return caught.value


async def _until_refused(gateway: Any, key: str, seconds: float = 10.0) -> openai.APIStatusError:
    """Call until the key is refused (a period ends): the refusal, within `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            await _chat(gateway, key)
        except openai.APIStatusError as refused:
            return refused
        await asyncio.sleep(0.2)
    raise AssertionError(f"the key still worked after {seconds}s")


async def test_a_generated_key_is_used_and_its_info_read(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (gateway, admin):
        made = await admin.post(
            "/key/generate", {"key_alias": "ci", "max_budget": 10.5, "metadata": {"team": "x"}}
        )
        key = made["key"]
        assert key.startswith("sk-") and len(key) >= 35
        assert made["key_name"] == f"sk-...{key[-4:]}"
        assert "Simulated answer" in await _chat(gateway, key)
        info = await admin.get("/key/info", key=key)
        assert info["key"] == made["token"]
        assert info["info"]["key_alias"] == "ci"
        assert info["info"]["max_budget"] == 10.5
        assert info["info"]["metadata"] == {"team": "x"}
        # The request it made is charged (exactly: see test_enforcement).
        assert info["info"]["spend"] > 0.0
        # The digest and the stable id name the same key; neither is the key.
        assert key not in str(info)
        by_id = await admin.get("/key/info", key=made["key_id"])
        assert by_id["info"]["token"] == made["token"]
        # A key may read its own info, and not another's.
        status, own = await admin.call("GET", "/key/info", key=key)
        assert status == 200 and own["info"]["key_id"] == made["key_id"]
        other = await admin.post("/key/generate", {})
        status, refused = await admin.call(
            "GET", "/key/info", key=key, params={"key": other["key"]}
        )
        assert status == 403 and refused["error"]["type"] == "auth_error"


async def test_a_key_uses_only_its_models_and_lists_only_them(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (gateway, admin):
        key = (await admin.post("/key/generate", {"models": ["chat"]}))["key"]
        assert "Simulated answer from a" in await _chat(gateway, key)
        # A router alias of an allowed group is allowed.
        assert "Simulated answer from a" in await _chat(gateway, key, "gpt-4o")
        refused = await _refused(gateway, key, "other")
        assert refused.status_code == 401
        error = refused.body
        assert isinstance(error, dict)
        assert error["type"] == "key_model_access_denied"
        assert error["param"] == "model"
        assert error["message"] == (
            "key not allowed to access model. This key can only access models=['chat']. "
            "Tried to access other"
        )
        async with gateway.client(api_key=key) as client:
            listed = sorted(model.id for model in (await client.models.list()).data)
        assert listed == ["chat", "gpt-4o"]
        async with gateway.client(api_key=MASTER) as client:
            everything = sorted(model.id for model in (await client.models.list()).data)
        assert everything == ["chat", "gpt-4o", "other"]


async def test_a_keys_aliases_point_a_name_at_a_group(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (gateway, admin):
        made = await admin.post(
            "/key/generate", {"models": ["chat"], "aliases": {"cheap": "other"}}
        )
        assert "Simulated answer from b" in await _chat(gateway, made["key"], "cheap")
        async with gateway.client(api_key=made["key"]) as client:
            listed = sorted(model.id for model in (await client.models.list()).data)
        assert listed == ["chat", "cheap", "gpt-4o"]


async def test_a_teams_models_apply_to_its_keys(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (gateway, admin):
        team = await admin.post("/team/new", {"team_alias": "research", "models": ["other"]})
        key = (await admin.post("/key/generate", {"team_id": team["team_id"]}))["key"]
        assert "Simulated answer from b" in await _chat(gateway, key, "other")
        refused = await _refused(gateway, key, "chat")
        assert refused.status_code == 401
        assert isinstance(refused.body, dict)
        assert refused.body["type"] == "team_model_access_denied"
        assert "Tried to access chat" in refused.body["message"]
        async with gateway.client(api_key=key) as client:
            assert [m.id for m in (await client.models.list()).data] == ["other"]
        # Widening the team widens its keys.
        await admin.post("/team/update", {"team_id": team["team_id"], "models": []})
        assert "Simulated answer from a" in await _chat(gateway, key, "chat")
        # A blocked team's keys stop.
        await admin.post("/team/update", {"team_id": team["team_id"], "blocked": True})
        assert (await _refused(gateway, key, "other")).status_code == 401


async def test_block_unblock_and_delete(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (gateway, admin):
        key = (await admin.post("/key/generate", {}))["key"]
        blocked = await admin.post("/key/block", {"key": key})
        assert blocked["blocked"] is True
        refused = await _refused(gateway, key)
        assert refused.status_code == 401
        assert isinstance(refused.body, dict)
        assert refused.body["message"].startswith("Authentication Error, Key is blocked")
        await admin.post("/key/unblock", {"key": key})
        assert await _chat(gateway, key)
        deleted = await admin.post("/key/delete", {"keys": [key]})
        assert len(deleted["deleted_keys"]) == 1
        refused = await _refused(gateway, key)
        assert refused.status_code == 401
        assert isinstance(refused.body, dict)
        assert "Invalid proxy server token passed" in refused.body["message"]
        status, _ = await admin.call("GET", "/key/info", params={"key": key})
        assert status == 404


async def test_a_key_stops_when_it_expires(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (gateway, admin):
        key = (await admin.post("/key/generate", {"duration": "2s"}))["key"]
        assert await _chat(gateway, key)
        refused = await _until_refused(gateway, key)
        assert refused.status_code == 401
        assert isinstance(refused.body, dict)
        assert "Expired Key" in refused.body["message"]


async def test_regenerate_with_a_grace_period_keeps_the_old_key_until_it_ends(
    kit: StoreKit,
) -> None:
    async with keyed_gateway(kit.url) as (gateway, admin):
        old = await admin.post("/key/generate", {"key_alias": "rotating"})
        new = await admin.post("/key/regenerate", {"key": old["key"], "grace_period": "3s"})
        assert new["key"] != old["key"] and new["key_id"] == old["key_id"]
        assert new["key_alias"] == "rotating"
        assert await _chat(gateway, new["key"])
        assert await _chat(gateway, old["key"])
        refused = await _until_refused(gateway, old["key"])
        assert refused.status_code == 401
        assert await _chat(gateway, new["key"])
        # Without a grace period the old key stops at once (through the path's form).
        newest = await admin.post(f"/key/{new['key']}/regenerate", {})
        assert (await _refused(gateway, new["key"])).status_code == 401
        assert await _chat(gateway, newest["key"])


async def test_the_cache_serves_a_key_without_the_store_until_it_expires(
    kit: StoreKit,
) -> None:
    """With a cache TTL, a block made in another process shows once the entry expires; in the
    process that served the management call it shows at once."""
    async with (
        keyed_gateway(kit.url, ttl=1.0) as (gateway, admin),
        keyed_gateway(kit.url, ttl=1.0) as (other, _),
    ):
        key = (await admin.post("/key/generate", {}))["key"]
        assert await _chat(other, key)
        await admin.post("/key/block", {"key": key})
        assert (await _refused(gateway, key)).status_code == 401
        assert (await _until_refused(other, key, seconds=5)).status_code == 401


async def test_an_unknown_key_is_a_401_in_litellms_words(kit: StoreKit) -> None:
    async with keyed_gateway(kit.url) as (gateway, _):
        refused = await _refused(gateway, "sk-never-issued")
        assert refused.status_code == 401
        assert isinstance(refused.body, dict)
        assert refused.body["type"] == "auth_error"
        assert refused.body["message"].startswith(
            "Authentication Error, Invalid proxy server token passed"
        )
        assert "sk-never-issued" not in refused.body["message"]


async def test_the_principal_names_the_key_its_team_and_user_never_the_key(
    kit: StoreKit,
) -> None:
    async with keyed_gateway(kit.url) as (gateway, admin):
        team = await admin.post("/team/new", {"team_id": "ml"})
        made = await admin.post(
            "/key/generate", {"team_id": team["team_id"], "user_id": "ana", "key_alias": "ci"}
        )
        recorder = Recorder()
        gateway.gateway.bus.subscribe(recorder)
        await _chat(gateway, made["key"])
        for _ in range(100):  # the finishing event follows the answer within a loop turn
            if recorder.of(RequestFinished):
                break
            await asyncio.sleep(0.01)
    started = recorder.of(RequestStarted)
    assert [event.principal for event in started] == [
        Principal(
            f"key:{made['key_id']}",
            key_id=made["key_id"],
            key_hash=made["token"],
            key_alias="ci",
            team_id="ml",
            user_id="ana",
        )
    ]
    assert made["key"] not in repr(recorder.events)


async def test_concurrent_requests_of_a_key_share_one_read_of_it(kit: StoreKit) -> None:
    """A busy key's entry expiring makes one store read, not one per request waiting on it."""
    async with keyed_gateway(kit.url, ttl=60.0) as (gateway, admin):
        key = (await admin.post("/key/generate", {}))["key"]
        store = gateway.gateway.store
        assert store is not None and store.store is not None
        opened = store.store
        reads = 0
        find = opened.key_by_hash

        async def counted(token_hash: str) -> Any:
            nonlocal reads
            reads += 1
            await asyncio.sleep(0.2)  # a slow read: every request below arrives during it
            return await find(token_hash)

        opened.key_by_hash = counted  # type: ignore[method-assign]
        answers = await asyncio.gather(*(_chat(gateway, key) for _ in range(16)))
        assert all(answers)
        assert reads == 1
