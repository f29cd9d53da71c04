"""`/v1/responses` to an OpenAI deployment with ``native_responses`` passes through: the
caller's body (model replaced, conversation expanded, ``store: false``) goes to the fake's
``/v1/responses`` and the answer, whole or streamed, comes back as the upstream sent it, through
the official `openai` SDK; conversations, fallbacks and broken streams still cross freely between
native and translated deployments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from responses_kit import WEATHER, events_of, respond

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_azure import FakeAzure
from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import Deployment, Secret
from turnout.config.providers import AzureSettings, OpenAISettings
from turnout.config.router import FallbackConfig, RetryConfig
from turnout.providers.openai_responses import speaks_responses

NATIVE = OpenAISettings(native_responses=True)


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[RunningGateway, FakeOpenAI, FakeAnthropic]]:
    """Groups ``gpt`` (native OpenAI), ``claude`` (translated Anthropic), ``mixed`` (the
    native one first, the translated one next) and ``solo`` (native, nothing to fall back to);
    ``gpt`` falls back to ``claude``."""
    async with AsyncExitStack() as stack:
        fake_openai = await stack.enter_async_context(FakeOpenAI())
        fake_anthropic = await stack.enter_async_context(FakeAnthropic())

        def openai(group: str) -> Deployment:
            return Deployment(
                model_name=group,
                provider="openai",
                model="gpt-4o-mini",
                id=f"{group}-openai",
                base_url=fake_openai.url,
                api_key=Secret("sk-fake"),
                settings=NATIVE,
            )

        def anthropic(group: str, priority: int = 0) -> Deployment:
            return Deployment(
                model_name=group,
                provider="anthropic",
                model="claude-sonnet-4-5",
                id=f"{group}-anthropic",
                base_url=fake_anthropic.url,
                api_key=Secret("sk-ant-fake"),
                priority=priority,
            )

        config = gateway_config(
            openai("gpt"),
            anthropic("claude"),
            openai("mixed"),
            anthropic("mixed", priority=1),
            openai("solo"),
            retries=RetryConfig(num_retries=0),
            fallbacks=FallbackConfig(general={"gpt": ["claude"]}),
        )
        gateway = await stack.enter_async_context(running_gateway(config))
        yield gateway, fake_openai, fake_anthropic


def responses_sent(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path == "/v1/responses"]


@pytest.mark.parametrize("streamed", [False, True])
async def test_text_and_tools_pass_through(streamed: bool) -> None:
    async with serving() as (gateway, fake, _), gateway.client() as client:
        ask: dict[str, Any] = {
            "model": "gpt",
            "input": "Hello there",
            "reasoning": {"effort": "low"},
        }
        answer, events = await respond(client, streamed, **ask, instructions="Be brief.")
        called, _ = await respond(client, streamed, model="gpt", input="Weather?", tools=[WEATHER])
        stored = await client.responses.retrieve(answer.id)
    first, second = responses_sent(fake)
    # The caller's fields reach the upstream as written, with the deployment's model.
    assert first["reasoning"] == {"effort": "low"} and first["instructions"] == "Be brief."
    assert (first["model"], first["store"], first.get("stream", False)) == (
        "gpt-4o-mini",
        False,
        streamed,
    )
    assert second["tools"] == [WEATHER]
    assert answer.output_text == "Fake answer to: Hello there"
    assert answer.id.startswith("resp_") and answer.store is True
    assert stored.output_text == answer.output_text
    [call] = called.output
    assert (call.type, call.name, call.arguments) == (
        "function_call",
        "get_weather",
        '{"city":"fake"}',
    )
    if streamed:
        # The upstream's own events, numbered as it numbered them.
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        assert events[0].response.id == answer.id


async def test_previous_response_id_across_native_and_translated() -> None:
    async with serving() as (gateway, fake, anthropic), gateway.client() as client:
        first = await client.responses.create(model="gpt", input="My name is Ada")
        second = await client.responses.create(
            model="claude", input="And my cat is Tom", previous_response_id=first.id
        )
        stream = await client.responses.create(
            model="gpt", input="Who am I?", previous_response_id=second.id, stream=True
        )
        third = (await events_of(stream))[-1].response
    assert third.previous_response_id == second.id and third.status == "completed"
    # The translated turn replayed the native one as chat.
    replayed = str(anthropic.requests[-1].json["messages"])
    assert "My name is Ada" in replayed and "Fake answer to: My name is Ada" in replayed
    # The native turn got the whole conversation as input, and no previous_response_id.
    sent = responses_sent(fake)[-1]
    assert "previous_response_id" not in sent
    roles = [(item.get("role"), str(item.get("content"))) for item in sent["input"]]
    assert [role for role, _ in roles] == ["user", "assistant", "user", "assistant", "user"]
    assert "And my cat is Tom" in roles[2][1] and "Who am I?" in roles[4][1]
    assert all("id" not in item for item in sent["input"])


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_failing_native_deployment_falls_back_to_a_translated_one(streamed: bool) -> None:
    async with serving() as (gateway, fake, anthropic), gateway.client() as client:
        fake.set_default(Fault.server_error(path="/v1/responses"))
        answer, events = await respond(client, streamed, model="gpt", input="Hello there")
        stored = await client.responses.retrieve(answer.id)
    assert responses_sent(fake) and anthropic.requests
    assert answer.status == "completed" and "Hello there" in answer.output_text
    assert stored.output_text == answer.output_text
    if streamed:
        kinds = [event.type for event in events]
        assert kinds.count("response.created") == 1 and kinds[-1] == "response.completed"


async def test_a_native_stream_cut_midway_is_continued_by_a_translated_deployment() -> None:
    async with serving() as (gateway, fake, anthropic), gateway.client() as client:
        fake.enqueue(Fault("cut", after_chunks=6, path="/v1/responses"))
        stream = await client.responses.create(
            model="mixed", input="one two three four five six", stream=True
        )
        events = await events_of(stream)  # numbered 0, 1, 2... across both upstreams
        stored = await client.responses.retrieve(events[-1].response.id)
    kinds = [event.type for event in events]
    assert kinds.count("response.created") == 1 and kinds[-1] == "response.completed"
    assert anthropic.requests, "the translated deployment did not continue the stream"
    final = events[-1].response
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    [item] = final.output
    assert item.content[0].text == "".join(deltas) == final.output_text
    assert final.output_text.endswith("one two three four five six")
    # One item, opened natively and closed by the continuation, under the native ids.
    assert {e.item_id for e in events if e.type == "response.output_text.delta"} == {item.id}
    assert final.id == events[0].response.id and stored.output_text == final.output_text


@pytest.mark.parametrize("api_version", ["2024-10-21", "preview"])
@pytest.mark.parametrize("streamed", [False, True])
async def test_azure_is_sent_its_v1_responses_endpoint(streamed: bool, api_version: str) -> None:
    """The fake refuses a dated api-version on the v1 API, as Azure does: a dated deployment
    must be sent none there."""
    async with FakeAzure(deployments=("my-gpt",)) as fake:
        native = Deployment(
            model_name="azure",
            provider="azure",
            model="my-gpt",
            base_url=fake.url,
            api_key=Secret("azure-fake-key"),
            api_version=api_version,
            settings=AzureSettings(native_responses=True),
        )
        config = gateway_config(native)
        async with running_gateway(config) as gateway, gateway.client() as client:
            answer, _ = await respond(client, streamed, model="azure", input="Hello there")
            stored = await client.responses.retrieve(answer.id)
    [sent] = fake.requests
    assert (sent.path, sent.headers["api-key"]) == ("/openai/v1/responses", "azure-fake-key")
    assert (sent.json["model"], sent.json["store"], sent.json["input"][0]["content"]) == (
        "my-gpt",
        False,
        "Hello there",
    )
    assert answer.output_text == stored.output_text == "Fake answer to: Hello there"


@pytest.mark.parametrize("kind", ["cut", "error_event"])
async def test_a_native_stream_nothing_can_continue_ends_in_response_failed(kind: Any) -> None:
    async with serving() as (gateway, fake, _), gateway.client() as client:
        fake.set_default(Fault(kind, after_chunks=6, path="/v1/responses"))
        stream = await client.responses.create(model="solo", input="one two three", stream=True)
        events = await events_of(stream)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.failed" and "response.completed" not in kinds
    failed = events[-1].response
    [item] = failed.output
    sent = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert sent and (item.status, item.content[0].text) == ("incomplete", sent)
    assert failed.id == events[0].response.id and failed.error.message
    assert "sk-fake" not in str(failed.error)


@pytest.mark.parametrize(
    ("provider", "base_url", "setting", "native"),
    [
        ("openai", None, None, True),  # OpenAI's own API: native by default
        ("openai", "http://vllm:8000/v1", None, False),  # a server of its own: translated
        ("openai", None, False, False),
        ("openai", "http://proxy/v1", True, True),
        ("azure", "https://r.openai.azure.com", None, False),  # Azure: when asked
        ("azure", "https://r.openai.azure.com", True, True),
        ("groq", None, True, False),  # not a family that speaks it
    ],
)
def test_which_deployments_are_sent_responses_natively(
    provider: str, base_url: str | None, setting: bool | None, native: bool
) -> None:
    settings = (AzureSettings if provider == "azure" else OpenAISettings)(native_responses=setting)
    deployment = Deployment(
        model_name="chat", provider=provider, model="m", base_url=base_url, settings=settings
    )
    assert speaks_responses(deployment) is native
