"""The aiohttp server: routing, authentication, fault scheduling, the record of requests, and
writing answers (whole JSON, a JSON array, or server-sent events) broken as their fault says.

Routes: ``POST /v1beta/models/{model}:{method}`` (key in ``x-goog-api-key`` or ``?key=``) and
Vertex AI's ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}``
(bearer token), for the methods ``generateContent``, ``streamGenerateContent`` (server-sent
events with ``alt=sse``, else one JSON array), ``batchEmbedContents`` and ``embedContent``; and
``GET /v1beta/models``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from turnout.testing.fake_gemini.answers import build_answer
from turnout.testing.fake_gemini.faults import Fault, key_invalid_details
from turnout.testing.fake_gemini.validation import ApiError, check_generate
from turnout.testing.fake_openai.answers import embedding
from turnout.testing.fake_openai.sending import hang_up, json_response, reset_connection

#: The garbage event of a ``malformed`` fault.
MALFORMED_EVENT = b"data: {not json\r\n\r\n"
_GEMINI = re.compile(r"^/(?:v1beta|v1)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")
_VERTEX = re.compile(
    r"^/v1/projects/[^/]+/locations/[^/]+/publishers/google/models/"
    r"(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$"
)
_NO_IDENTITY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_BAD_TOKEN = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential."
)
_NOT_JSON: Any = object()


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the fake received it, for assertions."""

    method: str
    path: str
    query: dict[str, str]
    #: Header names lowercased; of a repeated header, the last value.
    headers: dict[str, str]
    #: The parsed JSON body; None when there was none or it was not JSON.
    json: Any
    received_at: float


