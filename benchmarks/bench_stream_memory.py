"""Stream memory benchmark: what one long streamed answer costs the gateway in RSS.

Run: ``python benchmarks/bench_stream_memory.py`` (``--text-mb`` of answer text, default 20;
``--piece`` characters of text per event, default 64; ``--stalled`` clients that stop reading,
default 10; ``--quick`` for a 2 MB answer and the smoke test; ``--compare-src DIR`` to measure,
in the same run and against the same upstream program, a gateway run from another source tree's
``src``, e.g. an export of another branch).

What it does, every process on 127.0.0.1 and started (and stopped) by this script:

- a fake OpenAI upstream, written here, in its own process: a raw asyncio protocol answering
  every POST with one long ``chat.completion.chunk`` stream (``max_tokens`` in the body caps its
  events, for the warm-up), written as fast as its socket takes it and no faster (it honours
  the transport's flow control), so that its count of bytes written per stream (``GET
  /progress``) is how far each stream got;
- the gateway, ``turnout serve`` with stream failover on (the default), one worker;
- one fast reader: a client that reads the whole stream as it comes. Figures: the gateway's peak
  RSS over its RSS before the stream (sampled every 20 ms, and VmHWM after clearing it), the
  ratio of that growth to the answer's text, and the relay's rate;
- then ``--stalled`` clients that read the response headers and the first event, then nothing:
  once the upstream's progress stops moving, the gateway's RSS growth per stalled stream, its
  ratio to the text of what each stream had sent, and how much of the answer the upstream
  managed to write per stream (the rest waits on the client).

RSS figures include the allocator's reuse of freed memory: compare them within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, cast

MODEL = "gpt-4o-mini"
PATH = "/v1/chat/completions"
_MB = 1_000_000
#: Bytes of events per write of the upstream (one HTTP chunk).
_BATCH = 64 * 1024
_MAX_TOKENS = re.compile(rb'"max_tokens"\s*:\s*(\d+)')


# ---- the upstream (its own process: --role upstream) -----------------------------------------


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _envelope(choices: list[dict[str, object]]) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": choices,
    }


def _content(text: str, finish: str | None = None) -> bytes:
    delta = {"content": text} if finish is None else {}
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _event(_envelope([choice]))


@dataclass
class StreamShape:
    """The upstream's answer: `events` events of `piece` characters of text each."""

    events: int
    piece: int

    @property
    def text_bytes(self) -> int:
        return self.events * self.piece

    @property
    def wire_bytes(self) -> int:
        """Bytes of the events (without the HTTP chunk framing)."""
        return self.events * len(_content("x" * self.piece)) + len(_closing())


def _closing() -> bytes:
    usage = {**_envelope([]), "usage": {"prompt_tokens": 8, "completion_tokens": 1}}
    return _content("", "stop") + _event(usage) + b"data: [DONE]\n\n"


class _Upstream(asyncio.Protocol):
    """One connection: HTTP/1.1 requests in turn; a POST gets the long stream, written only
    while the transport is not paused; ``GET /progress`` gets the bytes written per stream."""

    #: Bytes of events written, per stream in the order they started.
    progress: ClassVar[list[int]] = []

    def __init__(self, shape: StreamShape) -> None:
        self._shape = shape
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._paused = False
        self._left = 0
        self._stream = -1
        filler = "abcdefghijklmnopqrstuvwxyz .,ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        text = (filler * (shape.piece // len(filler) + 1))[: shape.piece]
        self._event = event = _content(text)
        self._per_batch = max(1, _BATCH // len(event))
        self._batch = event * self._per_batch

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._left = 0

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._write()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0 or self._left:
            return
        head = self._buffer[:head_end].lower()
        at = head.find(b"\r\ncontent-length:")
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end >= 0 else None]) if at >= 0 else 0
        if len(self._buffer) < head_end + 4 + length:
            return
        body = self._buffer[head_end + 4 : head_end + 4 + length]
        self._buffer = self._buffer[head_end + 4 + length :]
        assert self._transport is not None
        if head.startswith(b"get /progress"):
            answer = json.dumps(_Upstream.progress).encode()
            self._transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(answer), answer)
            )
            self._transport.close()
            return
        cap = _MAX_TOKENS.search(body)
        self._left = min(self._shape.events, int(cap.group(1))) if cap else self._shape.events
        self._stream = len(_Upstream.progress)
        _Upstream.progress.append(0)
        self._send(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        self._write()

    def _write(self) -> None:
        while self._left and not self._paused:
            if self._left >= self._per_batch:
                events, self._left = self._batch, self._left - self._per_batch
            else:
                events, self._left = self._event * self._left, 0
            self._chunk(events)
            if not self._left:
                self._chunk(_closing())
                self._send(b"0\r\n\r\n")

    def _chunk(self, payload: bytes) -> None:
        self._send(b"%x\r\n%s\r\n" % (len(payload), payload))
        _Upstream.progress[self._stream] += len(payload)

    def _send(self, data: bytes) -> None:
        assert self._transport is not None
        if not self._transport.is_closing():
            self._transport.write(data)


async def _serve_upstream(port: int, shape: StreamShape) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Upstream(shape), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# ---- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-6:]) or "(empty log)"


def start(name: str, command: list[str], port: int, workdir: Path, env: dict[str, str]) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return Process(name, port, popen, log)


def stop(process: Process) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=5)
            return


