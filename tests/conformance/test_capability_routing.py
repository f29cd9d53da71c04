"""Requests are routed by what each deployment can honour, through the gateway and the official
SDK, in a mixed group (OpenAI-compatible + Anthropic) and in the LiteLLM one-per-model shape.

Anthropic has no ``n``, ``logprobs``, ``seed``, arbitrary ``metadata``, ``logit_bias`` or
penalties; the fake Anthropic answers such a field with the 400 the real API sends ("<field>:
Extra inputs are not permitted"). Every such request must be answered by a deployment that can
honour it, without touching Anthropic; a request nothing can honour is a 400 naming the
parameter, sent nowhere; a refusal from upstream is tried elsewhere, and counts against no one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_anthropic import Fault as AnthropicFault
from fakes.fake_openai import FakeOpenAI
from fakes.fake_openai import Fault as OpenAIFault
from gateway_harness import gateway_config, running_gateway
from turnout import Deployment, RoutingConfig, Secret
from turnout.config.load import parse_config
from turnout.config.server import GatewayConfig

QUESTION: Any = [{"role": "user", "content": "Which track?"}]
ANSWER = "Fake answer to: Which track?"

#: Each parameter Anthropic cannot honour, at a value that asks for something.
LACKED_BY_ANTHROPIC: list[tuple[str, dict[str, Any]]] = [
    ("n", {"n": 2}),
    ("logprobs", {"logprobs": True, "top_logprobs": 2}),
    ("seed", {"seed": 7}),
    ("metadata", {"metadata": {"team": "tracks"}}),
    ("logit_bias", {"logit_bias": {"50256": -100}}),
    ("presence_penalty", {"presence_penalty": 0.5}),
]


@dataclass
class Setup:
    openai_fake: FakeOpenAI
    anthropic_fake: FakeAnthropic
    client: openai.AsyncOpenAI

    def messages_calls(self) -> list[Any]:
        return [r for r in self.anthropic_fake.requests if r.path == "/v1/messages"]

    def chat_calls(self) -> list[Any]:
        return [r for r in self.openai_fake.requests if r.path.endswith("/chat/completions")]


@asynccontextmanager
async def serving(build: Any) -> AsyncIterator[Setup]:
    """Both fakes, a gateway on the config `build(openai_url, anthropic_url)` makes, and the
    official SDK at its default retries."""
    async with AsyncExitStack() as stack:
        openai_fake = await stack.enter_async_context(FakeOpenAI(models=None))
        anthropic_fake = await stack.enter_async_context(FakeAnthropic(models=None))
        config: GatewayConfig = build(openai_fake.url, anthropic_fake.url)
        gateway = await stack.enter_async_context(running_gateway(config))
        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="anything")
        stack.push_async_callback(client.close)
        yield Setup(openai_fake, anthropic_fake, client)


def _openai(url: str, group: str) -> Deployment:
    return Deployment(
        model_name=group,
        provider="openai",
        model="gpt-4o-mini",
        id=f"openai-{group}",
        base_url=url,
        api_key=Secret("sk-fake"),
    )


def _anthropic(url: str, group: str, **fields: Any) -> Deployment:
    return Deployment(
        model_name=group,
        provider="anthropic",
        model="claude-sonnet-4-5",
        id=f"anthropic-{group}",
        base_url=url,
        api_key=Secret("sk-ant-fake"),
        **fields,
    )


def mixed_group(openai_url: str, anthropic_url: str) -> GatewayConfig:
    """One group of an OpenAI and an Anthropic deployment, taking turns."""
    return gateway_config(
        _openai(openai_url, "chat"),
        _anthropic(anthropic_url, "chat"),
        routing=RoutingConfig(strategy="round-robin"),
    )


def litellm_one_per_model(
    primary: str = "anthropic", fallback: str = "openai"
) -> Any:  # a builder for `serving`
    """A LiteLLM config.yaml: `chat` on one deployment, falling back to `spare` on another,
    everything else at turnout's defaults."""
    models = {
        "anthropic": lambda urls: {
            "model": "anthropic/claude-sonnet-4-5",
            "api_base": urls[1],
            "api_key": "sk-ant-fake",
        },
        "openai": lambda urls: {
            "model": "openai/gpt-4o-mini",
            "api_base": urls[0] + "/v1",
            "api_key": "sk-fake",
        },
    }

    def build(openai_url: str, anthropic_url: str) -> GatewayConfig:
        urls = (openai_url.removesuffix("/v1"), anthropic_url)
        return parse_config(
            {
                "model_list": [
                    {"model_name": "chat", "litellm_params": models[primary](urls)},
                    {"model_name": "spare", "litellm_params": models[fallback](urls)},
                ],
                "router_settings": {"fallbacks": [{"chat": ["spare"]}], "num_retries": 2},
            }
        )

    return build


