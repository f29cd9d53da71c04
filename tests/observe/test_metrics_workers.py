"""Metrics of several workers: each writes its series to its own files, any one renders all.

Two `GatewayMetrics` sharing one directory under different worker ids stand for two worker
processes (the files, the merge and the rendering are the same code a worker runs).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_metrics import finished, samples, started

from turnout.errors import FailureKind
from turnout.health.record import BreakerPhase, CooldownReason
from turnout.observe.events import (
    AttemptStarted,
    BreakerTransition,
    CooldownEntered,
    CooldownLeft,
    Event,
    HttpRequestFinished,
    RetryScheduled,
)
from turnout.observe.metrics import GatewayMetrics
from turnout.observe.multiprocess import WorkerFiles, forget_worker
from turnout.wire import Usage

DEPLOYMENTS = [("d1", "chat", "openai"), ("d2", "chat", "openai"), ("e1", "embed", "openai")]


_OPEN: list[WorkerFiles] = []


@pytest.fixture(autouse=True)
def _close_files() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _worker(directory: Path, worker: int) -> GatewayMetrics:
    files = WorkerFiles(str(directory), worker=worker)
    _OPEN.append(files)
    metrics = GatewayMetrics(files)
    metrics.deployments(DEPLOYMENTS)
    return metrics


def _traffic(seed: int, count: int) -> list[Event]:
    """A reproducible mix of the events of every request."""
    rng = random.Random(seed)
    events: list[Event] = []
    for _ in range(count):
        deployment = rng.choice(["d1", "d2"])
        error = rng.choice([None, None, None, FailureKind.SERVER_ERROR, FailureKind.TIMEOUT])
        usage = Usage(prompt_tokens=rng.randint(1, 50), completion_tokens=rng.randint(0, 50))
        events.append(started(deployment))
        duration = rng.uniform(0.001, 40.0)
        events.append(finished(deployment, error=error, duration=duration, usage=usage, cost=0.01))
        if error is not None:
            events.append(RetryScheduled("req-1", "chat", deployment, 0.1, error))
        status = rng.choice([200, 200, 429, 502])
        events.append(HttpRequestFinished("chat_completions", "chat", status, duration, False))
    return events


def _counted(rendered: dict[str, dict[frozenset[tuple[str, str]], float]]) -> dict[str, object]:
    """The counters and histograms of a rendering (gauges merge by their own rules)."""
    return {
        name: {labels: pytest.approx(value) for labels, value in series.items()}
        for name, series in rendered.items()
        if name.endswith(("_total", "_bucket", "_count", "_sum"))
    }


def test_counters_and_histograms_spread_over_workers_add_up_exactly(tmp_path: Path) -> None:
    one = GatewayMetrics()
    one.deployments(DEPLOYMENTS)
    workers = [_worker(tmp_path, 101), _worker(tmp_path, 102), _worker(tmp_path, 103)]
    rng = random.Random(7)
    for event in _traffic(seed=3, count=300):
        one.on_event(event)
        if isinstance(event, AttemptStarted):
            worker = rng.choice(workers)  # a request (and its attempts) stays on one worker
        worker.on_event(event)
    expected = _counted(samples(one))
    assert sum(samples(one)["turnout_requests_total"].values()) == 300
    for worker in workers:  # whichever worker is scraped
        assert _counted(samples(worker)) == expected


def test_gauges_merge_by_mode_and_forget_exited_workers(tmp_path: Path) -> None:
    a, b = _worker(tmp_path, 201), _worker(tmp_path, 202)
    a.on_event(started("d1"))
    a.on_event(started("d1"))
    b.on_event(started("d1"))
    b.on_event(
        CooldownEntered("d2", CooldownReason.FAILURES, until=30.0, seconds=30.0, ejections=2)
    )
    b.on_event(BreakerTransition("d2", BreakerPhase.CLOSED, BreakerPhase.OPEN))
    for metrics in (a, b):
        rendered = samples(metrics)
        assert rendered["turnout_in_flight"][frozenset({("deployment", "d1")})] == 3
        assert rendered["turnout_deployment_cooling_down"][frozenset({("deployment", "d2")})] == 1
        assert rendered["turnout_breaker_state"][frozenset({("deployment", "d2")})] == 1
        assert rendered["turnout_deployment_ejections"][frozenset({("deployment", "d2")})] == 2
    forget_worker(str(tmp_path), 202)  # worker b exited: its live gauges go, its totals stay
    b.on_event(finished("d1"))  # (a late write of an exited worker would not be read again)
    rendered = samples(a)
    assert rendered["turnout_in_flight"][frozenset({("deployment", "d1")})] == 2
    assert rendered["turnout_deployment_cooling_down"][frozenset({("deployment", "d2")})] == 0
    b.on_event(CooldownLeft("d2", CooldownReason.FAILURES))


def test_a_deployment_removed_by_a_reload_loses_its_gauges(tmp_path: Path) -> None:
    a, b = _worker(tmp_path, 301), _worker(tmp_path, 302)
    b.on_event(started("e1"))
    a.on_event(finished("e1", group="embed"))
    for metrics in (a, b):
        metrics.deployments(DEPLOYMENTS[:2])
    for metrics in (a, b):
        rendered = samples(metrics)
        deployments = {dict(labels)["deployment"] for labels in rendered["turnout_in_flight"]}
        assert deployments == {"d1", "d2"}
        info = {dict(labels)["deployment"] for labels in rendered["turnout_deployment_info"]}
        assert info == {"d1", "d2"}
        # Counters keep their totals, as in one process.
        assert sum(rendered["turnout_attempts_total"].values()) == 1


def test_a_restarted_worker_file_continues_its_counters(tmp_path: Path) -> None:
    first = _worker(tmp_path, 401)
    first.on_event(finished("d1"))
    again = _worker(tmp_path, 401)  # the same file opened again continues from its totals
    again.on_event(finished("d1"))
    assert sum(samples(again)["turnout_attempts_total"].values()) == 2


def test_one_worker_keeps_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    metrics = GatewayMetrics()
    metrics.deployments(DEPLOYMENTS)
    metrics.on_event(started("d1"))
    metrics.on_event(finished("d1"))
    assert sum(samples(metrics)["turnout_attempts_total"].values()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shared_state", [False, True])
def test_ejection_gauges_follow_the_state_the_workers_route_on(
    tmp_path: Path, shared_state: bool
) -> None:
    """Own state per worker: ejected by one is ejected. One shared store: one worker may see
    the ejection begin and another see it end, and the latest word is the true one."""
    metrics = []
    for worker in (501, 502):
        files = WorkerFiles(str(tmp_path), worker=worker, shared_state=shared_state)
        _OPEN.append(files)
        metrics.append(GatewayMetrics(files))
        metrics[-1].deployments(DEPLOYMENTS)
    a, b = metrics
    a.on_event(CooldownEntered("d1", CooldownReason.FAILURES, until=9.0, seconds=9.0))
    b.on_event(CooldownEntered("d1", CooldownReason.FAILURES, until=9.0, seconds=9.0))
    b.on_event(CooldownLeft("d1", CooldownReason.FAILURES))
    cooling = samples(a)["turnout_deployment_cooling_down"][frozenset({("deployment", "d1")})]
    assert cooling == (0 if shared_state else 1)
