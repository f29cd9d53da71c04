"""Reading records, and writing back what the health rules made of them, on any Redis topology.

The rules (`turnout.health`) run in Python on a copy of the records; what they wrote goes back
only if nobody wrote those records meanwhile. That check-and-set is one script
(`redis_scripts.COMMIT`, comparing every field with what was read) rather than WATCH/MULTI/EXEC:
one round trip instead of one per command, and the same on one Redis, behind Sentinel and on a
Cluster (whose asyncio client in redis-py sends a watched transaction's commands from a thread
it waits for, blocking the event loop).

A script may only touch keys of one hash slot on a Cluster. Every key of a model group has the
group's hash tag, so the clean path never leaves one slot; what spans groups (the health report
of every deployment, a poison-request verdict on deployments of several groups) is split into
`units`: all the keys together on one Redis, one slot each on a Cluster. Reads of several units
run at once (one round trip's time); writes are check-and-set per unit, so on a Cluster a change
to several groups is atomic per group, not across them (Redis Cluster has no such thing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from turnout.health.record import DeploymentState
from turnout.state import redis_records as records
from turnout.state.redis_scripts import COMMIT, READ

#: A record's fields as read (what the check compares), and what is written instead.
Fields = dict[str, Any]


class RecordIO:
    """Reads and check-and-set writes of records, split per slot on a Cluster (`cluster`)."""

    def __init__(self, cluster: bool) -> None:
        self.cluster = cluster
        self._scripts: dict[str, Any] = {}

    def units(self, keys: Sequence[str]) -> list[list[int]]:
        """The positions of `keys`, grouped into what one script may touch together."""
        if not self.cluster:
            return [list(range(len(keys)))] if keys else []
        from redis.crc import key_slot

        by_slot: dict[int, list[int]] = {}
        for position, key in enumerate(keys):
            by_slot.setdefault(key_slot(key.encode()), []).append(position)
        return list(by_slot.values())

    def _script(self, client: Any, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        return script

    async def read(
        self, client: Any, record_keys: Sequence[str], lease_keys: Sequence[str]
    ) -> tuple[float, list[Any]]:
        """Redis' time and, for each record in order, its fields and its count of live leases
        (the flat answer `RedisStore._read` takes). Several slots are read at once."""
        script = self._script(client, READ)
        units = self.units(record_keys)

        async def one(unit: list[int]) -> list[Any]:
            keys = [record_keys[i] for i in unit] + [lease_keys[i] for i in unit]
            answer: list[Any] = await script(keys, [])
            return answer

        answers = await asyncio.gather(*(one(unit) for unit in units))
        flat: list[Any] = [None] * (2 * len(record_keys))
        for unit, answer in zip(units, answers, strict=True):
            for index, position in enumerate(unit):
                flat[2 * position] = records.decode(answer[1 + 2 * index])
                flat[2 * position + 1] = int(answer[2 + 2 * index])
        redis_now = float(answers[0][0]) if answers else 0.0
        return redis_now, flat

    async def commit(
        self,
        client: Any,
        record_keys: Sequence[str],
        olds: Sequence[Fields],
        news: Sequence[Fields],
        ttl: int,
        lease: tuple[str, str] | None = None,
    ) -> bool:
        """Replace the records (one unit's) with `news` if each is still exactly `olds`;
        whether it did. `lease`: a lease set and a member to release in the same step."""
        args: list[Any] = [len(record_keys), ttl, lease[1] if lease else ""]
        for old, new in zip(olds, news, strict=True):
            for fields in (old, new):
                args.append(len(fields))
                for name, value in fields.items():
                    args += (name, value)
        keys = [*record_keys, lease[0]] if lease else list(record_keys)
        return int(await self._script(client, COMMIT)(keys, args)) == 1


def states_of(ids: Sequence[str], answer: Sequence[Any], redis_now: float) -> list[DeploymentState]:
    """The records `read` answered, on Redis time, for the rules to apply to."""
    return [
        records.to_state(d, old, records.probe_alive(old, redis_now))
        for d, old in zip(ids, answer[0::2], strict=True)
    ]


def new_fields(state: DeploymentState, old: Fields) -> Fields:
    """What to write for a record the rules changed (`old`: as read)."""
    fields: Fields = dict(records.to_fields(state))
    # The probe tokens' expiry is the scripts' field: kept while probes are out, or the next
    # start would take them for expired ones.
    expiry = old.get("pe")
    if state.probes and expiry is not None:
        fields["pe"] = expiry
    return fields
