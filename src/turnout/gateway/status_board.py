"""The status page's one snapshot: every deployment's health and recent traffic, as JSON-ready
data that `/status`, `/status/snapshot` and `/status/events` all serve.

Health comes from the router, as `/health` has it: with several workers each holding its own
state, merged over the workers (`turnout.gateway.worker_health`); with a shared state store,
already the one view of every instance. Traffic comes from the bus observer
(`turnout.observe.traffic`), merged over this gateway's workers (`turnout.gateway.status_peers`);
it is always this instance's own, which the snapshot's ``scope`` says.

A deployment's ``state`` is one word an operator can act on:

- ``cooling_down``: ejected for a passing cause (a rate limit, a refused key, a missing model, a
  timeout, an operator's cooldown), with its reason and seconds left;
- ``breaker_open``: ejected because it kept failing (consecutive failures, failure rate);
- ``probing``: its ejection ended, and requests try it one at a time;
- ``degraded``: in rotation, but at least `DEGRADED_ERROR_RATE` of its attempts in the last
  minute failed (two at least);
- ``healthy``: in rotation, and failing less than that.

Snapshots are cached for `fresh` seconds, so that many watchers cost one build.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from turnout.gateway.gateway import Gateway
from turnout.gateway.status_peers import StatusPeers
from turnout.gateway.worker_health import EJECTION_PHASES, WorkerHealth
from turnout.health.record import CooldownReason
from turnout.observe.traffic import DeploymentTraffic, Failover, TrafficExport
from turnout.observe.traffic_view import (
    WINDOWS,
    deployment_window,
    gateway_window,
    merge,
    series,
)
from turnout.router.router import DeploymentHealth

#: Share of failed attempts over the last minute from which a deployment in rotation is degraded.
DEGRADED_ERROR_RATE: Final = 0.1
#: Ejection reasons that are a circuit breaker's verdict; the others are a passing cooldown.
_BREAKER_REASONS: Final = frozenset(
    {
        CooldownReason.FAILURES.value,
        CooldownReason.FAILURE_RATE.value,
        CooldownReason.CONSECUTIVE_FAILURES.value,
    }
)


def state_of(health: dict[str, Any], minute: dict[str, Any]) -> str:
    """The one-word state of a deployment (see the module docstring)."""
    if health["ejection"] == "ejected":
        return "breaker_open" if health["cooldown_reason"] in _BREAKER_REASONS else "cooling_down"
    if health["ejection"] == "probing":
        return "probing"
    rate = minute["error_rate"]
    if rate is not None and minute["errors"] >= 2 and rate >= DEGRADED_ERROR_RATE:
        return "degraded"
    return "healthy"


def _health_fields(entry: DeploymentHealth) -> dict[str, Any]:
    return {
        "in_flight": entry.in_flight,
        "ejection": EJECTION_PHASES[entry.breaker],
        "cooldown_reason": entry.cooldown_reason.value if entry.cooldown_reason else None,
        "cooldown_seconds_left": round(entry.cooldown_left, 1),
    }


class StatusBoard:
    """Builds (and briefly caches) the snapshot of one gateway worker's view of the gateway."""

    def __init__(
        self,
        gateway: Gateway,
        workers: WorkerHealth | None = None,
        peers: StatusPeers | None = None,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        fresh: float = 0.5,
    ) -> None:
        self.gateway = gateway
        self.workers = workers
        self.peers = peers
        self._wall = wall
        self._monotonic = monotonic
        self.fresh = fresh
        self._cached: dict[str, Any] | None = None
        self._built = float("-inf")

    async def snapshot(self) -> dict[str, Any]:
        now = self._monotonic()
        if self._cached is None or now - self._built >= self.fresh:
            self._cached = await self._build()
            self._built = now
        return self._cached

    def traffic(self) -> tuple[TrafficExport, int]:
        """This gateway's traffic, merged over its live workers; and how many were merged."""
        exports = [self.gateway.traffic.export()]
        if self.peers is not None:
            exports += self.peers.peers()
        return merge(exports), len(exports)

    async def _build(self) -> dict[str, Any]:
        gateway = self.gateway
        entries = await gateway.router.health()
        fields = [_health_fields(entry) for entry in entries]
        if self.workers is not None:
            merged, _ = self.workers.merged(entries)
            for mine, theirs in zip(fields, merged, strict=True):
                mine["in_flight"] = theirs["in_flight"]
                mine["ejection"] = theirs["ejection"]
                mine["cooldown_reason"] = theirs["cooldown_reason"]
                mine["cooldown_seconds_left"] = round(theirs["cooldown_seconds_left"], 1)
        traffic, workers = self.traffic()
        names = {d.id: d.name for d in gateway.router.deployments()}
        by_id = {t.id: t for t in traffic.deployments}
        rows = [
            self._row(entry, health, by_id.get(entry.deployment_id), traffic, names)
            for entry, health in zip(entries, fields, strict=True)
        ]
        _add_shares(rows)
        state = gateway.router.state_status()
        shared = state.get("backend", "memory") != "memory"
        return {
            "at": round(traffic.at, 3),
            "status": "draining" if gateway.draining else "ok",
            "scope": {
                "workers": workers,
                "health": "every instance (shared state)" if shared else "this instance",
                "traffic": "this instance",
            },
            "windows": list(WINDOWS),
            "gateway": {name: gateway_window(traffic, s) for name, s in WINDOWS.items()},
            "deployments": rows,
            "groups": _groups(rows),
            "totals": _totals(rows),
            "failovers": [_failover(f) for f in reversed(traffic.failovers)],
            "series": series(traffic, names),
        }

    def _row(
        self,
        entry: DeploymentHealth,
        health: dict[str, Any],
        traffic: DeploymentTraffic | None,
        export: TrafficExport,
        names: dict[str, str],
    ) -> dict[str, Any]:
        wall = export.at
        if traffic is None:
            traffic = DeploymentTraffic(entry.deployment_id, entry.model_group)
        windows = {name: deployment_window(traffic, export, s) for name, s in WINDOWS.items()}
        last_error = traffic.last_error
        totals = traffic.totals
        return {
            "id": entry.deployment_id,
            "name": names.get(entry.deployment_id, entry.deployment_id),
            "group": entry.model_group,
            "provider": entry.provider,
            "model": entry.model,
            "state": state_of(health, windows["1m"]),
            **health,
            "windows": windows,
            "last_error": None
            if last_error is None
            else {
                "kind": last_error.kind,
                "status": last_error.status,
                "at": round(last_error.at, 3),
                "seconds_ago": round(max(0.0, wall - last_error.at), 1),
            },
            "last_success_seconds_ago": None
            if traffic.last_success is None
            else round(max(0.0, wall - traffic.last_success), 1),
            "totals": {
                "attempts": totals.attempts,
                "errors": totals.errors,
                "cost": round(totals.cost, 6),
                "prompt_tokens": totals.prompt_tokens,
                "completion_tokens": totals.completion_tokens,
                "tokens": totals.prompt_tokens + totals.completion_tokens,
            },
        }


