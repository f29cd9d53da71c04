"""A deployment's record as a Redis hash, and the clocks it is kept in.

One hash per deployment, one short field per value of its `DeploymentState`, so that the Lua
scripts of the clean path (`turnout.state.redis_scripts`) update counters and averages field by
field, and the Python rules read and write the whole record in an optimistic transaction. The
poison-request bookkeeping (held failures, their streak, dropped failures: rare, nested) is one
msgpack field, ``x``, absent when empty; its presence sends a request's end to the Python rules.
A value that is None is an absent field. In-flight attempts are not in the hash: they are
leases in a sorted set beside it (`in_flight` is their count).

Times. Each process's router runs on its own monotonic clock, which means nothing to another
process, and instances' wall clocks may disagree. So every time stored is on Redis' own clock
(``TIME``): `Clocks` holds the offsets from this process's monotonic and wall clocks to it,
measured when the store connects and at every heartbeat, and the store translates at its
boundary: the rules run on Redis time in transactions, and snapshots handed to the router are
translated back to its clocks (a minute counter is moved by the difference between the two
clocks' current minutes, so "this minute" stays this minute).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from turnout.clock import Clock
from turnout.health.events import CooldownEntered, HealthEvent
from turnout.health.record import BreakerPhase, CooldownReason, DeploymentState
from turnout.health.rules import HealthPolicy, Outcome, record_rate_limits
from turnout.health.snapshot import DeploymentSnapshot

_PHASES = tuple(BreakerPhase)
_REASONS = {reason.value: reason for reason in CooldownReason}

#: Integer fields: hash field -> attribute.
INTS = {
    "m": "minute",
    "ru": "rpm_used",
    "tu": "tpm_used",
    "s": "successes",
    "f": "failures",
    "ps": "prev_successes",
    "pf": "prev_failures",
    "cf": "consecutive_failures",
    "st": "streak",
    "ej": "ejections",
    "pr": "probes",
    "pk": "probe_successes",
    "sv": "served",
    "hq": "hold_seq",
}
#: Optional numbers (absent: None).
OPTIONAL = {
    "lat": "latency",
    "tt": "ttft",
    "rr": "remaining_requests",
    "lr": "limit_requests",
    "rt": "remaining_tokens",
    "lt": "limit_tokens",
}
#: Times on the shared clock: those of the monotonic kind, and of the wall kind.
MONOTONIC = {"cu": "cooldown_until", "ra": "returned_at", "ls": "last_success"}
WALL = {"he": "hint_expires"}

Poison = tuple[
    dict[int, bool] | None, list[int] | None, dict[int, tuple[tuple[str, int], ...]] | None
]
_encode = msgspec.msgpack.Encoder().encode
_decode_poison = msgspec.msgpack.Decoder(Poison).decode


@dataclass(slots=True)
class Clocks:
    """Offsets from this process's clocks to Redis' (seconds to add to reach Redis time)."""

    monotonic: float = 0.0
    wall: float = 0.0

    def minute_shift(self, wall: float) -> int:
        """The local current minute less the shared one, at local `wall`."""
        return int(wall // 60) - int((wall + self.wall) // 60)

    @classmethod
    async def measure(cls, client: Any, clock: Clock) -> Clocks:
        """The offsets from `clock` to the TIME of the Redis `client` speaks to (half the
        round trip taken for the way there)."""
        now, wall, real = clock.now(), clock.wall(), time.time()
        seconds, micros = await client.time()
        took = (time.time() - real) / 2
        redis_now = seconds + micros / 1e6
        return cls(redis_now - now - took, redis_now - wall - took)


def decode(raw: Any) -> dict[str, bytes]:
    """HGETALL's answer (a dict from redis-py, a flat list from a script) as a dict."""
    if isinstance(raw, dict):
        return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    it = iter(raw)
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in zip(it, it, strict=True)}


def _num(value: bytes | str) -> float:
    return float(value)


