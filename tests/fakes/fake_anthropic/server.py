"""The aiohttp server: routing, authentication, fault scheduling and the record of requests.

`FakeAnthropic` serves ``POST /v1/messages`` (whole or streamed),
``POST /v1/messages/count_tokens`` and ``GET /v1/models`` on a real socket. Each request draws
its fault (oldest queued first, else the default), is recorded as a `ReceivedRequest`,
authenticated (``x-api-key``, then ``anthropic-version``), checked by `validation`, answered by
`answers` and written by `sending`. The socket, the fault queue and the record are
`FakeServer`'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from fakes.fake_anthropic.answers import build_answer, prompt_tokens
from fakes.fake_anthropic.faults import Fault, error_body
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

    ``api_key`` None accepts any caller and ``models`` None any model; ``record=False`` keeps
    no `requests`. The settings are attributes, free to change between calls.
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
