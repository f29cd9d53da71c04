"""Gateway benchmark: turnout, a minimal pass-through proxy and LiteLLM, side by side in one run.

Run: ``python benchmarks/bench_gateway.py`` (``--duration S`` per wrk run, default 10;
``--rounds N`` of wrk runs per target, default 3; ``--quick`` for 3 s runs; ``--no-litellm``;
``--smoke`` for one round of 1 s runs without LiteLLM, which only checks that it runs: its
figures mean nothing). Needs ``wrk``. LiteLLM's proxy is the ``litellm`` command on the PATH
(install ``litellm[proxy]`` in a virtual environment of its own, and name its command with
``--litellm PATH``); a LiteLLM that does not start is reported, and the run goes on without it.

What it does, every process on 127.0.0.1 and started (and stopped) by this script:

- a fast fake OpenAI upstream, written here: a raw asyncio protocol on uvloop answering every
  POST with a fixed ``chat.completion`` (or, when the body asks for a stream, a fixed SSE stream),
  in its own process. (``fakes.fake_openai`` is faithful rather than fast: it serves
  several times fewer requests per second, and at the targets' rates it would take CPU from
  them.) It is measured directly too, and its CPU share is reported while each target is under
  load, to show that it is not the bottleneck;
- four targets, each one process with one worker, pointed at that upstream: turnout
  (``turnout serve``, its request and access logs on, as by default), turnout with both logs
  off (what the logs cost is the ratio of the two), a minimal pass-through proxy on turnout's
  own libraries (aiohttp server and keep-alive client, uvloop: the ceiling for a gateway built
  on them), and the LiteLLM proxy;
- after a warm-up run per target, rounds of wrk runs, each round in a rotated order of targets
  so that drifts in the machine's load fall on all alike (figures are medians over the rounds,
  ratios the median of each round's ratio): at 32 connections (2 threads) requests/s, p50, p99
  and errors; at one connection, p50 minus the upstream's own p50 of the same round is the
  latency a target adds. Then stream time to first body byte: the median over sequential
  requests taken in turns across targets, minus the upstream's own;
- memory of each target's process group: RSS idle after start, peak RSS (VmHWM) after the load;
  start-up time: from the process' start to its first successful request.

Figures are only comparable within one run: on a shared machine, read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

MODEL = "gpt-4o-mini"
PATH = "/v1/chat/completions"
BODY = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16}
).encode()
STREAM_BODY = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "stream": True}
).encode()
LITELLM = "litellm"
_JSON = "application/json"
#: Goals from the issue, for turnout.
GOAL_THROUGHPUT_RATIO = 0.6
GOAL_ADDED_LATENCY_MS = 0.5
GOAL_ADDED_TTFB_MS = 1.0
GOAL_IDLE_MB = 80.0
GOAL_STARTUP_S = 1.0
#: turnout with its request and access logs on against both off.
GOAL_LOGS_RATIO = 0.9
LOGS_OFF = "turnout (logs off)"


# ---- the fast upstream (run as its own process: --role upstream) ----------------------------


def _answer_bytes() -> tuple[bytes, bytes]:
    """The fixed whole answer and the fixed stream, as complete HTTP/1.1 responses."""
    created = 1_700_000_000
    answer = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": created,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! How can I help?"},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 8, "completion_tokens": 6, "total_tokens": 14},
            "system_fingerprint": "fp_bench",
        },
        separators=(",", ":"),
    ).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    whole = head % len(answer) + answer

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> bytes:
        event: dict[str, Any] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage:
            event["usage"] = {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}
        return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"

    events = [
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": word}) for word in ("Hello", "!", " Hi.")),
        chunk({}, finish="stop"),
        chunk({}, usage=True),
        b"data: [DONE]\n\n",
    ]
    stream = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    stream += b"transfer-encoding: chunked\r\n\r\n"
    stream += b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"
    return whole, stream


_WHOLE, _STREAM = _answer_bytes()
_ASKS_STREAM = re.compile(rb'"stream"\s*:\s*true')


def _chunked_body(buffer: bytes, start: int) -> tuple[bytes, int] | None:
    """A chunked request body starting at `start`: (body, end), or None while incomplete."""
    pieces: list[bytes] = []
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(buffer[at:line_end].split(b";")[0], 16)
        if size == 0:
            end = buffer.find(b"\r\n\r\n", line_end)
            return (b"".join(pieces), end + 4) if end >= 0 else None
        data_end = line_end + 2 + size
        if len(buffer) < data_end + 2:
            return None
        pieces.append(buffer[line_end + 2 : data_end])
        at = data_end + 2


class _FastUpstream(asyncio.Protocol):
    """Parses just enough HTTP/1.1 (keep-alive, Content-Length or chunked) to answer."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        while (head_end := buffer.find(b"\r\n\r\n")) >= 0:
            head = buffer[:head_end].lower()
            start = head_end + 4
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                end = start + int(head[at + 17 : line_end if line_end >= 0 else None])
                if len(buffer) < end:
                    break
                body = buffer[start:end]
            elif b"\r\ntransfer-encoding: chunked" in head:
                chunked = _chunked_body(buffer, start)
                if chunked is None:
                    break
                body, end = chunked
            else:
                body, end = b"", start
            buffer = buffer[end:]
            assert self._transport is not None
            self._transport.write(_STREAM if _ASKS_STREAM.search(body) else _WHOLE)
        self._buffer = buffer


