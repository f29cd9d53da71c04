"""`/health` across workers: each worker's published snapshot, and the rules that merge them."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import msgspec

from turnout.gateway.worker_health import Row, WorkerHealth, merge
from turnout.health.record import BreakerPhase, CooldownReason
from turnout.observe.events import CooldownEntered
from turnout.router.router import DeploymentHealth

NOW = 1_700_000_000.0


def entry(deployment: str = "d1", **fields: object) -> DeploymentHealth:
    values: dict[str, object] = {
        "deployment_id": deployment,
        "model_group": "chat",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "in_flight": 0,
        "cooling_down": False,
        "cooldown_reason": None,
        "cooldown_left": 0.0,
        "breaker": BreakerPhase.CLOSED,
        "latency": None,
        "ttft": None,
        "reliability": 1.0,
    }
    values.update(fields)
    return DeploymentHealth(**values)  # type: ignore[arg-type]


def ejected(deployment: str = "d1", left: float = 20.0, **fields: object) -> DeploymentHealth:
    return entry(
        deployment,
        cooling_down=True,
        cooldown_reason=CooldownReason.FAILURES,
        cooldown_left=left,
        breaker=BreakerPhase.OPEN,
        ejections=1,
        **fields,
    )


class World:
    """Workers sharing one directory, a wall clock and a set of live process ids."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.wall = NOW
        self.alive: set[int] = set()
        self.state: dict[int, list[DeploymentHealth]] = {}

    def worker(self, pid: int, *entries: DeploymentHealth) -> WorkerHealth:
        self.alive.add(pid)
        self.state[pid] = list(entries)

        async def health() -> list[DeploymentHealth]:
            return self.state[pid]

        return WorkerHealth(
            str(self.directory),
            health,
            worker=pid,
            wall=lambda: self.wall,
            alive=self.alive.__contains__,
        )


async def test_the_answering_worker_merges_the_others_snapshots(tmp_path: Path) -> None:
    world = World(tmp_path)
    a = world.worker(11, entry("d1", in_flight=2, latency=0.2), entry("d2"))
    b = world.worker(12, ejected("d1", in_flight=1, latency=0.4), entry("d2", in_flight=3))
    await b.publish()
    merged, workers = a.merged(world.state[11])
    d1, d2 = merged
    assert d1["in_flight"] == 3 and d2["in_flight"] == 3
    assert d1["cooling_down"] is True
    assert d1["ejection"] == "ejected" and d1["breaker"] == "open"
    assert d1["cooldown_reason"] == "failures"
    assert d1["cooldown_seconds_left"] == 20.0
    assert d1["ejections"] == 1
    assert d1["latency_ms"] == 300.0  # the mean of the workers' averages
    assert [w["ejection"] for w in d1["workers"]] == ["in_rotation", "ejected"]
    assert d2["ejection"] == "in_rotation" and d2["cooling_down"] is False
    assert [(w["pid"], w["answering"]) for w in workers] == [(11, True), (12, False)]
    # Whichever worker answers, the merged state is the same.
    await a.publish()
    merged_by_b, _ = b.merged(world.state[12])
    for mine, theirs in zip(merged, merged_by_b, strict=True):
        assert {k: v for k, v in mine.items() if k != "workers"} == {
            k: v for k, v in theirs.items() if k != "workers"
        }


async def test_an_ejection_that_ran_out_counts_as_probing(tmp_path: Path) -> None:
    world = World(tmp_path)
    a = world.worker(21, entry("d1"))
    b = world.worker(22, ejected("d1", left=5.0))
    await b.publish()
    world.wall += 6.0  # b has not published since: its ejection has ended meanwhile
    (d1,), _ = a.merged(world.state[21])
    assert d1["cooling_down"] is False
    assert d1["ejection"] == "probing"
    assert d1["cooldown_reason"] == "failures"
    assert d1["cooldown_seconds_left"] == 0.0


async def test_dead_and_stale_workers_are_left_out(tmp_path: Path) -> None:
    world = World(tmp_path)
    a = world.worker(31, entry("d1"))
    dead = world.worker(32, ejected("d1"))
    hung = world.worker(33, entry("d1", in_flight=5))
    await dead.publish()
    await hung.publish()
    world.alive.discard(32)
    world.wall += hung.stale + 1  # 33 has published nothing for longer than `stale`
    (d1,), workers = a.merged(world.state[31])
    assert d1["ejection"] == "in_rotation" and d1["in_flight"] == 0
    assert [w["pid"] for w in workers] == [31]
    (tmp_path / "34.json").write_bytes(b"{not json")  # a torn or foreign file: ignored
    world.alive.add(34)
    assert a.peers() == []


async def test_a_snapshot_is_written_on_change_heartbeat_or_health_event(tmp_path: Path) -> None:
    world = World(tmp_path)
    a = world.worker(41, entry("d1"))
    path = tmp_path / "41.json"
    await a.publish()
    first = path.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["41.json"]  # written whole, then renamed
    world.wall += 0.5
    await a.publish()
    assert path.read_bytes() == first  # nothing changed: nothing written
    world.state[41] = [entry("d1", in_flight=1)]
    await a.publish()
    assert json.loads(path.read_bytes())["deployments"][0]["in_flight"] == 1
    world.wall += a.heartbeat
    await a.publish()
    assert json.loads(path.read_bytes())["at"] == world.wall  # the heartbeat
    # Running: an ejection wakes the publisher at once, well before its next tick.
    a.interval = 30.0
    a.start()
    try:
        await asyncio.sleep(0.05)
        world.state[41] = [ejected("d1")]
        a.on_event(CooldownEntered("d1", CooldownReason.FAILURES, until=1.0, seconds=1.0))
        async with asyncio.timeout(2):
            while True:
                if json.loads(path.read_bytes())["deployments"][0]["until"] > 0:
                    break
                await asyncio.sleep(0.01)
    finally:
        await a.stop()
    assert not path.exists()  # a stopped worker takes its snapshot with it


def test_merge_rules_in_rotation_everywhere() -> None:
    row = Row("d1", 1, 0.0, BreakerPhase.CLOSED, None, 0, 0, 0.1, None, 0.9)
    fields = merge([(1, row), (2, msgspec.structs.replace(row, reliability=0.7))], NOW)
    assert fields["in_flight"] == 2
    assert fields["ejection"] == "in_rotation" and fields["cooldown_reason"] is None
    assert fields["reliability"] == 0.8
    assert fields["ttft_ms"] is None and fields["latency_ms"] == 100.0


async def test_a_failed_read_does_not_stop_publishing(tmp_path: Path) -> None:
    calls = 0

    async def health() -> list[DeploymentHealth]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the state store did not answer")
        return [entry("d1")]

    worker = WorkerHealth(str(tmp_path), health, worker=51, interval=0.01)
    worker.start()
    try:
        async with asyncio.timeout(2):
            while True:
                if os.listdir(tmp_path) == ["51.json"]:
                    break
                await asyncio.sleep(0.01)
    finally:
        await worker.stop()
    assert calls >= 2
