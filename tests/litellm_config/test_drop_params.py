"""``drop_params`` from a LiteLLM config, end to end: a parameter the deployment's provider
lacks is dropped from what reaches the upstream (globally or per deployment), or refused
with a 400 naming it where the deployment does not drop; each attempt drops for its own
deployment."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from fakes.fake_openai import FakeOpenAI
from gateway_harness import running_gateway
from turnout.config.load import parse_config
from turnout.config.server import GatewayConfig, with_command_line

MESSAGES: Any = [{"role": "user", "content": "Hello"}]
#: What Groq refuses (n > 1, logprobs, logit_bias) and o1 refuses (logprobs, logit_bias,
#: penalties), beside what both take.
ASKED: dict[str, Any] = {
    "logprobs": True,
    "top_logprobs": 2,
    "logit_bias": {"50256": -100},
    "presence_penalty": 0.5,
    "temperature": 0.3,
}


def _config(url: str) -> GatewayConfig:
    def entry(name: str, model: str, **params: Any) -> dict[str, Any]:
        return {
            "model_name": name,
            "litellm_params": {"model": model, "api_base": url, "api_key": "sk-fake", **params},
        }

    data = {
        "model_list": [
            entry("groq", "groq/llama-3.1-8b-instant"),
            entry("groq-strict", "groq/llama-3.1-8b-instant", drop_params=False),
            entry("reasoning", "openai/o1-mini", drop_params=True),
            entry("pinned", "openai/gpt-4o", additional_drop_params=["seed"]),
        ],
        "litellm_settings": {"drop_params": True},
    }
    return with_command_line(parse_config(data, environ={}), {"port": 0})


@pytest.mark.parametrize(
    ("model", "kept"),
    [
        ("groq", {"presence_penalty", "temperature"}),
        ("reasoning", {"temperature"}),
        ("pinned", set(ASKED)),
    ],
)
async def test_what_the_deployment_lacks_is_dropped(model: str, kept: set[str]) -> None:
    async with (
        FakeOpenAI(models=None) as fake,
        running_gateway(_config(fake.url)) as gw,
        gw.client() as client,
    ):
        for stream in (False, True):
            answer = await client.chat.completions.create(
                model=model, messages=MESSAGES, seed=7, stream=stream, **ASKED
            )
            if stream:
                assert [chunk async for chunk in answer]  # type: ignore[union-attr]
    bodies = [request.json for request in fake.requests]
    assert len(bodies) == 2
    for body in bodies:
        assert set(ASKED) & set(body) == kept
        assert ("seed" in body) is (model != "pinned")


async def test_a_deployment_that_does_not_drop_refuses_naming_the_parameter() -> None:
    async with (
        FakeOpenAI(models=None) as fake,
        running_gateway(_config(fake.url)) as gw,
        gw.client() as client,
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="groq-strict", messages=MESSAGES, logprobs=True
            )
        ok = await client.chat.completions.create(
            model="groq-strict", messages=MESSAGES, temperature=0.1
        )
    assert "logprobs" in str(caught.value)
    assert ok.choices[0].message.content
    assert [request.json.get("logprobs") for request in fake.requests] == [None]