class FakeGemini:
    """The Gemini API (and Vertex AI's route to it) on 127.0.0.1, with scripted faults.

    ``api_key`` None accepts any caller and ``models`` None any model. The settings are
    attributes, free to change between calls.
    """

    def __init__(
        self,
        api_key: str | None = "gemini-fake-key",
        *,
        models: Sequence[str] | None = None,
        reply: str | None = None,
        chunk_delay: float = 0.0,
        embedding_dimensions: int = 8,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.models = None if models is None else tuple(models)
        self.reply = reply
        self.chunk_delay = chunk_delay
        self.embedding_dimensions = embedding_dimensions
        self.requests: list[ReceivedRequest] = []
        self._address = (host, port)
        self._queue: list[Fault] = []
        self._default: Fault | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL, without an API version: e.g. "http://127.0.0.1:41234"."""
        if self._url is None:
            raise RuntimeError("the fake Gemini server is not running; call start() first")
        return self._url

    def enqueue(self, *faults: Fault) -> None:
        self._queue.extend(faults)

    def set_default(self, fault: Fault | None) -> None:
        """The fault of every request that consumes none from the queue (None: no fault)."""
        self._default = fault

    def generation_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the generation requests received, oldest first."""
        methods = (":generateContent", ":streamGenerateContent")
        return [r.json for r in self.requests if r.path.endswith(methods) and r.json]

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._entry)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, handler_cancellation=True,
            shutdown_timeout=1.0,
        )  # fmt: skip
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

    async def __aenter__(self) -> FakeGemini:
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
        raw = await request.read()
        try:
            body = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = _NOT_JSON
        headers = {name.lower(): value for name, value in request.headers.items()}
        query = dict(request.query)
        json = None if body is _NOT_JSON else body
        self.requests.append(
            ReceivedRequest(request.method, request.path, query, headers, json, time.monotonic())
        )
        vertex = _VERTEX.match(request.path)
        route = vertex or _GEMINI.match(request.path)
        method = route["method"] if route else None
        fault = self._next_fault(method)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        elif fault is not None and fault.kind == "hang":
            await asyncio.get_running_loop().create_future()
        elif fault is not None and fault.kind == "reset":
            return reset_connection(request)
        elif fault is not None and fault.kind == "status":
            return json_response(fault.body(), {}, status=fault.status)
        try:
            self._authenticate(request, vertex=vertex is not None)
            if request.method == "GET" and request.path == "/v1beta/models":
                models = [{"name": f"models/{m}"} for m in self.models or ()]
                return json_response({"models": models}, {})
            if route is None or request.method != "POST":
                raise ApiError(404, f"Requested entity was not found: {request.path}", "NOT_FOUND")
            if body is _NOT_JSON:
                raise ApiError(400, "Invalid JSON payload received. Unexpected token.")
            return await self._answer(request, route["model"], route["method"], body, fault)
        except ApiError as error:
            return json_response(error.body, {}, status=error.status)

    def _next_fault(self, method: str | None) -> Fault | None:
        for index, fault in enumerate(self._queue):
            if fault.method in (None, method):
                return self._queue.pop(index)
        default = self._default
        return default if default is not None and default.method in (None, method) else None

    def _authenticate(self, request: web.Request, *, vertex: bool) -> None:
        if self.api_key is None:
            return
        if vertex:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() != self.api_key:
                raise ApiError(401, _BAD_TOKEN, "UNAUTHENTICATED")
            return
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            raise ApiError(403, _NO_IDENTITY, "PERMISSION_DENIED")
        if key != self.api_key:
            message = "API key not valid. Please pass a valid API key."
            raise ApiError(400, message, "INVALID_ARGUMENT", key_invalid_details())

    async def _answer(
        self, request: web.Request, model: str, method: str, body: Any, fault: Fault | None
    ) -> web.StreamResponse:
        if self.models is not None and model not in self.models:
            message = (
                f"models/{model} is not found for API version v1beta, or is not supported for "
                f"{method}. Call ListModels to see the list of available models and their "
                "supported methods."
            )
            raise ApiError(404, message, "NOT_FOUND")
        if method in ("batchEmbedContents", "embedContent"):
            return json_response(self._embeddings(method, body), {})
        if method not in ("generateContent", "streamGenerateContent"):
            raise ApiError(404, f"Method not found: {method}", "NOT_FOUND")
        answer = build_answer(check_generate(body), model, self.reply)
        if method == "generateContent":
            if fault is not None and fault.kind == "blocked":
                whole = answer.blocked(fault.block_reason)
            else:
                whole = answer.whole()
            return await _send_whole(request, msgspec.json.encode(whole), fault)
        if fault is not None and fault.kind == "blocked":
            events = [answer.blocked(fault.block_reason)]
        else:
            events = answer.events(finish=not _is(fault, "no_finish"))
        if request.query.get("alt") != "sse":
            return json_response(events, {})
        return await self._send_stream(request, events, fault)

    def _embeddings(self, method: str, body: Any) -> dict[str, Any]:
        single = method == "embedContent"
        requests = [body] if single else (body or {}).get("requests")
        if not isinstance(requests, list) or not requests:
            raise ApiError(400, "* BatchEmbedContentsRequest.requests: requests is not specified\n")
        vectors = []
        for item in requests:
            parts = (item.get("content") or {}).get("parts") if isinstance(item, dict) else None
            if not isinstance(parts, list) or not parts:
                raise ApiError(400, "* EmbedContentRequest.content: content is not specified\n")
            text = " ".join(str(p.get("text", "")) for p in parts)
            size = item.get("outputDimensionality") or self.embedding_dimensions
            vectors.append({"values": embedding(text, size)})
        return {"embedding": vectors[0]} if single else {"embeddings": vectors}

    async def _send_stream(
        self, request: web.Request, events: list[dict[str, Any]], fault: Fault | None
    ) -> web.StreamResponse:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        kind = None if fault is None else fault.kind
        lines = [b"data: " + msgspec.json.encode(event) + b"\r\n\r\n" for event in events]
        if fault is not None and kind in ("cut", "stall", "malformed", "error_event"):
            at = min(fault.after_chunks, len(lines))
            if kind == "malformed":
                lines.insert(at, MALFORMED_EVENT)
            else:
                del lines[at:]
            if kind == "error_event":
                lines.append(b"data: " + msgspec.json.encode(fault.body()) + b"\r\n\r\n")
        if fault is not None and kind == "slow_first_token":
            await asyncio.sleep(fault.seconds)
        for index, line in enumerate(lines):
            if index and self.chunk_delay > 0:
                await asyncio.sleep(self.chunk_delay)
            await response.write(line)
        if kind == "cut":
            return hang_up(request, response)
        if kind == "stall":
            await asyncio.get_running_loop().create_future()
        await response.write_eof()
        return response


async def _send_whole(request: web.Request, body: bytes, fault: Fault | None) -> web.StreamResponse:
    if fault is None or fault.kind not in ("slow_first_token", "cut", "stall", "malformed"):
        return json_response(body, {})
    if fault.kind == "malformed":
        body = b"{not json"
    response = web.StreamResponse()
    response.content_type, response.content_length = "application/json", len(body)
    await response.prepare(request)
    if fault.kind == "slow_first_token":
        await asyncio.sleep(fault.seconds)
    elif fault.kind == "stall":
        await asyncio.get_running_loop().create_future()
    elif fault.kind == "cut":
        await response.write(body[: len(body) // 2])
        return hang_up(request, response)
    await response.write(body)
    await response.write_eof()
    return response


def _is(fault: Fault | None, kind: str) -> bool:
    return fault is not None and fault.kind == kind
