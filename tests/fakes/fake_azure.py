"""A fake Azure OpenAI endpoint: `FakeOpenAI`'s answers and faults at Azure's URLs, behind
Azure's auth, with Azure's error bodies and content-filter annotations::

    async with FakeAzure() as fake:
        fake.enqueue(content_filter())
        deployment = Deployment(..., provider="azure", base_url=fake.url,
                                api_key=Secret(fake.api_key), api_version="2024-10-21")

It serves the dated API, ``/openai/deployments/{deployment}/chat/completions`` (and
``/completions``, ``/embeddings``), whose ``api-version`` query is required: without one the
answer is Azure's 404 "Resource not found", with one not shaped like a version a 400 "API version
not supported". And the v1 API, ``/openai/v1/...`` (the deployment named by ``model``), with no
api-version, ``preview`` or ``latest``. Callers authenticate with an ``api-key`` header (a wrong
key gets Azure's ``{"statusCode": 401, ...}``) or ``Authorization: Bearer <ad_token>``.
``deployments`` None accepts any name; otherwise another name gets ``DeploymentNotFound``.

Streams open with Azure's prompt annotation (an event with an empty id and no choices). With
``async_filter`` they also carry the Asynchronous Filter's annotations (empty ids, choices without
a delta) after some tokens and after the finish. With ``filtered`` answers end with
``finish_reason: content_filter`` (under ``async_filter`` in an annotation, as Azure sends it).
Whole answers carry ``prompt_filter_results`` and each choice's ``content_filter_results``.

Faults, the queue and the record of requests are `FakeOpenAI`'s; the functions at the bottom
build Azure's own error answers, as faults to `enqueue`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import unquote

import msgspec
from aiohttp import web

from fakes.fake_openai import FakeOpenAI, Fault, RateLimits
from fakes.fake_openai.answers import Answer
from fakes.fake_openai.errors import ApiError
from fakes.fake_server.server import Exchange

_Route = Callable[[Exchange[Fault]], Awaitable[web.StreamResponse]]

_DEPLOYMENT_PATH = re.compile(
    r"/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)"
)
_V1_PATH = re.compile(r"/openai/v1/(chat/completions|completions|embeddings|models|responses)")
_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
_V1_VERSIONS = (None, "preview", "latest")
#: Tokens between two annotations of the Asynchronous Filter.
_ANNOTATION_EVERY = 3

ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
_BAD_TOKEN = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
_NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again."
)
FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_SAFE = {
    name: {"filtered": False, "severity": "safe"}
    for name in ("hate", "self_harm", "sexual", "violence")
}
_PROMPT_RESULTS = [{"prompt_index": 0, "content_filter_results": _SAFE}]


class FakeAzure(FakeOpenAI):
    """An Azure OpenAI resource on 127.0.0.1 with scripted faults; see the module docstring.

    ``api_key`` None accepts any caller; ``ad_token`` None refuses bearer tokens.
    """

    provider = "Azure OpenAI"
    #: The resource's endpoint is e.g. "http://127.0.0.1:41234" (paths start at /openai).
    url_path = ""

    def __init__(
        self,
        api_key: str | None = "azure-fake-key",
        *,
        ad_token: str | None = "fake-entra-token",
        deployments: Sequence[str] | None = None,
        async_filter: bool = False,
        filtered: bool = False,
        reply: str | None = None,
        chunk_delay: float = 0.0,
        embedding_dimensions: int = 8,
        rate_limits: RateLimits | None = None,
        record: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(
            api_key,
            models=deployments,
            reply=reply,
            chunk_delay=chunk_delay,
            embedding_dimensions=embedding_dimensions,
            rate_limits=rate_limits,
            record=record,
            host=host,
            port=port,
        )
        self.ad_token = ad_token
        self.async_filter = async_filter
        self.filtered = filtered

    def _route(self, request: web.Request) -> _Route | None:
        version = request.query.get("api-version")
        if match := _DEPLOYMENT_PATH.fullmatch(request.path):
            if version is None:
                raise azure_error(404, "404", "Resource not found")
            if not _DATED_VERSION.fullmatch(version):
                raise azure_error(400, "BadRequest", "API version not supported")
            deployment: str | None = unquote(match[1])
            operation = match[2]
        elif match := _V1_PATH.fullmatch(request.path):
            if version not in _V1_VERSIONS:
                raise azure_error(400, "BadRequest", "API version not supported")
            deployment, operation = None, match[1]
            if operation == "models" and request.method == "GET":
                return self._models
        else:
            raise azure_error(404, "404", "Resource not found")
        if request.method != "POST":
            raise azure_error(405, "405", f"The HTTP method {request.method} is not allowed.")
        handlers = {
            "chat/completions": self._chat,
            "completions": self._completions,
            "embeddings": self._embeddings,
            "responses": self._responses,
        }
        return self._on_deployment(handlers[operation], deployment)

    def _on_deployment(self, handler: _Route, deployment: str | None) -> _Route:
        """`handler` for the deployment in the path (dated API) or in ``model`` (v1)."""

        async def route(exchange: Exchange[Fault]) -> web.StreamResponse:
            body = exchange.body
            if isinstance(body, dict):
                name = deployment if deployment is not None else body.get("model")
                if isinstance(name, str) and self.models is not None and name not in self.models:
                    raise azure_error(404, "DeploymentNotFound", _NO_DEPLOYMENT)
                if deployment is not None:
                    # Azure ignores ``model`` on a deployment's URL; the record keeps what came.
                    exchange = replace(exchange, body={**body, "model": deployment})
            return await handler(exchange)

        return route

    def _authenticate(self, request: web.Request) -> None:
        if self.api_key is None:
            return
        key = request.headers.get("api-key")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        bearer = scheme.lower() == "bearer"
        if key is not None and key == self.api_key:
            return
        if bearer and self.ad_token is not None and token.strip() == self.ad_token:
            return
        if bearer and key is None:
            raise azure_error(401, "401", _BAD_TOKEN)
        error = ApiError(401, ACCESS_DENIED)
        error.body = {"statusCode": 401, "message": ACCESS_DENIED}
        raise error

    def _headers(self, arrived: float) -> dict[str, str]:
        headers = super()._headers(arrived)
        headers["apim-request-id"] = str(uuid.uuid4())
        headers["x-ms-region"] = "East US 2"
        return headers

    async def _complete(self, exchange: Exchange[Fault], answer: Answer) -> web.StreamResponse:
        values = {field.name: getattr(answer, field.name) for field in fields(answer)}
        azure = _AzureAnswer(**values, async_filter=self.async_filter, filtered=self.filtered)
        return await super()._complete(exchange, azure)


@dataclass(frozen=True, slots=True, kw_only=True)
class _AzureAnswer(Answer):
    """An answer as Azure sends it: with content-filter results and annotations."""

    async_filter: bool = False
    filtered: bool = False

    def body(self) -> dict[str, Any]:
        body = Answer.body(self)
        body["prompt_filter_results"] = _PROMPT_RESULTS
        for choice in body["choices"]:
            choice["content_filter_results"] = _SAFE
            if self.filtered:
                choice["finish_reason"] = "content_filter"
        return body

    def events(self) -> tuple[list[bytes], list[bytes]]:
        content, closing = Answer.events(self)
        encode = msgspec.json.encode
        opening = {"id": "", "object": "", "created": 0, "model": ""}
        prompt = {**opening, "prompt_filter_results": _PROMPT_RESULTS, "choices": [], "usage": None}
        events = [encode(prompt)]
        for index, event in enumerate(content, 1):
            events.append(event)
            if self.async_filter and index % _ANNOTATION_EVERY == 0:
                events.append(encode({**opening, "choices": [_annotation(index)], "usage": None}))
        finish, *rest = closing
        if self.filtered:
            chunk = msgspec.json.decode(finish)
            chunk["choices"][0]["finish_reason"] = "content_filter"
            finish = encode(chunk)
        ending = [finish]
        if self.async_filter:
            annotation = _annotation(len(content))
            if self.filtered:
                # The filter's verdict ends the choice, in an annotation instead of a chunk.
                annotation["finish_reason"] = "content_filter"
                annotation["content_filter_results"] = {
                    "protected_material_text": {"detected": True, "filtered": True}
                }
                ending = []
            ending.append(encode({**opening, "choices": [annotation], "usage": None}))
        return events, [*ending, *rest]


def _annotation(offset: int) -> dict[str, Any]:
    return {
        "index": 0,
        "finish_reason": None,
        "content_filter_results": _SAFE,
        "content_filter_offsets": {"check_offset": offset, "start_offset": 0, "end_offset": offset},
    }


def azure_error(status: int, code: str, message: str) -> ApiError:
    """An answer in Azure's own error shape, ``{"error": {"code", "message"}}``."""
    error = ApiError(status, message)
    error.body = {"error": {"code": code, "message": message}}
    return error


