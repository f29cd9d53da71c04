"""The aiohttp server: routing, authentication, fault scheduling and the record of requests.

`FakeAnthropic` serves ``POST /v1/messages`` (whole or streamed) and ``GET /v1/models`` on a
real socket. Each request draws its fault (oldest queued first, else the default), is recorded
as a `ReceivedRequest`, authenticated (``x-api-key``, then ``anthropic-version``), checked by
`validation`, answered by `answers` and written by `sending`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from aiohttp import web

from turnout.testing.fake_anthropic.answers import build_answer
from turnout.testing.fake_anthropic.faults import Fault, error_body
from turnout.testing.fake_anthropic.sending import Exchange, send_stream, send_whole
from turnout.testing.fake_anthropic.validation import ApiError, check, invalid
from turnout.testing.fake_openai.sending import json_response, reset_connection
from turnout.testing.fake_openai.server import ReceivedRequest

#: Marks a body that was sent but was not JSON (None means no body at all).
_NOT_JSON: Any = object()
_MODELS_CREATED = "2025-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimits:
    """The ``anthropic-ratelimit-*`` headers sent with every answer; only the fields set are."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    #: Seconds from the answer until the request quota is whole again (sent as RFC 3339).
    requests_reset: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset: float | None = None

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        now = datetime.now(UTC)
        for quota in ("requests", "tokens"):
            for part in ("limit", "remaining"):
                value = getattr(self, f"{quota}_{part}")
                if value is not None:
                    headers[f"anthropic-ratelimit-{quota}-{part}"] = str(value)
            reset = getattr(self, f"{quota}_reset")
            if reset is not None:
                moment = (now + timedelta(seconds=reset)).replace(microsecond=0)
                headers[f"anthropic-ratelimit-{quota}-reset"] = moment.strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
        return headers


class FakeAnthropic:
    """Anthropic's Messages API on 127.0.0.1 with scripted faults; see the package docstring.

    ``api_key`` None accepts any caller and ``models`` None any model; ``record=False`` keeps
    no `requests`. The settings are attributes, free to change between calls.
    """

    def __init__(
        self,
        api_key: str | None = "sk-ant-fake",
        *,
        models: Sequence[str] | None = ("claude-sonnet-4-5",),
        reply: str | None = None,
        chunk_delay: float = 0.0,
        rate_limits: RateLimits | None = None,
        record: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.models: tuple[str, ...] | None = None if models is None else tuple(models)
        #: The answer's text; None answers "Fake answer to: <the last user text>".
        self.reply = reply
        #: Seconds between two stream events (not before the first).
        self.chunk_delay = chunk_delay
        self.rate_limits = rate_limits
        self.record = record
        self.requests: list[ReceivedRequest] = []
        self._address = (host, port)
        self._queue: list[Fault] = []
        self._default: Fault | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. "http://127.0.0.1:41234" (the API is under ``/v1``)."""
        if self._url is None:
            raise RuntimeError("the fake Anthropic server is not running; call start() first")
        return self._url

    @property
    def queued(self) -> tuple[Fault, ...]:
        """Faults not consumed yet, oldest first."""
        return tuple(self._queue)

    def enqueue(self, *faults: Fault) -> None:
        self._queue.extend(faults)

    def set_default(self, fault: Fault | None) -> None:
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
        self._runner, self._url = runner, f"http://{host}:{port}"

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

    async def __aenter__(self) -> FakeAnthropic:
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
            return web.Response()
        finally:
            self._handlers.discard(task)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        raw = await request.read()
        try:
            body = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = _NOT_JSON
        if self.record:
            headers = {name.lower(): value for name, value in request.headers.items()}
            json = None if body is _NOT_JSON else body
            self.requests.append(
                ReceivedRequest(request.method, request.path, headers, json, arrived)
            )
        fault = self._next_fault(request.path)
        headers = self._headers(request_id)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        elif fault is not None and fault.kind == "hang":
            await asyncio.get_running_loop().create_future()
        elif fault is not None and fault.kind == "reset":
            return reset_connection(request)
        elif fault is not None and fault.kind == "status":
            if fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            return json_response(fault.body(request_id), headers, status=fault.status)
        exchange = Exchange(request, body, fault, arrived, request_id)
        try:
            self._authenticate(request)
            if (request.method, request.path) == ("POST", "/v1/messages"):
                return await self._messages(exchange, headers)
            if (request.method, request.path) == ("GET", "/v1/models"):
                return json_response(self._model_list(), headers)
            raise ApiError(404, "not_found_error", "Not Found")
        except ApiError as error:
            body = error_body(error.error_type, error.message, request_id)
            return json_response(body, headers, status=error.status)

    def _next_fault(self, path: str) -> Fault | None:
        for index, fault in enumerate(self._queue):
            if fault.path in (None, path):
                return self._queue.pop(index)
        default = self._default
        return default if default is not None and default.path in (None, path) else None

    def _authenticate(self, request: web.Request) -> None:
        if self.api_key is not None:
            key = request.headers.get("x-api-key")
            if not key:
                raise ApiError(401, "authentication_error", "x-api-key header is required")
            if key != self.api_key:
                raise ApiError(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise invalid("anthropic-version: header is required")

    def _headers(self, request_id: str) -> dict[str, str]:
        headers = {"request-id": request_id, "anthropic-organization-id": "org-fake"}
        if self.rate_limits is not None:
            headers.update(self.rate_limits.headers())
        return headers

    def _model_list(self) -> dict[str, Any]:
        data = [
            {"type": "model", "id": model, "display_name": model, "created_at": _MODELS_CREATED}
            for model in self.models or ()
        ]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"data": data, "has_more": False, "first_id": first, "last_id": last}

    async def _messages(self, exchange: Exchange, headers: dict[str, str]) -> web.StreamResponse:
        body = exchange.body
        if body is _NOT_JSON:
            raise invalid("There was an error parsing the body of your request: not JSON")
        check(body, self.models)
        fault = exchange.fault
        refusal = None
        if fault is not None and fault.kind == "refusal":
            refusal = (fault.after_chunks, fault.message)
        answer = build_answer(body, body["model"], self.reply, refusal)
        if body.get("stream") is True:
            return await send_stream(exchange, answer, headers, self.chunk_delay)
        return await send_whole(exchange, answer.body(), headers)
