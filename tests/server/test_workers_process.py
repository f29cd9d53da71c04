"""`turnout serve --workers 2` as one gateway: `/metrics` and `/health` from either worker.

Real processes on a fixed free port (SO_REUSEPORT), the fake OpenAI upstream, the official SDK
at its default retries. A scrape opens its own connection and asks `/health` (which names the
answering worker) and `/metrics` on it, so each scrape's worker is known; scrapes go on until
both workers have answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes.fake_openai import FakeOpenAI, Fault
from litellm_shape import one_per_model
from serve_process import TURNOUT, serving

MESSAGES: Any = [{"role": "user", "content": "Hello"}]


@contextlib.asynccontextmanager
async def _gateway(
    *args: str,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """`turnout serve ARGS`, stopped with SIGTERM (which the parent forwards to its workers)
    whatever happens, so that a failing test leaves no worker behind. Yields once every worker
    listens: a worker still starting would answer nothing and know nothing of the others."""
    workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
    async with serving(*args, listeners=workers) as (process, _, lines):
        try:
            yield process, lines
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _scrape(port: int) -> tuple[int, dict[str, Any], str]:
    """(answering worker, /health, /metrics), both from the worker one connection reached."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        health = json.loads(connection.getresponse().read())
        connection.request("GET", "/metrics")
        metrics = connection.getresponse().read().decode()
    finally:
        connection.close()
    pid = next(worker["pid"] for worker in health["workers"] if worker["answering"])
    return pid, health, metrics


async def _scrape_both(port: int, per_worker: int = 3) -> dict[int, list[tuple[Any, str]]]:
    """Scrapes until each of the two workers has answered `per_worker` times (bounded)."""
    seen: dict[int, list[tuple[Any, str]]] = {}
    for _ in range(200):
        pid, health, metrics = await asyncio.to_thread(_scrape, port)
        seen.setdefault(pid, []).append((health, metrics))
        if len(seen) == 2 and all(len(answers) >= per_worker for answers in seen.values()):
            break
    assert len(seen) == 2, f"only worker(s) {sorted(seen)} answered"
    return seen


def _total(metrics: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def _view(health: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """What every worker must agree on: the merged state of each deployment."""
    return {
        d["id"]: (d["in_flight"], d["cooling_down"], d["ejection"], d["ejections"])
        for d in health["deployments"]
    }


def _litellm_file(path: Path, primary: str, spare: str) -> Path:
    path.write_text(json.dumps(one_per_model(primary, spare, ids=True)))
    return path


def _group_file(path: Path, bad: str, good: str) -> Path:
    entries = "".join(
        f"""
  - model_name: chat
    id: {name}
    provider: openai-compatible
    model: gpt-4o-mini
    base_url: {url}
    api_key: sk-fake
"""
        for name, url in (("chat", bad), ("spare", good))
    )
    path.write_text(f"server:\n  shutdown_timeout: 5\nmodel_list:{entries}")
    return path


async def _stop(process: asyncio.subprocess.Process, code: int = 0) -> None:
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 15) == code


async def test_metrics_count_every_request_whichever_worker_is_scraped(tmp_path: Path) -> None:
    port = _free_port()
    async with FakeOpenAI() as fake:
        config = _litellm_file(tmp_path / "config.yaml", fake.url, fake.url)
        args = ("--config", str(config), "--port", str(port), "--workers", "2")
        async with _gateway(*args) as (process, lines):
            # Twenty requests at once: the SDK opens a connection for each, which the kernel
            # spreads over both workers.
            async with openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", timeout=10
            ) as client:
                answers = await asyncio.gather(
                    *(
                        client.chat.completions.create(model="chat", messages=MESSAGES)
                        for _ in range(20)
                    )
                )
            assert all(answer.choices for answer in answers)
            # Metrics are exact at once; a worker publishes its health (in-flight counts among
            # it) at most every quarter second, so the health views agree within a few of those.
            deadline = time.monotonic() + 5
            while True:
                seen = await _scrape_both(port)
                views = []
                #: Workers each health answer knows of (a busy worker may publish late).
                workers: list[int] = []
                for answers_of_worker in seen.values():
                    for health, metrics in answers_of_worker:
                        requests = _total(
                            metrics, "turnout_requests_total", route="chat_completions"
                        )
                        assert requests == 20
                        assert _total(metrics, "turnout_attempts_total", outcome="success") == 20
                        assert _total(metrics, "turnout_request_duration_seconds_count") == 20
                        assert _total(metrics, "turnout_in_flight") == 0
                        workers.append(len(health["workers"]))
                        views.append(_view(health))
                agree = all(view == views[0] for view in views) and set(workers) == {2}
                if agree or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert set(workers) == {2}, workers
            assert all(view == views[0] for view in views), views
            assert set(views[0]) == {"chat", "spare"}
            await _stop(process)
        assert "".join(lines).count("stopped") == 2


