"""The model list: ``GET /v1/models`` and ``GET /v1/models/{id}``, in OpenAI's shape or in
Anthropic's, whichever the caller speaks.

Both APIs serve a model list at the same paths, in different shapes: OpenAI's ``{"object":
"list", "data": [{"id", "object": "model", "created", "owned_by"}]}``, and Anthropic's page
``{"data": [{"type": "model", "id", "display_name", "created_at"}], "first_id", "last_id",
"has_more"}``, paged by ``limit`` (1 to 1000, 20 by default), ``after_id`` and ``before_id``.
The Anthropic SDKs (and Claude Code, which lists models through them) send ``anthropic-version``
on every request, and OpenAI's never do: that header picks Anthropic's shape, errors included.

Either lists every model group and alias the caller may use, and a name it may not see is as
unknown as one that does not exist, so the 404 names no other model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from turnout.errors import InvalidRequestError, ModelNotFoundError
from turnout.gateway.gateway import Gateway
from turnout.gateway.ingress import ERROR_SHAPE
from turnout.gateway.messages_errors import error_body
from turnout.gateway.virtual_keys import visible_models

_ENCODE = msgspec.json.Encoder().encode
_JSON = "application/json"
#: Anthropic's page sizes: 20 unless asked, at most 1000.
_DEFAULT_LIMIT = 20
_MAX_LIMIT = 1000


def add_model_routes(app: web.Application, key: web.AppKey[Gateway]) -> None:
    """Serve the model list on `app`, whose gateway is `app[key]`, with and without ``/v1``."""

    async def models(http: web.Request) -> web.Response:
        anthropic = _anthropic(http)  # first: a refused key is answered in its shape too
        names, created = await _visible(http, key)
        if anthropic:
            return _json(_anthropic_page(names, created, http.query))
        data = [_openai_model(name, created) for name in names]
        return _json({"object": "list", "data": data})

    async def model(http: web.Request) -> web.Response:
        anthropic = _anthropic(http)
        names, created = await _visible(http, key)
        name = http.match_info["model"]
        if name not in names:
            raise ModelNotFoundError(name)
        if anthropic:
            return _json(_anthropic_model(name, created))
        return _json(_openai_model(name, created))

    for prefix in ("/v1", ""):
        app.router.add_get(f"{prefix}/models", models)
        app.router.add_get(f"{prefix}/models/{{model:.+}}", model)


def _anthropic(http: web.Request) -> bool:
    """Whether the caller speaks Anthropic's API; its errors then take Anthropic's shape."""
    if "anthropic-version" not in http.headers:
        return False
    http[ERROR_SHAPE] = error_body
    return True


async def _visible(http: web.Request, key: web.AppKey[Gateway]) -> tuple[list[str], int]:
    """The names the caller may use, in the gateway's order, and when they were listed."""
    gateway = http.app[key]
    caller = await gateway.identify(http.headers)
    router = gateway.router
    names = list(visible_models(caller.grant, router.model_names(), router.group_of))
    return names, int(gateway.started_at)


def _openai_model(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "turnout"}


def _anthropic_model(name: str, created: int) -> dict[str, Any]:
    at = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "model", "id": name, "display_name": name, "created_at": at}


def _anthropic_page(names: list[str], created: int, query: Any) -> dict[str, Any]:
    """One page of Anthropic's model list: `limit` names after ``after_id`` or, with
    ``before_id``, the `limit` names just before it."""
    limit = _limit(query.get("limit"))
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise InvalidRequestError("Only one of after_id and before_id may be given")
    if before is not None:
        end = _position(names, before, "before_id")
        start = max(0, end - limit)
        page, more = names[start:end], start > 0
    else:
        start = 0 if after is None else _position(names, after, "after_id") + 1
        page, more = names[start : start + limit], start + limit < len(names)
    return {
        "data": [_anthropic_model(name, created) for name in page],
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
        "has_more": more,
    }


def _limit(raw: str | None) -> int:
    if raw is None:
        return _DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= _MAX_LIMIT:
        raise InvalidRequestError(
            f"limit must be an integer from 1 to {_MAX_LIMIT}, not {raw!r}", param="limit"
        )
    return value


def _position(names: list[str], name: str, param: str) -> int:
    try:
        return names.index(name)
    except ValueError:
        raise InvalidRequestError(f"{param} {name!r} is not a listed model", param=param) from None


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=_ENCODE(body), content_type=_JSON)