async def _serve_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_FastUpstream, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


# ---- the minimal pass-through proxy (its own process: --role proxy) --------------------------


async def _serve_proxy(port: int, upstream: str) -> None:
    """The ceiling: read the body, POST it upstream on a keep-alive session, relay the bytes."""
    import aiohttp
    from aiohttp import web

    connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=60)
    session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"content-type": "application/json"}
        async with session.post(upstream + request.path, data=body, headers=headers) as reply:
            if reply.content_type != "text/event-stream":
                payload = await reply.read()
                return web.Response(status=reply.status, body=payload, content_type=_JSON)
            response = web.StreamResponse(status=reply.status)
            response.content_type = "text/event-stream"
            await response.prepare(request)
            async for piece in reply.content.iter_any():
                await response.write(piece)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_post(PATH, relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    try:
        await asyncio.Event().wait()
    finally:
        await session.close()
        await runner.cleanup()


def _run_role(role: str, port: int, upstream: str) -> None:
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve_upstream(port) if role == "upstream" else _serve_proxy(port, upstream))


# ---- processes -------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    startup: float = 0.0
    failure: str | None = None
    #: Medians over the rounds, and figures measured once.
    figures: dict[str, float] = field(default_factory=dict)
    #: Each round's figures, in round order.
    rounds: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    non_2xx: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    @property
    def pid(self) -> int:
        """The process' id, which is also its process group's."""
        assert self.process is not None
        return self.process.pid

    def record(self, **figures: float) -> None:
        for name, value in figures.items():
            self.rounds.setdefault(name, []).append(value)

    def count(self, result: WrkResult) -> None:
        self.errors += result.errors
        self.non_2xx += result.non_2xx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    target: Target, command: list[str], workdir: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    target.log = workdir / f"{target.name.replace(' ', '-')}.log"
    with target.log.open("wb") as log:
        target.process = process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, killed whole at the end
        )
    return process


def wait_ready(target: Target, started: float, timeout: float) -> None:
    """Poll with a real request until one succeeds; record the start-up time or the failure."""
    assert target.process is not None
    deadline = started + timeout
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            target.failure = f"exited with code {target.process.returncode}: {tail(target)}"
            return
        if post_ok(target.port):
            target.startup = time.monotonic() - started
            return
        time.sleep(0.01)
    target.failure = f"no successful request within {timeout:.0f} s: {tail(target)}"


