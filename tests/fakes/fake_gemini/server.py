"""The aiohttp server: routing, authentication, fault scheduling, the record of requests, and
writing answers (whole JSON, a JSON array, or server-sent events) broken as their fault says.

Routes: ``POST /v1beta/models/{model}:{method}`` (key in ``x-goog-api-key`` or ``?key=``) and
Vertex AI's ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}``
(bearer token), for the methods ``generateContent``, ``streamGenerateContent`` (server-sent
events with ``alt=sse``, else one JSON array), ``batchEmbedContents`` and ``embedContent``; and
``GET /v1beta/models``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from fakes.fake_gemini.answers import build_answer
from fakes.fake_gemini.faults import Fault, key_invalid_details
from fakes.fake_gemini.validation import ApiError, check_generate
from fakes.fake_openai.answers import embedding
from fakes.fake_server import server as fake_server
from fakes.fake_server.sending import json_response, send_stream, send_whole
from fakes.fake_server.server import NOT_JSON, Exchange, FakeServer, lowered_headers

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


@dataclass(frozen=True, slots=True)
class ReceivedRequest(fake_server.ReceivedRequest):
    """One request as the fake received it, for assertions: with its query parameters."""

    query: dict[str, str]


class FakeGemini(FakeServer[Fault, ReceivedRequest]):
    """The Gemini API (and Vertex AI's route to it) on 127.0.0.1, with scripted faults.

    ``api_key`` None accepts any caller and ``models`` None any model. The settings are
    attributes, free to change between calls. The base URL, `url`, has no API version: e.g.
    "http://127.0.0.1:41234".
    """

    provider = "Gemini"

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
        super().__init__(
            api_key=api_key,
            models=models,
            reply=reply,
            chunk_delay=chunk_delay,
            host=host,
            port=port,
        )
        self.embedding_dimensions = embedding_dimensions

    def generation_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the generation requests received, oldest first."""
        methods = (":generateContent", ":streamGenerateContent")
        return [r.json for r in self.requests if r.path.endswith(methods) and r.json]

    def _receive(self, request: web.Request, raw: bytes, body: Any, arrived: float) -> str | None:
        if self.record:
            json = None if body is NOT_JSON else body
            headers = lowered_headers(request)
            query = dict(request.query)
            record = ReceivedRequest(request.method, request.path, headers, json, arrived, query)
            self.requests.append(record)
        route = _route(request.path)
        return route["method"] if route else None

    def _refuse(self, exchange: Exchange[Fault], fault: Fault) -> web.StreamResponse:
        return json_response(fault.body(), {}, status=fault.status)

    async def _answer(self, exchange: Exchange[Fault]) -> web.StreamResponse:
        request, body = exchange.request, exchange.body
        route = _route(request.path)
        try:
            self._authenticate(request, vertex=_VERTEX.match(request.path) is not None)
            if request.method == "GET" and request.path == "/v1beta/models":
                models = [{"name": f"models/{m}"} for m in self.models or ()]
                return json_response({"models": models}, {})
            if route is None or request.method != "POST":
                raise ApiError(404, f"Requested entity was not found: {request.path}", "NOT_FOUND")
            if body is NOT_JSON:
                raise ApiError(400, "Invalid JSON payload received. Unexpected token.")
            model, method = route["model"], route["method"]
            return await self._generate(request, model, method, body, exchange.fault)
        except ApiError as error:
            return json_response(error.body, {}, status=error.status)

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

    async def _generate(
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
            return await send_whole(request, whole, {}, fault)
        if fault is not None and fault.kind == "blocked":
            events = [answer.blocked(fault.block_reason)]
        else:
            events = answer.events(finish=not _is(fault, "no_finish"))
        if request.query.get("alt") != "sse":
            return json_response(events, {})
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        return await send_stream(
            request,
            headers,
            [_event(event) for event in events],
            fault,
            self.chunk_delay,
            garbage=MALFORMED_EVENT,
            error_event=lambda fault: _event(fault.body()),
        )

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


def _route(path: str) -> re.Match[str] | None:
    """The model and method a Vertex AI or Gemini API path names."""
    return _VERTEX.match(path) or _GEMINI.match(path)


def _event(data: Any) -> bytes:
    return b"data: " + msgspec.json.encode(data) + b"\r\n\r\n"


def _is(fault: Fault | None, kind: str) -> bool:
    return fault is not None and fault.kind == kind
