"""Shared-state benchmark: a gateway on Redis-backed routing state against one on in-process state.

Run: ``python benchmarks/bench_shared_state.py`` (``--duration S`` per wrk run, default 10;
``--rounds N``, default 3; ``--quick`` for 3 s runs; ``--smoke`` for one round of 1 s runs, which
only checks that it runs: its figures mean nothing). Needs ``wrk`` and ``redis-server``.

What it does, every process on 127.0.0.1 and started (and stopped) by this script:

- the fast fake OpenAI upstream of ``bench_gateway.py`` (its own process), and a private
  ``redis-server`` on a free port, saving nothing;
- three ``turnout serve`` targets on the same one-deployment config: one worker on in-process
  state (the default), one worker on Redis state, and two workers on Redis state;
- after a warm-up run per target, rounds of wrk runs at 32 connections, each round in a rotated
  order of targets so that drifts in the machine's load fall on all alike; figures are medians
  over the rounds, ratios the median of each round's ratio;
- Redis round trips per request of the one-worker Redis target, from the ``round_trips`` its
  ``/health`` reports: over sequential clean requests (exact), and over the wrk runs (requests
  estimated from the rate and the run's length; heartbeats and lease renewals included).

Figures are only comparable within one run: on a shared machine, read the ratios. The two-worker
figure depends on free cores: wrk, the upstream and Redis compete with the workers for them.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bench_gateway as bench
from bench_gateway import Target, WrkResult

#: Goal from the issue: Redis-backed state serves at least this share of in-process throughput.
GOAL_RATIO = 0.85
MEMORY, REDIS, REDIS_2W = "in-process state", "Redis state", "Redis state, 2 workers"
#: Sequential clean requests over which round trips per request are counted.
CLEAN_REQUESTS = 200


@dataclass(frozen=True)
class Options:
    duration: int
    rounds: int
    smoke: bool
    #: wrk loads per round (targets, or gateway and key pairs).
    loads: int = 3

    @property
    def budget(self) -> int:
        """Seconds the whole run may take: every wrk run with slack, and start-ups."""
        return self.loads * (self.rounds + 1) * (self.duration + 15) + 180


def parse_options(description: str, name: str, loads: int) -> Options | None:
    """The command line the Redis-backed benchmarks share (None: a tool they need is missing,
    said on stderr)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per load")
    parser.add_argument("--quick", action="store_true", help="3 s runs")
    parser.add_argument("--smoke", action="store_true", help="1 s runs, one round: does it run")
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{name}: needs {tool} (apt-get install it)", file=sys.stderr)
            return None
    return Options(
        duration=1 if args.smoke else 3 if args.quick else max(1, args.duration),
        rounds=1 if args.smoke else max(1, args.rounds),
        smoke=args.smoke,
        loads=loads,
    )


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private redis-server on a free loopback port, with nothing saved to disk."""
    port = bench.free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(workdir)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2) as probe,
        ):
            probe.sendall(b"PING\r\n")
            if probe.recv(16).startswith(b"+PONG"):
                return process, port
        time.sleep(0.02)
    bench.stop(process)
    raise RuntimeError("redis-server did not start")


def write_config(
    workdir: Path, name: str, upstream_port: int, port: int, workers: int, redis: str | None
) -> Path:
    config: dict[str, object] = {
        "server": {"port": port, "workers": workers, "log_level": "warning", "shutdown_timeout": 1},
        "model_list": [
            {
                "model_name": bench.MODEL,
                "provider": "openai-compatible",
                "model": bench.MODEL,
                "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key": "sk-bench",
            }
        ],
    }
    if redis is not None:
        config["state"] = {"backend": "redis", "url": redis, "prefix": f"bench-{port}"}
    path = workdir / f"{name.replace(' ', '-').replace(',', '')}.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def state_of(port: int) -> dict[str, object]:
    """The ``state`` section of a target's /health."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        report = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    state: dict[str, object] = report["state"]
    return state


def round_trips(port: int) -> int:
    value = state_of(port).get("round_trips", 0)
    assert isinstance(value, int)
    return value


def clean_round_trips(target: Target) -> float:
    """Redis round trips per request over sequential requests, none of them failing."""
    before = round_trips(target.port)
    for _ in range(CLEAN_REQUESTS):
        if not bench.post_ok(target.port):
            raise RuntimeError(f"{target.name}: a clean request failed")
    return (round_trips(target.port) - before) / CLEAN_REQUESTS


def measure(targets: list[Target], options: Options, workdir: Path, redis_pid: int) -> None:
    script = workdir / "post.lua"
    script.write_text(bench.WRK_SCRIPT % bench.BODY.decode())
    redis_1w = next(t for t in targets if t.name == REDIS)
    for target in targets:  # warm up: connections, pools, lazy imports; not counted
        bench.run_wrk(target.url, 32, 1 if options.smoke else 2, script)
    redis_1w.figures["clean_trips"] = clean_round_trips(redis_1w)
    pause = 0.2 if options.smoke else 1.0
    for round_ in range(options.rounds):
        turn = [*targets[round_ % len(targets) :], *targets[: round_ % len(targets)]]
        for target in turn:
            time.sleep(pause)
            trips = round_trips(target.port) if target is redis_1w else 0
            cpu = bench.group_cpu_seconds(target.pid), bench.group_cpu_seconds(redis_pid)
            result: WrkResult = bench.run_wrk(target.url, 32, options.duration, script)
            served = max(1.0, result.rps * options.duration)
            target.record(
                rps=result.rps,
                p50=result.p50_ms,
                p99=result.p99_ms,
                cpu_us=(bench.group_cpu_seconds(target.pid) - cpu[0]) / served * 1e6,
                redis_us=(bench.group_cpu_seconds(redis_pid) - cpu[1]) / served * 1e6,
            )
            target.count(result)
            if target is redis_1w:
                requests = result.rps * options.duration
                target.record(load_trips=(round_trips(target.port) - trips) / requests)
    for target in targets:
        for name, values in target.rounds.items():
            target.figures[name] = statistics.median(values)
        shared = state_of(target.port).get("shared")
        target.figures["shared"] = float(shared is True)


