"""The request log: one JSON line per request, written off the event loop.

`RequestLog` is a `RecordSink` (`turnout.observe.request_record`): each record goes to the
standard logging module, logger ``turnout.requests`` at INFO, as the record itself. A
`LogWriter` gives that logger (and the access log's, ``turnout.access``) a queue: the request's
path pays for a log record and a queue put, and one writer thread encodes the JSON (msgspec)
and writes it, to standard output or appended to a file. Stopping the writer writes every
line still queued, then flushes and closes the file: a gateway that shuts down loses no line.

The lines hold ids, names, numbers and error kinds, and a key only as its alias or the first
digits of its digest. A request's content is logged only when capture is on, and then each
part is cut to `CONTENT_LIMIT` characters.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import threading
from typing import TextIO

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
        if _requests.isEnabledFor(logging.INFO):
            # The record itself is the message: encoded by the handler, off the event loop.
            # Made directly: `Logger.info` would look up its caller's frame first.
            _requests.handle(
                _requests.makeRecord(REQUESTS_LOGGER, logging.INFO, "", 0, record, (), None)
            )


class JsonLineFormatter(logging.Formatter):
    """A request record as one JSON line; any other message as ``{"time", "message"}``."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.msg
        if isinstance(message, RequestRecord):
            if message.messages is not None or message.answer is not None:
                message = _shortened(message)
            return _ENCODE(message).decode()
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


class _Enqueue(logging.handlers.QueueHandler):
    """Puts the record on the queue as it is: no formatting on the caller's thread (the
    standard handler formats first, which would encode the JSON on the event loop)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


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


class _ByLogger(logging.Handler):
    """The writer thread's one handler: each record to the handler of its logger."""

    def __init__(self, routes: dict[str, logging.Handler]) -> None:
        super().__init__()
        self.routes = routes

    def handle(self, record: logging.LogRecord) -> bool:
        handler = self.routes.get(record.name)
        if handler is not None:
            handler.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() routes
        self.handle(record)


class LogWriter:
    """One writer thread for the request and access logs of this process.

    `route` gives a logger its destination (``stdout``, ``stderr`` or a file path, appended)
    and its formatter; `start` attaches the queue to those loggers (which then no longer
    propagate to the root's handlers: their lines are written once, where configured);
    `stop` writes what is queued, flushes, closes files and detaches.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._routes: dict[str, logging.Handler] = {}
        self._listener: logging.handlers.QueueListener | None = None
        self._enqueue = _Enqueue(self._queue)
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

    def start(self) -> None:
        with self._lock:
            if self._listener is not None or not self._routes:
                return
            self._listener = logging.handlers.QueueListener(self._queue, _ByLogger(self._routes))
            self._listener.start()
            for name in self._routes:
                logger = logging.getLogger(name)
                logger.setLevel(logging.INFO)
                logger.propagate = False
                logger.addHandler(self._enqueue)

    def stop(self) -> None:
        """Write every queued line, then flush and close the destinations."""
        with self._lock:
            listener, self._listener = self._listener, None
            if listener is None:
                return
            for name in self._routes:
                logger = logging.getLogger(name)
                logger.removeHandler(self._enqueue)
                if not any(isinstance(h, _Enqueue) for h in logger.handlers):
                    logger.propagate = True
            listener.stop()  # drains the queue before it returns
            for handler in self._routes.values():
                handler.flush()
                handler.close()
