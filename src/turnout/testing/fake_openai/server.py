"""The aiohttp server: routing, authentication, fault scheduling and the record of requests.

`FakeOpenAI` serves ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` and
``/v1/models`` on a real socket. Each request draws its fault (oldest queued first, else the
default), is recorded as a `ReceivedRequest`, checked, answered by `answers` and written by
`sending`.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from turnout.testing.fake_openai.answers import (
    Answer,
    build_answer,
    continued,
    embedding,
    embedding_inputs,
    max_tokens,
    quote,
    tool_call,
)
from turnout.testing.fake_openai.errors import ApiError, missing
from turnout.testing.fake_openai.faults import Fault
from turnout.testing.fake_openai.rate_limits import RateLimits
from turnout.testing.fake_openai.sending import (
    Exchange,
    json_response,
    reset_connection,
    send_stream,
    send_whole,
)
from turnout.tokens import estimate_prompt_tokens

_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)
#: The legacy completions endpoint's default ``max_tokens``.
_COMPLETION_MAX_TOKENS = 16
_MODEL_CREATED = 1_700_000_000
#: Marks a body that was sent but was not JSON (None means no body at all).
_NOT_JSON: Any = object()


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


_Route = Callable[[Exchange], Awaitable[web.StreamResponse]]


class FakeOpenAI:
    """An OpenAI API on 127.0.0.1 with scripted faults; see the package docstring.

    ``api_key`` None accepts any caller and ``models`` None any model; ``record=False`` keeps
    no `requests` (for benchmarks). The settings are attributes, free to change between calls.
    """

    def __init__(
        self,
        api_key: str | None = "sk-fake",
        *,
        models: Sequence[str] | None = ("gpt-4o-mini",),
        reply: str | None = None,
        chunk_delay: float = 0.0,
        embedding_dimensions: int = 8,
        rate_limits: RateLimits | None = None,
        record: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.models: tuple[str, ...] | None = None if models is None else tuple(models)
        #: The answer's text; None answers "Fake answer to: <the last user message>".
        self.reply = reply
        #: Seconds between two stream events (not before the first).
        self.chunk_delay = chunk_delay
        self.embedding_dimensions = embedding_dimensions
        self.rate_limits = rate_limits
        self.record = record
        self.requests: list[ReceivedRequest] = []
        self._address = (host, port)
        self._queue: list[Fault] = []
        self._default: Fault | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._routes: dict[tuple[str, str], _Route] = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/completions"): self._completions,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/v1/models"): self._models,
        }

    @property
    def url(self) -> str:
        """The base URL for clients, e.g. "http://127.0.0.1:41234/v1"."""
        if self._url is None:
            raise RuntimeError("the fake OpenAI server is not running; call start() first")
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
        self._runner, self._url = runner, f"http://{host}:{port}/v1"

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
        """Serve until cancelled, then close: the command line's loop."""
        await self.start()
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            await self.close()

    async def __aenter__(self) -> FakeOpenAI:
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
            body = _NOT_JSON
        if self.record:
            headers = {name.lower(): value for name, value in request.headers.items()}
            json = None if body is _NOT_JSON else body
            record = ReceivedRequest(request.method, request.path, headers, json, arrived)
            self.requests.append(record)
        fault = self._next_fault(request.path)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        elif fault is not None and fault.kind == "hang":
            await asyncio.get_running_loop().create_future()
        elif fault is not None and fault.kind == "reset":
            return reset_connection(request)
        elif fault is not None and fault.kind == "status":
            headers = self._headers(arrived)
            if fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            return json_response(fault.body(), headers, status=fault.status)
        try:
            self._authenticate(request)
            route = self._route(request)
            if route is None:
                raise ApiError(404, f"Invalid URL ({request.method} {request.path})")
            return await route(Exchange(request, body, fault, arrived))
        except ApiError as error:
            return json_response(error.body, self._headers(arrived), status=error.status)

    def _route(self, request: web.Request) -> _Route | None:
        """The handler of a request (None: an unknown URL); fakes of other layouts override it."""
        return self._routes.get((request.method, request.path))

    def _next_fault(self, path: str) -> Fault | None:
        for index, fault in enumerate(self._queue):
            if fault.path in (None, path):
                return self._queue.pop(index)
        default = self._default
        return default if default is not None and default.path in (None, path) else None

    def _authenticate(self, request: web.Request) -> None:
        if self.api_key is None:
            return
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and key.strip() == self.api_key:
            return
        shown = key.strip()
        masked = f"{shown[:3]}{'*' * max(0, len(shown) - 7)}{shown[-4:]}"
        message = (
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        raise ApiError(401, message, code="invalid_api_key")

    def _headers(self, arrived: float) -> dict[str, str]:
        headers = {
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-processing-ms": str(round((time.monotonic() - arrived) * 1000)),
            "openai-version": "2020-10-01",
        }
        if self.rate_limits is not None:
            headers.update(self.rate_limits.headers())
        return headers

    def _model_of(self, body: Any) -> str:
        if not isinstance(body, dict):
            raise ApiError(400, _BAD_JSON)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "you must provide a model parameter")
        if self.models is not None and model not in self.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            raise ApiError(404, message, code="model_not_found")
        return model

    async def _chat(self, exchange: Exchange) -> web.StreamResponse:
        model, body = self._model_of(exchange.body), exchange.body
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise missing("messages")
        text = continued(messages, self.reply)
        cap = max_tokens(body, "max_completion_tokens") or max_tokens(body, "max_tokens")
        tool = tool_call(body, messages)
        answer = build_answer(body, model, text, cap, chat=True, tool=tool)
        return await self._complete(exchange, answer)

    async def _completions(self, exchange: Exchange) -> web.StreamResponse:
        model, body = self._model_of(exchange.body), exchange.body
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise missing("prompt")
        text = self.reply if self.reply is not None else f"Fake answer to: {quote(prompt)}"
        cap = max_tokens(body, "max_tokens") or _COMPLETION_MAX_TOKENS
        answer = build_answer(body, model, text, cap, chat=False)
        return await self._complete(exchange, answer)

    async def _embeddings(self, exchange: Exchange) -> web.StreamResponse:
        model, body = self._model_of(exchange.body), exchange.body
        inputs = embedding_inputs(body.get("input"))
        size = body.get("dimensions", self.embedding_dimensions)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ApiError(400, "dimensions must be a positive integer", param="dimensions")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            message = f"Invalid value for 'encoding_format': {encoding!r}; use float or base64."
            raise ApiError(400, message, param="encoding_format")
        data = []
        for index, item in enumerate(inputs):
            vector = embedding(item, size)
            # base64 as OpenAI sends it: the little-endian float32 bytes of the vector.
            packed = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            value = packed if encoding == "base64" else vector
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = estimate_prompt_tokens("embedding", body)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        answer = {"object": "list", "data": data, "model": model, "usage": usage}
        return await send_whole(exchange, answer, self._headers(exchange.arrived))

    async def _models(self, exchange: Exchange) -> web.StreamResponse:
        data = [
            {"id": model, "object": "model", "created": _MODEL_CREATED, "owned_by": "openai"}
            for model in self.models or ()
        ]
        answer = {"object": "list", "data": data}
        return await send_whole(exchange, answer, self._headers(exchange.arrived))

    async def _complete(self, exchange: Exchange, answer: Answer) -> web.StreamResponse:
        headers = self._headers(exchange.arrived)
        if exchange.body.get("stream") is True:
            return await send_stream(exchange, answer, headers, self.chunk_delay)
        return await send_whole(exchange, answer.body(), headers)
