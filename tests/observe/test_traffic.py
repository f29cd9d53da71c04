"""The status page's traffic observer and its windows, on a clock the test moves."""

from __future__ import annotations

import msgspec

from turnout.errors import FailureKind, FallbackKind
from turnout.observe.events import (
    AttemptFinished,
    FallbackTaken,
    HedgeFired,
    HttpRequestFinished,
    RequestFinished,
    RequestStarted,
    StreamFailover,
)
from turnout.observe.traffic import (
    BIN_GROWTH,
    BINS,
    BUCKET_SECONDS,
    BUCKETS,
    FAILOVERS,
    MAX_CHAIN,
    MAX_PENDING,
    TrafficObserver,
    bin_of,
    bin_value,
)
from turnout.observe.traffic_view import (
    deployment_window,
    gateway_window,
    merge,
    percentile,
    series,
)
from turnout.wire import Usage

START = 1_000_000.0  # a multiple of the bucket width: buckets begin at START


class Wall:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def attempt(
    deployment: str = "a",
    *,
    request: str = "r",
    error: FailureKind | None = None,
    duration: float = 0.1,
    ttft: float | None = None,
    at: float = 50.0,
    cost: float | None = None,
    usage: Usage | None = None,
    reason: str = "primary",
    status: int | None = None,
) -> AttemptFinished:
    return AttemptFinished(
        request_id=request,
        model_group="chat",
        deployment_id=deployment,
        attempt=1,
        at=at,
        duration=duration,
        error=error,
        status=status,
        usage=usage,
        cost=cost,
        ttft=ttft,
        stream=ttft is not None,
        reason=reason,
        deployment_name=f"chat/{deployment}",
    )


def test_bins_cover_their_values_within_a_bins_width() -> None:
    for seconds in (0.001, 0.0123, 0.25, 1.0, 7.5, 42.0):
        middle = bin_value(bin_of(seconds))
        assert seconds / BIN_GROWTH <= middle <= seconds * BIN_GROWTH
    assert bin_of(0.0) == 0
    assert bin_of(10_000_000.0) == BINS - 1


def test_percentiles_of_a_window_come_from_every_bucket_in_it() -> None:
    wall = Wall()
    traffic = TrafficObserver(wall)
    for index in range(100):
        # 90 fast answers in one bucket, 10 slow ones in the next: p95 is slow, p50 fast.
        wall.now = START + (0 if index < 90 else BUCKET_SECONDS)
        traffic.on_event(attempt(duration=0.1 if index < 90 else 2.0, request=f"r{index}"))
    export = traffic.export()
    (a,) = export.deployments
    minute = deployment_window(a, export, 60)
    assert minute["attempts"] == 100
    assert minute["served"] == 100
    assert minute["errors"] == 0
    assert 0.1 / BIN_GROWTH <= minute["latency_p50_ms"] / 1000 <= 0.1 * BIN_GROWTH
    assert 2.0 / BIN_GROWTH <= minute["latency_p95_ms"] / 1000 <= 2.0 * BIN_GROWTH
    assert minute["ttft_p50_ms"] is None


def test_the_rate_divides_by_the_time_the_window_really_covers() -> None:
    wall = Wall(START)
    traffic = TrafficObserver(wall)
    wall.now = START + 20
    for index in range(40):
        traffic.on_event(attempt(request=f"r{index}"))
    export = traffic.export()
    (a,) = export.deployments
    # Twenty seconds old: 40 attempts over 20 s, in both windows.
    assert deployment_window(a, export, 60)["rate"] == 2.0
    assert deployment_window(a, export, 300)["rate"] == 2.0
    # Seven minutes later both windows are empty, though the ring still holds the bucket...
    wall.now = START + 20 + 400
    export = traffic.export()
    assert deployment_window(export.deployments[0], export, 300)["attempts"] == 0
    assert len(export.deployments[0].buckets) == 1
    # ...until it is ten minutes old.
    wall.now = START + 20 + 600
    assert traffic.export().deployments[0].buckets == []