async def ask(setup: Setup, **params: Any) -> tuple[str, str]:
    raw = await setup.client.chat.completions.with_raw_response.create(
        model="chat", messages=QUESTION, **params
    )
    answer = raw.parse()
    return answer.choices[0].message.content or "", raw.headers["x-turnout-deployment"]


# -- a mixed group --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "params"), LACKED_BY_ANTHROPIC, ids=[p for p, _ in LACKED_BY_ANTHROPIC]
)
async def test_a_mixed_group_answers_every_request_from_a_deployment_that_can_honour_it(
    param: str, params: dict[str, Any]
) -> None:
    async with serving(mixed_group) as s:
        answers = [await ask(s, **params) for _ in range(6)]
        assert {served for _, served in answers} == {"openai-chat"}
        assert all(text == ANSWER for text, _ in answers)
        assert s.messages_calls() == []  # Anthropic was never sent what it cannot honour
        sent = [call.json for call in s.chat_calls()]
        assert len(sent) == 6 and all(param in body for body in sent)
        # Plain requests still take turns over both.
        plain = {served for _, served in [await ask(s) for _ in range(4)]}
        assert plain == {"openai-chat", "anthropic-chat"}


async def test_neutral_values_ask_for_nothing_and_keep_both_deployments() -> None:
    async with serving(mixed_group) as s:
        neutral = {"n": 1, "logprobs": False, "presence_penalty": 0, "metadata": {}}
        served = {d for _, d in [await ask(s, **neutral) for _ in range(4)]}
        assert served == {"openai-chat", "anthropic-chat"}


async def test_metadata_of_only_user_id_is_honoured_by_anthropic() -> None:
    async with serving(mixed_group) as s:
        served = {d for _, d in [await ask(s, metadata={"user_id": "u-7"}) for _ in range(4)]}
        assert served == {"openai-chat", "anthropic-chat"}
        assert all(c.json["metadata"] == {"user_id": "u-7"} for c in s.messages_calls())


