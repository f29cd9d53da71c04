"""What a poison verdict reads and writes beyond one record: the success counts a dropped
failure is compared with, and a verdict on holds in several slots of a Redis Cluster.

Both run only when an attempt ends badly, off the clean path; they live here so that the store
keeps the clean path and the protocol.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from turnout.health import poison
from turnout.health.poison import Hold
from turnout.health.record import DeploymentState
from turnout.state import redis_records as records
from turnout.state.redis_slots import RecordIO, states_of

Judge = Callable[[list[DeploymentState]], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Records:
    """The store's means of reaching records: a bounded call on redis-py's client, the key of
    a deployment's record (``r``) or leases (``l``), the reads, the slots records fall in, and
    an optimistic transaction over the records of one slot."""

    call: Callable[[Callable[[Any], Any]], Awaitable[Any]]
    key: Callable[[str, str], str]
    io: RecordIO
    units: Callable[[Sequence[str]], list[list[str]]]
    transact: Callable[[Sequence[str], Callable[[list[DeploymentState]], None]], Awaitable[None]]


async def served_counts(
    call: Callable[[Callable[[Any], Any]], Awaitable[Any]],
    key: Callable[[str, str], str],
    deployment_id: str,
) -> dict[str, int | None]:
    """The success counts of the deployments this one's dropped failures name (what
    `poison.explain` compares), read before the transaction: two round trips, only when an
    attempt ends badly."""
    raw = await call(lambda c: c.hget(key(deployment_id, "r"), "x"))
    if raw is None:
        return {}
    state = records.to_state(deployment_id, {"x": raw}, True)
    names = sorted({d for marks in (state.dropped or {}).values() for d, _ in marks})
    if not names:
        return {}
    keys = [key(name, "r") for name in names]

    async def read(client: Any) -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            for name in keys:
                pipe.hget(name, "sv")
                pipe.exists(name)
            answer: list[Any] = await pipe.execute()
            return answer

    answer = await call(read)
    counts: dict[str, int | None] = {}
    for index, name in enumerate(names):
        value, exists = answer[2 * index], answer[2 * index + 1]
        counts[name] = None if not exists else int(float(value)) if value is not None else 0
    return counts


async def judge_across(
    store: Records, ids: list[str], holds: Sequence[Hold], judge: Judge
) -> tuple[str, ...]:
    """A verdict on holds in several slots of a Cluster (deployments of several groups):
    judged on one read of them all, then each slot's holds dropped in a transaction of its
    own. A hold that counted between the read and its slot's write stays counted
    (`poison.drop` leaves it); the verdict stands on a view one round trip old."""
    keys = [store.key(d, "r") for d in ids], [store.key(d, "l") for d in ids]
    redis_now, answer = await store.call(lambda c: store.io.read(c, *keys))
    states = states_of(ids, answer, redis_now)
    by_id = {s.deployment_id: s for s in states}
    kept = [h for h in holds if h.deployment_id in by_id]
    marks = poison.verdict_marks([by_id[h.deployment_id] for h in kept], [h.token for h in kept])
    verdict = judge(states)
    if not verdict:
        return ()

    def drop(unit: list[DeploymentState]) -> None:
        for state in unit:
            for held in kept:
                if held.deployment_id == state.deployment_id:
                    poison.drop(state, held.token, marks)

    for unit in store.units(ids):
        await store.transact(unit, drop)
    return verdict