def post_ok(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("POST", PATH, BODY, {"content-type": _JSON})
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def tail(target: Target, lines: int = 8) -> str:
    if target.log is None or not target.log.exists():
        return "(no log)"
    text = target.log.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(empty log)"


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after a grace period."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
            if sig == signal.SIGTERM:  # the leader is gone; sweep any stragglers of the group
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            return


def group_pids(pgid: int) -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(entry.path, "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                    yield int(entry.name)


def group_memory_mb(pgid: int, key: str) -> float:
    """Sum of `key` (VmRSS or VmHWM) over the process group, in MB."""
    total_kb = 0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def group_cpu_seconds(pgid: int) -> float:
    ticks = 0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# ---- wrk -----------------------------------------------------------------------------------

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT %%.0f %%.0f %%.1f %%.1f %%.0f %%.0f %%.0f %%.0f %%.0f\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int


def run_wrk(url: str, connections: int, duration: int, script: Path) -> WrkResult:
    threads = min(2, connections)
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s"]
    command += ["--latency", "--timeout", "10s", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            values = [float(value) for value in line.split()[1:]]
            requests, duration_us, p50, p99, connect, read, write, status, timeouts = values
            return WrkResult(
                rps=requests / (duration_us / 1e6),
                p50_ms=p50 / 1000,
                p99_ms=p99 / 1000,
                errors=int(connect + read + write + timeouts),
                non_2xx=int(status),
            )
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}): {done.stderr.strip()}")


# ---- time to first byte of a stream --------------------------------------------------------


async def stream_ttfb(urls: dict[str, str], samples: int) -> dict[str, tuple[float, int]]:
    """Median seconds to the first body byte, and failed streams, per target; one request at a
    time, in turns across the targets so that the machine's noise falls on all of them alike."""
    import aiohttp

    times: dict[str, list[float]] = {name: [] for name in urls}
    failures = dict.fromkeys(urls, 0)
    headers = {"content-type": _JSON}
    async with aiohttp.ClientSession() as session:
        for round_ in range(samples + 5):  # the first 5 rounds warm up
            for name, url in urls.items():
                started = time.perf_counter()
                async with session.post(url, data=STREAM_BODY, headers=headers) as response:
                    first = await response.content.readany()
                    elapsed = time.perf_counter() - started
                    rest = await response.read()
                if response.status != 200 or not first or b"[DONE]" not in first + rest:
                    failures[name] += 1
                elif round_ >= 5:
                    times[name].append(elapsed)
    return {
        name: (statistics.median(values) if values else float("nan"), failures[name])
        for name, values in times.items()
    }


# ---- the run -------------------------------------------------------------------------------


class BudgetExceeded(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise BudgetExceeded("the benchmark ran over its time budget")


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def turnout_command() -> list[str]:
    beside = Path(sys.executable).parent / "turnout"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("turnout")
    return [found] if found else [sys.executable, "-m", "turnout.cli"]


def write_configs(
    workdir: Path, upstream_port: int, turnout: int, quiet: int | None = None
) -> tuple[Path, Path]:
    """turnout's config (its logs on, as by default; the request log goes to a file) and
    LiteLLM's; with `quiet`, also ``turnout-quiet.yaml``: turnout's with both logs off, on
    that port."""
    base = f"http://127.0.0.1:{upstream_port}/v1"
    ours: dict[str, Any] = {
        "server": {
            "port": turnout,
            "workers": 1,
            "log_level": "warning",
            "shutdown_timeout": 1,
            "request_log": {"path": str(workdir / "requests.jsonl")},
        },
        "model_list": [
            {
                "model_name": MODEL,
                "provider": "openai-compatible",
                "model": MODEL,
                "base_url": base,
                "api_key": "sk-bench",
            }
        ],
    }
    theirs = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {"model": f"openai/{MODEL}", "api_base": base, "api_key": "sk"},
            }
        ],
        "litellm_settings": {"suppress_debug_info": True, "set_verbose": False},
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }
    turnout_yaml, litellm_yaml = workdir / "turnout.yaml", workdir / "litellm.yaml"
    turnout_yaml.write_text(json.dumps(ours, indent=2))  # JSON is YAML
    litellm_yaml.write_text(json.dumps(theirs, indent=2))
    if quiet is not None:
        server = {**ours["server"], "port": quiet, "request_log": {"enabled": False}}
        silent = {**ours, "server": {**server, "access_log": False}}
        (workdir / "turnout-quiet.yaml").write_text(json.dumps(silent, indent=2))
    return turnout_yaml, litellm_yaml


