"""The gateway's OpenAI-compatible surface, end to end over HTTP with the official SDK."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_harness import gateway_config, running_gateway, simulated, threaded_gateway
from turnout import RetryConfig

MESSAGES: Any = [{"role": "user", "content": "Hello there"}]


async def test_chat_completion_with_routing_headers() -> None:
    config = gateway_config(
        simulated("a", output_tokens=5),
        aliases={"gpt-4o-mini": "chat"},
    )
    async with running_gateway(config) as gw, gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
        )
        completion = raw.parse()
    assert completion.choices[0].message.content is not None
    assert "Simulated answer from a" in completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    assert raw.headers["x-turnout-deployment"] == "a"
    assert raw.headers["x-turnout-model-group"] == "chat"
    assert raw.headers["x-turnout-attempts"] == "1"
    assert float(raw.headers["x-turnout-overhead-ms"]) >= 0


async def test_streaming_chat_with_usage() -> None:
    config = gateway_config(simulated("a", output_tokens=6))
    async with running_gateway(config) as gw, gw.client() as client:
        stream = await client.chat.completions.create(
            model="chat",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        text = ""
        usage = None
        finish = None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage is not None:
                usage = chunk.usage
    assert text.startswith("Simulated answer from a")
    assert finish == "stop"
    assert usage is not None
    assert usage.completion_tokens == 6


async def test_completions_embeddings_and_models() -> None:
    config = gateway_config(
        simulated("a"),
        simulated("e", group="embed", embedding_dimensions=4),
        aliases={"text-embedding-3-small": "embed"},
    )
    async with running_gateway(config) as gw, gw.client() as client:
        completion = await client.completions.create(model="chat", prompt="Say hi")
        assert completion.choices[0].text
        embeddings = await client.embeddings.create(
            model="text-embedding-3-small", input=["one", "two"]
        )
        assert [len(item.embedding) for item in embeddings.data] == [4, 4]
        models = await client.models.list()
        assert sorted(model.id for model in models.data) == [
            "chat",
            "embed",
            "text-embedding-3-small",
        ]


def test_the_blocking_sdk_client_works_too() -> None:
    with threaded_gateway(gateway_config(simulated("a"))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-x", max_retries=0, timeout=10)
        with client:
            completion = client.chat.completions.create(model="chat", messages=MESSAGES)
            assert completion.choices[0].message.content
            chunks = list(
                client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
            )
            assert chunks[-1].choices[0].finish_reason == "stop"


async def _post(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/v1/chat/completions",
            data=body,
            headers={"content-type": "application/json", **(headers or {})},
        ) as response,
    ):
        return response.status, msgspec.json.decode(await response.read())


@pytest.mark.parametrize(
    ("body", "status", "param", "fragment"),
    [
        (b"{not json", 400, None, "not valid JSON"),
        (b"[1, 2]", 400, None, "must be a JSON object"),
        (b"", 400, None, "empty"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model", "model"),
        (b'{"model": 7, "messages": []}', 400, "model", "non-empty string"),
        (b'{"model": "chat", "messages": "hi"}', 400, "messages", "non-empty array"),
        (b'{"model": "chat", "messages": [{"content": "x"}]}', 400, "messages[0]", "role"),
        (
            b'{"model": "chat", "messages": [{"role": "user"}], "stream": "yes"}',
            400,
            "stream",
            "boolean",
        ),
        (
            b'{"model": "chat", "messages": [{"role": "user"}], "max_tokens": "9"}',
            400,
            "max_tokens",
            "integer",
        ),
        (
            b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model",
            "does not exist",
        ),
    ],
)
async def test_bad_requests_get_openai_errors(
    body: bytes, status: int, param: str | None, fragment: str
) -> None:
    async with running_gateway(gateway_config(simulated("a"))) as gw:
        got_status, payload = await _post(gw.url, body)
    assert got_status == status
    error = payload["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert fragment in str(error["message"])


async def test_the_sdk_raises_its_own_exception_classes() -> None:
    config = gateway_config(simulated("a"), max_body_bytes=2048)
    async with running_gateway(config) as gw, gw.client() as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="missing", messages=MESSAGES)
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(model="chat", messages=[])
        assert bad.value.param == "messages"
        with pytest.raises(openai.APIStatusError) as large:
            await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "x" * 5000}]
            )
        assert large.value.status_code == 413


async def test_upstream_failures_map_to_the_sdk_classes() -> None:
    config = gateway_config(
        simulated(
            "limited", group="limited", error_rate=1, errors={"rate_limited": 1}, retry_after=7
        ),
        simulated("locked", group="locked", error_rate=1, errors={"authentication": 1}),
        simulated("broken", group="broken", error_rate=1, errors={"server_error": 1}),
        retries=RetryConfig(num_retries=0),
    )
    async with running_gateway(config) as gw, gw.client() as client:
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="limited", messages=MESSAGES)
        assert limited.value.response.headers["retry-after"] == "7"
        with pytest.raises(openai.RateLimitError) as cooling:
            await client.chat.completions.create(model="limited", messages=MESSAGES)
        assert "cooling down (rate_limited)" in cooling.value.message
        # The provider refused the gateway's own key: a server-side fault, not the caller's.
        with pytest.raises(openai.InternalServerError) as locked:
            await client.chat.completions.create(model="locked", messages=MESSAGES)
        assert locked.value.status_code == 502
        assert "credentials for deployment `locked`" in locked.value.message
        assert locked.value.response.headers["x-should-retry"] == "false"
        with pytest.raises(openai.InternalServerError) as broken:
            await client.chat.completions.create(model="broken", messages=MESSAGES)
        assert broken.value.status_code == 502


async def test_master_key_is_required_when_configured() -> None:
    config = gateway_config(simulated("a"), master_key="sk-gateway-secret")
    async with running_gateway(config) as gw:
        async with gw.client(api_key="sk-wrong") as client:
            with pytest.raises(openai.AuthenticationError) as wrong:
                await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert "sk-gateway-secret" not in str(wrong.value)
            with pytest.raises(openai.AuthenticationError):
                await client.models.list()
        status, _ = await _post(gw.url, b'{"model": "chat", "messages": []}')
        assert status == 401
        async with gw.client(api_key="sk-gateway-secret") as client:
            completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert completion.choices


async def test_health_ready_and_metrics() -> None:
    config = gateway_config(simulated("a"), simulated("b", error_rate=1))
    async with running_gateway(config) as gw:
        async with gw.client() as client:
            for _ in range(4):
                await client.chat.completions.create(model="chat", messages=MESSAGES)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{gw.url}/health/live") as live:
                assert live.status == 200
            async with session.get(f"{gw.url}/health/ready") as ready:
                assert ready.status == 200
            async with session.get(f"{gw.url}/health") as health:
                report = msgspec.json.decode(await health.read())
            async with session.get(f"{gw.url}/metrics") as metrics:
                text = await metrics.text()
    assert {d["id"] for d in report["deployments"]} == {"a", "b"}
    assert report["state"] == {"backend": "memory", "shared": False}
    families = {family.name: family for family in text_string_to_metric_families(text)}
    [up] = families["turnout_state_backend_up"].samples
    assert (up.labels, up.value) == ({"backend": "memory"}, 1.0)
    served = [
        s
        for s in families["turnout_requests"].samples
        if s.name == "turnout_requests_total" and s.labels["status"] == "200"
    ]
    assert sum(s.value for s in served) == 4
    assert served[0].labels["model_group"] == "chat"


async def test_unknown_paths_and_methods_answer_in_openai_shape() -> None:
    async with (
        running_gateway(gateway_config(simulated("a"))) as gw,
        aiohttp.ClientSession() as session,
    ):
        async with session.get(f"{gw.url}/v1/nothing") as missing:
            assert missing.status == 404
            assert "error" in msgspec.json.decode(await missing.read())
        async with session.get(f"{gw.url}/v1/chat/completions") as wrong_method:
            assert wrong_method.status == 405
            assert "error" in msgspec.json.decode(await wrong_method.read())
