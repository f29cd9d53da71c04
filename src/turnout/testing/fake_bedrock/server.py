"""The aiohttp server: routing, authentication, fault scheduling and the record of requests.

`FakeBedrock` serves ``POST /model/{modelId}/converse``, ``/converse-stream`` (AWS event-stream
frames) and ``/invoke`` (Titan and Cohere embedding models) on a real socket. Each request draws
its fault (oldest queued first, else the default), is recorded as a `ReceivedRequest`,
authenticated, answered by `answers` and written here, broken as its fault says.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import msgspec
from aiohttp import web

from turnout.testing.fake_bedrock import eventstream
from turnout.testing.fake_bedrock.answers import (
    Answer,
    BedrockError,
    cohere_embedding,
    converse_answer,
    titan_embedding,
)
from turnout.testing.fake_bedrock.auth import AuthFailure, SigningKeys, check
from turnout.testing.fake_bedrock.faults import Fault
from turnout.testing.fake_openai.sending import hang_up, json_response, reset_connection

_PATH = re.compile(r"/model/(?P<model>[^/]+)/(?P<action>converse|converse-stream|invoke)")
#: Marks a body that was sent but was not JSON (None means no body at all).
_NOT_JSON: Any = object()


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the fake received it, for assertions."""

    method: str
    #: The path as it arrived (still percent-encoded).
    path: str
    #: The model id (decoded) and operation, when the path names them.
    model: str | None
    action: str | None
    #: Header names lowercased; of a repeated header, the last value.
    headers: dict[str, str]
    json: Any
    #: "bearer" or "sigv4" when the request authenticated, else None.
    auth: str | None
    received_at: float


