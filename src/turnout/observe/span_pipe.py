"""Finished spans leave the gateway through a pipe, to an exporter process of their own.

Encoding spans as OTLP protobuf and sending them over HTTP is Python work that, done in the
gateway (the SDK's `BatchSpanProcessor` thread), takes the event loop's core: under load it cost
the gateway a sixth of its time. Here the gateway only turns each finished span into a
`SpanRecord` and queues it; a writer thread sends batches of records as msgpack frames down a
pipe to ``python -m turnout.observe.span_exporter``, which rebuilds the SDK's spans and exports
them with the SDK's own exporter, on another core.

It keeps the batch processor's contract and its environment: ``OTEL_BSP_MAX_QUEUE_SIZE`` spans
wait at most (more are dropped, counted and logged), a batch leaves when it holds
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` spans or ``OTEL_BSP_SCHEDULE_DELAY`` milliseconds after the
last, `force_flush` returns once the exporter has exported everything before it, and `shutdown`
sends the rest, closes the pipe and waits (up to ``OTEL_BSP_EXPORT_TIMEOUT``) for the exporter
to export it and exit: a clean stop loses no span. Each gateway process (each worker) has its
own exporter, which ends with its pipe: it exits with the gateway, whichever way that goes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Final

import msgspec

from turnout.observe.span_records import (
    ACK_BYTES,
    EncodedBatch,
    Flush,
    Hello,
    SpanRecord,
    frame_encoder,
    framed,
)

logger = logging.getLogger("turnout.observe")

#: Seconds between two warnings about dropped spans.
_DROP_WARNING_EVERY: Final = 10.0


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """The batch processor's settings, from ``OTEL_BSP_*`` as the SDK reads them."""

    schedule_delay: float = 5.0
    max_batch: int = 512
    max_queue: int = 2048
    export_timeout: float = 30.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> BatchSettings:
        env = os.environ if environ is None else environ
        max_queue = _positive(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        return cls(
            schedule_delay=_positive(env, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000,
            max_batch=min(_positive(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), max_queue),
            max_queue=max_queue,
            export_timeout=_positive(env, "OTEL_BSP_EXPORT_TIMEOUT", 30000) / 1000,
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        logger.warning("%s=%r is not a positive integer: using %d", name, raw, default)
        return default
    return value


class SpanPipe:
    """The queue of finished spans, its writer thread and the exporter process."""

    def __init__(self, hello: Hello, exporter: str, settings: BatchSettings) -> None:
        self.settings = settings
        self._hello = hello
        self._exporter = exporter
        #: Ended spans, each already encoded (`EncodedBatch`).
        self._queue: deque[msgspec.Raw] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        #: Spans dropped since start (a full queue, or no exporter to send them to).
        self.dropped = 0
        self._dropped_reported = 0
        self._last_drop_warning = 0.0
        self._flush_lock = threading.Lock()
        self._flush_wanted = 0
        self._flush_sent = 0
        self._acked = 0
        self._ack_buffer = b""
        self._encoder = frame_encoder()
        self._encode = frame_encoder().encode
        self._process, self._ack_fd = self._spawn()
        self._writer = threading.Thread(target=self._run, name="turnout-span-pipe", daemon=True)
        self._writer.start()

    # ---- the gateway's side: cheap, on the event loop ------------------------------------

    def submit(self, record: SpanRecord) -> None:
        queue = self._queue
        if len(queue) >= self.settings.max_queue or self._closed:
            self.dropped += 1
            return
        queue.append(msgspec.Raw(self._encode(record)))
        if len(queue) >= self.settings.max_batch and not self._wake.is_set():
            self._wake.set()

    def force_flush(self, timeout: float | None = None) -> bool:
        """Whether every span submitted before the call was exported within `timeout`."""
        if self._closed:
            return True
        limit = self.settings.export_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._flush_lock:
            self._flush_wanted += 1
            token = self._flush_wanted
            self._wake.set()
            while self._acked < token:
                left = deadline - time.monotonic()
                if left <= 0 or not self._read_acks(left):
                    return False
        return True

    def shutdown(self) -> None:
        """Send what is queued, close the pipe and wait for the exporter to export it."""
        if self._closed:
            return
        self._stopping = True
        self._wake.set()
        self._writer.join(self.settings.export_timeout)
        self._closed = True
        process = self._process
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(self.settings.export_timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the span exporter did not finish in time: stopping it")
            process.kill()
            process.wait()
        os.close(self._ack_fd)
        self._report_drops(final=True)

    # ---- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        settings = self.settings
        while True:
            self._wake.wait(settings.schedule_delay)
            self._wake.clear()
            stopping = self._stopping
            while self._queue:
                self._send_batch()
            if self._flush_wanted > self._flush_sent:
                self._flush_sent = self._flush_wanted
                self._write(framed(self._encoder, Flush(self._flush_sent)), 0)
            self._report_drops()
            if stopping:
                return

    def _send_batch(self) -> None:
        queue = self._queue
        count = min(len(queue), self.settings.max_batch)
        spans = [queue.popleft() for _ in range(count)]
        self._write(framed(self._encoder, EncodedBatch(spans)), count)

    def _write(self, data: bytes, spans: int) -> None:
        """Write `data` to the exporter; if it is gone, start another and try once more."""
        for attempt in range(2):
            stdin = self._process.stdin
            try:
                assert stdin is not None
                stdin.write(data)
                stdin.flush()
                return
            except (OSError, ValueError):
                if attempt:
                    break
                logger.error(
                    "the span exporter exited (code %s): starting another",
                    self._process.poll(),
                )
                self._restart()
        self.dropped += spans

    def _restart(self) -> None:
        with contextlib.suppress(OSError):
            self._process.kill()
        self._process.wait()
        if self._process.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self._process.stdin.close()
        os.close(self._ack_fd)
        self._process, self._ack_fd = self._spawn()

    # ---- the exporter process -----------------------------------------------------------

    def _spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        ack_read, ack_write = os.pipe()
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "turnout.observe.span_exporter",
                    self._exporter,
                    str(ack_write),
                ],
                stdin=subprocess.PIPE,
                pass_fds=(ack_write,),
            )
        except BaseException:
            os.close(ack_read)
            raise
        finally:
            os.close(ack_write)
        stdin: IO[bytes] | None = process.stdin
        assert stdin is not None
        stdin.write(framed(self._encoder, self._hello))
        stdin.flush()
        return process, ack_read

    def _read_acks(self, timeout: float) -> bool:
        """Read what acknowledgements arrived within `timeout`; False when none could."""
        ready, _, _ = select.select([self._ack_fd], [], [], timeout)
        if not ready:
            return False
        data = os.read(self._ack_fd, 64 * ACK_BYTES)
        if not data:
            return False
        buffer = self._ack_buffer + data
        whole = len(buffer) - len(buffer) % ACK_BYTES
        for offset in range(0, whole, ACK_BYTES):
            self._acked = max(
                self._acked, int.from_bytes(buffer[offset : offset + ACK_BYTES], "big")
            )
        self._ack_buffer = buffer[whole:]
        return True

    def _report_drops(self, *, final: bool = False) -> None:
        dropped = self.dropped
        if dropped == self._dropped_reported:
            return
        now = time.monotonic()
        if not final and now - self._last_drop_warning < _DROP_WARNING_EVERY:
            return
        logger.warning(
            "%d spans dropped (%d in all): more finished than the exporter took "
            "(OTEL_BSP_MAX_QUEUE_SIZE=%d)",
            dropped - self._dropped_reported,
            dropped,
            self.settings.max_queue,
        )
        self._dropped_reported = dropped
        self._last_drop_warning = now
