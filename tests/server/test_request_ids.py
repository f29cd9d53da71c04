"""Request ids and the ``x-turnout-*`` headers, over real HTTP, in front of fake upstreams.

Every answer carries ``x-request-id`` (the caller's, when usable, else a fresh one), the
upstream is sent the same id, the upstream's own id for each call is recorded per attempt, and
error answers say as much as is known about where the request went.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import openai
import pytest
from raw_http import connection, read_response, request

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import Deployment, RoutingConfig, Secret
from turnout.errors import AttemptRecord
from turnout.gateway.request_ids import accepted
from turnout.gateway.turnout_headers import error_headers
from turnout.observe.events import AttemptFinished, Event

MESSAGES: Any = [{"role": "user", "content": "Tell me something"}]
MASTER = "sk-master-key-for-ids"


def upstream(fake: FakeOpenAI, name: str, *, priority: int = 0) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="openai-compatible",
        model="gpt-4o-mini",
        name=name,
        base_url=fake.url,
        api_key=Secret("sk-fake"),
        priority=priority,
    )


class Attempts:
    def __init__(self) -> None:
        self.finished: list[AttemptFinished] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            self.finished.append(event)


@asynccontextmanager
async def setup(
    count: int = 1, **router: Any
) -> AsyncIterator[tuple[RunningGateway, list[FakeOpenAI], Attempts]]:
    async with AsyncExitStack() as stack:
        fakes = [await stack.enter_async_context(FakeOpenAI()) for _ in range(count)]
        deployments = [
            upstream(fake, f"east-{index}", priority=index) for index, fake in enumerate(fakes)
        ]
        router.setdefault("routing", RoutingConfig(strategy="priority"))
        config = gateway_config(*deployments, master_key=MASTER, **router)
        gw = await stack.enter_async_context(running_gateway(config))
        attempts = Attempts()
        gw.gateway.bus.subscribe(attempts)
        yield gw, fakes, attempts


async def _post(
    session: aiohttp.ClientSession, gw: RunningGateway, body: Any, **headers: str
) -> aiohttp.ClientResponse:
    async with session.post(
        f"{gw.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {MASTER}", **headers},
    ) as response:
        await response.read()
        return response


def test_a_caller_id_is_accepted_only_when_printable_ascii_without_spaces() -> None:
    assert accepted("req-123_abc.XYZ:/=") == "req-123_abc.XYZ:/="
    assert accepted("x" * 128) == "x" * 128
    for refused in (None, "", "x" * 129, "has space", "tab\there", "naïve", "nl\n"):
        assert accepted(refused) is None


async def test_the_id_is_generated_echoed_and_forwarded_to_the_upstream() -> None:
    async with setup() as (gw, [fake], _), gw.client(MASTER) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )
        generated = raw.headers["x-request-id"]
        assert generated and "x-turnout-request-id" not in raw.headers
        assert fake.requests[-1].headers["x-request-id"] == generated

        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, extra_headers={"x-request-id": "trace-me-42"}
        )
        assert raw.headers["x-request-id"] == "trace-me-42"
        assert fake.requests[-1].headers["x-request-id"] == "trace-me-42"
        # The gateway's own id stays unique, and the answer names it for the spend log.
        own = raw.headers["x-turnout-request-id"]
        assert own not in ("trace-me-42", generated)

        again = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, extra_headers={"x-request-id": "trace-me-42"}
        )
        assert again.headers["x-request-id"] == "trace-me-42"
        assert again.headers["x-turnout-request-id"] != own


async def test_an_unusable_caller_id_is_replaced_by_a_fresh_one() -> None:
    async with setup() as (gw, [fake], _), aiohttp.ClientSession() as session:
        body = {"model": "chat", "messages": MESSAGES}
        response = await _post(session, gw, body, **{"x-request-id": "x" * 129})
        assert response.status == 200
        fresh = response.headers["x-request-id"]
        assert fresh != "x" * 129 and len(fresh) < 129
        assert "x-turnout-request-id" not in response.headers
        assert fake.requests[-1].headers["x-request-id"] == fresh
        response = await _post(session, gw, body, **{"x-request-id": "two words"})
        assert response.headers["x-request-id"] != "two words"


async def test_every_answer_carries_an_id_errors_and_management_included() -> None:
    async with setup() as (gw, _, _a), aiohttp.ClientSession() as session:
        master = {"authorization": f"Bearer {MASTER}"}
        ids = set()
        for method, path, headers, body, status in [
            ("GET", "/health", master, None, 200),
            ("GET", "/health/live", {}, None, 200),
            ("GET", "/health/ready", {}, None, 200),
            ("GET", "/metrics", master, None, 200),
            ("GET", "/v1/models", master, None, 200),
            ("GET", "/nowhere", {}, None, 404),
            ("GET", "/v1/chat/completions", master, None, 405),
            ("POST", "/v1/chat/completions", {}, {"model": "chat"}, 401),
            ("POST", "/v1/chat/completions", master, {"messages": MESSAGES}, 400),
            ("POST", "/v1/chat/completions", master, {"model": "nope", "messages": MESSAGES}, 404),
            ("GET", "/key/list", {}, None, 401),
        ]:
            async with session.request(
                method, gw.url + path, headers=headers, json=body
            ) as response:
                assert response.status == status, path
                ids.add(response.headers["x-request-id"])
        assert len(ids) == 11
        async with session.get(
            f"{gw.url}/health", headers={**master, "x-request-id": "probe-1"}
        ) as response:
            assert response.headers["x-request-id"] == "probe-1"


async def test_a_refused_expectation_and_an_unparsable_request_carry_an_id() -> None:
    async with setup() as (gw, _, _a):
        async with connection(gw) as (reader, writer):
            writer.write(request(Expect="100-continue", x_request_id="before-body"))
            status, headers, _ = await read_response(reader)
        assert status == 401
        assert headers["x-request-id"] == "before-body"
        async with connection(gw) as (reader, writer):
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            status, headers, _ = await read_response(reader)
        assert status == 400
        assert headers["x-request-id"]


async def test_the_upstream_id_is_recorded_on_each_attempt_failed_or_not() -> None:
    async with setup(2) as (gw, [first, _second], attempts), gw.client(MASTER) as client:
        first.enqueue(Fault.server_error())
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )
        assert raw.headers["x-turnout-deployment"] == "east-1"
        assert raw.headers["x-turnout-attempts"] == "2"
    failed, served = attempts.finished
    assert failed.error is not None and served.error is None
    assert failed.upstream_request_id is not None
    assert failed.upstream_request_id.startswith("req_")
    assert served.upstream_request_id is not None
    assert served.upstream_request_id.startswith("req_")
    assert failed.upstream_request_id != served.upstream_request_id


async def test_an_error_answer_says_where_the_request_went() -> None:
    async with setup(2) as (gw, fakes, _), gw.client(MASTER) as client:
        for fake in fakes:
            fake.set_default(Fault.server_error())
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
    headers = caught.value.response.headers
    assert caught.value.status_code == 502
    assert headers["x-request-id"]
    assert headers["x-turnout-model-group"] == "chat"
    assert int(headers["x-turnout-attempts"]) >= 2
    assert headers["x-turnout-deployment"] in ("east-0", "east-1")
    assert float(headers["x-turnout-overhead-ms"]) >= 0
    # The readable name is in the attempts summary too, never only a hash.
    assert "east-0 (chat)" in caught.value.message


async def test_a_refusal_before_routing_names_the_group_and_no_attempt() -> None:
    async with setup() as (gw, _, _a), aiohttp.ClientSession() as session:
        response = await _post(
            session, gw, {"model": "chat", "messages": MESSAGES, "max_tokens": "many"}
        )
        assert response.status == 400
        assert "x-turnout-attempts" not in response.headers
        assert response.headers["x-request-id"]


def test_error_headers_sum_what_the_attempts_were_billed() -> None:
    attempts = [
        AttemptRecord("a1", "chat", 0.0, 0.5, deployment_name="one", cost=0.25),
        AttemptRecord("a2", "chat", 0.5, 0.25, deployment_name="two", cost=None),
        AttemptRecord("a3", "chat", 0.75, 0.25, deployment_name="", cost=0.5),
    ]
    headers = error_headers(attempts, "chat", 1.5)
    assert headers == {
        "x-turnout-model-group": "chat",
        "x-turnout-attempts": "3",
        "x-turnout-deployment": "a3",
        "x-turnout-overhead-ms": "500.00",
        "x-turnout-cost": "0.75000000",
    }
    assert error_headers([], None, 1.0) == {}


async def test_health_names_each_deployment_readably_beside_its_id() -> None:
    async with (
        setup(2) as (gw, _, _a),
        aiohttp.ClientSession() as session,
        session.get(f"{gw.url}/health", headers={"authorization": f"Bearer {MASTER}"}) as response,
    ):
        body = await response.json()
    names = {entry["name"]: entry["id"] for entry in body["deployments"]}
    assert set(names) == {"east-0", "east-1"}
    assert all(len(ident) == 16 for ident in names.values())  # derived ids stay hashes