def wait_listening(process: Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited: {process.tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", process.port)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{process.name} did not start: {process.tail()}")


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / _MB
    return 0.0


def clear_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux; harmless where refused)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


class PeakSampler:
    """The highest RSS of a process seen while it runs, sampled from a thread."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = rss_mb(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self._pid), rss_mb(self._pid, "VmHWM"))

    def _run(self) -> None:
        while not self._done.wait(0.02):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mb(self._pid))


# ---- clients ---------------------------------------------------------------------------------


def _request(port: int, max_tokens: int | None = None) -> bytes:
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write at length"}],
        "stream": True,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    data = json.dumps(body).encode()
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n\r\n"
    ).encode() + data


def read_whole_stream(port: int, max_tokens: int | None = None) -> int:
    """A fast reader: the whole response, as it comes; the bytes read (checked to be complete)."""
    received = 0
    tail = b""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(_request(port, max_tokens))
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += len(data)
            tail = (tail + data)[-64:]
            if tail.endswith(b"0\r\n\r\n") and b"[DONE]" in tail:
                break
    if b"[DONE]" not in tail:
        raise RuntimeError("the stream through the gateway did not complete")
    return received


def stalled_client(port: int) -> socket.socket:
    """A client that reads the headers and the first event, then nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(_request(port))
    seen = b""
    while b"data: " not in seen:
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("the gateway closed a stalled client's stream at once")
        seen += data
    return sock


def progress(port: int) -> list[int]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /progress HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return cast(list[int], json.loads(data.split(b"\r\n\r\n", 1)[1]))


def settled_progress(port: int, streams: int, timeout: float = 60.0) -> list[int]:
    """The upstream's progress on the last `streams` streams, once it stopped moving."""
    deadline = time.monotonic() + timeout
    last: list[int] = []
    quiet = 0
    while quiet < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
        now = progress(port)[-streams:]
        quiet = quiet + 1 if now == last and len(now) == streams else 0
        last = now
    return last


# ---- the run ---------------------------------------------------------------------------------


@dataclass
class Figures:
    name: str
    fast_growth_mb: float = 0.0
    fast_seconds: float = 0.0
    stalled_growth_mb: float = 0.0
    stalled_sent_mb: list[float] = field(default_factory=list)


