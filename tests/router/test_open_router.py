"""`turnout.open_router` end to end, through the public API only: a router with real providers
from a config or a config file, answering from a fake OpenAI on 127.0.0.1 over real HTTP, and
`Router.aclose` (or leaving ``async with``) releasing its connections and closing its
providers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import turnout
from fakes.fake_openai import FakeOpenAI
from turnout import (
    Deployment,
    Provider,
    ProviderResponse,
    Request,
    Router,
    RouterConfig,
    Secret,
)
from turnout.testing import Behaviour, MockTransport, SimulatedProvider
from turnout.upstream import UpstreamReply

KEY = "sk-fake-open-router"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(KEY) as server:
        yield server


def _config(fake: FakeOpenAI) -> RouterConfig:
    return RouterConfig(
        model_list=(
            Deployment(
                model_name="chat",
                provider="openai",
                model="gpt-4o-mini",
                base_url=fake.url,
                api_key=Secret(KEY),
            ),
        )
    )


def _chat(text: str, stream: bool = False) -> Request:
    body = {"messages": [{"role": "user", "content": text}], "stream": stream}
    return Request(model="chat", body=body)


async def _settled(count: Callable[[], int], expected: int) -> None:
    """Wait (briefly) for the server to see connections come or go."""
    for _ in range(200):
        if count() == expected:
            return
        await asyncio.sleep(0.01)
    assert count() == expected


async def test_a_router_from_a_config_answers_over_http_and_closes_its_connections(
    fake: FakeOpenAI,
) -> None:
    async with turnout.open_router(_config(fake)) as router:
        answers = await asyncio.gather(*(router.complete(_chat(f"q{n}")) for n in range(3)))
        assert [a.body["choices"][0]["message"]["content"] for a in answers] == [
            f"Fake answer to: q{n}" for n in range(3)
        ]
        assert answers[0].deployment.provider == "openai"
        async with await router.stream(_chat("streamed", stream=True)) as stream:
            chunks = [chunk async for chunk in stream]
        assert chunks[-1].usage is not None
        await _settled(lambda: fake.open_connections, 3)  # kept alive for the next requests
    await _settled(lambda: fake.open_connections, 0)
    assert [r.headers["authorization"] for r in fake.requests] == [f"Bearer {KEY}"] * 4


async def test_aclose_is_idempotent_and_a_closed_router_sends_nothing(fake: FakeOpenAI) -> None:
    router = turnout.open_router(_config(fake))
    await router.complete(_chat("one"))
    await router.aclose()
    await router.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await router.complete(_chat("two"))
    with pytest.raises(RuntimeError, match="closed"):
        await router.stream(_chat("three", stream=True))
    assert len(fake.requests) == 1
    await _settled(lambda: fake.open_connections, 0)


async def test_a_router_from_a_config_file(fake: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "turnout.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: chat\n"
        "    provider: openai\n"
        "    model: gpt-4o-mini\n"
        f"    base_url: {fake.url}\n"
        "    api_key: ${OPEN_ROUTER_TEST_KEY}\n"
        "routing:\n"
        "  strategy: simple-shuffle\n"
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPEN_ROUTER_TEST_KEY", KEY)
        router = turnout.open_router(path)
    try:
        assert router.model_names() == ["chat"]
        answer = await router.chat("chat", [{"role": "user", "content": "from a file"}])
        assert answer.body["choices"][0]["message"]["content"] == "Fake answer to: from a file"
    finally:
        await router.aclose()


def test_a_config_that_does_not_build_is_a_config_error() -> None:
    config = RouterConfig(model_list=(Deployment(model_name="c", provider="nope", model="m"),))
    with pytest.raises(turnout.TurnoutError, match="'nope' is not supported"):
        turnout.open_router(config)


# -- Router.aclose on providers and a transport given by hand ------------------------------------


class Holding:
    """A provider of the caller's own that holds something to release."""

    def __init__(self, closed: list[str], name: str, fails: bool = False) -> None:
        self.inner = SimulatedProvider(behaviours={})
        self.closed = closed
        self.name = name
        self.fails = fails

    async def complete(self, deployment: Deployment, request: Request) -> ProviderResponse:
        return await self.inner.complete(deployment, request)

    embed = complete

    def stream(
        self, deployment: Deployment, request: Request
    ) -> AsyncIterator[turnout.StreamChunk]:
        return self.inner.stream(deployment, request)

    async def aclose(self) -> None:
        self.closed.append(self.name)
        if self.fails:
            raise OSError(f"{self.name} failed to close")


class Transport(MockTransport):
    """A transport that notes when it is closed."""

    def __init__(self, closed: list[str]) -> None:
        super().__init__(lambda call: UpstreamReply(200, {}, b"{}"))
        self.noted = closed

    async def aclose(self) -> None:
        self.noted.append("transport")
        await super().aclose()


def _two_groups() -> RouterConfig:
    return RouterConfig(
        model_list=(
            Deployment(model_name="a", provider="first", model="m1"),
            Deployment(model_name="b", provider="second", model="m2"),
            Deployment(model_name="c", provider="plain", model="m3"),
        )
    )


async def test_aclose_closes_each_holding_provider_once_even_when_one_fails() -> None:
    closed: list[str] = []
    shared = Holding(closed, "first", fails=True)
    providers: dict[str, Provider] = {
        "first": shared,
        "second": Holding(closed, "second"),
        "plain": SimulatedProvider(behaviours={"m3": Behaviour()}),
    }
    transport = Transport(closed)
    router = Router(_two_groups(), providers, transport=transport)
    await router.chat("a", [{"role": "user", "content": "hi"}])
    with pytest.raises(OSError, match="first failed to close"):
        await router.aclose()
    assert sorted(closed[:2]) == ["first", "second"]
    assert closed[2:] == ["transport"]  # last, after the providers that send through it
    await router.aclose()  # done once: nothing closed twice
    assert len(closed) == 3
