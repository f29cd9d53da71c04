"""Observability's price: requests/s with tracing on, and with the request log on, against
both off, in the same run.

Run: ``python benchmarks/bench_observability.py`` (``--duration S`` per wrk run, default 10;
``--rounds N``, default 3; ``--quick`` for 3 s runs; ``--smoke`` for one round of 1 s runs,
which only checks that it runs). Needs ``wrk``.

What it does, every process on 127.0.0.1, started and stopped here, with `bench_gateway`'s
machinery (its fast fake upstream, wrk driver and process handling):

- the fast fake OpenAI upstream, and an OTLP/HTTP receiver process (``tests/otlp_receiver.py``)
  that accepts every export and keeps its raw body, decoding and counting the spans when it
  stops (a real collector runs elsewhere, and does not take the gateway's CPU as it decodes);
- three ``turnout serve`` processes of one worker each on the same model list, as the issue
  compares them: both off (the request log off, no OTEL environment), the request log on (its
  default: one JSON line per request, appended to a file), and tracing on at 100% sampling
  (``OTEL_TRACES_SAMPLER=always_on``) exporting spans to the receiver, with the request log off
  (the GenAI metrics are on ``/metrics``, and go over OTLP only with
  ``OTEL_METRICS_EXPORTER=otlp``). The access log is on in all three, as by default; what it
  adds on top of the request log is `bench_gateway`'s "logs off" row;
- rounds of wrk runs at 32 connections (2 threads), each round in a rotated order, and for each
  feature the median of each round's ratio of requests/s, on over both off. The receiver's span
  count at the end shows the spans were exported, not dropped.

Figures are only comparable within one run: read the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bench_gateway as bench

#: The issue's goals: tracing on, and the request log on, keep at least these shares of the
#: requests/s of both off.
GOAL_TRACING_RATIO = 0.85
GOAL_REQUEST_LOG_RATIO = 0.9
RECEIVER = Path(__file__).resolve().parent.parent / "tests" / "otlp_receiver.py"


@dataclass(frozen=True)
class Variant:
    """One observability feature measured on against both off: the environment and the
    request log setting that turn it on."""

    name: str
    env: dict[str, str]
    request_log: bool
    goal: float


def _variants(receiver_url: str, interval_ms: int) -> list[Variant]:
    return [
        Variant("request log", {}, True, GOAL_REQUEST_LOG_RATIO),
        Variant(
            "tracing",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver_url,
                "OTEL_TRACES_SAMPLER": "always_on",
                "OTEL_BSP_SCHEDULE_DELAY": str(interval_ms),
            },
            False,
            GOAL_TRACING_RATIO,
        ),
    ]


def _config(workdir: Path, upstream: int, port: int, request_log: bool) -> Path:
    """`bench_gateway`'s turnout config (its request log on, to a file), with the request log
    turned off unless `request_log`."""
    config, _ = bench.write_configs(workdir, upstream, port)
    if not request_log:
        settings = json.loads(config.read_text())
        settings["server"]["request_log"] = {"enabled": False}
        config.write_text(json.dumps(settings, indent=2))  # JSON is YAML
    return config


def _run(options: Options, workdir: Path, processes: list[subprocess.Popen[bytes]]) -> int:
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "LITELLM", "OTEL_"))
    }
    gateway_bench = str(Path(bench.__file__).resolve())
    upstream = bench.Target("upstream direct", bench.free_port())
    receiver_port = bench.free_port()
    receiver_log = workdir / "receiver.log"
    with receiver_log.open("wb") as log:
        receiver = subprocess.Popen(
            [sys.executable, str(RECEIVER), "--port", str(receiver_port), "--defer-decoding"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=base_env,
            start_new_session=True,
        )
    processes.append(receiver)
    off = bench.Target("turnout (both off)", bench.free_port())
    targets = [off]
    variants = _variants(f"http://127.0.0.1:{receiver_port}", 200)
    ons = {v.name: bench.Target(f"turnout ({v.name} on)", bench.free_port()) for v in variants}
    targets += list(ons.values())
    launches = [
        (
            upstream,
            [sys.executable, gateway_bench, "--role", "upstream", "--port", str(upstream.port)],
            base_env,
        )
    ]
    for target, variant in [(off, None), *((ons[v.name], v) for v in variants)]:
        logged = variant is not None and variant.request_log
        config = _config(_own_dir(workdir, target), upstream.port, target.port, logged)
        env = base_env if variant is None else {**base_env, **variant.env}
        launches.append((target, [*bench.turnout_command(), "serve", "--config", str(config)], env))
    for target, command, env in launches:
        started = time.monotonic()
        processes.append(bench.start(target, command, workdir, env))
        if target is not upstream:
            bench.wait_ready(target, started, 30)
            if target.failure is not None:
                print(f"{target.name} did not start: {target.failure}", file=sys.stderr)
                return 1
    script = workdir / "post.lua"
    script.write_text(bench.WRK_SCRIPT % bench.BODY.decode())
    for target in targets:  # warm up: connections, pools, lazy imports; not counted
        bench.run_wrk(target.url, 32, 1 if options.smoke else 2, script)
    pause = 0.2 if options.smoke else 1.0
    for round_ in range(options.rounds):
        turn = targets[round_ % len(targets) :] + targets[: round_ % len(targets)]
        for target in turn:
            time.sleep(pause)
            result = bench.run_wrk(target.url, 32, options.duration, script)
            target.record(rps=result.rps, p50=result.p50_ms, p99=result.p99_ms)
            target.count(result)
    for target in [off, *ons.values()]:
        if target.process is not None:
            bench.stop(target.process)  # a clean stop: the traced one flushes its spans
    bench.stop(receiver)
    received = _spans_received(receiver_log)
    _report(options, off, ons, variants, received)
    return 0


def _own_dir(workdir: Path, target: bench.Target) -> Path:
    path = workdir / target.name.replace(" ", "-").replace("(", "").replace(")", "")
    path.mkdir()
    return path


def _spans_received(log: Path) -> int:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("spans received: "):
            return int(line.removeprefix("spans received: "))
    return -1


def _report(
    options: Options,
    off: bench.Target,
    ons: dict[str, bench.Target],
    variants: list[Variant],
    received: int,
) -> None:
    print(
        f"\n## Observability on against both off ({options.duration} s wrk runs at 32 connections, "
        f"median of {options.rounds} rounds)\n"
    )
    print("| target | req/s @32 | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|")
    for target in [off, *ons.values()]:
        figures = {name: statistics.median(values) for name, values in target.rounds.items()}
        print(
            f"| {target.name} | {figures['rps']:,.0f} | {figures['p50']:.2f} "
            f"| {figures['p99']:.2f} | {target.errors} / {target.non_2xx} |"
        )
    print(f"\nspans received by the OTLP receiver: {received}")
    for variant in variants:
        on = ons[variant.name]
        ratios = [a / b for a, b in zip(on.rounds["rps"], off.rounds["rps"], strict=True) if b]
        value = statistics.median(ratios) if ratios else 0.0
        verdict = "met" if value >= variant.goal else "NOT met"
        print(
            f"{variant.name} on / both off throughput: {value:.2f}x "
            f"(goal ≥ {variant.goal}: {verdict}; rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )


@dataclass(frozen=True)
class Options:
    duration: int
    rounds: int
    smoke: bool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per target")
    parser.add_argument("--quick", action="store_true", help="3 s runs")
    parser.add_argument("--smoke", action="store_true", help="1 s runs: does it run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_observability: needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    options = Options(
        duration=1 if args.smoke else 3 if args.quick else max(1, args.duration),
        rounds=1 if args.smoke else max(1, args.rounds),
        smoke=args.smoke,
    )
    budget = 3 * options.rounds * (options.duration + 15) + 120
    return bench.run_bounded(
        budget, "bench-observability-", lambda tmp, processes: _run(options, tmp, processes)
    )


if __name__ == "__main__":
    sys.exit(main())