def test_windows_hold_only_their_own_minutes() -> None:
    wall = Wall()
    traffic = TrafficObserver(wall)
    traffic.on_event(attempt(error=FailureKind.SERVER_ERROR, status=500, request="old"))
    wall.now = START + 120  # two minutes later
    traffic.on_event(attempt(request="new"))
    export = traffic.export()
    (a,) = export.deployments
    minute, five = deployment_window(a, export, 60), deployment_window(a, export, 300)
    assert (minute["attempts"], minute["errors"], minute["error_rate"]) == (1, 0, 0.0)
    assert (five["attempts"], five["errors"], five["error_rate"]) == (2, 1, 0.5)
    assert a.last_error is not None
    assert (a.last_error.kind, a.last_error.status, a.last_error.at) == ("server_error", 500, START)
    assert a.last_success == START + 120


def test_a_callers_cancellation_is_no_error_of_the_deployment() -> None:
    traffic = TrafficObserver(Wall())
    traffic.on_event(attempt(error=FailureKind.CANCELLED))
    (a,) = traffic.export().deployments
    assert (a.totals.attempts, a.totals.errors, a.last_error) == (1, 0, None)


def test_the_ring_reuses_old_buckets_so_memory_stays_bounded() -> None:
    wall = Wall()
    traffic = TrafficObserver(wall)
    for step in range(BUCKETS * 5):
        wall.now = START + step * BUCKET_SECONDS
        for index in range(3):
            traffic.on_event(attempt(request=f"r{step}-{index}", duration=0.001 * (step % 50 + 1)))
            traffic.on_event(RequestFinished(f"r{step}-{index}", "chat", None, 0.0))
    ring = traffic._rings["a"]
    assert len(ring) == BUCKETS
    assert all(bucket is not None and len(bucket.latency) <= BINS for bucket in ring)
    export = traffic.export()
    assert len(export.deployments[0].buckets) == BUCKETS
    assert export.deployments[0].totals.attempts == BUCKETS * 5 * 3
    assert traffic.pending == 0


def test_requests_in_flight_collected_at_once_are_capped() -> None:
    traffic = TrafficObserver(Wall())
    for index in range(MAX_PENDING + 50):
        traffic.on_event(attempt(request=f"r{index}"))
    assert traffic.pending == MAX_PENDING
    # Their counts are all kept all the same.
    assert traffic.export().deployments[0].totals.attempts == MAX_PENDING + 50


def test_a_request_with_several_attempts_is_recorded_with_its_chain() -> None:
    wall = Wall()
    traffic = TrafficObserver(wall)
    traffic.on_event(RequestStarted("r1", "chat", None, 49.0, False))
    traffic.on_event(
        attempt("a", request="r1", error=FailureKind.SERVER_ERROR, status=503, at=50.0)
    )
    traffic.on_event(
        FallbackTaken("r1", "chat", "spare", FallbackKind.GENERAL, FailureKind.SERVER_ERROR)
    )
    traffic.on_event(attempt("b", request="r1", at=51.0, duration=0.5, reason="fallback"))
    traffic.on_event(RequestFinished("r1", "chat", None, 51.0))
    # A request served at once is no failover.
    traffic.on_event(attempt("a", request="r2"))
    traffic.on_event(RequestFinished("r2", "chat", None, 52.0))
    export = traffic.export()
    (failover,) = export.failovers
    assert failover.request_id == "r1"
    assert failover.fallback and not failover.hedged and not failover.stream_failover
    assert failover.served_by == "chat/b"
    assert [(s.deployment, s.reason, s.error, s.status) for s in failover.steps] == [
        ("chat/a", "primary", "server_error", 503),
        ("chat/b", "fallback", None, None),
    ]
    assert failover.latency == 1.1  # from the first attempt's start (49.9) to 51.0
    minute = gateway_window(export, 60)
    assert (minute["requests"], minute["fallbacks"], minute["fallback_rate"]) == (1, 1, 1.0)


def test_chains_and_failovers_kept_are_bounded() -> None:
    traffic = TrafficObserver(Wall())
    for request in range(FAILOVERS + 5):
        for step in range(MAX_CHAIN + 3):
            traffic.on_event(
                attempt(request=f"r{request}", error=FailureKind.TIMEOUT, at=float(step))
            )
        traffic.on_event(RequestFinished(f"r{request}", "chat", None, 99.0))
    failovers = traffic.export().failovers
    assert len(failovers) == FAILOVERS
    assert failovers[-1].request_id == f"r{FAILOVERS + 4}"
    assert all(len(f.steps) == MAX_CHAIN and f.served_by is None for f in failovers)


