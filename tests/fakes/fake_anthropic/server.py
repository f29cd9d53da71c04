"""The aiohttp server: routing, authentication, fault scheduling and the record of requests.

`FakeAnthropic` serves ``POST /v1/messages`` (whole or streamed),
``POST /v1/messages/count_tokens`` and ``GET /v1/models`` on a real socket. Each request draws
its fault (oldest queued first, else the default), is recorded as a `ReceivedRequest`,
authenticated (``x-api-key``, then ``anthropic-version``), checked by `validation`, answered by
`answers` and written by `sending`. The socket, the fault queue and the record are
`FakeServer`'s.

It also serves Claude as Vertex AI does, at ``POST /v1/projects/{project}/locations/{location}/
publishers/anthropic/models/{model}:rawPredict`` (and ``:streamRawPredict``): the caller is
authenticated by ``Authorization: Bearer`` (`FakeAnthropic.vertex_token`) and refused in
Google's error shape, the model comes from the path, the body must carry
``"anthropic_version": "vertex-2023-10-16"`` and no ``model``, and a stream must be asked for at
``:streamRawPredict``. The answers are the Messages API's.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from fakes.fake_anthropic.answers import build_answer, prompt_tokens
from fakes.fake_anthropic.faults import Fault, error_body, google_error_body
from fakes.fake_anthropic.sending import send_stream
from fakes.fake_anthropic.validation import ApiError, check, check_count, invalid
from fakes.fake_server.sending import json_response, send_whole
from fakes.fake_server.server import (
    NOT_JSON,
    Exchange,
    FakeServer,
    ReceivedRequest,
    received,
)

_MODELS_CREATED = "2025-01-01T00:00:00Z"
#: Tokens a count adds to the fake's estimate of the input, for the framing of the message.
COUNT_FRAMING = 7
#: Claude's endpoints on Vertex AI.
_VERTEX_PATH = re.compile(
    r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/anthropic/models/(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)"
)
VERTEX_VERSION = "vertex-2023-10-16"


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


class FakeAnthropic(FakeServer[Fault, ReceivedRequest]):
    """Anthropic's Messages API on 127.0.0.1 with scripted faults; see the package docstring.

    ``api_key`` None accepts any caller and ``models`` None any model; ``vertex_token`` is the
    bearer token of the Vertex AI paths (None: any); ``record=False`` keeps no `requests`. The
    settings are attributes, free to change between calls.
    """

    provider = "Anthropic"

    def __init__(
        self,
        api_key: str | None = "sk-ant-fake",
        *,
        models: Sequence[str] | None = ("claude-sonnet-4-5",),
        reply: str | None = None,
        chunk_delay: float = 0.0,
        rate_limits: RateLimits | None = None,
        vertex_token: str | None = "ya29.fake-vertex-token",
        record: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(
            api_key=api_key,
            models=models,
            reply=reply,
            chunk_delay=chunk_delay,
            record=record,
            host=host,
            port=port,
        )
        self.rate_limits = rate_limits
        self.vertex_token = vertex_token

    def _receive(self, request: web.Request, raw: bytes, body: Any, arrived: float) -> str:
        if self.record:
            self.requests.append(received(request, body, arrived))
        return request.path

    def _refuse(self, exchange: Exchange[Fault], fault: Fault) -> web.StreamResponse:
        request_id = _request_id()
        headers = self._headers(request_id)
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        return json_response(fault.body(request_id), headers, status=fault.status)

    async def _answer(self, exchange: Exchange[Fault]) -> web.StreamResponse:
        request, request_id = exchange.request, _request_id()
        headers = self._headers(request_id)
        vertex = _VERTEX_PATH.fullmatch(request.path)
        if vertex is not None and request.method == "POST":
            return await self._vertex(exchange, headers, request_id, vertex)
        try:
            self._authenticate(request)
            if (request.method, request.path) == ("POST", "/v1/messages"):
                return await self._messages(exchange, headers)
            if (request.method, request.path) == ("POST", "/v1/messages/count_tokens"):
                return self._count_tokens(exchange, headers)
            if (request.method, request.path) == ("GET", "/v1/models"):
                return json_response(self._model_list(), headers)
            raise ApiError(404, "not_found_error", "Not Found")
        except ApiError as error:
            body = error_body(error.error_type, error.message, request_id)
            return json_response(body, headers, status=error.status)

    async def _vertex(
        self,
        exchange: Exchange[Fault],
        headers: dict[str, str],
        request_id: str,
        path: re.Match[str],
    ) -> web.StreamResponse:
        """A Messages request as Vertex AI takes it: Google's authentication and errors around
        Anthropic's body checks and answers."""
        given = exchange.request.headers.get("authorization", "")
        if self.vertex_token is not None and given != f"Bearer {self.vertex_token}":
            message = (
                "Request had invalid authentication credentials. Expected OAuth 2 access token."
            )
            body = google_error_body(401, "UNAUTHENTICATED", message)
            return json_response(body, headers, status=401)
        model = path["model"]
        if self.models is not None and model not in self.models:
            name = path.group(0).rsplit(":", 1)[0].removeprefix("/v1/")
            message = f"Publisher Model `{name}` not found."
            return json_response(google_error_body(404, "NOT_FOUND", message), headers, status=404)
        try:
            native = exchange.body
            if not isinstance(native, dict):
                raise invalid("There was an error parsing the body of your request")
            if "model" in native:
                raise invalid("model: Extra inputs are not permitted")
            if native.get("anthropic_version") != VERTEX_VERSION:
                raise invalid(f"anthropic_version: Input should be '{VERTEX_VERSION}'")
            streamed = path["method"] == "streamRawPredict"
            if (native.get("stream") is True) != streamed:
                raise invalid("stream: streamRawPredict streams, and rawPredict does not")
            body = {k: v for k, v in native.items() if k != "anthropic_version"}
            check({**body, "model": model}, None)
        except ApiError as error:
            body = error_body(error.error_type, error.message, request_id)
            return json_response(body, headers, status=error.status)
        fault = exchange.fault
        refusal = None
        if fault is not None and fault.kind == "refusal":
            refusal = (fault.after_chunks, fault.message)
        answer = build_answer(body, model, self.reply, refusal)
        if streamed:
            return await send_stream(exchange, answer, headers, self.chunk_delay)
        return await send_whole(exchange.request, answer.body(), headers, exchange.fault)

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

    def _count_tokens(self, exchange: Exchange[Fault], headers: dict[str, str]) -> web.Response:
        """Anthropic's exact count, here the fake's estimate plus the message framing
        (`COUNT_FRAMING`), so that a test can tell it from the gateway's own estimate."""
        body = exchange.body
        if body is NOT_JSON:
            raise invalid("There was an error parsing the body of your request: not JSON")
        check_count(body, self.models)
        return json_response({"input_tokens": prompt_tokens(body) + COUNT_FRAMING}, headers)

    async def _messages(
        self, exchange: Exchange[Fault], headers: dict[str, str]
    ) -> web.StreamResponse:
        body = exchange.body
        if body is NOT_JSON:
            raise invalid("There was an error parsing the body of your request: not JSON")
        check(body, self.models)
        fault = exchange.fault
        refusal = None
        if fault is not None and fault.kind == "refusal":
            refusal = (fault.after_chunks, fault.message)
        answer = build_answer(body, body["model"], self.reply, refusal)
        if body.get("stream") is True:
            return await send_stream(exchange, answer, headers, self.chunk_delay)
        return await send_whole(exchange.request, answer.body(), headers, exchange.fault)


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"