def to_state(deployment_id: str, fields: Mapping[str, bytes], probe_alive: bool) -> DeploymentState:
    """The record, on the shared clock. `probe_alive`: whether its probe tokens are unexpired
    (a crashed instance's probe must not hold the slot for ever)."""
    state = DeploymentState(deployment_id)
    get = fields.get
    for key, name in INTS.items():
        value = get(key)
        if value is not None:
            setattr(state, name, int(_num(value)))
    for key, name in OPTIONAL.items():
        value = get(key)
        if value is not None:
            number = _num(value)
            setattr(state, name, number if key in ("lat", "tt") else int(number))
    for key, name in (MONOTONIC | WALL).items():
        value = get(key)
        if value is not None:
            setattr(state, name, _num(value))
    phase = get("ph")
    if phase is not None:
        state.phase = _PHASES[int(_num(phase))]
    reason = get("cr")
    if reason is not None:
        state.cooldown_reason = _REASONS[reason.decode() if isinstance(reason, bytes) else reason]
    if not probe_alive:
        state.probes = 0
    extra = get("x")
    if extra is not None:
        held, streak, dropped = _decode_poison(extra)
        state.held, state.held_streak, state.dropped = held, streak, dropped
    return state


def to_fields(state: DeploymentState) -> dict[str, bytes | str | int | float]:
    """The record as hash fields (None values left out)."""
    fields: dict[str, bytes | str | int | float] = {}
    for key, name in INTS.items():
        value = getattr(state, name)
        if value:
            fields[key] = value
    for key, name in (OPTIONAL | MONOTONIC | WALL).items():
        value = getattr(state, name)
        if value is not None and value != 0:
            fields[key] = repr(value) if isinstance(value, float) else value
    if state.phase is not BreakerPhase.CLOSED:
        fields["ph"] = int(state.phase)
    if state.cooldown_reason is not None:
        fields["cr"] = state.cooldown_reason.value
    if state.held or state.held_streak or state.dropped:
        fields["x"] = _encode((state.held, state.held_streak, state.dropped))
    return fields


#: The fields a snapshot reads, in the order the clean path's scripts return them (HMGET).
SNAPSHOT_FIELDS = (
    *("lat", "tt", "m", "ru", "tu", "s", "f", "ps", "pf", "cf", "ph", "cu"),
    *("cr", "ej", "ra", "pr", "pe", "rr", "lr", "rt", "lt", "he", "ls", "sv"),
)


def snapshot(
    deployment_id: str,
    fields: Mapping[str, Any],
    in_flight: int,
    clocks: Clocks,
    shift: int,
    redis_now: float,
) -> DeploymentSnapshot:
    """The record (a hash read whole) as the router sees it; see `snapshot_of`."""
    get = fields.get
    values = [get(key) for key in SNAPSHOT_FIELDS]
    return snapshot_of(deployment_id, values, in_flight, clocks, shift, redis_now)


def _whole(value: Any) -> int:
    return 0 if value is None else int(float(value))


def _optional(value: Any) -> int | None:
    return None if value is None else int(float(value))


def snapshot_of(
    deployment_id: str,
    values: Sequence[Any],
    in_flight: int,
    clocks: Clocks,
    shift: int,
    redis_now: float,
) -> DeploymentSnapshot:
    """The record as the router sees it, from its `SNAPSHOT_FIELDS` values in order (None for
    an absent field): on the router's own clocks (`shift`: `Clocks.minute_shift`). Runs twice
    per request, so it reads by position rather than by name."""
    (
        lat,
        tt,
        m,
        ru,
        tu,
        s,
        f,
        ps,
        pf,
        cf,
        ph,
        cu,
        cr,
        ej,
        ra,
        pr,
        pe,
        rr,
        lr,
        rt,
        lt,
        he,
        ls,
        sv,
    ) = values
    probes = _whole(pr)
    if probes and (pe is None or float(pe) < redis_now):
        probes = 0
    minute = _whole(m)
    monotonic = clocks.monotonic
    return DeploymentSnapshot(
        deployment_id,
        in_flight,
        None if lat is None else float(lat),
        None if tt is None else float(tt),
        minute + shift if minute else 0,
        _whole(ru),
        _whole(tu),
        _whole(s),
        _whole(f),
        _whole(ps),
        _whole(pf),
        _whole(cf),
        _PHASES[_whole(ph)],
        0.0 if cu is None else float(cu) - monotonic,
        None if cr is None else _REASONS[cr.decode() if isinstance(cr, bytes) else cr],
        _whole(ej),
        0.0 if ra is None else float(ra) - monotonic,
        probes,
        _optional(rr),
        _optional(lr),
        _optional(rt),
        _optional(lt),
        0.0 if he is None else float(he) - clocks.wall,
        0.0 if ls is None else float(ls) - monotonic,
        _whole(sv),
    )


