"""`/health` across the workers of one gateway: each worker publishes its view, any one merges.

With `turnout serve --workers N` and the in-process state store, every worker has its own
cooldowns, breakers, in-flight counts and averages, and `/health` is answered by whichever
worker the kernel hands the connection to. So each worker publishes a compact snapshot of its
deployments' state to the gateway's private health directory (``<pid>.json``, written to a
temporary file and renamed, so a reader never sees half a file): when the state changes (an
ejection, its end, a phase move: at once), and otherwise at most every `interval` seconds when
something differs, with a heartbeat every `heartbeat` seconds. `/health` merges the answering
worker's own live state with the snapshots of the other live workers; the merge rules are
`merge` below. A worker's file is ignored once its process is gone (the parent also removes it
when the worker exits) or when it is older than `stale` seconds (a hung worker).

With a shared state store every worker reads the same state, which is already the gateway's one
view; nothing is published or merged then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from turnout.gateway.worker_files import WorkerFile, cancel_quietly
from turnout.health.record import BreakerPhase
from turnout.observe.events import BreakerTransition, CooldownEntered, CooldownLeft, Event
from turnout.processes import alive
from turnout.router.router import DeploymentHealth

logger = logging.getLogger("turnout.gateway")

#: The phase as `/health` names it under "ejection" (the "breaker" key keeps the older names).
EJECTION_PHASES: Final = {
    BreakerPhase.CLOSED: "in_rotation",
    BreakerPhase.OPEN: "ejected",
    BreakerPhase.HALF_OPEN: "probing",
}
#: How far out of rotation each phase is: the merged phase is the worst any worker holds.
_RANK: Final = {BreakerPhase.CLOSED: 0, BreakerPhase.HALF_OPEN: 1, BreakerPhase.OPEN: 2}
_HEALTH_EVENTS: Final = (CooldownEntered, CooldownLeft, BreakerTransition)


class Row(msgspec.Struct, frozen=True):
    """One deployment as one worker sees it: what `/health` merges."""

    id: str
    in_flight: int
    #: Wall-clock time (Unix seconds) the ejection ends; 0 when not ejected.
    until: float
    phase: BreakerPhase
    reason: str | None
    ejections: int
    probes: int
    latency: float | None
    ttft: float | None
    reliability: float


class Snapshot(msgspec.Struct, frozen=True):
    """One worker's deployments at wall-clock time `at`."""

    worker: int
    at: float
    deployments: list[Row]


_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(Snapshot).decode


def row_of(entry: DeploymentHealth, wall: float) -> Row:
    """The compact, publishable form of one deployment's health (rounded so that a state that
    did not change encodes to the same bytes)."""
    return Row(
        id=entry.deployment_id,
        in_flight=entry.in_flight,
        until=round(wall + entry.cooldown_left, 2) if entry.cooling_down else 0.0,
        phase=entry.breaker,
        reason=entry.cooldown_reason.value if entry.cooldown_reason else None,
        ejections=entry.ejections,
        probes=entry.probes,
        latency=None if entry.latency is None else round(entry.latency, 4),
        ttft=None if entry.ttft is None else round(entry.ttft, 4),
        reliability=round(entry.reliability, 4),
    )


