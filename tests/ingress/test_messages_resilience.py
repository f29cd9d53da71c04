"""`/v1/messages` keeps the chat route's resilience: in the LiteLLM-config shape most users run
(one deployment per model plus `fallbacks`), a failing deployment falls back to another
provider's, a stream cut mid-way is continued on another deployment, and one that cannot be
continued ends with an Anthropic ``error`` event; upstream failures answer in Anthropic's shape."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from messages_kit import Family, deployment, gateway, litellm_config, raw_events, sdk, upstreams

from fakes.fake_anthropic import Fault as AnthropicFault
from fakes.fake_openai import Fault as OpenAIFault

QUESTION: Any = [{"role": "user", "content": "tell me a story about resilient gateways"}]
EXPECTED = "Fake answer to: tell me a story about resilient gateways"


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_failing_anthropic_deployment_falls_back_to_openai(streamed: bool) -> None:
    async with upstreams() as fakes:
        fakes.anthropic.set_default(AnthropicFault.overloaded())
        config = litellm_config(
            deployment("claude", "anthropic", fakes.anthropic.url),
            deployment("spare", "openai", fakes.openai.url),
            fallbacks=[{"claude": ["spare"]}],
        )
        message: anthropic.types.Message
        async with gateway(config) as running, sdk(running) as client:
            if streamed:
                async with client.messages.stream(
                    model="claude", max_tokens=64, messages=QUESTION
                ) as stream:
                    message = await stream.get_final_message()
            else:
                raw = await client.messages.with_raw_response.create(
                    model="claude", max_tokens=64, messages=QUESTION
                )
                assert raw.headers["x-turnout-model-group"] == "spare"
                message = await raw.parse()
    assert [block.text for block in message.content if block.type == "text"] == [EXPECTED]
    assert message.stop_reason == "end_turn"
    assert len(fakes.anthropic.requests) >= 1 and len(fakes.openai.requests) == 1


async def test_a_stream_cut_mid_way_is_continued_on_the_fallback() -> None:
    async with upstreams() as fakes:
        fakes.anthropic.enqueue(AnthropicFault("cut", after_chunks=6))
        config = litellm_config(
            deployment("claude", "anthropic", fakes.anthropic.url),
            deployment("spare", "openai", fakes.openai.url),
            fallbacks=[{"claude": ["spare"]}],
        )
        async with gateway(config) as running:
            events = await raw_events(
                running.url, {"model": "claude", "max_tokens": 64, "messages": QUESTION}
            )
    names = [name for name, _ in events if name != "ping"]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert "error" not in names
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == EXPECTED
    # The continuation was asked of the fallback, after the cut.
    assert len(fakes.openai.requests) == 1


@pytest.mark.parametrize(
    ("family", "kind"),
    [
        # A translated stream cut mid-way.
        ("openai", "api_error"),
        # A native stream whose upstream sent an overloaded error event mid-way.
        ("anthropic", "overloaded_error"),
    ],
)
async def test_a_stream_that_cannot_be_continued_ends_with_an_error_event(
    family: Family, kind: str
) -> None:
    async with upstreams() as fakes:
        if family == "openai":
            fakes.openai.set_default(OpenAIFault("cut", after_chunks=3))
        else:
            overloaded = AnthropicFault("error_event", error_type=kind, message="Overloaded")
            fakes.anthropic.set_default(overloaded)
        config = litellm_config(deployment("claude", family, fakes.url(family)))
        async with gateway(config) as running:
            events = await raw_events(
                running.url, {"model": "claude", "max_tokens": 64, "messages": QUESTION}
            )
            async with sdk(running) as client:
                with pytest.raises(anthropic.APIStatusError) as broken:
                    async with client.messages.stream(
                        model="claude", max_tokens=64, messages=QUESTION
                    ) as stream:
                        await stream.get_final_message()
    names = [name for name, _ in events if name != "ping"]
    assert names[0] == "message_start" and "content_block_delta" in names
    assert names[-1] == "error"
    assert "message_stop" not in names and "message_delta" not in names
    error = events[-1][1]
    assert error["type"] == "error" and error["error"]["type"] == kind
    assert "sk-fake" not in str(events) and "sk-ant-fake" not in str(events)
    assert isinstance(broken.value.body, dict)
    assert broken.value.body["error"]["type"] == kind


@pytest.mark.parametrize(
    ("fault", "status", "kind"),
    [
        # The gateway's status (502: an upstream failed), with Anthropic's type for what failed.
        (AnthropicFault.overloaded(), 502, "overloaded_error"),
        (AnthropicFault.rate_limited(), 429, "rate_limit_error"),
        (AnthropicFault.server_error(), 502, "api_error"),
    ],
)
async def test_upstream_failures_answer_in_anthropics_shape(
    fault: AnthropicFault, status: int, kind: str
) -> None:
    async with upstreams() as fakes:
        fakes.anthropic.set_default(fault)
        config = litellm_config(
            deployment("claude", "anthropic", fakes.anthropic.url), num_retries=0
        )
        async with gateway(config) as running, sdk(running) as client:
            with pytest.raises(anthropic.APIStatusError) as failed:
                await client.messages.create(model="claude", max_tokens=8, messages=QUESTION)
    assert isinstance(failed.value.body, dict)
    assert failed.value.body["type"] == "error"
    assert failed.value.body["error"]["type"] == kind
    assert failed.value.status_code == status
