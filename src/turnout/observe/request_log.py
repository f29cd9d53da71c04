"""The request log: one JSON line per request, written off the event loop.

`RequestLog` is a `RecordSink` (`turnout.observe.request_record`): each record goes to logger
``turnout.requests`` at INFO. A `LogWriter` gives that logger (and the access log's,
``turnout.access``) a queue and one writer thread, which a few times a second writes the lines
waiting, to standard output or appended to a file. While the writer is the logger's only
handler (the gateway's case), a line skips the logging module: it is encoded on the request's
path (msgspec, about a microsecond) and queued as bytes, with no log record to build and
nothing for the garbage collector to follow until it is written. A logger given other handlers
gets log records as usual, encoded by the writer's formatter.
Stopping the writer writes every line still queued, then flushes and closes the file: a gateway
that shuts down loses no line. Should the destination stop taking lines (a full disk, a pipe
nobody reads), at most `MAX_PENDING` wait; later ones are counted and dropped, never held.

The lines hold ids, names, numbers and error kinds, and a key only as its alias or the first
digits of its digest. A request's content is logged only when capture is on, and then each
part is cut to `CONTENT_LIMIT` characters.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import os
import sys
import threading
import time
from typing import NamedTuple, TextIO

import msgspec

from turnout.observe.request_record import RequestRecord

REQUESTS_LOGGER = "turnout.requests"
ACCESS_LOGGER = "turnout.access"
#: Characters of captured content kept per part (the messages' JSON, the answer's text).
CONTENT_LIMIT = 4096

_requests = logging.getLogger(REQUESTS_LOGGER)
_ENCODE = msgspec.json.Encoder().encode


class RequestLog:
    """Logs every record it is handed, on logger ``turnout.requests`` at INFO."""

    __slots__ = ()

    def on_record(self, record: RequestRecord) -> None:
        pending = direct_queue(_requests)
        if pending is not None:
            pending.put_nowait(Line(REQUESTS_LOGGER, encode_record(record)))
        elif _requests.isEnabledFor(logging.INFO):
            # The record itself is the message, for whatever handlers were given the logger.
            _requests.handle(info_record(REQUESTS_LOGGER, record, ()))


class Line(NamedTuple):
    """A line made on the request's path for a logger only the writer serves: no log record
    (a few microseconds each, and objects the collector would track until written)."""

    logger: str
    text: bytes


#: The running writer's queue and handler, by the name of each logger it serves.
_direct: dict[str, tuple[_Pending, logging.Handler]] = {}


def direct_queue(logger: logging.Logger) -> _Pending | None:
    """The writer's queue, when `logger`'s lines may skip the logging module: its only handler
    is the writer's, it has no filter and logs INFO. Else None: log a record as usual."""
    found = _direct.get(logger.name)
    if found is None:
        return None
    pending, handler = found
    handlers = logger.handlers
    if len(handlers) != 1 or handlers[0] is not handler or logger.filters or logger.disabled:
        return None
    return pending if logger.isEnabledFor(logging.INFO) else None


def encode_record(record: RequestRecord) -> bytes:
    """A request record's JSON line (without its end of line)."""
    if record.messages is not None or record.answer is not None:
        record = _shortened(record)
    return _ENCODE(record)


_PROCESS = os.getpid()


class _InfoRecord(logging.LogRecord):
    """A log record made for the hot path: `logging.LogRecord` also reads the calling thread's
    and process's names and the caller's frame (`Logger.info`), which these lines never show."""

    def __init__(self, name: str, msg: object, args: tuple[object, ...]) -> None:
        now = time.time_ns()
        self.name = name
        self.msg = msg
        self.args = args
        self.levelname = "INFO"
        self.levelno = logging.INFO
        self.pathname = self.filename = self.module = ""
        self.exc_info = None
        self.exc_text = None
        self.stack_info = None
        self.lineno = 0
        self.funcName = ""
        self.created = now / 1e9
        self.msecs = (now % 1_000_000_000) // 1_000_000
        self.relativeCreated = 0.0
        self.thread = None
        self.threadName = None
        self.processName = None
        self.process = _PROCESS
        self.taskName = None


def info_record(name: str, msg: object, args: tuple[object, ...]) -> logging.LogRecord:
    """An INFO record for logger `name`, to hand to ``Logger.handle``."""
    return _InfoRecord(name, msg, args)


class JsonLineFormatter(logging.Formatter):
    """A request record as one JSON line; any other message as ``{"time", "message"}``."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.msg
        if isinstance(message, RequestRecord):
            return encode_record(message).decode()
        return _ENCODE({"time": self.formatTime(record), "message": record.getMessage()}).decode()


def _shortened(record: RequestRecord) -> RequestRecord:
    messages = record.messages
    if messages is not None and not isinstance(messages, str):
        messages = _ENCODE(messages).decode()
    return msgspec.structs.replace(record, messages=_cut(messages), answer=_cut(record.answer))


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= CONTENT_LIMIT:
        return text
    return text[: CONTENT_LIMIT - 1] + "…"


class _Pending:
    """Records waiting for the writer: appended by whoever logs, taken in batches by the
    writer, which wakes every `WRITE_INTERVAL` or as soon as `WAKE_AT` records wait.

    A queue that woke the writer at every record would have the writer thread take the
    interpreter's lock once per line, in the middle of the event loop's work: on a busy
    gateway that costs more than the lines themselves. Appending to a deque needs no lock.
    """

    def __init__(self) -> None:
        self.records: collections.deque[logging.LogRecord | Line] = collections.deque()
        self.wake = threading.Event()
        #: Records dropped because `MAX_PENDING` were waiting.
        self.dropped = 0

    def put_nowait(self, record: logging.LogRecord | Line) -> None:
        records = self.records
        waiting = len(records)
        if waiting >= MAX_PENDING:
            self.dropped += 1
            return
        records.append(record)
        if waiting + 1 == WAKE_AT:
            self.wake.set()

    def take(self) -> list[logging.LogRecord | Line]:
        records = self.records
        taken = []
        while records:
            taken.append(records.popleft())
        return taken


class _Enqueue(logging.handlers.QueueHandler):
    """Puts the record on the pending records as it is: no formatting on the caller's thread
    (the standard handler formats first, which would encode the JSON on the event loop)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: appending to the pending records is safe from any thread.
        self.queue.put_nowait(record)
        return True