async def test_json_mode_is_served_by_both_and_anthropic_gets_a_forced_tool() -> None:
    async with serving(mixed_group) as s:
        answers = [await ask(s, response_format={"type": "json_object"}) for _ in range(4)]
        assert {d for _, d in answers} == {"openai-chat", "anthropic-chat"}
        sent = s.messages_calls()
        assert len(sent) == 2
        for call in sent:
            assert call.json["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
            assert [tool["name"] for tool in call.json["tools"]] == ["json_tool_call"]
            assert "response_format" not in call.json


async def test_a_request_nothing_can_honour_is_a_400_naming_the_parameter_sent_nowhere() -> None:
    def anthropic_only(openai_url: str, anthropic_url: str) -> GatewayConfig:
        return gateway_config(_anthropic(anthropic_url, "chat"))

    async with serving(anthropic_only) as s:
        with pytest.raises(openai.BadRequestError) as caught:
            await s.client.chat.completions.create(model="chat", messages=QUESTION, n=3)
        error = caught.value
        assert error.response.headers["x-should-retry"] == "false"
        body: Any = error.body
        assert body["param"] == "n"
        assert body["code"] == "unsupported_parameter"
        assert "anthropic" in body["message"] and "`n` > 1" in body["message"]
        assert s.messages_calls() == []
        # The deployment is as healthy as before: the next plain request is answered there.
        assert await ask(s) == (ANSWER, "anthropic-chat")


async def test_a_refusal_from_upstream_is_tried_on_another_deployment_and_hurts_no_one() -> None:
    async with serving(mixed_group) as s:
        # OpenAI refuses Anthropic's native `top_k`, as its API does.
        refusal = OpenAIFault.http_error(
            400,
            "Unrecognized request argument supplied: top_k",
            "invalid_request_error",
            param="top_k",
        )
        s.openai_fake.set_default(refusal)
        answers = [await ask(s, extra_body={"top_k": 5}) for _ in range(6)]
        assert {d for _, d in answers} == {"anthropic-chat"}
        refused = len(s.chat_calls())
        assert 1 <= refused <= 6  # each request tried OpenAI at most once
        s.openai_fake.set_default(None)
        # A refusal is no verdict on health: OpenAI is back in turn at once.
        served = {d for _, d in [await ask(s) for _ in range(4)]}
        assert served == {"openai-chat", "anthropic-chat"}


async def test_a_refusal_everywhere_reaches_the_caller_as_the_400_naming_the_parameter() -> None:
    async with serving(mixed_group) as s:
        s.openai_fake.set_default(
            OpenAIFault.http_error(
                400,
                "Unsupported parameter: 'top_k' is not supported with this model.",
                "invalid_request_error",
                "unsupported_parameter",
                param="top_k",
            )
        )
        s.anthropic_fake.set_default(
            AnthropicFault.http_error(
                400, "invalid_request_error", "top_k: Extra inputs are not permitted"
            )
        )
        with pytest.raises(openai.BadRequestError) as caught:
            await s.client.chat.completions.create(
                model="chat", messages=QUESTION, extra_body={"top_k": 5}
            )
        body: Any = caught.value.body
        assert body["param"] == "top_k"
        assert body["code"] == "unsupported_parameter"
        assert caught.value.response.headers["x-should-retry"] == "false"
        # One try each, none repeated on the deployment that refused, none by the SDK.
        assert len(s.chat_calls()) == 1 and len(s.messages_calls()) == 1


# -- where most users stand: one deployment per model plus fallbacks ------------------------


@pytest.mark.parametrize(
    ("param", "params"), LACKED_BY_ANTHROPIC, ids=[p for p, _ in LACKED_BY_ANTHROPIC]
)
async def test_one_per_model_an_anthropic_primary_hands_what_it_lacks_to_the_fallback(
    param: str, params: dict[str, Any]
) -> None:
    async with serving(litellm_one_per_model()) as s:
        text, served = await ask(s, **params)
        assert text == ANSWER
        assert served != "" and s.messages_calls() == []
        assert len(s.chat_calls()) == 1 and param in s.chat_calls()[0].json
        # Plain requests stay on the primary.
        assert (await ask(s))[0] == ANSWER
        assert len(s.messages_calls()) == 1


async def test_one_per_model_capability_hops_spend_no_retry_budget() -> None:
    # The default budget allows about 10 retries plus a fifth of requests in 10 s: 40 hops in
    # a row would run it out if they drew on it.
    async with serving(litellm_one_per_model()) as s:
        for _ in range(40):
            text, _served = await ask(s, n=2)
            assert text == ANSWER
        assert s.messages_calls() == []
        assert len(s.chat_calls()) == 40


async def test_one_per_model_nothing_in_the_chain_can_honour_it_is_one_400() -> None:
    async with serving(litellm_one_per_model("anthropic", "anthropic")) as s:
        with pytest.raises(openai.BadRequestError) as caught:
            await s.client.chat.completions.create(model="chat", messages=QUESTION, seed=3)
        body: Any = caught.value.body
        assert body["param"] == "seed"
        assert "`chat`" in body["message"] and "`spare`" in body["message"]
        assert s.messages_calls() == []


async def test_one_per_model_an_upstream_refusal_moves_to_the_fallback_at_once() -> None:
    async with serving(litellm_one_per_model("openai", "anthropic")) as s:
        s.openai_fake.set_default(
            OpenAIFault.http_error(
                400,
                "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model.",
                "invalid_request_error",
                "unsupported_value",
                param="reasoning_effort",
            )
        )
        for _ in range(3):
            assert (await ask(s))[0] == ANSWER
        # Each request tried the primary once (never again on it, never by the SDK).
        assert len(s.chat_calls()) == 3
        assert len(s.messages_calls()) == 3


async def test_a_mixed_group_sends_nothing_to_a_deployment_that_cannot_honour_it() -> None:
    # Were Anthropic picked and refused (even before sending), every other request would take
    # a retry, and 40 in a row would run the default retry budget out.
    async with serving(mixed_group) as s:
        for _ in range(40):
            assert (await ask(s, n=2)) == (ANSWER, "openai-chat")
        assert s.messages_calls() == []


# -- JSON mode on Anthropic, through a forced tool ------------------------------------------


def anthropic_only(openai_url: str, anthropic_url: str) -> GatewayConfig:
    return gateway_config(_anthropic(anthropic_url, "chat"))


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"track": {"type": "string"}, "length": {"type": "integer"}},
    "required": ["track", "length"],
}
FORMATS: list[tuple[dict[str, Any], dict[str, Any], Any]] = [
    (
        {"type": "json_object"},
        {"type": "object", "additionalProperties": True},
        {"answer": ANSWER},
    ),
    (
        {"type": "json_schema", "json_schema": {"name": "track", "schema": SCHEMA}},
        SCHEMA,
        {"track": "fake", "length": 0},
    ),
]


