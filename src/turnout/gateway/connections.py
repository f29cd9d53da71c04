"""Client connections: how long each may take, and how many may be open at once.

aiohttp closes a connection only when it has been idle for its keep-alive timeout; a client
that sends its headers or its body a byte at a time holds the connection (and a file
descriptor) for as long as it likes. `ConnectionGuard` is the protocol factory the listening
socket uses instead of aiohttp's: every connection is a `GatewayProtocol` (aiohttp's request
handler plus a phase and the time it began), and one timer per guard sweeps them all a few
times per timeout. The hot path pays a couple of attribute writes per request and no timer of
its own; the sweep costs a fraction of a microsecond per open connection per tick.

The phases and their limits:

- waiting for a request's line and headers: ``header_timeout``, counted from the connection's
  start, or on a kept-alive connection from the next request's first byte (the wait for that
  first byte is aiohttp's keep-alive timeout); the connection is closed, nothing is answered.
  Bytes of the next request that arrive with or during the previous one (in the packet that
  ends it, during its body, while it is handled) start that count as well;
- receiving the body: ``body_timeout`` plus one second for every ``body_min_rate`` bytes
  received; the handler's read then fails, the client gets a 408 and the connection is closed;
- handling the request: no limit here (the router's deadlines bound it).

At ``max_connections`` the connection that has waited longest for a request (silent, half
sent, or idle between requests), or whose body has fallen behind ``body_min_rate`` after a
second's grace, is closed to make room, so neither silent sockets nor headers without their
body can lock real clients out. The guard keeps these candidates in arrival order and checks
them from the front, so making room costs the same whatever the number of connections. Only
when every connection is busy with a request does a new one get a 503 at once: it costs no
file descriptor beyond the accept, and the client (the OpenAI SDK retries 503) backs off or
tries another replica instead of waiting unseen in the listen queue.

On shutdown the sweep keeps running until the last connection is gone, so a stalled body still
gets its 408 (at once, if it is behind ``body_min_rate``) instead of holding the drain for the
whole shutdown timeout.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Final, cast

from aiohttp import hdrs, web
from aiohttp.http import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict, CIMultiDictProxy

from turnout.config.server import ServerConfig
from turnout.errors import InvalidRequestError
from turnout.gateway import framing
from turnout.gateway.access_log import log_access
from turnout.gateway.request_ids import fresh_id_headers

logger = logging.getLogger("turnout.gateway")

#: Phases of a connection, as the sweep sees them.
_IDLE: Final = 0  # kept alive between requests, nothing received (aiohttp's keep-alive timer)
_HEAD: Final = 1  # waiting for a request line and headers
_BODY: Final = 2  # a request is being handled and its body is still arriving
_BUSY: Final = 3  # a request is being handled, its body (if any) complete
_EXPIRED: Final = 4  # the body timed out: the handler was told, the connection is closing
_EVICTED: Final = 5  # closed to make room before it was even connected

#: After a refusal of a request whose body was not read, how long to keep reading (and
#: discarding) that body so a client still sending gets to see the answer.
_LINGER_SECONDS: Final = 5.0
#: How long a handler told that its body timed out may take to answer before the connection
#: is closed without an answer.
_EXPIRY_GRACE: Final = 1.0
#: Least time between two log lines about the connection cap.
_REPORT_INTERVAL: Final = 10.0
#: How long a body may arrive below ``body_min_rate`` before it counts as stalled (a client
#: computing or compressing its body, a slow start) and may be closed to make room.
_BODY_GRACE: Final = 1.0
#: After a 503 for the connection cap, how long to keep the connection to read and drop the
#: request the client may be sending: closing with unread input resets the connection, and the
#: reset can destroy the 503 before the client reads it.
_REFUSAL_LINGER: Final = 1.0
#: Refused connections lingering at once; past this, a refusal closes at once (a flood of
#: refusals must not hold more descriptors than this).
_MAX_LINGERING_REFUSALS: Final = 64


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The limits in force, read by the guard at every accept and every sweep."""

    header_timeout: float
    body_timeout: float
    body_min_rate: int
    keepalive_timeout: float
    max_connections: int

    @classmethod
    def of(cls, server: ServerConfig) -> ConnectionLimits:
        return cls(
            header_timeout=server.header_timeout,
            body_timeout=server.body_timeout,
            body_min_rate=server.body_min_rate,
            keepalive_timeout=server.keepalive_timeout,
            max_connections=server.max_connections or default_max_connections(),
        )

    @property
    def tick(self) -> float:
        """Seconds between sweeps: a quarter of the shortest timeout, within [20 ms, 1 s]."""
        return max(0.02, min(1.0, min(self.header_timeout, self.body_timeout) / 4))


