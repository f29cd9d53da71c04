"""The state store a config asks for: in-process memory (the default), or shared in Redis."""

from __future__ import annotations

from turnout.clock import Clock
from turnout.config.router import RouterConfig
from turnout.state.base import StateStore
from turnout.state.memory import MemoryStateStore


def store_for(config: RouterConfig, clock: Clock) -> StateStore:
    """A new store for `config.state` (Redis is imported only when it is asked for)."""
    state = config.state
    if state.backend == "memory":
        return MemoryStateStore()
    from turnout.state.redis import RedisStore

    groups = {deployment.id: deployment.model_name for deployment in config.model_list}
    return RedisStore(state, clock=clock, groups=groups)