def ratios(ours: Target, other: Target) -> list[float]:
    return [a / b for a, b in zip(ours.rounds["rps"], other.rounds["rps"], strict=True)]


def ratio_text(values: list[float]) -> str:
    each = ", ".join(f"{r:.2f}" for r in values)
    return f"{statistics.median(values):.2f}" + (f" ({each})" if len(values) > 1 else "")


def report(targets: list[Target], options: Options) -> bool:
    """Print the tables; whether every target answered every request."""
    by_name = {t.name: t for t in targets}
    memory, redis, two = by_name[MEMORY], by_name[REDIS], by_name[REDIS_2W]
    rounds = f"{options.rounds} round" + ("s" if options.rounds > 1 else "")
    print(
        f"\n## Routing state in Redis against in-process ({options.duration} s wrk runs at 32 "
        f"connections, median of {rounds}; {os.cpu_count()} CPUs, loopback)\n"
    )
    print(
        "| target | req/s @32 | p50 ms | p99 ms | gateway CPU µs/req | Redis CPU µs/req "
        "| errors | shared at the end |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for target in targets:
        f = target.figures
        shared = "—" if target is memory else ("yes" if f["shared"] else "NO")
        print(
            f"| {target.name} | {f['rps']:,.0f} | {f['p50']:.2f} | {f['p99']:.2f} "
            f"| {f['cpu_us']:.0f} | {f['redis_us']:.0f} "
            f"| {target.errors} / {target.non_2xx} | {shared} |"
        )
    print("\nerrors: socket errors and timeouts / non-2xx answers (wrk, every run).")
    print(
        "CPU µs/req: CPU seconds the gateway's processes (and redis-server) used during the "
        "wrk runs, per request served: what shared state costs, whatever the machine's load."
    )
    print("\n## Ratios (median of the rounds' ratios; each round's in brackets)\n")
    redis_ratio = ratios(redis, memory)
    print(f"- Redis state / in-process state, one worker each: {ratio_text(redis_ratio)}")
    print(f"- two workers / one worker, both on Redis state: {ratio_text(ratios(two, redis))}")
    cpu = [a / b for a, b in zip(redis.rounds["cpu_us"], memory.rounds["cpu_us"], strict=True)]
    print(f"- gateway CPU per request, Redis state / in-process state: {ratio_text(cpu)}")
    print("\n## Redis round trips per request (one worker on Redis state)\n")
    print(
        f"- {CLEAN_REQUESTS} sequential clean requests: {redis.figures['clean_trips']:.2f}"
        " (goal: at most 2, one before the call and one after)"
    )
    print(
        f"- under load at 32 connections: {redis.figures['load_trips']:.2f} (requests from "
        "the rate and the run's length; heartbeats and lease renewals included)"
    )
    median = statistics.median(redis_ratio)
    met = "met" if median >= GOAL_RATIO else "MISSED"
    print(f"\ngoal: Redis state ≥ {GOAL_RATIO}x in-process throughput: {median:.2f}x — {met}")
    if options.smoke:
        print("\n(--smoke: 1 s runs; the figures mean nothing)")
    return all(t.errors == 0 and t.non_2xx == 0 for t in targets)


def main() -> int:
    options = parse_options(__doc__.splitlines()[0], "bench_shared_state", loads=3)
    if options is None:
        return 2
    return bench.run_bounded(
        options.budget, "bench-shared-state-", lambda tmp, processes: _run(options, tmp, processes)
    )


def _run(options: Options, workdir: Path, processes: list[subprocess.Popen[bytes]]) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    redis, redis_port = start_redis(workdir)
    processes.append(redis)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    upstream = Target("upstream", bench.free_port())
    command = [sys.executable, bench.__file__, "--role", "upstream", "--port", str(upstream.port)]
    launches = [(upstream, command)]
    targets = []
    for name, workers, url in ((MEMORY, 1, None), (REDIS, 1, redis_url), (REDIS_2W, 2, redis_url)):
        target = Target(name, bench.free_port())
        config = write_config(workdir, name, upstream.port, target.port, workers, url)
        launches.append((target, [*bench.turnout_command(), "serve", "--config", str(config)]))
        targets.append(target)
    for target, argv in launches:
        started = time.monotonic()
        processes.append(bench.start(target, argv, workdir, env))
        bench.wait_ready(target, started, 30)
        if target.failure is not None:
            print(f"{target.name} failed to start: {target.failure}", file=sys.stderr)
            return 1
    measure(targets, options, workdir, redis.pid)
    return 0 if report(targets, options) else 1


if __name__ == "__main__":
    sys.exit(main())
