"""The Redis state store: one view of every deployment's health across workers and instances.

Shared, per deployment: the ejection and its probe tokens (the probe bound holds across the
fleet), per-minute usage and outcomes, the provider's quota, in-flight attempts (leases that
expire with their instance), the latency and time-to-first-token averages (each sample merged
into the shared EWMA), the poison-request holds, and each group's round-robin turn. Per
process: the retry and hedge budgets and the learned-timeout samples. docs/state.md says why.

A clean request is two scripts (`turnout.state.redis_scripts`) through one pipelined
connection (`turnout.redisio.pipe`; redis-py's client on a Cluster): `begin` re-checks the pick
made on the cached records (`turnout.state.redis_cache`), takes the lease and returns the
group's fresh records; `finish` counts the end, off the request's path when it is clean
(`turnout.state.redis_ends`). What judges a deployment runs the Python rules of
`turnout.health` on the records, written back only if nobody wrote them meanwhile
(`turnout.state.redis_slots`): one copy of the rules.

Redis down or slow: every command is bounded by `timeout_ms`; a failure trips a breaker, and
the store serves from an embedded `MemoryStateStore` seeded with the last records it read,
logged once. A heartbeat tries Redis every `retry_interval`, re-syncs what was learnt meanwhile
when it answers, and shares again. A Redis failure never becomes a client error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from turnout.clock import Clock, SystemClock
from turnout.config.state import StateConfig
from turnout.health import ejection, poison
from turnout.health.ejection import Admission
from turnout.health.events import HealthEvent
from turnout.health.poison import Hold
from turnout.health.record import CooldownReason, DeploymentState
from turnout.health.rules import (
    NEUTRAL,
    HealthPolicy,
    Outcome,
    cool_down,
    lift_cooldown,
    settle,
)
from turnout.health.snapshot import DeploymentSnapshot
from turnout.redisio.link import connect, describe, evalsha, is_cluster, is_redis_failure
from turnout.redisio.pipe import Pipe, Script
from turnout.state import redis_records as records
from turnout.state.base import Chooser
from turnout.state.memory import MemoryStateStore
from turnout.state.redis_cache import GroupCache
from turnout.state.redis_ends import EndsInFlight
from turnout.state.redis_scripts import BEGIN, FINISH, RENEW
from turnout.state.redis_slots import RecordIO, new_fields, states_of
from turnout.state.redis_verdicts import Records, judge_across, served_counts

logger = logging.getLogger("turnout.state")

T = TypeVar("T")

#: Kinds of end the clean path's script settles: a success, or an end that says nothing.
_SUCCESS, _NEUTRAL = 1, 2

_BEGIN, _FINISH, _RENEW = Script(BEGIN), Script(FINISH), Script(RENEW)


@dataclass(frozen=True, slots=True)
class _End:
    """A clean end sent off the request's path: what finishing it another way takes."""

    deployment_id: str
    member: str
    keys: list[str]
    args: list[Any]
    outcome: Outcome
    policy: HealthPolicy
    now: float
    wall: float


class _Down(Exception):
    """Redis did not answer in time: serve this call locally."""


