"""Windows over recent traffic: what the status page shows, from one process or several merged.

`merge` adds the exports of several worker processes (`turnout.observe.traffic.TrafficExport`)
bucket by bucket: counts add, histogram bins add, so a merged percentile is the percentile of all
workers' samples (to a bin's width), not a mean of percentiles. `summarize` reads, per
deployment, the 1- and 5-minute windows (rate, error rate, p50/p95 latency and time to first
token, share of its group's served requests), the gateway's fallback, hedge and stream-failover
rates, and the series the page charts (requests and failures per bucket, p95 latency).

A window's rate divides by the time it really covers: the current bucket counts only the
seconds already past, and a process younger than the window counts only its age.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from turnout.observe.traffic import (
    BUCKET_SECONDS,
    BUCKETS,
    Bucket,
    DeploymentTraffic,
    Failover,
    GatewayBucket,
    LastError,
    Totals,
    TrafficExport,
    bin_value,
)

#: The windows shown, by name: their length in seconds.
WINDOWS: Mapping[str, int] = {"1m": 60, "5m": 300}


def merge(exports: Sequence[TrafficExport]) -> TrafficExport:
    """One export holding the traffic of all of `exports` (their buckets summed by slot)."""
    if len(exports) == 1:
        return exports[0]
    at = max((e.at for e in exports), default=0.0)
    started = min((e.started for e in exports), default=at)
    deployments: dict[str, DeploymentTraffic] = {}
    slots: dict[str, dict[int, Bucket]] = {}
    gateway: dict[int, GatewayBucket] = {}
    failovers: list[Failover] = []
    for export in exports:
        for traffic in export.deployments:
            into = deployments.get(traffic.id)
            if into is None:
                into = deployments[traffic.id] = DeploymentTraffic(traffic.id, traffic.group)
                slots[traffic.id] = {}
            _add_totals(into.totals, traffic.totals)
            into.last_error = _later_error(into.last_error, traffic.last_error)
            if traffic.last_success is not None:
                into.last_success = max(into.last_success or 0.0, traffic.last_success)
            by_slot = slots[traffic.id]
            for bucket in traffic.buckets:
                mine = by_slot.get(bucket.slot)
                if mine is None:
                    by_slot[bucket.slot] = Bucket(bucket.slot)
                    mine = by_slot[bucket.slot]
                mine.attempts += bucket.attempts
                mine.errors += bucket.errors
                mine.served += bucket.served
                _add_bins(mine.latency, bucket.latency)
                _add_bins(mine.ttft, bucket.ttft)
        for part in export.gateway:
            g = gateway.get(part.slot)
            if g is None:
                g = gateway[part.slot] = GatewayBucket(part.slot)
            g.requests += part.requests
            g.fallbacks += part.fallbacks
            g.hedges += part.hedges
            g.failovers += part.failovers
            g.answers += part.answers
            g.failed += part.failed
            _add_bins(g.latency, part.latency)
        failovers.extend(export.failovers)
    for deployment_id, traffic in deployments.items():
        traffic.buckets = sorted(slots[deployment_id].values(), key=lambda b: b.slot)
    failovers.sort(key=lambda f: f.at)
    return TrafficExport(
        at,
        started,
        list(deployments.values()),
        sorted(gateway.values(), key=lambda b: b.slot),
        failovers[-20:],
    )


def _add_totals(into: Totals, more: Totals) -> None:
    into.attempts += more.attempts
    into.errors += more.errors
    into.cost += more.cost
    into.prompt_tokens += more.prompt_tokens
    into.completion_tokens += more.completion_tokens


def _later_error(a: LastError | None, b: LastError | None) -> LastError | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b.at > a.at else a


def _add_bins(into: dict[int, int], more: Mapping[int, int]) -> None:
    for index, count in more.items():
        into[index] = into.get(index, 0) + count


def percentile(bins: Mapping[int, int], q: float) -> float | None:
    """The `q` quantile (0..1) of a histogram's samples, in seconds; None without samples."""
    total = sum(bins.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            return bin_value(index)
    return bin_value(max(bins))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _span(export: TrafficExport, seconds: int) -> float:
    """The seconds a window of `seconds` really covers now (at least one)."""
    current = int(export.at // BUCKET_SECONDS)
    first = (current - seconds // BUCKET_SECONDS + 1) * BUCKET_SECONDS
    begin = max(first, export.started)
    return max(1.0, export.at - begin)


def _recent(buckets: Iterable[Any], export: TrafficExport, seconds: int) -> list[Any]:
    oldest = int(export.at // BUCKET_SECONDS) - seconds // BUCKET_SECONDS + 1
    return [b for b in buckets if b.slot >= oldest]


def deployment_window(
    traffic: DeploymentTraffic, export: TrafficExport, seconds: int
) -> dict[str, Any]:
    """One deployment's figures over the last `seconds`."""
    buckets = _recent(traffic.buckets, export, seconds)
    attempts = sum(b.attempts for b in buckets)
    errors = sum(b.errors for b in buckets)
    latency: dict[int, int] = {}
    ttft: dict[int, int] = {}
    for b in buckets:
        _add_bins(latency, b.latency)
        _add_bins(ttft, b.ttft)
    return {
        "attempts": attempts,
        "served": sum(b.served for b in buckets),
        "errors": errors,
        "rate": round(attempts / _span(export, seconds), 3),
        "error_rate": round(errors / attempts, 4) if attempts else None,
        "latency_p50_ms": _ms(percentile(latency, 0.5)),
        "latency_p95_ms": _ms(percentile(latency, 0.95)),
        "ttft_p50_ms": _ms(percentile(ttft, 0.5)),
        "ttft_p95_ms": _ms(percentile(ttft, 0.95)),
    }


def gateway_window(export: TrafficExport, seconds: int) -> dict[str, Any]:
    """The gateway's requests over the last `seconds`, with its fallback, hedge and failover
    rates (per routed request)."""
    buckets = _recent(export.gateway, export, seconds)
    requests = sum(b.requests for b in buckets)
    answers = sum(b.answers for b in buckets)
    failed = sum(b.failed for b in buckets)
    latency: dict[int, int] = {}
    for b in buckets:
        _add_bins(latency, b.latency)

    def share(count: int) -> float | None:
        return round(count / requests, 4) if requests else None

    fallbacks = sum(b.fallbacks for b in buckets)
    hedges = sum(b.hedges for b in buckets)
    failovers = sum(b.failovers for b in buckets)
    return {
        "requests": requests,
        "rate": round(requests / _span(export, seconds), 3),
        "answers": answers,
        "failed": failed,
        "error_rate": round(failed / answers, 4) if answers else None,
        "latency_p50_ms": _ms(percentile(latency, 0.5)),
        "latency_p95_ms": _ms(percentile(latency, 0.95)),
        "fallbacks": fallbacks,
        "fallback_rate": share(fallbacks),
        "hedges": hedges,
        "hedge_rate": share(hedges),
        "stream_failovers": failovers,
        "stream_failover_rate": share(failovers),
    }


def series(export: TrafficExport, names: Mapping[str, str]) -> dict[str, Any]:
    """Per bucket of the last ten minutes (oldest first): its start (Unix seconds), the
    gateway's answers and failures, the upstream attempts that failed, the gateway's p95
    latency, and each deployment's p95 latency (keyed by `names`)."""
    current = int(export.at // BUCKET_SECONDS)
    slots = list(range(current - BUCKETS + 1, current + 1))
    gateway = {b.slot: b for b in export.gateway}
    answers, failed, p95 = [], [], []
    for slot in slots:
        g = gateway.get(slot)
        answers.append(g.answers if g else 0)
        failed.append(g.failed if g else 0)
        p95.append(_ms(percentile(g.latency, 0.95)) if g else None)
    attempt_errors = [0] * len(slots)
    per_deployment: dict[str, list[float | None]] = {}
    first = slots[0]
    for traffic in export.deployments:
        line: list[float | None] = [None] * len(slots)
        for b in traffic.buckets:
            at = b.slot - first
            if 0 <= at < len(slots):
                attempt_errors[at] += b.errors
                line[at] = _ms(percentile(b.latency, 0.95))
        per_deployment[names.get(traffic.id, traffic.id)] = line
    return {
        "bucket_seconds": BUCKET_SECONDS,
        "t": [slot * BUCKET_SECONDS for slot in slots],
        "requests": answers,
        "errors": failed,
        "attempt_errors": attempt_errors,
        "p95_ms": p95,
        "deployments_p95_ms": per_deployment,
    }