class _Standard(logging.StreamHandler[TextIO]):
    """Writes to the process's standard output or error as it is at each line (a test runner
    or a daemon may swap them)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property
    def stream(self) -> TextIO:
        return sys.stdout if self._name == "stdout" else sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


#: Seconds between the writer's rounds when few lines come: a line reaches its file within
#: about this long.
WRITE_INTERVAL = 0.1
#: Lines waiting that wake the writer before its round is due.
WAKE_AT = 2048
#: Lines waiting at most (a few hundred bytes each, and a record until written).
MAX_PENDING = 100_000


class _Writer(threading.Thread):
    """The writer thread: every round, formats the pending records with their logger's
    handler's formatter and writes them with one call and one flush per destination. Once
    stopped, it writes what is pending and ends."""

    def __init__(self, pending: _Pending, routes: dict[str, logging.Handler]) -> None:
        super().__init__(name="turnout-log-writer", daemon=True)
        self._pending = pending
        self._routes = routes
        self.stopping = False

    def run(self) -> None:
        pending = self._pending
        while True:
            pending.wake.wait(WRITE_INTERVAL)
            pending.wake.clear()
            stopping = self.stopping
            records = pending.take()
            if records:
                self._write(records)
            if stopping:
                return

    def _write(self, records: list[logging.LogRecord | Line]) -> None:
        lines: dict[logging.Handler, list[str]] = {}
        for record in records:
            if isinstance(record, Line):
                handler = self._routes.get(record.logger)
                if handler is not None:
                    lines.setdefault(handler, []).append(record.text.decode())
                continue
            handler = self._routes.get(record.name)
            if handler is None:
                continue
            try:
                lines.setdefault(handler, []).append(handler.format(record))
            except Exception:
                handler.handleError(record)
        for handler, texts in lines.items():
            write_lines(handler, texts)


def write_lines(handler: logging.Handler, texts: list[str]) -> None:
    """Write formatted lines through a stream handler at once, flushed once."""
    if not isinstance(handler, logging.StreamHandler):  # pragma: no cover - only streams here
        return
    handler.acquire()
    try:
        handler.stream.write("\n".join(texts) + "\n")
        handler.stream.flush()
    except Exception:
        handler.handleError(logging.makeLogRecord({"msg": "a log write failed"}))
    finally:
        handler.release()


class LogWriter:
    """One writer thread for the request and access logs of this process.

    `route` gives a logger its destination (``stdout``, ``stderr`` or a file path, appended)
    and its formatter; `start` attaches the queue to those loggers (which then no longer
    propagate to the root's handlers: their lines are written once, where configured);
    `stop` writes what is queued, flushes, closes files and detaches.
    """

    def __init__(self) -> None:
        self._pending = _Pending()
        self._routes: dict[str, logging.Handler] = {}
        self._listener: _Writer | None = None
        self._enqueue = _Enqueue(self._pending)  # type: ignore[arg-type]  # only put_nowait
        self._lock = threading.Lock()

    def route(self, logger_name: str, destination: str, formatter: logging.Formatter) -> None:
        handler: logging.Handler
        if destination in ("stdout", "stderr"):
            handler = _Standard(destination)
        else:
            handler = logging.FileHandler(destination, mode="a", encoding="utf-8")
        handler.setFormatter(formatter)
        self._routes[logger_name] = handler

    @property
    def running(self) -> bool:
        return self._listener is not None

    @property
    def dropped(self) -> int:
        """Lines dropped because the destination fell `MAX_PENDING` lines behind."""
        return self._pending.dropped

    def start(self) -> None:
        with self._lock:
            if self._listener is not None or not self._routes:
                return
            self._listener = _Writer(self._pending, self._routes)
            self._listener.start()
            for name in self._routes:
                logger = logging.getLogger(name)
                logger.setLevel(logging.INFO)
                logger.propagate = False
                logger.addHandler(self._enqueue)
                _direct[name] = (self._pending, self._enqueue)

    def stop(self) -> None:
        """Write every queued line, then flush and close the destinations."""
        with self._lock:
            listener, self._listener = self._listener, None
            if listener is None:
                return
            for name in self._routes:
                logger = logging.getLogger(name)
                logger.removeHandler(self._enqueue)
                if _direct.get(name, (None, None))[1] is self._enqueue:
                    del _direct[name]
                if not any(isinstance(h, _Enqueue) for h in logger.handlers):
                    logger.propagate = True
            listener.stopping = True  # it writes what is pending, then ends
            self._pending.wake.set()
            listener.join()
            for handler in self._routes.values():
                handler.flush()
                handler.close()