def measure(targets: list[Target], upstream: Target, options: Options, workdir: Path) -> None:
    """Every figure of every target; wrk runs go in rounds, in a rotating order, so that drifts
    in the machine's load fall on all targets alike."""
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT % BODY.decode())
    live = [t for t in targets if t.failure is None]
    time.sleep(1.0)  # let start-up work settle before reading idle memory
    for target in live:
        target.figures["idle_mb"] = group_memory_mb(target.pid, "VmRSS")
    for target in [upstream, *live]:  # warm up: connections, pools, lazy imports; not counted
        run_wrk(target.url, 32, 1 if options.smoke else 2, script)
    # Between runs: a target may go on working after its load stops (LiteLLM does, for about
    # half a second), and that work must not fall on the next target's run.
    pause = 0.2 if options.smoke else 1.0
    for round_ in range(options.rounds):
        turn = [upstream, *live[round_ % len(live) :], *live[: round_ % len(live)]]
        for target in turn:
            time.sleep(pause)
            cpu = {t.name: group_cpu_seconds(t.pid) for t in (upstream, target)}
            started = time.monotonic()
            result = run_wrk(target.url, 32, options.duration, script)
            elapsed = time.monotonic() - started
            target.record(rps=result.rps, p50=result.p50_ms, p99=result.p99_ms)
            target.record(
                cpu=(group_cpu_seconds(target.pid) - cpu[target.name]) / elapsed,
                upstream_cpu=(group_cpu_seconds(upstream.pid) - cpu[upstream.name]) / elapsed,
            )
            target.count(result)
        for target in turn:
            time.sleep(pause)
            result = run_wrk(target.url, 1, options.duration, script)
            target.record(p50_c1=result.p50_ms)
            target.record(added_c1=result.p50_ms - upstream.rounds["p50_c1"][-1])
            target.count(result)
    for target in live:
        target.figures["peak_mb"] = group_memory_mb(target.pid, "VmHWM")
    measure_streams(live, upstream, options.stream_samples)
    for target in [upstream, *live]:
        for name, values in target.rounds.items():
            target.figures[name] = statistics.median(values)


def measure_streams(live: list[Target], upstream: Target, samples: int) -> None:
    """Stream TTFB through each target minus the upstream's own, measured in the same pass.

    LiteLLM goes in a pass of its own with the upstream: after each answer it goes on working
    (callbacks, logging) for a few milliseconds, which on a small machine slows whichever request
    comes next and would inflate every other target's figure.
    """
    passes = [[t for t in live if t.name != "LiteLLM"], [t for t in live if t.name == "LiteLLM"]]
    for group in passes:
        if not group:
            continue
        medians = asyncio.run(stream_ttfb({t.name: t.url for t in [upstream, *group]}, samples))
        direct, failed = medians[upstream.name]
        upstream.figures.setdefault("ttfb", direct)
        upstream.figures["stream_failures"] = upstream.figures.get("stream_failures", 0) + failed
        for target in group:
            ttfb, failed = medians[target.name]
            target.figures.update(ttfb=ttfb, added_ttfb=ttfb - direct, stream_failures=failed)


def report(targets: list[Target], upstream: Target, options: Options) -> None:
    rounds = f"{options.rounds} round" + ("s" if options.rounds > 1 else "")
    print(
        f"\n## Gateway throughput and overhead ({options.duration} s wrk runs, median of "
        f"{rounds}; one worker each, {os.cpu_count()} CPUs, loopback)\n"
    )
    print(TABLE_HEADER)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for target in [upstream, *targets]:
        print(table_row(target, upstream))
    measured = [t for t in [upstream, *targets] if t.failure is None]
    has_litellm = any(t.name == "LiteLLM" for t in measured)
    print(
        "\nerrors: socket errors and timeouts / non-2xx answers (wrk, every run) / failed "
        "streams. RSS: summed over each target's process group; peak is VmHWM after the load."
    )
    print(
        "p50 @1 connection (ms): "
        + ", ".join(f"{t.name} {t.figures['p50_c1']:.3f}" for t in measured)
    )
    print(
        f"stream TTFB, median of {options.stream_samples} (ms): "
        + ", ".join(f"{t.name} {t.figures['ttfb'] * 1000:.3f}" for t in measured)
        + (" (LiteLLM in a pass of its own, against the upstream's in that pass)" * has_litellm)
    )
    print(
        "CPU during the 32-connection runs, share of one core (the upstream's in brackets): "
        + "; ".join(
            f"{t.name} {t.figures['cpu']:.0%} ({t.figures['upstream_cpu']:.0%})"
            for t in measured
            if t is not upstream
        )
    )
    fastest = max(t.figures["rps"] for t in measured if t is not upstream)
    print(
        f"upstream alone: {upstream.figures['rps']:,.0f} req/s at {upstream.figures['cpu']:.0%} "
        f"of a core, {upstream.figures['rps'] / fastest:.1f}x the fastest target"
    )
    by_name = {t.name: t for t in targets}
    ours, ceiling, litellm = by_name["turnout"], by_name["minimal proxy"], by_name.get("LiteLLM")
    print("\n## Ratios (median of the rounds' ratios; each round's in brackets)\n")
    print(f"- turnout / minimal proxy throughput: {ratio(ours, ceiling)}")
    quiet = by_name[LOGS_OFF]
    print(f"- turnout with its request and access logs / both off: {ratio(ours, quiet)}")
    if litellm is not None and litellm.failure is None:
        print(f"- turnout / LiteLLM throughput: {ratio(ours, litellm)}")
    else:
        reason = litellm.failure if litellm is not None else "left out"
        print(f"- turnout / LiteLLM throughput: not measured ({reason})")
    startups = ", ".join(f"{t.name} {t.startup:.2f} s" for t in measured if t is not upstream)
    print(f"- start-up, from process start to the first successful request: {startups}")
    print("\n## turnout against the goals (from the issue)\n")
    for goal, figure, met in goals(ours, ceiling, upstream, quiet):
        print(f"- {goal}: {figure} — {'met' if met else 'MISSED'}")
    if options.smoke:
        print("\n(--smoke: 1 s runs; the figures mean nothing)")