def merge_outage(
    shared: DeploymentState,
    mine: DeploymentState,
    before: DeploymentSnapshot,
    now: float,
    wall: float,
    clocks: Clocks,
) -> None:
    """Add to the `shared` record (Redis time) what this process learnt while Redis was down:
    an ejection of its own that lasts longer, and the usage it counted in the current minute
    since `before` (the record as last read). `now`, `wall`: this process's clocks."""
    if mine.cooling(now):
        local_until = mine.cooldown_until + clocks.monotonic
        if local_until > shared.cooldown_until:
            shared.phase = mine.phase
            shared.cooldown_until = local_until
            shared.cooldown_reason = mine.cooldown_reason
            shared.ejections = max(shared.ejections, mine.ejections)
    if int(wall // 60) == mine.minute == before.minute:
        shared.roll(wall + clocks.wall)
        shared.rpm_used += max(0, mine.rpm_used - before.rpm_used)
        shared.tpm_used += max(0, mine.tpm_used - before.tpm_used)
        shared.successes += max(0, mine.successes - before.successes)
        shared.failures += max(0, mine.failures - before.failures)


def finish_args(
    deployment_id: str,
    member: str,
    kind: int,
    outcome: Outcome,
    policy: HealthPolicy,
    now: float,
    wall: float,
    record_ttl: int,
) -> list[Any]:
    """The finish script's arguments (`turnout.state.redis_scripts.FINISH`) for a clean end of
    `kind` (1 a success, 2 an end that says nothing); `now`, `wall` on Redis' clock."""
    hints = outcome.rate_limits
    args: list[Any] = [
        member,
        repr(now),
        repr(wall),
        kind,
        repr(outcome.duration),
        "" if outcome.ttft is None else repr(outcome.ttft),
        outcome.tokens,
        repr(policy.ewma_alpha),
        record_ttl,
    ]
    if hints is None:
        return [*args, "", "", "", "", ""]
    scratch = DeploymentState(deployment_id)
    record_rate_limits(scratch, hints, wall)
    return [
        *args,
        arg(scratch.remaining_requests),
        arg(scratch.limit_requests),
        arg(scratch.remaining_tokens),
        arg(scratch.limit_tokens),
        repr(scratch.hint_expires),
    ]


def local_events(events: list[HealthEvent], clocks: Clocks) -> list[HealthEvent]:
    """Events from rules run on Redis time, with their times on the router's clock."""
    for index, event in enumerate(events):
        if isinstance(event, CooldownEntered):
            events[index] = replace(event, until=event.until - clocks.monotonic)
    return events


def arg(value: int | None) -> str:
    """An optional number as a script argument ('' for None)."""
    return "" if value is None else str(value)


def text(value: bytes | str | int | float) -> bytes:
    """A field value as Redis returns it."""
    return value if isinstance(value, bytes) else str(value).encode()


def probe_alive(raw: Any, alive: float) -> bool:
    """Whether the record's probe tokens have not expired by `alive` (Redis time)."""
    fields = decode(raw)
    expiry = fields.get("pe")
    return expiry is None or float(expiry) >= alive


def state_of(view: DeploymentSnapshot) -> DeploymentState:
    """A local record from a snapshot (seeding local state when Redis goes down)."""
    state = DeploymentState(view.deployment_id)
    for name in view.__struct_fields__:
        if name != "deployment_id":
            setattr(state, name, getattr(view, name))
    return state
