"""One pipelined connection for the clean path's two scripts: what makes Redis state cheap.

Every request runs two scripts (`turnout.state.redis_scripts`). Through redis-py's asyncio
client each one costs about as much gateway CPU as the upstream call itself (a connection
checked out of the pool and back, a retry wrapper, a timeout context, a parser round), which
halved the gateway's throughput. Here a script call is: pack (hiredis, C), append to the
buffer, await a future. Everything the event loop's tasks send in one turn of the loop goes
out in one write, and one read's replies (hiredis parses them) resolve their futures in one
callback: commands pipeline across concurrent requests without any request waiting for
another. Redis answers in order, so the n-th reply is the n-th future's.

A call whose caller gave up (cancelled) keeps its place in line and its reply is dropped: the
connection stays in step. A reply later than the timeout means Redis is too slow to route on:
every waiting call fails with `TimeoutError` and the connection is closed, so the store fails
open on its own state and the next call opens a fresh connection. Opening one (TLS, logging
in, selecting the database, asking Sentinel where the master is) goes through `Endpoint`,
which `turnout.redisio.link` builds from the same URL as the redis-py client; Redis
Cluster, which routes by slot, keeps redis-py's client.

Errors are redis-py's (`ResponseError` for an error reply, `ConnectionError` for a lost
connection) or `TimeoutError`, so the store tells a Redis failure from a bug in one place.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError


@dataclass(frozen=True)
class Endpoint:
    """Where the pipe connects and how it logs in. `locate`, when set, is asked for the
    address at each connection (Sentinel: the current master)."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    locate: Callable[[], Awaitable[tuple[str, int]]] | None = None

    def __repr__(self) -> str:  # never the password
        where = self.path or f"{self.host}:{self.port}"
        return f"Endpoint({where}, db={self.db}, tls={self.tls is not None})"


class Script:
    """A Lua script, sent by its SHA-1 (and in full once, if the server does not know it)."""

    __slots__ = ("body", "sha")

    def __init__(self, body: str) -> None:
        self.body = body
        self.sha = hashlib.sha1(body.encode()).hexdigest()


def _pack(command: tuple[Any, ...]) -> bytes:
    """One command in Redis' wire format, packed by hiredis (its stub types one argument)."""
    packed: bytes = hiredis.pack_command(cast(Any, command))
    return packed


class _Line(asyncio.Protocol):
    """The connection: writes batched per turn of the loop, replies matched in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self.timeout = timeout
        self._reader = hiredis.Reader()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        #: When each waiting call must have its answer (loop time), in the same order.
        self._deadlines: deque[float] = deque()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.lost is not None:
            raise RedisConnectionError("the connection to Redis is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(packed)
        self._waiting.append(future)
        self._deadlines.append(self._loop.time() + self.timeout)
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(self._deadlines[0], self._watch)
        return future

    def _flush(self) -> None:
        if self._out and self._transport is not None and self.lost is None:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                future = self._waiting.popleft()
                self._deadlines.popleft()
                if future.done():  # its caller gave up: the line stays in step
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(ResponseError(str(reply)))
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked
            self.abort(RedisConnectionError(f"Redis protocol error: {type(exc).__name__}"))

    def _watch(self) -> None:
        self._watchdog = None
        if not self._deadlines or self.lost is not None:
            return
        if self._loop.time() >= self._deadlines[0]:
            self.abort(TimeoutError("Redis did not answer in time"))
        else:
            self._watchdog = self._loop.call_at(self._deadlines[0], self._watch)

    def abort(self, exc: BaseException) -> None:
        """Fail every waiting call with `exc` and close the connection."""
        if self.lost is None:
            self.lost = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)
        self._deadlines.clear()
        self._out.clear()
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort(RedisConnectionError("the connection to Redis was lost"))


class Pipe:
    """Scripts over one pipelined connection, opened on first use and again after a loss."""

    def __init__(self, endpoint: Endpoint, timeout: float, connect_timeout: float) -> None:
        self.endpoint = endpoint
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._line: _Line | None = None
        self._opening: asyncio.Task[_Line] | None = None

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's answer; one round trip (two the first time a server meets it)."""
        line = self._line
        if line is None or line.lost is not None:
            line = await self._open()
        try:
            return await line.send(_pack(("EVALSHA", script.sha, len(keys), *keys, *args)))
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        # A server that restarted, or a replica promoted: EVAL loads the script as it runs.
        return await line.send(_pack(("EVAL", script.body, len(keys), *keys, *args)))

    def post(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        """Send the script and return the future of its answer, without waiting on it: for a
        call whose caller does not wait. Raises `ConnectionError` when no connection is open
        (the caller then goes by `run`); a NOSCRIPT error reply is the caller's to handle (by
        `run`, which loads the script)."""
        line = self._line
        if line is None or line.lost is not None:
            raise RedisConnectionError("no open connection to Redis")
        return line.send(_pack(("EVALSHA", script.sha, len(keys), *keys, *args)))

    async def _open(self) -> _Line:
        if self._opening is None or self._opening.done():
            self._opening = asyncio.get_running_loop().create_task(self._connect())
        return await asyncio.shield(self._opening)

    async def _connect(self) -> _Line:
        endpoint = self.endpoint
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            line = _Line(loop, self._connect_timeout)
            if endpoint.path is not None:
                await loop.create_unix_connection(lambda: line, endpoint.path)
            else:
                host, port = endpoint.host, endpoint.port
                if endpoint.locate is not None:
                    host, port = await endpoint.locate()
                server_hostname = host if endpoint.tls is not None else None
                await loop.create_connection(
                    lambda: line, host, port, ssl=endpoint.tls, server_hostname=server_hostname
                )
            hello: list[asyncio.Future[Any]] = []
            if endpoint.password is not None:
                credentials: tuple[str, ...] = (endpoint.password,)
                if endpoint.username:
                    credentials = (endpoint.username, endpoint.password)
                hello.append(line.send(_pack(("AUTH", *credentials))))
            if endpoint.db:
                hello.append(line.send(_pack(("SELECT", endpoint.db))))
            try:
                for answer in hello:
                    await answer
            except BaseException:
                line.abort(RedisConnectionError("logging in to Redis failed"))
                raise
        line.timeout = self._timeout  # the connect bound covered logging in; now commands'
        self._line = line
        return line

    def abort(self) -> None:
        """Close the connection now (Redis is down): waiting calls fail, the next reconnects."""
        if self._line is not None:
            self._line.abort(RedisConnectionError("the connection to Redis was closed"))
            self._line = None

    async def aclose(self) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        self.abort()
