"""`/v1/messages` requests are reported like chat ones: one `HttpRequestFinished` each, under
the route ``messages``, with the model asked, the group, the status (an error's too), whether it
streamed and how a broken stream failed, and with no key in any event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from messages_kit import MASTER, deployment, gateway, litellm_config, sdk, upstreams

from fakes.fake_openai import Fault
from harness import Recorder
from turnout.observe.events import HttpRequestFinished, RequestFinished

ASK: Any = {"max_tokens": 16, "messages": [{"role": "user", "content": "Hello"}]}


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the events never arrived")


async def test_each_messages_request_is_reported_once() -> None:
    async with upstreams() as fakes:
        config = litellm_config(deployment("claude", "openai", fakes.openai.url))
        async with gateway(config) as running:
            recorder = Recorder()
            running.gateway.bus.subscribe(recorder)
            async with sdk(running) as client:
                await client.messages.create(model="claude", **ASK)
                async with client.messages.stream(model="claude", **ASK) as stream:
                    await stream.get_final_message()
                with pytest.raises(anthropic.NotFoundError):
                    await client.messages.create(model="nope", **ASK)
                fakes.openai.enqueue(Fault("cut", after_chunks=3))
                with pytest.raises(anthropic.APIStatusError):
                    async with client.messages.stream(model="claude", **ASK) as stream:
                        await stream.get_final_message()
            await _until(lambda: len(recorder.of(HttpRequestFinished)) == 4)
    finished = recorder.of(HttpRequestFinished)
    seen = [(e.route, e.model, e.status, e.stream, e.error) for e in finished]
    assert seen == [
        ("messages", "claude", 200, False, None),
        ("messages", "claude", 200, True, None),
        ("messages", "nope", 404, False, "bad_request"),
        ("messages", "claude", 200, True, "stream_interrupted"),
    ]
    assert all(e.principal is not None and e.principal.name == "master" for e in finished)
    assert len(recorder.of(RequestFinished)) == 3  # the unknown model was never routed
    assert all(MASTER not in repr(event) for event in recorder.events)