@pytest.mark.parametrize("shape", ["one_per_model", "group"])
async def test_a_deployment_failing_in_one_worker_is_failing_whichever_worker_answers(
    tmp_path: Path, shape: str
) -> None:
    port = _free_port()
    async with FakeOpenAI() as bad, FakeOpenAI() as good:
        bad.set_default(Fault.server_error())
        build = _litellm_file if shape == "one_per_model" else _group_file
        config = build(tmp_path / "config.yaml", bad.url, good.url)
        args = ("--config", str(config), "--port", str(port), "--workers", "2")
        async with _gateway(*args) as (process, _):
            # One client, requests one after another: one kept-alive connection, one worker,
            # until that worker has ejected the failing deployment (the merged view says so).
            async with openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", timeout=10
            ) as client:
                sent = 0
                while sent < 30:
                    sent += 1
                    answer = await client.chat.completions.create(model="chat", messages=MESSAGES)
                    assert answer.choices
                    _, health, _ = await asyncio.to_thread(_scrape, port)
                    if _view(health)["chat"][2] == "ejected":
                        break
            assert bad.requests, "the failing deployment was never tried"
            seen = await _scrape_both(port, per_worker=2)
            for answers_of_worker in seen.values():
                for health, metrics in answers_of_worker:
                    failing = next(d for d in health["deployments"] if d["id"] == "chat")
                    assert failing["cooling_down"] is True
                    assert failing["ejection"] == "ejected"
                    assert failing["cooldown_reason"] is not None
                    assert failing["cooldown_seconds_left"] > 0
                    # One worker met the failures; the other only learns of them from it.
                    phases = sorted(w["ejection"] for w in failing["workers"])
                    assert phases == ["ejected", "in_rotation"]
                    spare = next(d for d in health["deployments"] if d["id"] == "spare")
                    assert spare["ejection"] == "in_rotation"
                    assert _total(metrics, "turnout_deployment_cooling_down", deployment="chat")
                    assert _total(metrics, "turnout_requests_total", status="200") == sent
            await _stop(process)


async def test_a_worker_that_dies_leaves_its_totals_and_nothing_else(tmp_path: Path) -> None:
    port = _free_port()
    async with FakeOpenAI() as fake:
        config = _litellm_file(tmp_path / "config.yaml", fake.url, fake.url)
        args = ("--config", str(config), "--port", str(port), "--workers", "2")
        async with _gateway(*args) as (process, lines):
            found = re.search(r"through (\S+) \(removed at exit\)", "".join(lines))
            assert found is not None
            directory = Path(found.group(1))
            async with openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", timeout=10
            ) as client:
                await asyncio.gather(
                    *(
                        client.chat.completions.create(model="chat", messages=MESSAGES)
                        for _ in range(12)
                    )
                )
            seen = await _scrape_both(port, per_worker=1)
            victim, survivor = sorted(seen)
            os.kill(victim, signal.SIGKILL)
            async with asyncio.timeout(5):
                while True:
                    try:
                        pid, health, metrics = await asyncio.to_thread(_scrape, port)
                    except ConnectionError:  # one the kernel had queued for the dead worker
                        pass
                    else:
                        assert pid == survivor  # the port is served by the one left
                        if [w["pid"] for w in health["workers"]] == [survivor]:
                            break
                    await asyncio.sleep(0.05)
            assert _total(metrics, "turnout_requests_total", route="chat_completions") == 12
            assert os.listdir(directory / "health") == [f"{survivor}.json"]
            await _stop(process, code=1)  # a worker was lost: the gateway says so on exit
        assert not await asyncio.to_thread(directory.exists)


def _running(pid: int) -> bool:
    """Whether the process runs (an exited one may linger as a zombie until reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
async def test_workers_stop_when_the_parent_is_killed_outright(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "turnout.log"
    async with FakeOpenAI() as fake:
        config = _litellm_file(tmp_path / "config.yaml", fake.url, fake.url)
        # The log goes to a file: orphans holding a pipe would keep a reader waiting.
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *TURNOUT, "serve", "--config", str(config), "--port", str(port),
                "--workers", "2", stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
        workers: list[int] = []
        try:
            async with asyncio.timeout(15):
                while True:
                    if log.read_text().count("listening on") == 2:
                        break
                    await asyncio.sleep(0.05)
            workers = sorted(await _scrape_both(port, per_worker=1))
            process.kill()  # no signal reaches the workers through it now
            await process.wait()
            async with asyncio.timeout(10):
                while True:
                    if not any(_running(pid) for pid in workers):
                        break
                    await asyncio.sleep(0.1)
        finally:  # a failing run leaves nothing behind
            if process.returncode is None:
                process.kill()
                await process.wait()
            for pid in workers:
                if _running(pid):
                    os.kill(pid, signal.SIGKILL)
            found = re.search(r"through (\S+) \(removed at exit\)", log.read_text())
            if found is not None:  # nobody was left to remove it: the test does
                await asyncio.to_thread(shutil.rmtree, found.group(1), True)
        assert "parent process is gone" in log.read_text()
