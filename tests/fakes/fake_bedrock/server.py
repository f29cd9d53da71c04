"""The aiohttp server: routing, authentication, fault scheduling and the record of requests.

`FakeBedrock` serves ``POST /model/{modelId}/converse``, ``/converse-stream`` (AWS event-stream
frames), ``/invoke`` (Titan and Cohere embedding models, and Claude's Messages API) and
``/invoke-with-response-stream`` (Claude's, event-stream framed) on a real socket. Each request
draws its fault (oldest queued first, else the default), is recorded as a `ReceivedRequest`,
authenticated, answered by `answers` (or `claude`) and written here, broken as its fault says.
The socket, the fault queue, the record and the breaking of answers are `fakes.fake_server`'s.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import msgspec
from aiohttp import web

from fakes.fake_bedrock import eventstream
from fakes.fake_bedrock.answers import (
    Answer,
    BedrockError,
    cohere_embedding,
    converse_answer,
    titan_embedding,
)
from fakes.fake_bedrock.auth import AuthFailure, SigningKeys, check
from fakes.fake_bedrock.claude import check_body, chunk_payload, claude_answer, is_claude
from fakes.fake_bedrock.faults import Fault
from fakes.fake_server import server as fake_server
from fakes.fake_server.sending import (
    NOT_JSON_BODY,
    json_response,
    send_stream,
    send_whole,
)
from fakes.fake_server.server import NOT_JSON, Exchange, FakeServer, lowered_headers

_PATH = re.compile(
    r"/model/(?P<model>[^/]+)/(?P<action>converse|converse-stream|invoke|invoke-with-response-stream)"
)
#: Why a request failed to authenticate, kept from its arrival to its answer.
_REFUSED = web.RequestKey("refused", AuthFailure)


@dataclass(frozen=True, slots=True)
class ReceivedRequest(fake_server.ReceivedRequest):
    """One request as the fake received it, for assertions; its ``path`` is as it arrived
    (still percent-encoded)."""

    #: The model id (decoded) and operation, when the path names them.
    model: str | None
    action: str | None
    #: "bearer" or "sigv4" when the request authenticated, else None.
    auth: str | None


class FakeBedrock(FakeServer[Fault, ReceivedRequest]):
    """Bedrock Runtime on 127.0.0.1 with scripted faults.

    It accepts the API key ``api_key`` as a bearer token, and SigV4 signatures made with
    ``access_key``/``secret_key`` for ``region``; None disables a method, and with both None any
    caller is accepted. ``models`` None accepts any model id. `url` is the endpoint for a
    deployment's ``base_url``, e.g. "http://127.0.0.1:41234".
    """

    provider = "Bedrock"

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
        super().__init__(
            api_key=api_key,
            models=models,
            reply=reply,
            chunk_delay=chunk_delay,
            host=host,
            port=port,
        )
        self.keys = None if access_key is None else SigningKeys(access_key, secret_key, region)
        self.region = region
        self.embedding_dimensions = embedding_dimensions

    def _receive(self, request: web.Request, raw: bytes, body: Any, arrived: float) -> str | None:
        headers = lowered_headers(request)
        path = request.raw_path.partition("?")[0]
        match = _PATH.fullmatch(path)
        model = unquote(match["model"]) if match else None
        action = match["action"] if match else None
        auth: str | None = None
        try:
            auth = self._authenticate(request, headers, raw)
        except AuthFailure as refused:
            request[_REFUSED] = refused
        if self.record:
            json = None if body is NOT_JSON else body
            record = ReceivedRequest(
                request.method, path, headers, json, arrived, model, action, auth
            )
            self.requests.append(record)
        return action

    def _refuse(self, exchange: Exchange[Fault], fault: Fault) -> web.StreamResponse:
        extra = {} if fault.retry_after is None else {"retry-after": f"{fault.retry_after:g}"}
        return _error(fault.status, fault.error_type, fault.message, extra)

    async def _answer(self, exchange: Exchange[Fault]) -> web.StreamResponse:
        request, body, fault = exchange.request, exchange.body, exchange.fault
        if _REFUSED in request:
            failure = request[_REFUSED]
            return _error(403, failure.error_type, failure.message)
        match = _PATH.fullmatch(request.raw_path.partition("?")[0])
        model = unquote(match["model"]) if match else None
        try:
            if request.method != "POST" or match is None or model is None:
                raise BedrockError(404, "UnknownOperationException", "Unknown operation")
            if body is NOT_JSON:
                raise BedrockError(400, "SerializationException", "Malformed request body")
            if self.models is not None and model not in self.models:
                raise BedrockError(
                    400, "ValidationException", "The provided model identifier is invalid."
                )
            if match["action"].startswith("invoke") and is_claude(model):
                return await self._claude(exchange, model, match["action"] != "invoke")
            if match["action"] == "invoke":
                return self._invoke(model, body, exchange.arrived)
            if match["action"] == "invoke-with-response-stream":
                raise BedrockError(
                    400, "ValidationException", f"The fake streams no InvokeModel model {model!r}."
                )
            answer = converse_answer(
                body, self.reply, guardrail=fault is not None and fault.kind == "guardrail"
            )
            if match["action"] == "converse-stream":
                return await self._stream(request, answer, fault, exchange.arrived)
            return await self._whole(request, answer.body(_millis(exchange.arrived)), fault)
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

    async def _claude(
        self, exchange: Exchange[Fault], model: str, streamed: bool
    ) -> web.StreamResponse:
        request, fault = exchange.request, exchange.fault
        answer = claude_answer(check_body(exchange.body), model, self.reply)
        if not streamed:
            return await self._whole(request, answer.body(), fault)
        content, closing = answer.events(_millis(exchange.arrived))
        if fault is None or fault.kind != "no_finish":
            content = content + closing
        frames = [eventstream.event("chunk", chunk_payload(data)) for _, data in content]
        return await self._send_frames(request, frames, fault)

    async def _whole(
        self, request: web.Request, answer: dict[str, Any], fault: Fault | None
    ) -> web.StreamResponse:
        body = msgspec.json.encode(answer)
        # Bedrock's garbage keeps the body's length, so that only its JSON is broken.
        garbage = NOT_JSON_BODY.ljust(len(body))
        return await send_whole(request, body, _headers(), fault, garbage=garbage)

    async def _stream(
        self, request: web.Request, answer: Answer, fault: Fault | None, arrived: float
    ) -> web.StreamResponse:
        content, closing = answer.events(_millis(arrived))
        if fault is None or fault.kind != "no_finish":
            content = content + closing
        frames = [eventstream.event(name, payload) for name, payload in content]
        return await self._send_frames(request, frames, fault)

    async def _send_frames(
        self, request: web.Request, frames: list[bytes], fault: Fault | None
    ) -> web.StreamResponse:
        headers = _headers()
        headers["Content-Type"] = "application/vnd.amazon.eventstream"
        garbage = b""
        if fault is not None and fault.kind == "malformed":
            # The frame before the fault (else the first) again, its checksum broken.
            at = min(fault.after_frames, len(frames))
            garbage = eventstream.corrupt(frames[at - 1] if at else frames[0])
        return await send_stream(
            request,
            headers,
            frames,
            fault,
            self.chunk_delay,
            garbage=garbage,
            error_event=lambda fault: eventstream.exception(fault.member, fault.message),
        )


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