#: The most connections one process holds by default, whatever its file limit: well past what
#: one event loop serves, and a bound on the memory silent sockets can pin.
DEFAULT_CONNECTION_CEILING = 10_000


def default_max_connections() -> int:
    """Half the process's open-file limit (a client connection may need an upstream one too),
    at most `DEFAULT_CONNECTION_CEILING`."""
    try:
        import resource
    except ImportError:  # pragma: no cover - no file limits to read (Windows)
        return 512
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(8, min(soft // 2, DEFAULT_CONNECTION_CEILING))


class RequestBodyTimeoutError(InvalidRequestError):
    """The client did not send its request body in time."""

    status = 408
    openai_code = "request_timeout"


class GatewayProtocol(RequestHandler):
    """aiohttp's request handler, with the phase the guard's sweep reads, and errors in the
    framing of a request answered in OpenAI's shape without echoing what was sent."""

    __slots__ = ("_chunked", "_early", "_guard", "_payload", "_phase", "_since", "_started")

    def __init__(self, server: web.Server, guard: ConnectionGuard, limits: ConnectionLimits):
        super().__init__(
            server,
            loop=guard.loop,
            keepalive_timeout=limits.keepalive_timeout,
            access_log=None,  # type: ignore[arg-type]  # aiohttp: None turns access logs off
            max_line_size=framing.MAX_REQUEST_LINE,
            max_field_size=framing.MAX_HEADER_FIELD,
            max_headers=framing.MAX_HEADERS,
            lingering_time=_LINGER_SECONDS,
        )
        self._guard = guard
        # aiohttp times a request (the start it hands `log_access`) only when it logs access
        # itself; it has no access logger here, so this only turns the timing on.
        self._logging_enabled = guard.access_log
        self._phase = _HEAD
        self._since = guard.loop.time()
        self._payload: StreamReader | None = None
        self._early: float | None = None
        self._chunked = False
        #: When the request being handled began (`time.perf_counter`), for its access line.
        self._started: float | None = None

    # -- the phases ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._phase == _EVICTED:
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.forget(self)
        lingering = self._payload
        super().connection_lost(exc)
        if lingering is not None and self._phase <= _HEAD:
            # aiohttp reads the unread rest of a refused body for a while; with the client
            # gone, nothing more will come: end that wait now rather than at its timeout.
            lingering.feed_eof()

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase == _BUSY:
            if data and self._early is None:
                self._early = self._loop.time()  # the next request began before this one ended
            super().data_received(data)
        elif phase == _BODY:
            self._body_received(data)
        else:
            # Bytes of a refused body that aiohttp is still reading and dropping start no request.
            if phase == _IDLE and data and (self._payload is None or self._payload.is_eof()):
                self._phase = _HEAD
                self._since = self._loop.time()
            queued = self._messages
            super().data_received(data)
            if queued and self._early is None:
                # Cheap test first: data that ends with the last request's head and body.
                message, payload = queued[-1]
                end = len(data) - payload.total_bytes
                if (
                    end >= 4
                    and not data.startswith(b"\r\n\r\n", end - 4)
                    and _runs_past_request(message, payload)
                ):
                    self._early = self._loop.time()

    def _body_received(self, data: bytes) -> None:
        """Feed bytes that arrive while a body is expected, and note the start of the next
        request among them: bytes beyond what the body took, once the body is complete."""
        payload = self._payload
        if payload is None:
            super().data_received(data)
            return
        before = payload.total_bytes
        super().data_received(data)
        if (
            self._early is None
            and payload.is_eof()
            and not self._chunked  # a chunked body's framing is not counted in total_bytes
            and len(data) > payload.total_bytes - before
        ):
            self._early = self._loop.time()

    def request_started(self, payload: StreamReader, chunked: bool) -> None:
        """The request's head is complete (called by the guard's request factory)."""
        if self._guard.access_log:
            self._started = perf_counter()
        if payload.is_eof():
            self._phase = _BUSY
        else:
            self._phase = _BODY
            self._since = self._loop.time()
            self._payload = payload
            self._chunked = chunked

    def log_access(self, request: Any, response: Any, time: float | None) -> None:
        # aiohttp calls this once the response has been written, whatever happened.
        if self._early is None:
            self._phase = _IDLE
        else:
            self._phase = _HEAD
            self._since = self._early
            self._early = None
        payload = request.content
        self._payload = None if payload.is_eof() else payload
        if payload.exception() is not None:
            # The body failed (timed out, undecodable, client gone): nothing more can be read
            # from this connection, and lingering over it would only raise again.
            self.force_close()
        else:
            self._guard.touch(self)
        if self._guard.access_log:
            started, self._started = self._started, None
            if started is not None:
                log_access(request, response, perf_counter() - started)
            elif time is not None:  # a request refused as it was parsed: the loop's coarse time
                log_access(request, response, self._loop.time() - time)

    def evictable(self, now: float, limits: ConnectionLimits) -> bool:
        """Whether the connection may be closed to make room: it waits for a request, or its
        body has stalled."""
        phase = self._phase
        return phase <= _HEAD or (phase == _BODY and self._stalled(now, limits))

    def _stalled(self, now: float, limits: ConnectionLimits) -> bool:
        """Whether the body, past its grace, has arrived slower than ``body_min_rate``."""
        payload = self._payload
        if payload is None or payload.is_eof():
            return False
        late = now - self._since - _BODY_GRACE
        return late > 0 and payload.total_bytes < late * limits.body_min_rate

    def check(self, now: float, limits: ConnectionLimits, draining: bool) -> bool:
        """Enforce the limit of the current phase (called by the guard's sweep); whether the
        connection is a candidate to close at the cap."""
        phase = self._phase
        if phase <= _HEAD and draining and self.transport is not None:
            self.force_close()  # aiohttp closes these too; do not wait for the header timeout
        elif phase == _HEAD:
            if now - self._since > limits.header_timeout:
                logger.debug("closing a connection that sent no complete request in time")
                if self.transport is None:  # never connected: nothing will report its end
                    self._guard.forget(self)
                self.force_close()
        elif phase == _BODY:
            payload = self._payload
            if payload is None or payload.is_eof():
                self._phase = _BUSY
                return False
            stalled = self._stalled(now, limits)
            allowed = limits.body_timeout + payload.total_bytes / limits.body_min_rate
            if now - self._since > allowed or (draining and stalled):
                self._phase = _EXPIRED
                payload.set_exception(
                    RequestBodyTimeoutError(
                        f"The request body did not arrive in time ({payload.total_bytes} bytes "
                        f"in {now - self._since:.1f} s)"
                    )
                )
                self._since = now
                return False
            return stalled
        elif phase == _EXPIRED and now - self._since > _EXPIRY_GRACE:
            self.force_close()
        return False

    def evict(self) -> None:
        self._phase = _EVICTED
        self.force_close()

    # -- malformed requests ----------------------------------------------------------------

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; no error answer can follow it")
        status, text = framing.describe(status, exc)
        if status >= 500:
            logger.error("failed to handle a request: %s", text, exc_info=exc)
        else:
            logger.debug("refused a malformed request: %d %s", status, text)
        response = framing.error_response(status, text)
        response.headers.update(fresh_id_headers())
        return response


class ConnectionGuard:
    """The protocol factory of the listening socket: admits, tracks and times connections."""

    def __init__(
        self,
        server: web.Server,
        limits: Callable[[], ConnectionLimits],
        loop: asyncio.AbstractEventLoop,
        *,
        access_log: bool = False,
    ) -> None:
        self.loop = loop
        #: Whether each answered request gets an access log line (`turnout.gateway.access_log`).
        self.access_log = access_log
        self._server = server
        self._limits = limits
        #: Open connections.
        self._live: dict[GatewayProtocol, None] = {}
        #: Candidates to close at the cap, in the order they became one. Entries that stopped
        #: being candidates (a request began) are dropped only when they reach the front.
        self._waiting: dict[GatewayProtocol, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._draining = False
        #: Refused connections reading and dropping their request before they close.
        self.lingering: set[asyncio.BaseTransport] = set()
        self._evicted = 0
        self._refused = 0
        self._reported_at = -math.inf
        make_request = server.request_factory

        def started(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> Any:
            protocol.request_started(payload, message.chunked)
            if hdrs.EXPECT in message.headers:
                message = _without_unknown_expectation(message)
            return make_request(message, payload, protocol, writer, task)

        server.request_factory = started

    @property
    def open_connections(self) -> int:
        return len(self._live)

    def __call__(self) -> asyncio.BaseProtocol:
        limits = self._limits()
        if len(self._live) >= limits.max_connections and not self._make_room():
            self._refused += 1
            self._report(limits)
            return _Refusal(self)
        protocol = GatewayProtocol(self._server, self, limits)
        self._live[protocol] = None
        self._waiting[protocol] = None
        return protocol

    def forget(self, protocol: GatewayProtocol) -> None:
        self._live.pop(protocol, None)
        self._waiting.pop(protocol, None)

    def touch(self, protocol: GatewayProtocol) -> None:
        """Put a connection that just finished a request at the back of the eviction order."""
        if protocol in self._live:
            waiting = self._waiting
            waiting.pop(protocol, None)
            waiting[protocol] = None

    def _make_room(self) -> bool:
        """Close the first candidate that still is one. Each entry is looked at once per time
        it was queued, so the cost per accept stays constant however many connections are
        busy."""
        waiting = self._waiting
        limits = self._limits()
        now = self.loop.time()
        while waiting:
            protocol = next(iter(waiting))
            del waiting[protocol]
            if protocol.evictable(now, limits):
                self._live.pop(protocol, None)
                protocol.evict()
                self._evicted += 1
                self._report(limits)
                return True
        return False

    def _report(self, limits: ConnectionLimits) -> None:
        now = self.loop.time()
        if now - self._reported_at < _REPORT_INTERVAL or not (self._evicted or self._refused):
            return
        logger.warning(
            "connection cap of %d reached: closed %d connections waiting for a request to make "
            "room and refused %d new ones since the last report",
            limits.max_connections,
            self._evicted,
            self._refused,
        )
        self._reported_at = now
        self._evicted = self._refused = 0

    # -- the sweep -------------------------------------------------------------------------

    def start(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self._limits().tick, self._sweep)

    def drain(self) -> None:
        """The listening socket is closed: keep timing the connections left (aiohttp waits for
        their requests) until the last one is gone, and answer stalled bodies at once."""
        self._draining = True
        for refused in list(self.lingering):
            refused.close()
        if not self._live:
            self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        limits = self._limits()
        now = self.loop.time()
        draining = self._draining
        waiting = self._waiting
        for protocol in list(self._live):
            if protocol.check(now, limits, draining) and protocol not in waiting:
                waiting[protocol] = None
        self._report(limits)
        if draining and not self._live:
            self._timer = None
        else:
            self._timer = self.loop.call_later(limits.tick, self._sweep)


def _without_unknown_expectation(message: RawRequestMessage) -> RawRequestMessage:
    """The request without an ``Expect`` other than ``100-continue``. RFC 9110 lets a server
    ignore expectations it does not know; aiohttp would answer them itself (a plain-text 417
    quoting the header, or a 500 when it is not UTF-8) before any middleware could."""
    if message.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        return message
    headers = CIMultiDict(
        (name, value) for name, value in message.headers.items() if name.lower() != "expect"
    )
    raw = tuple((name, value) for name, value in message.raw_headers if name.lower() != b"expect")
    return message._replace(headers=CIMultiDictProxy(headers), raw_headers=raw)


def _runs_past_request(message: Any, payload: StreamReader) -> bool:
    """Whether data that does not end with the last queued request's head and body holds the
    start of the next request after it.

    When the body is complete and counted as sent (neither chunked nor compressed), data that
    completed the request ends with the blank line closing its head followed by exactly
    `total_bytes` of body, unless more follows; a body begun in earlier data leaves too few
    bytes for a head. Any other case (a parse error has no message) is left to the phases
    that follow.
    """
    if not payload.is_eof() or getattr(message, "chunked", True):
        return False
    return not message.compression


class _Refusal(asyncio.Protocol):
    """A connection over the cap while every other one is busy: 503 at once, then close.

    The connection lingers a moment to read and drop the request the client is sending, so the
    close does not reset the connection under the 503 before the client has read it.
    """

    __slots__ = ("_guard", "_timer", "_transport")

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not derive from asyncio's classes.
        writer = cast(asyncio.WriteTransport, transport)
        writer.write(framing.raw_error(503, "The gateway is at its connection limit"))
        guard = self._guard
        if len(guard.lingering) >= _MAX_LINGERING_REFUSALS or not writer.can_write_eof():
            writer.close()
            return
        writer.write_eof()
        guard.lingering.add(writer)
        self._transport = writer
        self._timer = guard.loop.call_later(_REFUSAL_LINGER, writer.close)

    def data_received(self, data: bytes) -> None:
        pass  # the refused request, read only to be dropped

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._guard.lingering.discard(self._transport)
            self._transport = None
