"""`FakeServer`, what every fake provider is built on: the socket, the faults, the record.

It serves on a real socket (127.0.0.1, a free port unless told otherwise), started and closed
explicitly or by ``async with``; closing ends every handler still running, hangs and stalls
included. Each request is read, recorded, and draws its fault: the oldest queued one whose
target it matches, else the default. ``delay``, ``hang`` and ``reset`` are committed here; a
fake says how it answers a ``status`` fault (`_refuse`) and any other request (`_answer`).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

import msgspec
from aiohttp import web

from fakes.fake_server.faults import FaultBase
from fakes.fake_server.sending import forever, reset_connection

F = TypeVar("F", bound=FaultBase)
R = TypeVar("R")

#: Marks a body that was sent but was not JSON (None means no body at all).
NOT_JSON: Any = object()


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the fake received it, for assertions."""

    method: str
    path: str
    #: Header names lowercased; of a repeated header, the last value.
    headers: dict[str, str]
    #: The parsed JSON body; None when there was none or it was not JSON.
    json: Any
    #: ``time.monotonic()`` when the request arrived.
    received_at: float


@dataclass(frozen=True, slots=True)
class Exchange(Generic[F]):
    """One request being answered: what arrived, when, and the fault it drew."""

    request: web.Request
    #: The parsed JSON body; None when there was none, `NOT_JSON` when it was not JSON.
    body: Any
    fault: F | None
    arrived: float


def lowered_headers(request: web.Request) -> dict[str, str]:
    """The request's headers, names lowercased; of a repeated header, the last value."""
    return {name.lower(): value for name, value in request.headers.items()}


def received(request: web.Request, body: Any, arrived: float) -> ReceivedRequest:
    """The record of a request whose body was `body` (`NOT_JSON` is recorded as None)."""
    json = None if body is NOT_JSON else body
    return ReceivedRequest(request.method, request.path, lowered_headers(request), json, arrived)


class FakeServer(ABC, Generic[F, R]):
    """A fake provider on a real socket, with a queue of faults of type ``F`` and a record of
    the requests received, of type ``R``.

    The settings every fake has: ``api_key`` (None accepts any caller), ``models`` (None
    accepts any model), ``reply`` (the answer's text; None answers "Fake answer to: <the last
    user text>"), ``chunk_delay`` and ``record`` (False keeps no `requests`). They are
    attributes, free to change between calls.
    """

    #: The provider, as named when `url` is asked of a server not running.
    provider: ClassVar[str] = "provider"
    #: What `url` adds to "http://host:port", e.g. "/v1".
    url_path: ClassVar[str] = ""

    def __init__(
        self,
        *,
        api_key: str | None,
        models: Sequence[str] | None,
        reply: str | None,
        chunk_delay: float,
        record: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.models: tuple[str, ...] | None = None if models is None else tuple(models)
        self.reply = reply
        #: Seconds between two stream events (not before the first).
        self.chunk_delay = chunk_delay
        self.record = record
        self.requests: list[R] = []
        self._address = (host, port)
        self._queue: list[F] = []
        self._default: F | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL for clients, e.g. "http://127.0.0.1:41234" and `url_path`."""
        if self._url is None:
            message = f"the fake {self.provider} server is not running; call start() first"
            raise RuntimeError(message)
        return self._url

    @property
    def open_connections(self) -> int:
        """Client connections open to the fake now (kept alive between requests or not)."""
        server = self._runner.server if self._runner is not None else None
        return 0 if server is None else len(server.connections)

    @property
    def queued(self) -> tuple[F, ...]:
        """Faults not consumed yet, oldest first."""
        return tuple(self._queue)

    def enqueue(self, *faults: F) -> None:
        self._queue.extend(faults)

    def set_default(self, fault: F | None) -> None:
        """The fault of every request that consumes none from the queue (None: no fault)."""
        self._default = fault

    def reset(self) -> None:
        """Forget queued faults, the default fault and the recorded requests."""
        self._queue.clear()
        self._default = None
        self.requests.clear()

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._entry)
        # Handler cancellation ends a hanging handler when its client gives up, as a real
        # server would; the short shutdown timeout only bounds a close() racing a new request.
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, *self._address).start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._runner, self._url = runner, f"http://{host}:{port}{self.url_path}"

    async def close(self) -> None:
        """End every handler still running (hangs and stalls included), then stop serving."""
        runner, self._runner, self._url = self._runner, None, None
        if runner is None:
            return
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers)
        await runner.cleanup()

    async def serve_forever(self) -> None:
        """Serve until cancelled, then close: a command line's loop."""
        await self.start()
        try:
            await forever()
        finally:
            await self.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await self._serve(request)
        except ConnectionError:
            # The client left mid-answer; aiohttp finds the connection gone and lets it be.
            return web.Response()
        finally:
            self._handlers.discard(task)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        raw = await request.read()
        try:
            body = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = NOT_JSON
        fault = self._next_fault(self._receive(request, raw, body, arrived))
        if fault is not None:
            fault = fault.echoing(lowered_headers(request), request.query)
        exchange = Exchange(request, body, fault, arrived)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        elif fault is not None and fault.kind == "hang":
            await forever()
        elif fault is not None and fault.kind == "reset":
            return reset_connection(request)
        elif fault is not None and fault.kind == "status":
            return self._refuse(exchange, fault)
        return await self._answer(exchange)

    def _next_fault(self, target: str | None) -> F | None:
        for index, fault in enumerate(self._queue):
            if fault.target in (None, target):
                return self._queue.pop(index)
        default = self._default
        return default if default is not None and default.target in (None, target) else None

    @abstractmethod
    def _receive(self, request: web.Request, raw: bytes, body: Any, arrived: float) -> str | None:
        """Record the request (when recording), and say what a fault must target to strike it:
        its path, method or operation, as the fake's faults name them."""

    @abstractmethod
    def _refuse(self, exchange: Exchange[F], fault: F) -> web.StreamResponse:
        """The error answer of a ``status`` fault."""

    @abstractmethod
    async def _answer(self, exchange: Exchange[F]) -> web.StreamResponse:
        """The answer to a request that no fault stopped before the headers."""