def throughput_ratios(ours: Target, other: Target) -> list[float]:
    return [a / b for a, b in zip(ours.rounds["rps"], other.rounds["rps"], strict=True)]


def ratio(ours: Target, other: Target) -> str:
    ratios = throughput_ratios(ours, other)
    each = ", ".join(f"{r:.2f}" for r in ratios)
    return f"{statistics.median(ratios):.2f}" + (f" ({each})" if len(ratios) > 1 else "")


TABLE_HEADER = (
    "| target | req/s @32 | p50 ms | p99 ms | added latency @1 conn (ms) "
    "| added TTFB stream (ms) | idle RSS MB | peak RSS MB | errors |"
)


def table_row(target: Target, upstream: Target) -> str:
    if target.failure is not None:
        why = target.failure.replace("|", "/")[:160]
        return f"| {target.name} | not measured: {why} | | | | | | | |"
    f = target.figures
    direct = target is upstream
    added = "—" if direct else f"{f['added_c1']:.2f}"
    ttfb = "—" if direct else f"{f['added_ttfb'] * 1000:.2f}"
    idle = "—" if direct else f"{f['idle_mb']:.0f}"
    peak = "—" if direct else f"{f['peak_mb']:.0f}"
    errors = f"{target.errors} / {target.non_2xx} / {f['stream_failures']:.0f}"
    return (
        f"| {target.name} | {f['rps']:,.0f} | {f['p50']:.2f} | {f['p99']:.2f} | {added} "
        f"| {ttfb} | {idle} | {peak} | {errors} |"
    )


def goals(
    ours: Target, ceiling: Target, upstream: Target, quiet: Target
) -> list[tuple[str, str, bool]]:
    throughput = statistics.median(throughput_ratios(ours, ceiling))
    logged = statistics.median(throughput_ratios(ours, quiet))
    added = ours.figures["added_c1"]
    ttfb = ours.figures["added_ttfb"] * 1000
    idle = ours.figures["idle_mb"]
    return [
        (
            f"throughput ≥ {GOAL_THROUGHPUT_RATIO}x the minimal proxy's",
            f"{throughput:.2f}x",
            throughput >= GOAL_THROUGHPUT_RATIO,
        ),
        (
            f"added latency at one connection ≤ {GOAL_ADDED_LATENCY_MS} ms",
            f"{added:.2f} ms",
            added <= GOAL_ADDED_LATENCY_MS,
        ),
        (f"added TTFB ≤ {GOAL_ADDED_TTFB_MS:g} ms", f"{ttfb:.2f} ms", ttfb <= GOAL_ADDED_TTFB_MS),
        (f"idle memory < {GOAL_IDLE_MB:g} MB", f"{idle:.0f} MB", idle < GOAL_IDLE_MB),
        (
            f"start-up < {GOAL_STARTUP_S:g} s",
            f"{ours.startup:.2f} s",
            ours.startup < GOAL_STARTUP_S,
        ),
        (
            f"throughput with the request and access logs ≥ {GOAL_LOGS_RATIO}x without",
            f"{logged:.2f}x",
            logged >= GOAL_LOGS_RATIO,
        ),
    ]


