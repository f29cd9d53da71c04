"""Builders shared by the strategy tests: deployments, states and requests with chosen fields."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.record import DeploymentState
from turnout.health.snapshot import DeploymentSnapshot, snapshot_of
from turnout.router.strategies import REGISTRY
from turnout.router.strategies.base import Strategy
from turnout.wire import Request

#: A wall-clock instant in the middle of a minute (minute 1000), for per-minute counters.
WALL = 60_030.0
MINUTE = int(WALL // 60)


def deployment(index: int = 0, **fields: Any) -> Deployment:
    return Deployment(model_name="g", model="m", provider="p", id=f"d{index}", **fields)


def deployments(count: int, **fields: Any) -> list[Deployment]:
    return [deployment(index, **fields) for index in range(count)]


def state(index: int = 0, **fields: Any) -> DeploymentSnapshot:
    """A state whose per-minute counters belong to `WALL`'s minute, with `fields` set.

    Provider quota hints given in `fields` are valid at `WALL` unless `hint_expires` says not.
    """
    record = DeploymentState(f"d{index}")
    record.minute = MINUTE
    record.hint_expires = WALL + 30.0
    for name, value in fields.items():
        setattr(record, name, value)
    return snapshot_of(record)


def states(count: int, **fields: Any) -> list[DeploymentSnapshot]:
    return [state(index, **fields) for index in range(count)]


def request(
    *, stream: bool = False, prompt_tokens: int = 100, max_tokens: int | None = None
) -> Request:
    body: dict[str, Any] = {"messages": [], "stream": stream}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return Request(model="g", body=body, _prompt_tokens=prompt_tokens)


def make(name: str, seed: int = 0, **routing: Any) -> Strategy:
    return REGISTRY[name](RoutingConfig(**routing), random.Random(seed))


def picks(
    strategy: Strategy,
    candidates: Sequence[Deployment],
    records: Sequence[DeploymentSnapshot],
    draws: int,
    req: Request | None = None,
) -> list[int]:
    """How often each candidate is chosen over `draws` decisions."""
    counts = [0] * len(candidates)
    req = req or request()
    for _ in range(draws):
        counts[strategy.choose("g", candidates, records, req, WALL)] += 1
    return counts