def content_filter(*, path: str | None = None) -> Fault:
    """The content filter's 400 for a prompt, with its inner error and the category results."""
    results = {**_SAFE, "violence": {"filtered": True, "severity": "medium"}}
    inner = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": results}
    error = {"message": FILTERED, "type": None, "param": "prompt", "code": "content_filter"}
    payload = {"error": {**error, "status": 400, "innererror": inner}}
    return Fault("status", status=400, message=FILTERED, payload=payload, path=path)


def access_denied(*, path: str | None = None) -> Fault:
    """Azure's 401 for a wrong key, in its bare shape."""
    payload = {"statusCode": 401, "message": ACCESS_DENIED}
    return Fault("status", status=401, message=ACCESS_DENIED, payload=payload, path=path)


def rate_limited(retry_after: float | None = None, *, path: str | None = None) -> Fault:
    """A 429 for the token rate limit, with ``Retry-After`` only when given."""
    wait = "" if retry_after is None else f" Please retry after {retry_after:g} seconds."
    message = (
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        f"2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier.{wait}"
    )
    payload = {"error": {"code": "429", "message": message}}
    return Fault(
        "status", status=429, message=message, payload=payload, retry_after=retry_after, path=path
    )


def deployment_not_found(*, path: str | None = None) -> Fault:
    payload = {"error": {"code": "DeploymentNotFound", "message": _NO_DEPLOYMENT}}
    return Fault("status", status=404, message=_NO_DEPLOYMENT, payload=payload, path=path)


def service_unavailable(*, path: str | None = None) -> Fault:
    message = "The service is temporarily unable to process your request. Please try again later."
    payload = {"error": {"code": "ServiceUnavailable", "message": message}}
    return Fault("status", status=503, message=message, payload=payload, path=path)