class RedisStore:
    """A `StateStore` over Redis, failing open to an embedded memory store.

    `groups`: each deployment's model group (its keys share the group's hash tag, so one
    script can touch the whole group on Redis Cluster); a reload's `retain` passes the new
    ones. `clocks`: fixed offsets to Redis time instead of measured ones (tests).
    """

    def __init__(
        self,
        config: StateConfig,
        *,
        clock: Clock | None = None,
        groups: Mapping[str, str] | None = None,
        clocks: records.Clocks | None = None,
    ) -> None:
        self.config = config
        self._clock = clock or SystemClock()
        self._timeout = config.timeout_ms / 1000
        #: Opening a connection (TLS, asking Sentinel) may take longer than a command.
        self._connect_timeout = max(1.0, 4 * self._timeout)
        self._client: Any = None
        #: The clean path's pipelined connection (none on a Cluster: redis-py's client there).
        self._pipe: Pipe | None = None
        self._io = RecordIO(is_cluster(config))
        self._fixed_clocks = clocks is not None
        self._clocks = clocks or records.Clocks()
        self._synced = clocks is not None
        self._groups: dict[str, str] = dict(groups or {})
        #: Key names worked out once, by group (a tuple of ids) or deployment; emptied when
        #: the groups change.
        self._named: dict[Any, list[str]] = {}
        self._cache = GroupCache()
        self._ends = EndsInFlight()
        self._forgotten: set[str] = set()
        #: This instance's open leases, per deployment (members of the lease sets).
        self._leases: dict[str, list[str]] = {}
        self._instance = os.urandom(6).hex()
        self._seq = 0
        self._local = MemoryStateStore()
        self._heartbeat: asyncio.Task[None] | None = None
        #: Set when Redis goes down, so that the heartbeat starts retrying at once.
        self._tripped = asyncio.Event()
        self._recovering = False
        self._reported: set[type[BaseException]] = set()
        self._closed = False
        #: Whether state is shared now (False while Redis is down: local state serves).
        self.shared = True
        #: Round trips to Redis so far (what the clean path's budget is checked against).
        self.round_trips = 0
        #: Times Redis went down, and came back.
        self.outages = 0
        self.recoveries = 0

    # ---- the connection, its breaker and its heartbeat -----------------------------------

    def status(self) -> dict[str, Any]:
        """What /health and metrics show of the store."""
        return {
            "backend": "redis",
            "url": describe(self.config),
            "shared": self.shared,
            "outages": self.outages,
            "round_trips": self.round_trips,
        }

    def _group_keys(self, ids: tuple[str, ...]) -> list[str]:
        """The begin script's keys: the group's records, their lease sets, its turn counter."""
        keys = self._named.get(ids)
        if keys is None:
            if len(self._named) >= 10_000:
                self._named.clear()
            turn = f"{self.config.prefix}:{{{self._groups.get(ids[0], ids[0])}}}:t"
            keys = [self._key(d, "r") for d in ids] + [self._key(d, "l") for d in ids] + [turn]
            self._named[ids] = keys
        return keys

    def _key(self, deployment_id: str, kind: str) -> str:
        group = self._groups.get(deployment_id, deployment_id)
        return f"{self.config.prefix}:{{{group}}}:{kind}:{deployment_id}"

    def _keys_of(self, deployment_id: str) -> list[str]:
        """A deployment's record and lease keys, named once (a fresh list: callers keep it)."""
        keys = self._named.get(deployment_id)
        if keys is None:
            keys = self._named[deployment_id] = [
                self._key(deployment_id, "r"),
                self._key(deployment_id, "l"),
            ]
        return list(keys)

    def _ensure_client(self) -> Any:
        if self._client is None:
            self._client, endpoint = connect(self.config, self._timeout, self._connect_timeout)
            if endpoint is not None:
                self._pipe = Pipe(endpoint, self._timeout, self._connect_timeout)
        if self._heartbeat is None and not self._closed:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())
        return self._client

    async def _call(self, make: Callable[[Any], Any], bound: float | None = None) -> Any:
        """One round trip, bounded by the timeout; a failure trips the breaker. `bound`: a
        longer bound, for calls that may open a connection first (TLS, Sentinel) off the
        request path."""
        if not self.shared and not self._recovering:
            raise _Down
        client = self._ensure_client()
        await self._ends.settled()  # the pipe's writes before what reads them another way
        self.round_trips += 1
        try:
            async with asyncio.timeout(bound or self._timeout):
                if not self._synced:
                    await self._sync(client)
                return await make(client)
        except _Down:
            raise
        except Exception as exc:  # any failure of Redis: serve locally, never fail a request
            if is_redis_failure(exc):
                self._trip(exc)
                raise _Down from None
            raise

    async def _script(
        self, script: Script, keys: list[str], args: list[Any], counted: bool = False
    ) -> Any:
        """One of the clean path's scripts: through the pipe, bounded by its own watchdog
        (no timeout context per call), or through redis-py's client on a Cluster. `counted`:
        its round trip was counted when it was decided."""
        pipe = self._pipe
        if pipe is None or not self._synced or self._recovering:
            return await self._call(partial(evalsha, script, keys, args))
        if not self.shared:
            raise _Down
        self._ensure_client()
        self.round_trips += 0 if counted else 1
        try:
            return await pipe.run(script, keys, args)
        except Exception as exc:  # any failure of Redis: serve locally, never fail a request
            if is_redis_failure(exc):
                self._trip(exc)
                raise _Down from None
            raise

    async def _sync(self, client: Any) -> None:
        """Measure the offsets from this process's clocks to Redis' TIME."""
        if not self._fixed_clocks:
            self._clocks = await records.Clocks.measure(client, self._clock)
        self._synced = True

    def _trip(self, exc: BaseException) -> None:
        if not self.shared:
            return  # already down (a failed re-sync): the outage goes on, said once
        self.shared = False
        self.outages += 1
        if self._pipe is not None:
            self._pipe.abort()
        self._tripped.set()
        logger.warning(
            "state: Redis at %s unavailable (%s); routing on this process's state until it "
            "answers again",
            describe(self.config),
            type(exc).__name__,
        )
        local = MemoryStateStore()
        for deployment_id, view in self._cache.views.items():
            state = records.state_of(view)
            # Only this process's own attempts will ever finish here.
            state.in_flight = len(self._leases.get(deployment_id, ()))
            local.load(state)
        self._local = local
        self._leases.clear()  # they expire in Redis on their own

    async def _beat(self) -> None:
        """Renew this instance's leases while Redis is up; try it again while it is down."""
        while not self._closed:
            interval = self.config.lease_ttl / 3 if self.shared else self.config.retry_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tripped.wait(), interval)
            self._tripped.clear()
            try:
                if self.shared:
                    await self._renew_leases()
                else:
                    await self._recover()
            except _Down:
                pass
            except Exception as exc:  # the heartbeat must outlive any surprise
                if type(exc) not in self._reported:  # once per kind, not once per beat
                    self._reported.add(type(exc))
                    logger.exception("state: the Redis heartbeat failed; trying again")

    async def _renew_leases(self) -> None:
        await self._call(self._sync)  # measure the clocks again (clocks drift apart slowly)
        by_group: dict[str, tuple[list[str], list[str]]] = {}
        for deployment_id, leases in self._leases.items():
            key = self._key(deployment_id, "l")
            keys, members = by_group.setdefault(self._groups.get(deployment_id, key), ([], []))
            for member in leases:
                keys.append(key)
                members.append(member)
        # One script per group: its keys share a slot, as Redis Cluster requires.
        for keys, members in by_group.values():
            await self._call(partial(evalsha, _RENEW, keys, [self.config.lease_ttl, *members]))

    async def _recover(self) -> None:
        """Redis answers again: write what this process learnt meanwhile, then share again.
        Requests keep using local state until the re-sync is done."""
        client = self._ensure_client()
        pool = getattr(client, "connection_pool", None)
        if pool is not None:  # connections from before the outage are dead: start afresh
            with contextlib.suppress(Exception):
                await pool.disconnect()
        local = self._local
        self._recovering = True
        try:
            await self._call(self._sync, self._connect_timeout)
            # Every deployment this process knows: Redis may have restarted empty, and an
            # ejection kept through the outage must not be forgotten by the others.
            for deployment_id, view in list(self._cache.views.items()):
                [mine] = await local.snapshot([deployment_id])
                await self._merge(deployment_id, records.state_of(mine), view)
        except _Down:
            return
        finally:
            self._recovering = False
        self._cache.forget_groups()
        self.shared = True
        self._local = MemoryStateStore()
        self.recoveries += 1
        logger.warning("state: Redis at %s answers again; state is shared", describe(self.config))

    async def _merge(
        self, deployment_id: str, mine: DeploymentState, before: DeploymentSnapshot
    ) -> None:
        """Write what this process learnt while Redis was down into the shared record."""
        now, wall, clocks = self._clock.now(), self._clock.wall(), self._clocks

        def apply(states: list[DeploymentState]) -> None:
            records.merge_outage(states[0], mine, before, now, wall, clocks)

        await self._transact([deployment_id], apply)

    async def aclose(self) -> None:
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(BaseException):
                await self._heartbeat
        await self._ends.drain(self._connect_timeout + self._timeout)
        if self._pipe is not None:
            await self._pipe.aclose()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    # ---- records, cache and transactions -------------------------------------------------

    def _read(
        self, answer: Sequence[Any], ids: Sequence[str], redis_now: float
    ) -> list[DeploymentSnapshot]:
        """Snapshots from a script's answer: each record's `SNAPSHOT_FIELDS`, then its lease
        count."""
        clocks = self._clocks
        shift = clocks.minute_shift(self._clock.wall())
        views = []
        for position, deployment_id in enumerate(ids):
            view = records.snapshot_of(
                deployment_id,
                answer[2 * position],
                int(answer[2 * position + 1]),
                clocks,
                shift,
                redis_now,
            )
            views.append(view)
        return views

    async def _fetch(self, ids: tuple[str, ...]) -> tuple[DeploymentSnapshot, ...]:
        """Read the group's records in one round trip (per slot on a Cluster, at once)."""
        keys = [self._key(d, "r") for d in ids], [self._key(d, "l") for d in ids]
        redis_now, answer = await self._call(lambda c: self._io.read(c, *keys))
        clocks = self._clocks
        shift = clocks.minute_shift(self._clock.wall())
        views = tuple(
            records.snapshot(d, answer[2 * i], answer[2 * i + 1], clocks, shift, redis_now)
            for i, d in enumerate(ids)
        )
        self._cache.store(ids, views)
        return views

    async def _transact(
        self, ids: Sequence[str], apply: Callable[[list[DeploymentState]], T], release: str = ""
    ) -> T:
        """Run `apply` on the records (on Redis time) and write them back unless another
        instance wrote one meanwhile; again if it did, so `apply` must be a pure function of the
        records (`turnout.state.redis_slots`). On a Cluster the records must share a slot (one
        group's). `release`: a deployment whose lease of this instance is released in the same
        step."""
        record_keys = [self._key(d, "r") for d in ids]
        lease_keys = [self._key(d, "l") for d in ids]
        member = self._take_lease(release) if release else None
        lease = None if member is None else (self._key(release, "l"), member)
        ttl = int(self.config.record_ttl)
        io = self._io

        async def run(client: Any) -> tuple[T, list[DeploymentState], list[int], float]:
            while True:
                redis_now, answer = await io.read(client, record_keys, lease_keys)
                olds = answer[0::2]
                states = states_of(ids, answer, redis_now)
                result = apply(states)
                news = [new_fields(state, old) for state, old in zip(states, olds, strict=True)]
                self.round_trips += 1
                if await io.commit(client, record_keys, olds, news, ttl, lease):
                    return result, states, answer[1::2], redis_now

        outcome: tuple[T, list[DeploymentState], list[int], float] = await self._call(run)
        result, states, counts, redis_now = outcome
        clocks = self._clocks
        shift = clocks.minute_shift(self._clock.wall())
        for state, count in zip(states, counts, strict=True):
            if state.deployment_id == release and lease is not None:
                count = max(0, count - 1)
            fields = {k: records.text(v) for k, v in records.to_fields(state).items()}
            view = records.snapshot(state.deployment_id, fields, count, clocks, shift, redis_now)
            self._cache.remember(view)
        return result

    def _units(self, ids: Sequence[str]) -> list[list[str]]:
        """`ids` in groups whose records one script may touch (all of them but on a Cluster)."""
        keys = [self._key(d, "r") for d in ids]
        return [[ids[i] for i in unit] for unit in self._io.units(keys)]

    def _verdicts(self) -> Records:
        """What a verdict across slots reads and writes with."""
        return Records(self._call, self._key, self._io, self._units, self._transact)

    def _take_lease(self, deployment_id: str) -> str | None:
        leases = self._leases.get(deployment_id)
        return leases.pop() if leases else None

    async def _ready(self) -> bool:
        """Whether to serve from Redis: it is up, and the clocks are measured (the first call
        measures them, so that no time is translated with unknown offsets)."""
        if not self.shared:
            return False
        if not self._synced:
            try:
                await self._call(self._sync, self._connect_timeout)
            except _Down:
                return False
        return True

    def _shared_times(self, now: float, wall: float) -> tuple[float, float]:
        clocks = self._clocks
        return now + clocks.monotonic, wall + clocks.wall

    # ---- the protocol ----------------------------------------------------------------------

    async def snapshot(self, ids: Sequence[str]) -> Sequence[DeploymentSnapshot]:
        await self._ends.settled()  # this process reads its own writes
        if await self._ready():
            key = tuple(ids)
            cached = self._cache.fresh(key, self.config.cache_ms / 1000)
            if cached is not None:
                return cached
            with contextlib.suppress(_Down):
                return await self._fetch(key)
        return await self._local.snapshot(ids)

    async def begin(
        self,
        ids: Sequence[str],
        choose: Chooser,
        policies: Mapping[str, HealthPolicy],
        now: float,
        wall: float,
    ) -> tuple[str | None, Admission, list[HealthEvent]]:
        if await self._ready():
            with contextlib.suppress(_Down):
                return await self._begin_shared(tuple(ids), choose, policies, now, wall)
        return await self._local.begin(ids, choose, policies, now, wall)

    async def _begin_shared(
        self,
        ids: tuple[str, ...],
        choose: Chooser,
        policies: Mapping[str, HealthPolicy],
        now: float,
        wall: float,
    ) -> tuple[str | None, Admission, list[HealthEvent]]:
        views = self._cache.group(ids) or await self._fetch(ids)
        events: list[HealthEvent] = []
        keys = self._group_keys(ids)
        shared_now, shared_wall = self._shared_times(now, wall)
        for _ in range(4):
            chosen, expired = choose(views)
            for deployment_id in expired:
                events += await self.expire(deployment_id, now)
            if chosen is None:
                return None, Admission.REFUSED, events
            self._seq += 1
            member = f"{self._instance}:{self._seq}"
            position = ids.index(chosen) + 1
            policy = policies[chosen]
            args = [position, repr(shared_now), repr(shared_wall), policy.probes, member]
            args += [self.config.lease_ttl, int(self.config.record_ttl)]
            args += [policy.rpm or 0, policy.max_parallel or 0]
            turn = choose.turn
            if len(turn) > 1:  # round robin: the fleet's turn picks among the candidates
                for candidate in turn:
                    limits = policies[candidate]
                    args += [ids.index(candidate) + 1, limits.probes]
                    args += [limits.rpm or 0, limits.max_parallel or 0]
            answer = await self._script(_BEGIN, keys, args)
            views = tuple(self._read(answer[3:], ids, float(answer[1])))
            self._cache.store(ids, views)
            admission = int(answer[0])
            if len(turn) > 1 and ids[int(answer[2]) - 1] != chosen:
                chosen = ids[int(answer[2]) - 1]
                choose.turn_falls_on(chosen)
                policy = policies[chosen]
            if admission > 0:
                self._leases.setdefault(chosen, []).append(member)
                return chosen, Admission(admission), events
            if admission == -2:  # its ejection is over: the rules move it on, then again
                events += await self.expire(chosen, now)
                views = self._cache.group(ids) or views
                continue
            # Refused: another instance ejected it or took the last probe slot meanwhile;
            # choose again on the fresh records.
            if not any(v.deployment_id != chosen for v in views):
                break
        return chosen, Admission.REFUSED, events

    async def finish(
        self,
        deployment_id: str,
        outcome: Outcome,
        policy: HealthPolicy,
        now: float,
        wall: float,
        holds: Sequence[Hold] | None = None,
    ) -> tuple[int, list[HealthEvent]]:
        if deployment_id in self._forgotten:
            return 0, []
        if await self._ready():
            with contextlib.suppress(_Down):
                return await self._finish_shared(deployment_id, outcome, policy, now, wall, holds)
        return await self._local.finish(deployment_id, outcome, policy, now, wall, holds)

    async def _finish_shared(
        self,
        deployment_id: str,
        outcome: Outcome,
        policy: HealthPolicy,
        now: float,
        wall: float,
        holds: Sequence[Hold] | None,
    ) -> tuple[int, list[HealthEvent]]:
        error = outcome.error
        if holds is None and not outcome.probe and (error is None or error in NEUTRAL):
            # Taken now, not after the call: attempts that start or end meanwhile must not
            # make this one release another's lease (leaving its own to count until it expires).
            member = self._take_lease(deployment_id) or ""
            kind = _SUCCESS if error is None else _NEUTRAL
            shared = self._shared_times(now, wall)
            ttl = int(self.config.record_ttl)
            args = records.finish_args(deployment_id, member, kind, outcome, policy, *shared, ttl)
            keys = self._keys_of(deployment_id)
            pipe = self._pipe
            if pipe is not None and self._synced and not self._recovering:
                self.round_trips += 1  # counted when sent, answered off the request's path
                end = _End(deployment_id, member, keys, args, outcome, policy, now, wall)
                try:
                    answer = pipe.post(_FINISH, keys, args)
                except RedisConnectionError:  # no connection open yet: the end opens one
                    self._ends.run(deployment_id, self._end(end, rerun=True))
                else:
                    self._ends.send(deployment_id, answer, partial(self._landed, end))
                return 0, []
            if self._ended(deployment_id, member, await self._script(_FINISH, keys, args)):
                return 0, []
        return await self._finish_by_rules(deployment_id, outcome, policy, now, wall, holds)

    def _landed(self, end: _End, answer: asyncio.Future[Any]) -> Coroutine[Any, Any, None] | None:
        """A clean end's answer (`turnout.state.redis_ends`): settled, or what it needs more."""
        failure = answer.exception()
        if failure is None:
            if self._ended(end.deployment_id, end.member, answer.result()):
                return None
            return self._end(end, rerun=False)
        if isinstance(failure, ResponseError) and str(failure).startswith("NOSCRIPT"):
            return self._end(end, rerun=True)  # `run` loads the script the server forgot
        if is_redis_failure(failure):
            self._trip(failure)
            return self._end_locally(end)
        raise failure

    async def _end(self, end: _End, *, rerun: bool) -> None:
        """A clean end that needs more than its answer: its script run again and awaited
        (`rerun`), or the rules (held failures on the record)."""
        try:
            if rerun:
                answer = await self._script(_FINISH, end.keys, end.args, counted=True)
                if self._ended(end.deployment_id, end.member, answer):
                    return
            await self._finish_by_rules(
                end.deployment_id, end.outcome, end.policy, end.now, end.wall, None
            )
        except _Down:  # counted where the process now routes
            await self._end_locally(end)

    async def _end_locally(self, end: _End) -> None:
        await self._local.finish(end.deployment_id, end.outcome, end.policy, end.now, end.wall)

    def _ended(self, deployment_id: str, member: str, answer: Any) -> bool:
        """Whether the finish script settled the end (else the rules must, on held failures)."""
        if int(answer[0]) == 1:
            [view] = self._read(answer[2:], (deployment_id,), float(answer[1]))
            self._cache.remember(view)
            return True
        if member:  # the rules release it
            self._leases.setdefault(deployment_id, []).append(member)
        return False

    async def _finish_by_rules(
        self,
        deployment_id: str,
        outcome: Outcome,
        policy: HealthPolicy,
        now: float,
        wall: float,
        holds: Sequence[Hold] | None,
    ) -> tuple[int, list[HealthEvent]]:
        shared_now, shared_wall = self._shared_times(now, wall)
        error = outcome.error
        served = await served_counts(self._call, self._key, deployment_id)

        def apply(states: list[DeploymentState]) -> tuple[int, list[HealthEvent]]:
            [state] = states
            explain = served.get
            if holds is None:
                if state.dropped is not None and error is not None:
                    poison.explain(state, explain)
                return 0, settle(state, outcome, policy, shared_now, shared_wall)
            if state.dropped is not None:
                poison.explain(state, explain)
            token = poison.hold(state, outcome, policy, shared_now, shared_wall)
            if token > 0:
                return token, []
            return token, settle(state, outcome, policy, shared_now, shared_wall)

        token, events = await self._transact([deployment_id], apply, release=deployment_id)
        events = records.local_events(events, self._clocks)
        if token == poison.FAILING and holds:
            events += await self.resolve_holds(holds, True, now, wall)
        return token, events

    async def judge(
        self, holds: Sequence[Hold], needed: int, window: float, now: float
    ) -> tuple[str, ...]:
        if self.shared:
            ids = list(
                dict.fromkeys(
                    h.deployment_id for h in holds if h.deployment_id not in self._forgotten
                )
            )
            shared_now = now + self._clocks.monotonic

            def apply(states: list[DeploymentState]) -> tuple[str, ...]:
                by_id = {s.deployment_id: s for s in states}
                kept = [h for h in holds if h.deployment_id in by_id]
                return poison.judge(
                    [by_id[h.deployment_id] for h in kept],
                    [h.token for h in kept],
                    needed,
                    window,
                    shared_now,
                )

            with contextlib.suppress(_Down):
                if len(self._units(ids)) > 1:
                    return await judge_across(self._verdicts(), ids, holds, apply)
                return await self._transact(ids, apply)
        return await self._local.judge(holds, needed, window, now)

    async def resolve_holds(
        self, holds: Sequence[Hold], blame: bool, now: float, wall: float
    ) -> list[HealthEvent]:
        if await self._ready():
            kept = [h for h in holds if h.deployment_id not in self._forgotten]
            ids = list(dict.fromkeys(h.deployment_id for h in kept))
            shared_now, shared_wall = self._shared_times(now, wall)

            def apply(states: list[DeploymentState]) -> list[HealthEvent]:
                by_id = {s.deployment_id: s for s in states}
                events: list[HealthEvent] = []
                for held in kept:
                    if held.deployment_id not in by_id:  # another slot's (a Cluster)
                        continue
                    events += poison.resolve(
                        by_id[held.deployment_id],
                        held.token,
                        blame,
                        held.policy,
                        shared_now,
                        shared_wall,
                    )
                return events

            if not ids:
                return []
            with contextlib.suppress(_Down):
                events: list[HealthEvent] = []
                for unit in self._units(ids):  # independent records: one slot at a time
                    events += await self._transact(unit, apply)
                return records.local_events(events, self._clocks)
        return await self._local.resolve_holds(holds, blame, now, wall)

    async def still_held(self, deployment_id: str, token: int) -> bool:
        if deployment_id in self._forgotten:
            return False
        if await self._ready():
            with contextlib.suppress(_Down):
                raw = await self._call(lambda c: c.hget(self._key(deployment_id, "r"), "x"))
                if raw is None:
                    return False
                return poison.still_held(records.to_state(deployment_id, {"x": raw}, True), token)
        return await self._local.still_held(deployment_id, token)

    async def _rule(
        self,
        deployment_id: str,
        rule: Callable[[DeploymentState], list[HealthEvent]],
        local: Callable[[], Any],
    ) -> list[HealthEvent]:
        """One transition of one record by the health rules, shared when Redis answers."""
        if await self._ready():
            with contextlib.suppress(_Down):
                events = await self._transact([deployment_id], lambda states: rule(states[0]))
                return records.local_events(events, self._clocks)
        result: list[HealthEvent] = await local()
        return result

    async def cool_down(
        self,
        deployment_id: str,
        reason: CooldownReason,
        seconds: float,
        policy: HealthPolicy,
        now: float,
    ) -> list[HealthEvent]:
        return await self._rule(
            deployment_id,
            lambda state: cool_down(state, reason, policy, now + self._clocks.monotonic, seconds),
            lambda: self._local.cool_down(deployment_id, reason, seconds, policy, now),
        )

    async def lift_cooldown(self, deployment_id: str) -> list[HealthEvent]:
        return await self._rule(
            deployment_id, lift_cooldown, lambda: self._local.lift_cooldown(deployment_id)
        )

    async def expire(self, deployment_id: str, now: float) -> list[HealthEvent]:
        def rule(state: DeploymentState) -> list[HealthEvent]:
            events: list[HealthEvent] = []
            ejection.expire(state, now + self._clocks.monotonic, events)
            return events

        return await self._rule(deployment_id, rule, lambda: self._local.expire(deployment_id, now))

    async def probe_answered(
        self, deployment_id: str, policy: HealthPolicy, now: float
    ) -> list[HealthEvent]:
        if deployment_id in self._forgotten:
            return []

        def rule(state: DeploymentState) -> list[HealthEvent]:
            events: list[HealthEvent] = []
            ejection.on_success(state, policy, True, now + self._clocks.monotonic, events)
            return events

        return await self._rule(
            deployment_id, rule, lambda: self._local.probe_answered(deployment_id, policy, now)
        )

    async def retain(self, ids: Collection[str]) -> None:
        keep = set(ids)
        if isinstance(ids, Mapping):  # the router's table: id -> deployment, with its group
            for deployment_id, deployment in ids.items():
                group = getattr(deployment, "model_name", None)
                if isinstance(group, str):
                    self._groups[deployment_id] = group
            self._named.clear()
        gone = [d for d in {*self._cache.views, *self._leases} if d not in keep]
        self._forgotten = (self._forgotten | set(gone)) - keep
        if gone and self.shared:
            keys = [self._key(d, kind) for d in gone for kind in ("r", "l")]
            with contextlib.suppress(_Down):
                await self._call(lambda c: c.delete(*keys))
        for deployment_id in gone:
            self._cache.forget(deployment_id)
            self._leases.pop(deployment_id, None)
        self._cache.forget_groups()
        await self._local.retain(ids)
