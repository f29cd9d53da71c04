"""The aiohttp server: routing, authentication, fault scheduling and the record of requests.

`FakeOpenAI` serves ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/responses`` (`fakes.fake_openai.responses`) and ``/v1/models`` on a real socket. Each
request draws its fault (oldest queued first, else the default), is recorded as a
`ReceivedRequest`, checked, answered by `answers` and written by `sending`. The socket, the
fault queue and the record are `FakeServer`'s.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from fakes.fake_openai import responses
from fakes.fake_openai.answers import (
    Answer,
    build_answer,
    continued,
    embedding,
    embedding_inputs,
    max_tokens,
    quote,
    tool_call,
)
from fakes.fake_openai.errors import ApiError, missing
from fakes.fake_openai.faults import Fault
from fakes.fake_openai.rate_limits import RateLimits
from fakes.fake_openai.sending import send_events, send_stream, send_whole
from fakes.fake_server.sending import json_response
from fakes.fake_server.server import Exchange, FakeServer, ReceivedRequest, received
from turnout.tokens import estimate_prompt_tokens

_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)
#: The legacy completions endpoint's default ``max_tokens``.
_COMPLETION_MAX_TOKENS = 16
_MODEL_CREATED = 1_700_000_000


_Route = Callable[[Exchange[Fault]], Awaitable[web.StreamResponse]]


class FakeOpenAI(FakeServer[Fault, ReceivedRequest]):
    """An OpenAI API on 127.0.0.1 with scripted faults; see the package docstring.

    ``api_key`` None accepts any caller and ``models`` None any model; ``record=False`` keeps
    no `requests` (for benchmarks). The settings are attributes, free to change between calls.
    """

    provider = "OpenAI"
    #: The base URL for clients is e.g. "http://127.0.0.1:41234/v1".
    url_path = "/v1"

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
        super().__init__(
            api_key=api_key,
            models=models,
            reply=reply,
            chunk_delay=chunk_delay,
            record=record,
            host=host,
            port=port,
        )
        self.embedding_dimensions = embedding_dimensions
        self.rate_limits = rate_limits
        self._routes: dict[tuple[str, str], _Route] = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/completions"): self._completions,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("POST", "/v1/responses"): self._responses,
            ("GET", "/v1/models"): self._models,
        }

    def _receive(self, request: web.Request, raw: bytes, body: Any, arrived: float) -> str:
        if self.record:
            self.requests.append(received(request, body, arrived))
        return request.path

    def _refuse(self, exchange: Exchange[Fault], fault: Fault) -> web.StreamResponse:
        headers = self._headers(exchange.arrived)
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        return json_response(fault.body(), headers, status=fault.status)

    async def _answer(self, exchange: Exchange[Fault]) -> web.StreamResponse:
        request = exchange.request
        try:
            self._authenticate(request)
            route = self._route(request)
            if route is None:
                raise ApiError(404, f"Invalid URL ({request.method} {request.path})")
            return await route(exchange)
        except ApiError as error:
            return json_response(error.body, self._headers(exchange.arrived), status=error.status)

    def _route(self, request: web.Request) -> _Route | None:
        """The handler of a request (None: an unknown URL); fakes of other layouts override it."""
        return self._routes.get((request.method, request.path))

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

    async def _chat(self, exchange: Exchange[Fault]) -> web.StreamResponse:
        model, body = self._model_of(exchange.body), exchange.body
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise missing("messages")
        text = continued(messages, self.reply)
        cap = max_tokens(body, "max_completion_tokens") or max_tokens(body, "max_tokens")
        tool = tool_call(body, messages)
        answer = build_answer(body, model, text, cap, chat=True, tool=tool)
        return await self._complete(exchange, answer)

    async def _responses(self, exchange: Exchange[Fault]) -> web.StreamResponse:
        model, body = self._model_of(exchange.body), exchange.body
        answer = responses.answer_of(body, model, self.reply)
        headers = self._headers(exchange.arrived)
        if body.get("stream") is True:
            framed = responses.events(answer)
            return await send_events(exchange, framed, headers, self.chunk_delay)
        return await send_whole(exchange, responses.whole(answer), headers)

    async def _completions(self, exchange: Exchange[Fault]) -> web.StreamResponse:
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

    async def _embeddings(self, exchange: Exchange[Fault]) -> web.StreamResponse:
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

    async def _models(self, exchange: Exchange[Fault]) -> web.StreamResponse:
        data = [
            {"id": model, "object": "model", "created": _MODEL_CREATED, "owned_by": "openai"}
            for model in self.models or ()
        ]
        answer = {"object": "list", "data": data}
        return await send_whole(exchange, answer, self._headers(exchange.arrived))

    async def _complete(self, exchange: Exchange[Fault], answer: Answer) -> web.StreamResponse:
        headers = self._headers(exchange.arrived)
        if exchange.body.get("stream") is True:
            return await send_stream(exchange, answer, headers, self.chunk_delay)
        return await send_whole(exchange, answer.body(), headers)