@dataclass(frozen=True)
class Options:
    duration: int
    rounds: int
    stream_samples: int
    litellm: str | None
    smoke: bool

    @property
    def budget(self) -> int:
        """Seconds the whole run may take: every wrk run with slack, streams, start-ups."""
        wrk_runs = 2 * 5 * self.rounds
        return (
            wrk_runs * (self.duration + 15) + self.stream_samples + 120 + 180 * bool(self.litellm)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per target and load")
    parser.add_argument("--quick", action="store_true", help="3 s runs")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--smoke", action="store_true", help="1 s runs, no LiteLLM: does it run")
    parser.add_argument("--litellm", default=LITELLM, help="the litellm command")
    parser.add_argument("--role", choices=["upstream", "proxy"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        _run_role(args.role, args.port, args.upstream)
        return 0
    if shutil.which("wrk") is None:
        print("bench_gateway: needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    options = Options(
        duration=1 if args.smoke else 3 if args.quick else max(1, args.duration),
        rounds=1 if args.smoke else max(1, args.rounds),
        stream_samples=10 if args.smoke else 100 if args.quick else 200,
        litellm=None if args.smoke or args.no_litellm else args.litellm,
        smoke=args.smoke,
    )
    return run_bounded(
        options.budget, "bench-gateway-", lambda tmp, processes: _run(options, tmp, processes)
    )


def run_bounded(
    budget: int,
    prefix: str,
    body: Callable[[Path, list[subprocess.Popen[bytes]]], int],
) -> int:
    """Run a benchmark's `body` in a temporary directory within `budget` seconds (SIGALRM),
    stopping every process it started, however it ends (a SIGTERM included)."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(budget)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            return body(Path(tmp), processes)
    finally:
        signal.alarm(0)
        for process in processes:
            stop(process)


def _run(options: Options, workdir: Path, processes: list[subprocess.Popen[bytes]]) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "LITELLM"))}
    me = [sys.executable, str(Path(__file__).resolve())]
    upstream = Target("upstream direct", free_port())
    ceiling = Target("minimal proxy", free_port())
    ours = Target("turnout", free_port())
    quiet = Target(LOGS_OFF, free_port())
    targets = [ceiling, ours, quiet]
    turnout_yaml, litellm_yaml = write_configs(workdir, upstream.port, ours.port, quiet.port)
    quiet_yaml = workdir / "turnout-quiet.yaml"
    upstream_base = f"http://127.0.0.1:{upstream.port}"
    launches: list[tuple[Target, list[str], dict[str, str], float]] = [
        (upstream, [*me, "--role", "upstream", "--port", str(upstream.port)], env, 30),
        (
            ceiling,
            [*me, "--role", "proxy", "--port", str(ceiling.port), "--upstream", upstream_base],
            env,
            30,
        ),
        (ours, [*turnout_command(), "serve", "--config", str(turnout_yaml)], env, 30),
        (quiet, [*turnout_command(), "serve", "--config", str(quiet_yaml)], env, 30),
    ]
    if options.litellm is not None:
        theirs = Target("LiteLLM", free_port())
        targets.append(theirs)
        if Path(options.litellm).exists() or shutil.which(options.litellm):
            litellm_env = {**env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
            command = [options.litellm, "--config", str(litellm_yaml), "--host", "127.0.0.1"]
            command += ["--port", str(theirs.port), "--num_workers", "1"]
            launches.append((theirs, command, litellm_env, 180))
        else:
            theirs.failure = f"{options.litellm} not found"
    for target, command, target_env, timeout in launches:
        started = time.monotonic()
        processes.append(start(target, command, workdir, target_env))
        wait_ready(target, started, timeout)
        if target.failure is not None:
            print(f"{target.name} failed to start: {target.failure}", file=sys.stderr)
            if target.name != "LiteLLM":
                return 1
    measure(targets, upstream, options, workdir)
    report(targets, upstream, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