class FakeBedrock:
    """Bedrock Runtime on 127.0.0.1 with scripted faults.

    It accepts the API key ``api_key`` as a bearer token, and SigV4 signatures made with
    ``access_key``/``secret_key`` for ``region``; None disables a method, and with both None any
    caller is accepted. ``models`` None accepts any model id.
    """

    def __init__(
        self,
        *,
        api_key: str | None = "bedrock-api-key-fake",
        access_key: str | None = "AKIDFAKEBEDROCK",
        secret_key: str = "fake-bedrock-secret",
        region: str = "us-east-1",
        models: Sequence[str] | None = None,
        reply: str | None = None,
        chunk_delay: float = 0.0,
        embedding_dimensions: int = 8,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.keys = None if access_key is None else SigningKeys(access_key, secret_key, region)
        self.region = region
        self.models: tuple[str, ...] | None = None if models is None else tuple(models)
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
        """The endpoint for a deployment's ``base_url``, e.g. "http://127.0.0.1:41234"."""
        if self._url is None:
            raise RuntimeError("the fake Bedrock server is not running; call start() first")
        return self._url

    def enqueue(self, *faults: Fault) -> None:
        self._queue.extend(faults)

    def set_default(self, fault: Fault | None) -> None:
        """The fault of every request that consumes none from the queue (None: no fault)."""
        self._default = fault

    def reset(self) -> None:
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

    async def __aenter__(self) -> FakeBedrock:
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
        raw = await request.read()
        try:
            body = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = _NOT_JSON
        headers = {name.lower(): value for name, value in request.headers.items()}
        path = request.raw_path.partition("?")[0]
        match = _PATH.fullmatch(path)
        model = unquote(match["model"]) if match else None
        action = match["action"] if match else None
        try:
            auth: str | None = self._authenticate(request, headers, raw)
            failure: AuthFailure | None = None
        except AuthFailure as refused:
            auth, failure = None, refused
        record = ReceivedRequest(
            request.method,
            path,
            model,
            action,
            headers,
            None if body is _NOT_JSON else body,
            auth,
            arrived,
        )
        self.requests.append(record)
        fault = self._next_fault(action)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        elif fault is not None and fault.kind == "hang":
            await asyncio.get_running_loop().create_future()
        elif fault is not None and fault.kind == "reset":
            return reset_connection(request)
        elif fault is not None and fault.kind == "status":
            extra = {} if fault.retry_after is None else {"retry-after": f"{fault.retry_after:g}"}
            return _error(fault.status, fault.error_type, fault.message, extra)
        if failure is not None:
            return _error(403, failure.error_type, failure.message)
        try:
            if request.method != "POST" or match is None or model is None:
                raise BedrockError(404, "UnknownOperationException", "Unknown operation")
            if body is _NOT_JSON:
                raise BedrockError(400, "SerializationException", "Malformed request body")
            if self.models is not None and model not in self.models:
                raise BedrockError(
                    400, "ValidationException", "The provided model identifier is invalid."
                )
            if action == "invoke":
                return self._invoke(model, body, arrived)
            answer = converse_answer(
                body, self.reply, guardrail=fault is not None and fault.kind == "guardrail"
            )
            if action == "converse-stream":
                return await self._stream(request, answer, fault, arrived)
            return await self._whole(request, answer.body(_millis(arrived)), fault)
        except BedrockError as error:
            return _error(error.status, error.error_type, error.message)

    def _authenticate(
        self, request: web.Request, headers: dict[str, str], raw: bytes
    ) -> str | None:
        if self.api_key is None and self.keys is None:
            return None
        url = f"http://{headers.get('host', '')}{request.raw_path}"
        return check(
            headers.get("authorization"),
            method=request.method,
            url=url,
            headers=headers,
            body=raw,
            api_key=self.api_key,
            keys=self.keys,
        )

    def _next_fault(self, action: str | None) -> Fault | None:
        for index, fault in enumerate(self._queue):
            if fault.action in (None, action):
                return self._queue.pop(index)
        default = self._default
        return default if default is not None and default.action in (None, action) else None

    def _invoke(self, model: str, body: Any, arrived: float) -> web.StreamResponse:
        if model.startswith("amazon.titan-embed"):
            answer = titan_embedding(body, self.embedding_dimensions)
            tokens = answer["inputTextTokenCount"]
        elif model.startswith("cohere.embed"):
            answer, tokens = cohere_embedding(body, self.embedding_dimensions)
        else:
            raise BedrockError(
                400, "ValidationException", f"The fake serves no InvokeModel model {model!r}."
            )
        headers = _headers()
        headers["x-amzn-bedrock-input-token-count"] = str(tokens)
        headers["x-amzn-bedrock-invocation-latency"] = str(_millis(arrived))
        return json_response(answer, headers)

    async def _whole(
        self, request: web.Request, answer: dict[str, Any], fault: Fault | None
    ) -> web.StreamResponse:
        body = msgspec.json.encode(answer)
        kind = None if fault is None else fault.kind
        if kind not in ("slow_first_token", "cut", "stall", "malformed"):
            return json_response(body, _headers())
        response = web.StreamResponse(headers=_headers())
        response.content_type, response.content_length = "application/json", len(body)
        await response.prepare(request)
        assert fault is not None
        if kind == "slow_first_token":
            await asyncio.sleep(fault.seconds)
        elif kind == "stall":
            await asyncio.get_running_loop().create_future()
        elif kind == "cut":
            await response.write(body[: len(body) // 2])
            return hang_up(request, response)
        elif kind == "malformed":
            body = b"{not json" + b" " * (len(body) - 9)
        await response.write(body)
        await response.write_eof()
        return response

    async def _stream(
        self, request: web.Request, answer: Answer, fault: Fault | None, arrived: float
    ) -> web.StreamResponse:
        headers = _headers()
        headers["Content-Type"] = "application/vnd.amazon.eventstream"
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        kind = None if fault is None else fault.kind
        content, closing = answer.events(_millis(arrived))
        frames = [eventstream.event(name, payload) for name, payload in content]
        if kind != "no_finish":
            frames += [eventstream.event(name, payload) for name, payload in closing]
        if fault is not None and kind in ("cut", "stall", "malformed", "error_event"):
            at = min(fault.after_frames, len(frames))
            if kind == "malformed":
                frames.insert(at, eventstream.corrupt(frames[at - 1] if at else frames[0]))
            else:
                del frames[at:]
            if kind == "error_event":
                frames.append(eventstream.exception(fault.member, fault.message))
        if fault is not None and kind == "slow_first_token":
            await asyncio.sleep(fault.seconds)
        for index, data in enumerate(frames):
            if index and self.chunk_delay > 0:
                await asyncio.sleep(self.chunk_delay)
            await response.write(data)
        if kind == "cut":
            return hang_up(request, response)
        if kind == "stall":
            await asyncio.get_running_loop().create_future()
        await response.write_eof()
        return response


def _headers() -> dict[str, str]:
    return {"x-amzn-RequestId": str(uuid.uuid4())}


def _millis(since: float) -> int:
    return max(1, round((time.monotonic() - since) * 1000))


def _error(
    status: int, error_type: str, message: str, extra: dict[str, str] | None = None
) -> web.Response:
    """Bedrock's error answer: ``{"message"}``, the exception named in ``x-amzn-ErrorType``."""
    headers = _headers()
    headers["x-amzn-ErrorType"] = (
        f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )
    headers.update(extra or {})
    return json_response({"message": message}, headers, status=status)
