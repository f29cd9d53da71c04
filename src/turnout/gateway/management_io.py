"""Reading and answering management calls: validated bodies and queries, the master-key rule,
and the store's refusals as OpenAI-shaped errors.

Every invalid input is a 400 whose ``param`` names the field (``rpm_limit``, ``team_id``,
``model_max_budget.gpt-4o.budget_limit``); something missing is a 404; the store being down is
a 503. Keys appear in errors only abbreviated (``sk-...abcd``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Final, TypeVar

import msgspec
from aiohttp import web

from turnout.errors import InvalidRequestError, UnauthorizedError
from turnout.gateway.body import read_body
from turnout.gateway.gateway import Gateway
from turnout.gateway.key_errors import AdminOnlyError
from turnout.gateway.requests import parse_body
from turnout.gateway.virtual_keys import Caller
from turnout.governance import ConflictError, GovernanceStore, NotFoundError

T = TypeVar("T")
_ENCODE: Final = msgspec.json.Encoder().encode
_FIELD_PATTERNS: Final = (
    re.compile(r"at `\$\.([^`]+)`"),
    re.compile(r"unknown field `([^`]+)`"),
    re.compile(r"missing required field `([^`]+)`"),
    re.compile(r"^([a-z_.]+): "),
)


class NotFoundApiError(InvalidRequestError):
    status = 404
    openai_code = "not_found"


class StoreOffError(InvalidRequestError):
    openai_code: ClassVar[str | None] = "store_off"

    def __init__(self) -> None:
        super().__init__(
            "Virtual keys are off: the gateway has no store (set a master key, or a store "
            "section with enabled: true)"
        )


def invalid(message: str, field: str | None = None) -> InvalidRequestError:
    """A 400 naming `field` (found in `message` when not given)."""
    if field is None:
        for pattern in _FIELD_PATTERNS:
            match = pattern.search(message)
            if match:
                field = match.group(1)
                break
    if field and not message.startswith(f"{field}:"):
        message = f"{field}: {message}"
    return InvalidRequestError(message, param=field)


def converted(data: Any, kind: type[T]) -> T:
    try:
        return msgspec.convert(data, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid(str(exc)) from None


async def body(http: web.Request, gateway: Gateway, kind: type[T]) -> T:
    raw = await read_body(http, gateway.config.server.max_body_bytes)
    return converted(parse_body(raw), kind)


def query(http: web.Request, kind: type[T]) -> T:
    return converted(dict(http.query), kind)


def answer(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_ENCODE(value), content_type="application/json")


async def caller(http: web.Request, gateway: Gateway, *, admin: bool = True) -> Caller:
    """The caller of a management route: the master key (or, with `admin` false, a virtual key
    too); a 401 with no master key configured, a 403 for a virtual key on an admin route."""
    if gateway.config.server.master_key is None:
        raise UnauthorizedError(
            "The management API needs a master key: set server.master_key (or LiteLLM's "
            "general_settings.master_key)"
        )
    who = await gateway.identify(http.headers)
    if gateway.store is None:
        raise StoreOffError()
    if admin and who.principal.key_id is not None:
        resource = http.match_info.route.resource
        raise AdminOnlyError(resource.canonical if resource is not None else http.path)
    return who


async def on_store(gateway: Gateway, work: Callable[[GovernanceStore], Awaitable[T]]) -> T:
    """`work` on the store, its refusals as API errors; keys cached by this process are
    forgotten, so a change takes effect here at once."""
    assert gateway.store is not None
    try:
        return await gateway.store.call(work)
    except NotFoundError as exc:
        raise NotFoundApiError(f"{exc.what.capitalize()} not found: {exc.ident}") from None
    except ConflictError as exc:
        # "key: this key is taken", "team 'ml' exists", "user 'ana' exists"
        kind = str(exc).partition(" ")[0]
        raise invalid(str(exc), f"{kind}_id" if kind in ("team", "user") else None) from None
    except ValueError as exc:
        raise invalid(str(exc)) from None
    finally:
        if gateway.keys is not None:
            gateway.keys.forget()
