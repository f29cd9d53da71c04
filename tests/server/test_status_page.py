"""`/status`, `/status/snapshot` and `/status/events` of a real gateway on loopback, in front of
fake OpenAI upstreams, called by the official SDK: access, what the snapshot shows, the stream
of snapshots, the static files."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import openai
import pytest

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import Deployment, RoutingConfig, Secret
from turnout.gateway import status

MASTER = "sk-master-status-0123456789"
UPSTREAM_KEY = "sk-upstream-secret-0123456789"
MESSAGES: Any = [{"role": "user", "content": "Hello"}]


def _upstream(fake: FakeOpenAI, name: str, priority: int) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="openai-compatible",
        model="gpt-4o-mini",
        name=name,
        base_url=fake.url,
        api_key=Secret(UPSTREAM_KEY),
        priority=priority,
    )


@asynccontextmanager
async def _setup(
    master_key: str | None = MASTER,
) -> AsyncIterator[tuple[RunningGateway, FakeOpenAI, FakeOpenAI]]:
    async with AsyncExitStack() as stack:
        main = await stack.enter_async_context(FakeOpenAI(api_key=UPSTREAM_KEY))
        spare = await stack.enter_async_context(FakeOpenAI(api_key=UPSTREAM_KEY))
        config = gateway_config(
            _upstream(main, "main-east", 0),
            _upstream(spare, "spare-west", 1),
            master_key=master_key,
            routing=RoutingConfig(strategy="priority"),
        )
        gw = await stack.enter_async_context(running_gateway(config))
        yield gw, main, spare


def _bearer(key: str = MASTER) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_without_a_key_the_page_asks_for_one_and_the_data_is_refused() -> None:
    async with _setup() as (gw, _, _), aiohttp.ClientSession() as http:
        async with http.get(f"{gw.url}/status") as page:
            assert page.status == 401
            body = await page.text()
        assert 'action="/status/login"' in body
        assert "main-east" not in body
        for path in ("/status/snapshot", "/status/events"):
            async with http.get(f"{gw.url}{path}") as refused:
                assert refused.status == 401
                error = await refused.json()
                assert error["error"]["type"] == "authentication_error"
        async with http.get(f"{gw.url}/status/snapshot", headers=_bearer("sk-wrong")) as wrong:
            assert wrong.status == 401


async def test_the_login_form_sets_a_cookie_that_is_not_the_key() -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies of an IP address such as 127.0.0.1
    async with _setup() as (gw, _, _), aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(
            f"{gw.url}/status/login", data={"key": "sk-not-it"}, allow_redirects=False
        ) as wrong:
            assert wrong.status == 401
            body = await wrong.text()
            assert "not the master key" in body
            assert "sk-not-it" not in body
            assert "set-cookie" not in wrong.headers
        async with http.post(
            f"{gw.url}/status/login", data={"key": MASTER}, allow_redirects=False
        ) as right:
            assert right.status == 303
            assert right.headers["location"] == "/status"
            cookie = right.headers["set-cookie"]
        assert MASTER not in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/status" in cookie
        value = re.search(r"turnout_status=([^;]+)", cookie)
        assert value is not None
        assert value.group(1) != MASTER
        # The session holds: the page and its data, through the cookie alone.
        async with http.get(f"{gw.url}/status") as page:
            assert page.status == 200
            html = await page.text()
        assert "main-east" in html
        assert "spare-west" in html
        assert 'action="/status/logout"' in html
        async with http.get(f"{gw.url}/status/snapshot") as snapshot:
            assert snapshot.status == 200
        # A forged cookie, or one of another key, opens nothing.
        for forged in (MASTER, status.session_cookie(Secret("sk-other"), 4_000_000_000)):
            async with (
                aiohttp.ClientSession() as other,
                other.get(
                    f"{gw.url}/status/snapshot", headers={"cookie": f"{status.COOKIE}={forged}"}
                ) as refused,
            ):
                assert refused.status == 401
        # The real one, sent the same way, passes (so the forged ones failed on their merit).
        async with (
            aiohttp.ClientSession() as other,
            other.get(
                f"{gw.url}/status/snapshot", headers={"cookie": f"{status.COOKIE}={value[1]}"}
            ) as accepted,
        ):
            assert accepted.status == 200
        async with http.post(f"{gw.url}/status/logout", allow_redirects=False) as out:
            assert out.status == 303
        async with http.get(f"{gw.url}/status") as page:
            assert page.status == 401


async def test_no_key_reaches_the_page_or_the_snapshot() -> None:
    async with _setup() as (gw, main, _), gw.client(api_key=MASTER, max_retries=0) as client:
        main.set_default(Fault.unauthorized())
        for _ in range(3):
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        async with aiohttp.ClientSession(headers=_bearer()) as http:
            async with http.get(f"{gw.url}/status") as page:
                html = await page.text()
                headers = page.headers
            async with http.get(f"{gw.url}/status/snapshot") as answer:
                snapshot = await answer.text()
    for text in (html, snapshot):
        assert MASTER not in text
        assert "sk-upstream-secret" not in text
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert "<script>" not in html  # no inline script: the page's script is a file
    assert headers["cache-control"] == "no-store"


async def test_the_snapshot_shows_health_traffic_and_failovers() -> None:
    async with _setup() as (gw, main, _), gw.client(api_key=MASTER) as client:
        for _ in range(4):
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        main.set_default(Fault.server_error())
        for _ in range(6):
            answer = await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert answer.choices
        async with (
            aiohttp.ClientSession(headers=_bearer()) as http,
            http.get(f"{gw.url}/status/snapshot") as response,
        ):
            assert response.status == 200
            snapshot = await response.json()
    rows = {row["name"]: row for row in snapshot["deployments"]}
    assert set(rows) == {"main-east", "spare-west"}
    east, west = rows["main-east"], rows["spare-west"]
    assert east["group"] == "chat"
    assert east["provider"] == "openai-compatible"
    assert east["state"] in ("degraded", "breaker_open", "cooling_down", "probing")
    assert east["last_error"]["kind"] == "server_error"
    assert east["last_error"]["status"] == 500
    assert east["windows"]["1m"]["errors"] >= 2
    assert east["windows"]["1m"]["error_rate"] > 0
    assert west["state"] == "healthy"
    assert west["last_success_seconds_ago"] is not None
    assert east["windows"]["1m"]["served"] + west["windows"]["1m"]["served"] == 10
    assert west["windows"]["1m"]["latency_p95_ms"] > 0
    shares = [rows[n]["windows"]["1m"]["share"] for n in rows]
    assert abs(sum(shares) - 1.0) < 1e-3
    assert snapshot["gateway"]["1m"]["requests"] == 10
    assert snapshot["gateway"]["1m"]["answers"] == 10
    assert snapshot["gateway"]["1m"]["failed"] == 0
    assert snapshot["totals"]["tokens"] > 0
    assert snapshot["failovers"], "the requests that moved to the spare are listed"
    chain = snapshot["failovers"][0]["attempts"]
    assert chain[0]["deployment"] == "main-east"
    assert chain[0]["error"] == "server_error"
    assert chain[-1]["deployment"] == "spare-west"
    assert chain[-1]["error"] is None
    assert snapshot["failovers"][0]["served_by"] == "spare-west"
    assert snapshot["scope"] == {
        "workers": 1,
        "health": "this instance",
        "traffic": "this instance",
    }
    assert len(snapshot["series"]["t"]) == 60
    assert sum(snapshot["series"]["requests"]) == 10


async def test_events_stream_snapshots_and_end_when_the_gateway_drains() -> None:
    async with (
        _setup(master_key=None) as (gw, _, _),
        aiohttp.ClientSession() as http,
        http.get(f"{gw.url}/status/events") as events,
    ):
        assert events.status == 200
        assert events.headers["content-type"] == "text/event-stream"
        snapshots = 0
        async with asyncio.timeout(10):
            while snapshots < 2:
                line = (await events.content.readline()).decode()
                if line.startswith("data: "):
                    assert json.loads(line[6:])["deployments"]
                    snapshots += 1
            gw.gateway.draining = True
            rest = (await events.content.read()).decode()
        assert "event: closing" in rest


async def test_watchers_beyond_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "MAX_WATCHERS", 2)
    async with _setup(master_key=None) as (gw, _, _), aiohttp.ClientSession() as http:
        first = await http.get(f"{gw.url}/status/events")
        second = await http.get(f"{gw.url}/status/events")
        try:
            assert (first.status, second.status) == (200, 200)
            async with http.get(f"{gw.url}/status/events") as third:
                assert third.status == 503
                assert third.headers["retry-after"] == "5"
        finally:
            first.close()
            second.close()
        # A watcher that left frees its place.
        async with asyncio.timeout(10):
            while True:
                async with http.get(f"{gw.url}/status/events") as again:
                    if again.status == 200:
                        break
                await asyncio.sleep(0.05)


async def test_static_files_are_served_with_long_caching() -> None:
    async with _setup(master_key=None) as (gw, _, _), aiohttp.ClientSession() as http:
        async with http.get(f"{gw.url}/status") as page:
            html = await page.text()
        urls = re.findall(r'(?:src|href)="(/status/static/[^"]+)"', html)
        assert {url.split("?")[0].rsplit("/", 1)[1] for url in urls} == {
            "uPlot.min.css",
            "status.css",
            "uPlot.iife.min.js",
            "status.js",
        }
        for url in urls:
            async with http.get(f"{gw.url}{url.replace('&amp;', '&')}") as asset:
                assert asset.status == 200
                assert "max-age=31536000" in asset.headers["cache-control"]
                body = await asset.read()
                assert body
        async with http.get(f"{gw.url}/status/static/LICENSE") as licence:
            assert "MIT" in await licence.text() or "Permission" in await licence.text()
        async with http.get(f"{gw.url}/status/static/..%2Fstatus.py") as escape:
            assert escape.status == 404


async def test_open_when_no_master_key_is_configured() -> None:
    async with _setup(master_key=None) as (gw, _, _), aiohttp.ClientSession() as http:
        async with http.get(f"{gw.url}/status") as page:
            assert page.status == 200
            html = await page.text()
        assert "main-east" in html
        assert 'action="/status/logout"' not in html
        async with http.post(
            f"{gw.url}/status/login", data={"key": "x"}, allow_redirects=False
        ) as login:
            assert login.status == 303


async def test_other_paths_under_status_are_unknown_and_api_keys_unchanged() -> None:
    async with _setup() as (gw, _, _):
        async with (
            aiohttp.ClientSession(headers=_bearer()) as http,
            http.get(f"{gw.url}/status/nothing-here") as missing,
        ):
            assert missing.status == 404
        async with gw.client(api_key="sk-wrong") as client:
            with pytest.raises(openai.AuthenticationError):
                await client.chat.completions.create(model="chat", messages=MESSAGES)