class WorkerHealth:
    """This worker's publisher of its health snapshot, and the reader of the others'.

    An `Observer` too: subscribed to the gateway's bus, an ejection or a phase move wakes the
    publisher at once instead of at its next tick.
    """

    def __init__(
        self,
        directory: str,
        health: Callable[[], Awaitable[list[DeploymentHealth]]],
        *,
        worker: int | None = None,
        wall: Callable[[], float] | None = None,
        interval: float = 0.25,
        heartbeat: float = 2.0,
        stale: float = 30.0,
        alive: Callable[[int], bool] = alive,
    ) -> None:
        self.directory = Path(directory)
        self.worker = os.getpid() if worker is None else worker
        self._health = health
        self._wall = wall or time.time
        self.interval = interval
        self.heartbeat = heartbeat
        self.stale = stale
        self._file = WorkerFile(self.directory, self.worker, ".json", alive)
        self._last: bytes = b""
        self._written = float("-inf")
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failed = False

    # -- publishing --------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if isinstance(event, _HEALTH_EVENTS):
            self._changed.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop publishing and remove this worker's file: its state leaves with it."""
        await cancel_quietly(self._task)
        self._task = None
        self._file.remove()

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            try:
                await self.publish()
            except Exception as error:  # never let one failed read end publishing for good
                if not self._failed:
                    logger.warning("publishing this worker's health failed: %r", error)
                    self._failed = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._changed.wait()

    async def publish(self) -> None:
        """Write this worker's snapshot if it changed (or the heartbeat is due)."""
        wall = self._wall()
        rows = [row_of(entry, wall) for entry in await self._health()]
        body = _ENCODE(rows)
        if body == self._last and wall - self._written < self.heartbeat:
            return
        try:
            self._file.write(_ENCODE(Snapshot(self.worker, wall, rows)))
        except OSError as error:
            if not self._failed:  # once: the directory is gone, or the disk full
                logger.warning("could not publish this worker's health snapshot: %s", error)
                self._failed = True
            return
        self._last, self._written = body, wall

    # -- reading -----------------------------------------------------------------------------

    def peers(self) -> list[Snapshot]:
        """The latest snapshots of the other live workers."""
        now = self._wall()
        found = []
        for data in self._file.others():
            try:
                snapshot = _DECODE(data)
            except msgspec.DecodeError:
                continue  # from an older format: skip it
            if now - snapshot.at <= self.stale:
                found.append(snapshot)
        return sorted(found, key=lambda snapshot: snapshot.worker)

    def merged(self, own: Sequence[DeploymentHealth]) -> tuple[list[dict[str, Any]], list[Any]]:
        """Per deployment (in `own`'s order), the merged fields and per-worker detail; and the
        workers merged, answering one first."""
        wall = self._wall()
        peers = self.peers()
        views = [(self.worker, wall, {r.id: r for r in (row_of(e, wall) for e in own)})]
        views += [(s.worker, s.at, {r.id: r for r in s.deployments}) for s in peers]
        merged = []
        for entry in own:
            key = entry.deployment_id
            merged.append(merge([(w, rows[key]) for w, _, rows in views if key in rows], wall))
        workers = [
            {"pid": worker, "answering": worker == self.worker, "age_seconds": round(wall - at, 3)}
            for worker, at, _ in views
        ]
        return merged, workers


def merge(rows: Sequence[tuple[int, Row]], wall: float) -> dict[str, Any]:
    """One deployment's `/health` fields from every worker's view of it.

    - ``in_flight`` and ``probes_in_flight``: the sum over workers.
    - ``cooling_down``: true if any worker has it ejected now; ``cooldown_seconds_left`` the
      longest ejection left, and ``cooldown_reason`` that ejection's reason (or, with none,
      the reason of a worker probing it).
    - ``breaker`` and ``ejection``: the phase furthest out of rotation that any worker holds
      (ejected, then probing, then in rotation). A published ejection whose expiry has passed
      counts as probing: that worker probes on its next request.
    - ``ejections``: the highest count of any worker.
    - ``latency_ms``, ``ttft_ms``, ``reliability``: the mean of the workers' own moving
      averages (workers with no sample left out); approximate, as each average is unweighted.
    - ``workers``: each worker's own in-flight count, phase, ejection left and count.
    """
    detail = []
    phase = BreakerPhase.CLOSED
    left = 0.0
    reason: str | None = None
    probing_reason: str | None = None
    for worker, row in rows:
        row_phase = row.phase
        row_left = max(0.0, row.until - wall) if row.until else 0.0
        if row_phase is BreakerPhase.OPEN and row_left <= 0:
            row_phase = BreakerPhase.HALF_OPEN
        if _RANK[row_phase] > _RANK[phase]:
            phase = row_phase
        if row_left > left:
            left, reason = row_left, row.reason
        if row_phase is BreakerPhase.HALF_OPEN and probing_reason is None:
            probing_reason = row.reason
        detail.append(
            {
                "pid": worker,
                "in_flight": row.in_flight,
                "ejection": EJECTION_PHASES[row_phase],
                "cooldown_seconds_left": round(row_left, 3),
                "ejections": row.ejections,
                "probes_in_flight": row.probes,
            }
        )
    return {
        "in_flight": sum(row.in_flight for _, row in rows),
        "cooling_down": left > 0,
        "cooldown_reason": reason if left > 0 else probing_reason,
        "cooldown_seconds_left": round(left, 3),
        "breaker": phase.name.lower(),
        "ejection": EJECTION_PHASES[phase],
        "ejections": max((row.ejections for _, row in rows), default=0),
        "probes_in_flight": sum(row.probes for _, row in rows),
        "latency_ms": _mean_ms([row.latency for _, row in rows]),
        "ttft_ms": _mean_ms([row.ttft for _, row in rows]),
        "reliability": round(sum(row.reliability for _, row in rows) / max(1, len(rows)), 4),
        "workers": detail,
    }


def _mean_ms(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(sum(present) / len(present) * 1000, 2) if present else None