@pytest.mark.parametrize(
    ("response_format", "schema", "expected"), FORMATS, ids=["object", "schema"]
)
async def test_json_mode_on_anthropic_whole(
    response_format: dict[str, Any], schema: dict[str, Any], expected: Any
) -> None:
    async with serving(anthropic_only) as s:
        params: dict[str, Any] = {"response_format": response_format}
        answer = await s.client.chat.completions.create(model="chat", messages=QUESTION, **params)
        choice = answer.choices[0]
        assert json.loads(choice.message.content or "") == expected
        assert choice.finish_reason == "stop"
        assert choice.message.tool_calls is None
        (call,) = s.messages_calls()
        assert call.json["tools"][0]["input_schema"] == schema
        assert call.json["tool_choice"] == {"type": "tool", "name": "json_tool_call"}


@pytest.mark.parametrize(
    ("response_format", "schema", "expected"), FORMATS, ids=["object", "schema"]
)
async def test_json_mode_on_anthropic_streamed(
    response_format: dict[str, Any], schema: dict[str, Any], expected: Any
) -> None:
    async with serving(anthropic_only) as s:
        params: dict[str, Any] = {"response_format": response_format}
        stream = await s.client.chat.completions.create(
            model="chat", messages=QUESTION, stream=True, **params
        )
        pieces: list[str] = []
        finish = None
        async for chunk in stream:
            for choice in chunk.choices:
                assert choice.delta.tool_calls is None
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                finish = choice.finish_reason or finish
        assert len(pieces) > 1  # streamed as it came, not gathered
        assert json.loads("".join(pieces)) == expected
        assert finish == "stop"
        (call,) = s.messages_calls()
        assert call.json["stream"] is True
        assert call.json["tools"][0]["input_schema"] == schema


async def test_json_mode_with_tools_of_its_own_goes_where_response_format_is_native() -> None:
    weather: dict[str, Any] = {
        "type": "function",
        "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
    }
    json_and_tools: dict[str, Any] = {
        "tools": [weather],
        "response_format": {"type": "json_object"},
    }
    async with serving(mixed_group) as s:
        for _ in range(4):
            raw = await s.client.chat.completions.with_raw_response.create(
                model="chat",
                messages=QUESTION,
                **json_and_tools,
            )
            assert raw.headers["x-turnout-deployment"] == "openai-chat"
        assert s.messages_calls() == []


async def test_a_deployment_that_drops_parameters_is_the_last_resort() -> None:
    def dropping(openai_url: str, anthropic_url: str) -> GatewayConfig:
        return gateway_config(
            _openai(openai_url, "chat"),
            _anthropic(anthropic_url, "chat", drop_params=True),
            routing=RoutingConfig(strategy="round-robin"),
        )

    async with serving(dropping) as s:
        # While the deployment that honours `n` is there, it takes every such request.
        for _ in range(4):
            assert await ask(s, n=2) == (ANSWER, "openai-chat")
        assert s.messages_calls() == []
        # Without it, the one that drops `n` answers rather than nothing.
        s.openai_fake.set_default(OpenAIFault.server_error())
        assert await ask(s, n=2) == (ANSWER, "anthropic-chat")
        assert "n" not in s.messages_calls()[-1].json
