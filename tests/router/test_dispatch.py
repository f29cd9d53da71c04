"""The dispatch seam: how many store calls a request makes, and who may touch the store.

Each store call is a network round trip once state lives in a shared store, so the counts
below are the budget a Redis store will pay: two for a clean request.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from harness import Harness, chat, dep
from test_layers import GRAPH
from turnout import Deployment, Router, RouterConfig
from turnout.config.router import FallbackConfig
from turnout.errors import ServerError
from turnout.state.base import StateStore
from turnout.state.memory import MemoryStateStore

SRC = Path(__file__).parents[2] / "src" / "turnout"


class Counting:
    """A state store that records the name of every call made to the store it wraps."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.inner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await method(*args, **kwargs)

        return counted


def _router(h: Harness, store: Counting, *deployments: Deployment, **config: Any) -> Router:
    return Router(
        RouterConfig(model_list=deployments, **config),
        {"sim": h.scripted},
        state=cast(StateStore, store),
        clock=h.clock,
        rng=random.Random(3),
        observers=[h.recorder],
    )


async def test_a_clean_request_makes_two_store_calls(h: Harness) -> None:
    store = Counting(MemoryStateStore())
    router = _router(h, store, dep("a"), dep("b"))
    await router.complete(chat())
    assert store.calls == ["begin", "finish"]


async def test_a_clean_stream_makes_two_store_calls(h: Harness) -> None:
    store = Counting(MemoryStateStore())
    router = _router(h, store, dep("a"), dep("b"))
    async with await router.stream(chat(stream=True)) as stream:
        assert [chunk async for chunk in stream]
    assert store.calls == ["begin", "finish"]


_FALLBACK = FallbackConfig(general={"chat": ["backup"]})


async def test_a_request_that_falls_back_once_after_its_retries(h: Harness) -> None:
    store = Counting(MemoryStateStore())
    router = _router(h, store, dep("a"), dep("b", group="backup"), fallbacks=_FALLBACK)
    h.scripted.fail("a", *[ServerError("busy", status=503) for _ in range(3)])
    response = await router.complete(chat())
    assert [a.deployment_id for a in response.attempts] == ["a", "a", "a", "b"]
    # Each attempt is one call to start and one to settle; each retry reads its group once to
    # decide whether to back off; the hop to the fallback group is part of its first start.
    assert store.calls == ["begin", "finish", "snapshot"] * 2 + ["begin", "finish"] * 2


async def test_a_held_failure_then_a_fallback(h: Harness) -> None:
    store = Counting(MemoryStateStore())
    router = _router(h, store, dep("a"), dep("b", group="backup"), fallbacks=_FALLBACK)
    h.scripted.fail("a", ServerError("boom", status=500))
    response = await router.complete(chat())
    assert [a.deployment_id for a in response.attempts] == ["a", "b"]
    # The server error is held against the request's verdict, and counted when it ends served.
    assert store.calls == ["begin", "finish", "snapshot", "begin", "finish", "resolve_holds"]


async def test_a_decision_alone_reads_the_group_once(h: Harness) -> None:
    store = Counting(MemoryStateStore())
    router = _router(h, store, dep("a"), dep("b"))
    await router.pick(chat())
    assert store.calls == ["snapshot"]


# ---- who may touch what -----------------------------------------------------------------------


def _package(name: str) -> list[Path]:
    return sorted((SRC / name).rglob("*.py"))


def _module(path: Path) -> str:
    return ".".join(("turnout", *path.relative_to(SRC).with_suffix("").parts)).removesuffix(
        ".__init__"
    )


def test_only_dispatch_reaches_the_state_store() -> None:
    # Layers, cycles and what health and state may import are `tests/test_layers.py`'s; this is
    # the rule inside the router: one module speaks to the store.
    for path in _package("router"):
        reaches = {m for m in GRAPH[_module(path)] if m.startswith("turnout.state")}
        if path.name == "dispatch.py":
            continue
        # The router builds the default store and hands it to dispatch; the assembly passes a
        # caller's store through to the router. Neither calls it.
        if path.name in ("router.py", "assembly.py"):
            assert reaches <= {"turnout.state.base", "turnout.state.factory"}
            assert ".store." not in path.read_text()
            continue
        assert not reaches, f"{path.name} imports {reaches}"


def test_only_dispatch_emits_attempt_events() -> None:
    for path in _package("router"):
        text = path.read_text()
        if path.name != "dispatch.py":
            assert "AttemptStarted(" not in text and "AttemptFinished(" not in text, path.name


def test_failover_reads_no_private_attribute_of_a_stream() -> None:
    tree = ast.parse((SRC / "router" / "failover.py").read_text())
    private = [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]
    assert private == []