def _add_shares(rows: Sequence[dict[str, Any]]) -> None:
    """Each deployment's share of its group's served requests, per window."""
    for window in WINDOWS:
        served: dict[str, int] = {}
        for row in rows:
            served[row["group"]] = served.get(row["group"], 0) + row["windows"][window]["served"]
        for row in rows:
            total = served[row["group"]]
            mine = row["windows"][window]["served"]
            row["windows"][window]["share"] = round(mine / total, 4) if total else None


def _groups(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault(row["group"], {"name": row["group"], "deployments": []})
        group["deployments"].append(
            {
                "name": row["name"],
                "state": row["state"],
                "share": {window: row["windows"][window]["share"] for window in WINDOWS},
            }
        )
    return list(groups.values())


def _totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    keys = ("attempts", "errors", "cost", "prompt_tokens", "completion_tokens", "tokens")
    totals: dict[str, Any] = {key: sum(row["totals"][key] for row in rows) for key in keys}
    totals["cost"] = round(totals["cost"], 6)
    return totals


def _failover(failover: Failover) -> dict[str, Any]:
    return {
        "at": round(failover.at, 3),
        "request_id": failover.request_id,
        "model": failover.model,
        "served_by": failover.served_by,
        "fallback": failover.fallback,
        "hedged": failover.hedged,
        "stream_failover": failover.stream_failover,
        "latency_ms": round(failover.latency * 1000, 1),
        "attempts": [
            {
                "deployment": step.deployment,
                "reason": step.reason,
                "error": step.error,
                "status": step.status,
                "duration_ms": round(step.duration * 1000, 1),
            }
            for step in failover.steps
        ],
    }