def test_hedges_stream_failovers_and_answers_count_per_request() -> None:
    traffic = TrafficObserver(Wall())
    for index in range(4):
        traffic.on_event(RequestStarted(f"r{index}", "chat", None, 0.0, True))
    traffic.on_event(HedgeFired("r0", "chat", "a", "b", 0.3))
    traffic.on_event(StreamFailover("r1", "chat", "a", FailureKind.STREAM_INTERRUPTED, 10, "x"))
    traffic.on_event(HttpRequestFinished("chat_completions", "chat", 200, 0.2, True, 0.05))
    traffic.on_event(HttpRequestFinished("chat_completions", "chat", 502, 1.0, False))
    traffic.on_event(HttpRequestFinished("chat_completions", "chat", 429, 0.01, False))
    traffic.on_event(HttpRequestFinished("chat_completions", "chat", 400, 0.01, False))
    minute = gateway_window(traffic.export(), 60)
    assert (minute["hedges"], minute["hedge_rate"]) == (1, 0.25)
    assert (minute["stream_failovers"], minute["stream_failover_rate"]) == (1, 0.25)
    # A caller's 400 is no failure of the gateway; a 5xx and a 429 are.
    assert (minute["answers"], minute["failed"], minute["error_rate"]) == (4, 2, 0.5)


def test_costs_and_tokens_add_up() -> None:
    traffic = TrafficObserver(Wall())
    for _ in range(3):
        traffic.on_event(attempt(cost=0.002, usage=Usage(prompt_tokens=10, completion_tokens=5)))
    totals = traffic.export().deployments[0].totals
    assert (totals.prompt_tokens, totals.completion_tokens) == (30, 15)
    assert abs(totals.cost - 0.006) < 1e-12


def test_merged_workers_count_every_sample_once() -> None:
    """Two workers' exports add bucket by bucket: the merged p95 is that of all samples."""
    wall = Wall()
    one, two = TrafficObserver(wall), TrafficObserver(wall)
    for index in range(95):
        one.on_event(attempt(request=f"a{index}", duration=0.05))
    for index in range(5):
        two.on_event(attempt(request=f"b{index}", duration=3.0, ttft=1.0))
    two.on_event(attempt(request="c", error=FailureKind.TIMEOUT, status=None))
    wall.now += 1
    # Through the publishing format, as between processes.
    encoded = [msgspec.msgpack.encode(t.export()) for t in (one, two)]
    exports = [msgspec.msgpack.decode(e, type=type(one.export())) for e in encoded]
    merged = merge(exports)
    (a,) = merged.deployments
    minute = deployment_window(a, merged, 60)
    assert (minute["attempts"], minute["served"], minute["errors"]) == (101, 100, 1)
    assert 0.05 / BIN_GROWTH <= minute["latency_p50_ms"] / 1000 <= 0.05 * BIN_GROWTH
    assert 0.05 / BIN_GROWTH <= minute["latency_p95_ms"] / 1000 <= 0.05 * BIN_GROWTH
    assert minute["ttft_p95_ms"] is not None
    assert a.totals.attempts == 101
    assert a.last_error is not None and a.last_error.kind == "timeout"
    chart = series(merged, {"a": "chat/a"})
    assert len(chart["t"]) == BUCKETS
    assert chart["attempt_errors"][-1] == 1
    assert chart["deployments_p95_ms"]["chat/a"][-1] is not None


def test_percentile_of_nothing_is_none() -> None:
    assert percentile({}, 0.95) is None
    assert percentile({3: 1}, 0.5) == bin_value(3)


def test_a_reload_forgets_removed_deployments() -> None:
    traffic = TrafficObserver(Wall())
    traffic.on_event(attempt("a", request="1"))
    traffic.on_event(attempt("b", request="2"))
    traffic.forget({"b"})
    assert [d.id for d in traffic.export().deployments] == ["b"]
