"""``/v1/responses`` routed as chat is: a LiteLLM-shaped ``fallbacks`` config, a stream broken
after it began continued by another deployment, and one that nothing can continue ending in
``response.failed``; and bad bodies refused in OpenAI's error shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from responses_kit import respond

from fakes.fake_openai import FakeOpenAI, Fault, FaultKind
from gateway_harness import RunningGateway, running_gateway
from turnout.config.load import load_config


@asynccontextmanager
async def litellm_gateway(
    tmp_path: Path, groups: dict[str, int], *settings: str
) -> AsyncIterator[tuple[RunningGateway, dict[str, list[FakeOpenAI]]]]:
    """A gateway loaded from a LiteLLM config.yaml: `groups` maps each model name to its
    number of deployments, each a `FakeOpenAI`, tried in their order."""
    async with AsyncExitStack() as stack:
        fakes: dict[str, list[FakeOpenAI]] = {}
        lines = ["model_list:"]
        for group, count in groups.items():
            for order in range(1, count + 1):
                fake = await stack.enter_async_context(FakeOpenAI(api_key=None, models=None))
                fakes.setdefault(group, []).append(fake)
                lines += [
                    f"  - model_name: {group}",
                    "    litellm_params:",
                    f"      model: openai/{group}",
                    f"      api_base: {fake.url}",
                    "      api_key: sk-responses-test-upstream",
                    f"      order: {order}",
                ]
        lines += ["router_settings:", "  num_retries: 1", *settings]
        path = tmp_path / "config.yaml"
        path.write_text("\n".join(lines) + "\n")
        gateway = await stack.enter_async_context(running_gateway(load_config(path)))
        yield gateway, fakes


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_fallback_model_answers_when_the_main_one_fails(
    tmp_path: Path, streamed: bool
) -> None:
    fallbacks = '  fallbacks: [{"main": ["backup"]}]'
    async with litellm_gateway(tmp_path, {"main": 1, "backup": 1}, fallbacks) as (gateway, fakes):
        fakes["main"][0].set_default(Fault.server_error())
        async with gateway.client() as client:
            response, _ = await respond(client, streamed, model="main", input="Hello there")
        assert response.status == "completed"
        assert "Hello there" in response.output_text
        assert fakes["main"][0].requests
        [served] = fakes["backup"][0].requests
        assert served.json["model"] == "backup"


async def test_a_stream_cut_midway_is_continued_by_another_deployment(tmp_path: Path) -> None:
    async with litellm_gateway(tmp_path, {"main": 2}) as (gateway, fakes):
        first, second = fakes["main"]
        first.enqueue(Fault("cut", after_chunks=3))
        async with gateway.client() as client:
            response, events = await respond(
                client, True, model="main", input="one two three four five six"
            )
        assert events[-1].type == "response.completed"
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        assert response.output_text == "".join(deltas)
        assert response.output_text.endswith("one two three four five six")
        assert len(first.requests) == len(second.requests) == 1


async def test_a_stream_nothing_can_continue_ends_in_response_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with litellm_gateway(tmp_path, {"main": 1}) as (gateway, fakes):
        fakes["main"][0].set_default(Fault("cut", after_chunks=3))
        async with gateway.client() as client:
            response, events = await respond(client, True, model="main", input="one two three")
        kinds = [event.type for event in events]
        assert kinds[-1] == "response.failed"
        assert "response.completed" not in kinds
        assert "response.output_text.delta" in kinds
        assert response.status == "failed"
        sent = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        [item] = response.output
        assert (item.status, item.content[0].text) == ("incomplete", sent)
        assert response.error.code
        assert "sk-responses-test-upstream" not in str(response.error)
    # The request log names the route and says how the stream ended.
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines() if "{" in text]
    assert (line["route"], line["stream"], line["error"]) == (
        "responses",
        True,
        "stream_interrupted",
    )


BAD_BODIES: list[tuple[Any, str | None, int]] = [
    ({}, "model", 400),
    ({"model": "main"}, "input", 400),
    ({"model": "main", "input": []}, "input", 400),
    ({"model": "main", "input": [{"type": "web_search_call"}]}, "input[0].type", 400),
    ({"model": "main", "input": [{"role": "robot", "content": "x"}]}, "input[0].role", 400),
    ({"model": "main", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0]", 400),
    ({"model": "main", "input": "x", "max_output_tokens": 0}, "max_output_tokens", 400),
    ({"model": "main", "input": "x", "background": True}, "background", 400),
    ({"model": "main", "input": "x", "stream": "yes"}, "stream", 400),
    ({"model": "main", "input": "x", "metadata": {"k": 1}}, "metadata", 400),
    ({"model": "main", "input": "x", "store": "no"}, "store", 400),
    ({"model": "main", "input": "x", "text": {"format": {"type": "json_schema"}}}, None, 400),
    ({"model": "nobody", "input": "x"}, None, 404),
    ({"model": "main", "input": "x", "previous_response_id": "resp_x"}, None, 404),
]


async def test_bad_bodies_are_refused_in_openais_error_shape(tmp_path: Path) -> None:
    async with (
        litellm_gateway(tmp_path, {"main": 1}) as (gateway, fakes),
        aiohttp.ClientSession() as session,
    ):
        for body, param, status in [*BAD_BODIES, (b"{not json", None, 400)]:
            options: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
            async with session.post(gateway.url + "/v1/responses", **options) as answer:
                error = (await answer.json())["error"]
                assert answer.status == status, (body, error)
            assert set(error) == {"message", "type", "param", "code"}
            assert error["message"]
            if param is not None:
                assert error["param"] == param, (body, error)
        async with session.get(gateway.url + "/v1/responses/resp_unknown") as answer:
            assert answer.status == 404
            assert (await answer.json())["error"]["code"] == "response_not_found"
        assert fakes["main"][0].requests == []


#: What each stream fault after the first chunk ends in, on a group with nothing to continue it.
STREAM_FAULTS: list[tuple[FaultKind, str]] = [
    ("cut", "response.failed"),
    ("stall", "response.failed"),
    ("malformed", "response.failed"),
    ("no_finish", "response.failed"),
    ("error_event", "response.failed"),
    ("no_done", "response.completed"),
]


@pytest.mark.parametrize(("kind", "ending"), STREAM_FAULTS)
async def test_every_stream_fault_ends_the_stream_visibly(
    tmp_path: Path, kind: FaultKind, ending: str
) -> None:
    async with litellm_gateway(tmp_path, {"main": 1}) as (gateway, fakes):
        fakes["main"][0].set_default(Fault(kind, after_chunks=3))
        async with gateway.client() as client:
            response, events = await respond(
                client,
                True,
                model="main",
                input="one two three four",
                extra_headers={"x-turnout-idle-timeout-ms": "300"},
            )
    kinds = [event.type for event in events]
    terminal = [k for k in kinds if k in ("response.completed", "response.failed")]
    assert terminal == [ending] == kinds[-1:]
    if ending == "response.completed":
        assert response.output_text.endswith("one two three four")