def write_config(workdir: Path, name: str, gateway: int, upstream: int) -> Path:
    config = {
        "server": {"port": gateway, "workers": 1, "log_level": "warning", "shutdown_timeout": 1},
        "stream_failover": True,
        "model_list": [
            {
                "model_name": MODEL,
                "provider": "openai-compatible",
                "model": MODEL,
                "base_url": f"http://127.0.0.1:{upstream}/v1",
                "api_key": "sk-bench",
            }
        ],
    }
    path = workdir / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def measure(
    name: str, src: Path | None, shape: StreamShape, stalled: int, workdir: Path
) -> Figures:
    """One gateway version (this checkout's, or the one in `src`) against a fresh upstream: a
    fresh gateway process for each phase, so that memory one phase freed does not hide the
    next phase's growth."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    stem = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    upstream_port = free_port()
    role = [sys.executable, __file__, "--role", "upstream", "--port", str(upstream_port)]
    role += ["--events", str(shape.events), "--piece", str(shape.piece)]
    upstream = start(f"upstream-{stem}", role, upstream_port, workdir, env)
    figures = Figures(name)
    try:
        wait_listening(upstream)
        with _gateway(f"{stem}-fast", upstream_port, workdir, env) as (pid, port):
            before = rss_mb(pid)
            clear_peak(pid)
            started = time.monotonic()
            with PeakSampler(pid) as sampler:
                read_whole_stream(port)
            figures.fast_seconds = time.monotonic() - started
            figures.fast_growth_mb = sampler.peak - before
        with _gateway(f"{stem}-stalled", upstream_port, workdir, env) as (pid, port):
            before = rss_mb(pid)
            clients = [stalled_client(port) for _ in range(stalled)]
            try:
                sent = settled_progress(upstream_port, stalled)
                figures.stalled_growth_mb = rss_mb(pid) - before
                figures.stalled_sent_mb = [value / _MB for value in sent]
            finally:
                for client in clients:
                    client.close()
    finally:
        stop(upstream)
    return figures


@contextlib.contextmanager
def _gateway(
    stem: str, upstream_port: int, workdir: Path, env: dict[str, str]
) -> Iterator[tuple[int, int]]:
    """A gateway process, warmed up (imports, pools, allocator); its pid and port."""
    port = free_port()
    config = write_config(workdir, stem, port, upstream_port)
    serve = [sys.executable, "-m", "turnout.cli", "serve", "--config", str(config)]
    gateway = start(f"gateway-{stem}", serve, port, workdir, env)
    try:
        wait_listening(gateway)
        for _ in range(3):
            read_whole_stream(port, max_tokens=2000)
        time.sleep(0.3)
        yield gateway.popen.pid, port
    finally:
        stop(gateway)


def report(runs: list[Figures], shape: StreamShape, stalled: int, quick: bool) -> None:
    text_mb, wire_mb = shape.text_bytes / _MB, shape.wire_bytes / _MB
    print(
        f"\n## Gateway memory per stream (answer: {text_mb:.1f} MB of text in "
        f"{shape.events:,} events of {shape.piece} characters, {wire_mb:.1f} MB on the wire; "
        "stream failover on)\n"
    )
    print(
        "| gateway | fast reader: RSS growth MB | / text | relay MB/s "
        f"| {stalled} stalled: RSS growth MB per stream | / text sent "
        "| upstream sent per stream MB (of the answer) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        per_stream = run.stalled_growth_mb / max(1, stalled)
        sent_mb = sum(run.stalled_sent_mb) / max(1, len(run.stalled_sent_mb))
        sent_text = sent_mb * shape.text_bytes / shape.wire_bytes
        print(
            f"| {run.name} | {run.fast_growth_mb:.1f} | {run.fast_growth_mb / text_mb:.2f}x "
            f"| {wire_mb / run.fast_seconds:.1f} | {per_stream:.2f} "
            f"| {per_stream / sent_text if sent_text else float('nan'):.2f}x "
            f"| {sent_mb:.2f} ({sent_mb / wire_mb:.0%}) |"
        )
    print(
        "\nRSS growth: peak RSS during the fast stream over RSS before it; for the stalled "
        "clients, RSS once the upstream stopped moving over RSS before they connected. "
        "'/ text sent': per-stream growth over the text the upstream had sent by then."
    )
    if quick:
        print("\n(--quick: a short answer; the figures are indicative only)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--role", choices=["upstream"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--text-mb", type=float, default=20.0, help="MB of answer text")
    parser.add_argument("--piece", type=int, default=64, help="characters of text per event")
    parser.add_argument("--stalled", type=int, default=10, help="clients that stop reading")
    parser.add_argument("--quick", action="store_true", help="a 2 MB answer (smoke test)")
    parser.add_argument(
        "--compare-src",
        type=Path,
        help="also measure the gateway whose package is in this directory (e.g. an export's src)",
    )
    options = parser.parse_args(argv)
    if options.role == "upstream":
        shape = StreamShape(options.events, options.piece)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_upstream(options.port, shape))
        return 0
    text_mb = 2.0 if options.quick else options.text_mb
    shape = StreamShape(max(1, int(text_mb * _MB) // options.piece), options.piece)
    versions: list[tuple[str, Path | None]] = [("this checkout", None)]
    if options.compare_src is not None:
        versions.append((f"{options.compare_src}", options.compare_src.resolve()))
    with tempfile.TemporaryDirectory(prefix="bench-stream-memory-") as tmp:
        runs = [measure(name, src, shape, options.stalled, Path(tmp)) for name, src in versions]
    report(runs, shape, options.stalled, options.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
