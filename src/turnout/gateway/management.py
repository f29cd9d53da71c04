"""LiteLLM's key management API: the same paths, fields and answers, on turnout's store.

``/key/generate|update|delete|info|list|regenerate|block|unblock``, ``/team/new|update|delete|
info|list``, ``/user/new|update|delete|info``, ``/spend/logs`` and ``/global/spend``; the master
key only, except that a virtual key may read its own ``/key/info``. A key is named by the key
itself, its digest (LiteLLM's ``token``) or its stable id. Bodies and answers are the types of
`turnout.gateway.management_schema`, and ``/openapi.json`` describes them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from turnout.errors import UnauthorizedError
from turnout.gateway.auth import MASTER
from turnout.gateway.gateway import Gateway
from turnout.gateway.key_errors import AdminOnlyError
from turnout.gateway.ledger_spend import with_ledger_spend
from turnout.gateway.management_fields import (
    changes,
    key_fields,
    render_key,
    render_team,
    render_user,
    user_fields,
)
from turnout.gateway.management_io import (
    NotFoundApiError,
    answer,
    body,
    caller,
    converted,
    invalid,
    on_store,
    query,
)
from turnout.gateway.management_schema import (
    DeletedKeys,
    DeletedTeams,
    DeletedUsers,
    DeleteKeysRequest,
    DeleteTeamsRequest,
    DeleteUsersRequest,
    GeneratedKey,
    GenerateKeyRequest,
    KeyFields,
    KeyInfoAnswer,
    KeyInfoQuery,
    KeyListAnswer,
    KeyListQuery,
    KeyRef,
    NewTeamRequest,
    NewUserAnswer,
    NewUserRequest,
    PageQuery,
    RegenerateKeyRequest,
    TeamInfoAnswer,
    TeamInfoQuery,
    UpdateKeyRequest,
    UpdateTeamRequest,
    UpdateUserRequest,
    UserInfoAnswer,
    UserInfoQuery,
)
from turnout.gateway.management_spend import global_spend, spend_logs
from turnout.gateway.openapi import ENDPOINTS, OPENAPI_PATH, openapi_document
from turnout.governance import (
    CreatedKey,
    GovernanceStore,
    Key,
    KeySettings,
    NotFoundError,
    TeamSettings,
    UserSettings,
)
from turnout.governance.keys import KEY_PREFIX, abbreviate
from turnout.governance.periods import parse_duration

Handler = Callable[[Gateway, web.Request], Awaitable[web.Response]]
#: Keys listed with a team or user in their ``/team/info`` and ``/user/info``.
KEYS_LISTED: Final = 1000


def add_management_routes(app: web.Application, gateway_key: web.AppKey[Gateway]) -> None:
    def bound(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(http: web.Request) -> web.Response:
            return await handler(http.app[gateway_key], http)

        return handle

    for endpoint in ENDPOINTS:
        handler = HANDLERS[endpoint.method, endpoint.path]
        app.router.add_route(endpoint.method, endpoint.path, bound(handler))
    app.router.add_get(OPENAPI_PATH, _openapi)


def _now() -> datetime:
    return datetime.now(UTC)


def _settings(kind: type[Any], data: dict[str, Any]) -> Any:
    import msgspec

    return converted(msgspec.to_builtins(data), kind)


async def find_key(store: GovernanceStore, ref: str) -> Key:
    """The live key `ref` names: the key itself, its digest or its id."""
    if ref.startswith(KEY_PREFIX):
        found = await store.key_by_hash(store.key_hash(ref))
        shown = abbreviate(ref)
    else:
        try:
            return await store.get_key(ref)
        except NotFoundError:
            found = await store.key_by_hash(ref)
        shown = ref
    if found is None:
        raise NotFoundApiError(f"Key not found: {shown}", param="key")
    return found


async def _with_user(store: GovernanceStore, user_id: str | None, work: Callable[[], Any]) -> Any:
    """`work`, creating the key's user first if it does not exist (as LiteLLM does for
    ``/key/generate`` with a new ``user_id``); a missing team is the caller's error."""
    try:
        return await work()
    except NotFoundError as exc:
        if exc.what == "team":
            raise invalid(f"team {exc.ident!r} does not exist", "team_id") from None
        if exc.what != "user" or user_id is None:
            raise
    await store.create_user(UserSettings(), user_id=user_id)
    return await work()


def _chosen_key(gateway: Gateway, key: str | None, field: str) -> str | None:
    """A key the caller chose: ``sk-`` and more (so that it is told apart from a digest or an
    id wherever a key is named), and never the master key."""
    if key is None:
        return None
    if not key.startswith(KEY_PREFIX) or len(key) == len(KEY_PREFIX):
        raise invalid(f"a key of your own must start with {KEY_PREFIX}", field)
    with contextlib.suppress(UnauthorizedError):
        if gateway.auth.authenticate({"authorization": f"Bearer {key}"}) == MASTER:
            raise invalid("this key is taken; choose another", field)
    return key


def _generated(created: CreatedKey) -> GeneratedKey:
    fields = key_fields(created.record)
    return GeneratedKey(**fields, key=created.key, token_id=created.record.token_hash)


# -- keys ----------------------------------------------------------------------------------------


async def key_generate(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    request = await body(http, gateway, GenerateKeyRequest)
    settings: KeySettings = _settings(KeySettings, changes(request, _now()))
    chosen = _chosen_key(gateway, request.key or None, "key")

    async def work(store: GovernanceStore) -> CreatedKey:
        created: CreatedKey = await _with_user(
            store, settings.user_id, lambda: store.create_key(settings, key=chosen)
        )
        return created

    return answer(_generated(await on_store(gateway, work)))


async def _key_change(
    gateway: Gateway, ref: str, request: KeyFields, apply: Callable[..., Awaitable[Any]]
) -> Any:
    async def work(store: GovernanceStore) -> Any:
        key = await find_key(store, ref)
        update = changes(request, _now(), key.settings)
        user_id = update.get("user_id")
        return await _with_user(store, user_id, lambda: apply(store, key, update))

    return await on_store(gateway, work)


async def key_update(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    request = await body(http, gateway, UpdateKeyRequest)

    async def apply(store: GovernanceStore, key: Key, update: dict[str, Any]) -> Key:
        return await store.update_key(key.id, update)

    return answer(render_key(await _key_change(gateway, request.key, request, apply)))


async def key_regenerate(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    request = await body(http, gateway, RegenerateKeyRequest) if http.can_read_body else None
    request = request or RegenerateKeyRequest()
    ref = http.match_info.get("key") or (request.key if isinstance(request.key, str) else None)
    if ref is None:
        raise invalid("the key to regenerate is missing", "key")
    grace = None
    if isinstance(request.grace_period, str):
        try:
            grace = parse_duration(request.grace_period)
        except ValueError as exc:
            raise invalid(str(exc), "grace_period") from None
    new_key = _chosen_key(
        gateway, request.new_key if isinstance(request.new_key, str) else None, "new_key"
    )

    async def apply(store: GovernanceStore, key: Key, update: dict[str, Any]) -> CreatedKey:
        return await store.regenerate_key(
            key.id, grace_period=grace, key=new_key, changes=update or None
        )

    return answer(_generated(await _key_change(gateway, ref, request, apply)))


async def key_delete(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    request = await body(http, gateway, DeleteKeysRequest)
    if not request.keys and not request.key_aliases:
        raise invalid("name at least one key in keys or key_aliases", "keys")

    async def work(store: GovernanceStore) -> list[str]:
        found = [await find_key(store, ref) for ref in request.keys]
        for alias in request.key_aliases:
            page = await store.list_keys(key_alias=alias, limit=KEYS_LISTED)
            if not page.items:
                raise NotFoundApiError(f"No key has the alias {alias!r}", param="key_aliases")
            found.extend(page.items)
        for key in found:
            await store.delete_key(key.id)
        return [key.token_hash for key in found]

    return answer(DeletedKeys(deleted_keys=await on_store(gateway, work)))


async def key_info(gateway: Gateway, http: web.Request) -> web.Response:
    who = await caller(http, gateway, admin=False)
    ref = query(http, KeyInfoQuery).key
    own = who.principal.key_id

    async def work(store: GovernanceStore) -> Key:
        if ref is None:
            if own is None:
                raise invalid("name the key: /key/info?key=<key, token or id>", "key")
            return await with_ledger_spend(gateway.ledger, await store.get_key(own))
        key = await find_key(store, ref)
        if own is not None and key.id != own:
            raise AdminOnlyError(f"{http.path} for another key")
        return await with_ledger_spend(gateway.ledger, key)

    key = await on_store(gateway, work)
    return answer(KeyInfoAnswer(key=key.token_hash, info=render_key(key)))


async def key_list(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    asked = query(http, KeyListQuery)
    page = await on_store(
        gateway,
        lambda store: store.list_keys(
            team_id=asked.team_id,
            user_id=asked.user_id,
            key_alias=asked.key_alias,
            offset=(asked.page - 1) * asked.size,
            limit=asked.size,
        ),
    )
    keys: list[Any] = [
        render_key(key) if asked.return_full_object else key.token_hash for key in page.items
    ]
    return answer(
        KeyListAnswer(
            keys=keys,
            total_count=page.total,
            current_page=asked.page,
            total_pages=math.ceil(page.total / asked.size),
        )
    )


def _blocking(blocked: bool) -> Handler:
    async def handle(gateway: Gateway, http: web.Request) -> web.Response:
        await caller(http, gateway)
        ref = (await body(http, gateway, KeyRef)).key

        async def work(store: GovernanceStore) -> Key:
            key = await find_key(store, ref)
            return await (store.block_key if blocked else store.unblock_key)(key.id)

        return answer(render_key(await on_store(gateway, work)))

    return handle


# -- teams ---------------------------------------------------------------------------------------


async def team_new(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    request = await body(http, gateway, NewTeamRequest)
    settings = _settings(TeamSettings, changes(request, _now(), ident="team_id"))
    team_id = request.team_id if isinstance(request.team_id, str) else None
    team = await on_store(gateway, lambda store: store.create_team(settings, team_id=team_id))
    return answer(render_team(team))


async def team_update(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    request = await body(http, gateway, UpdateTeamRequest)

    async def work(store: GovernanceStore) -> Any:
        team = await store.get_team(request.team_id)
        return await store.update_team(
            team.id, changes(request, _now(), team.settings, ident="team_id")
        )

    return answer(render_team(await on_store(gateway, work)))


async def team_delete(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    request = await body(http, gateway, DeleteTeamsRequest)

    async def work(store: GovernanceStore) -> list[str]:
        for team_id in request.team_ids:
            await store.get_team(team_id)
        for team_id in request.team_ids:
            await store.delete_team(team_id)
        return list(request.team_ids)

    return answer(DeletedTeams(deleted_teams=await on_store(gateway, work)))


async def team_info(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    team_id = query(http, TeamInfoQuery).team_id

    async def work(store: GovernanceStore) -> TeamInfoAnswer:
        team = await with_ledger_spend(gateway.ledger, await store.get_team(team_id))
        keys = await store.list_keys(team_id=team_id, limit=KEYS_LISTED)
        return TeamInfoAnswer(
            team_id=team.id,
            team_info=render_team(team),
            keys=[render_key(key) for key in keys.items],
        )

    return answer(await on_store(gateway, work))


async def team_list(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    asked = query(http, PageQuery)
    page = await on_store(
        gateway,
        lambda store: store.list_teams(offset=(asked.page - 1) * asked.size, limit=asked.size),
    )
    return answer([render_team(team) for team in page.items])


# -- users ---------------------------------------------------------------------------------------


async def user_new(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    request = await body(http, gateway, NewUserRequest)
    given = changes(request, _now(), ident="user_id")
    key_settings: dict[str, Any] = {
        name: given.pop(name) for name in ("key_alias", "expires") if name in given
    }
    settings = _settings(UserSettings, given)
    user_id = request.user_id if isinstance(request.user_id, str) else None

    async def work(store: GovernanceStore) -> NewUserAnswer:
        user = await store.create_user(settings, user_id=user_id)
        created = None
        if request.auto_create_key:
            key = _settings(
                KeySettings, {**key_settings, "user_id": user.id, "models": settings.models}
            )
            created = await store.create_key(key)
        return NewUserAnswer(
            **user_fields(user),
            key=created.key if created else None,
            token=created.record.token_hash if created else None,
        )

    return answer(await on_store(gateway, work))


async def user_update(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    request = await body(http, gateway, UpdateUserRequest)

    async def work(store: GovernanceStore) -> Any:
        user = await store.get_user(request.user_id)
        return await store.update_user(
            user.id, changes(request, _now(), user.settings, ident="user_id")
        )

    return answer(render_user(await on_store(gateway, work)))


async def user_delete(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    request = await body(http, gateway, DeleteUsersRequest)

    async def work(store: GovernanceStore) -> list[str]:
        for user_id in request.user_ids:
            await store.get_user(user_id)
        for user_id in request.user_ids:
            await store.delete_user(user_id)
        return list(request.user_ids)

    return answer(DeletedUsers(deleted_users=await on_store(gateway, work)))


async def user_info(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    user_id = query(http, UserInfoQuery).user_id

    async def work(store: GovernanceStore) -> UserInfoAnswer:
        user = await with_ledger_spend(gateway.ledger, await store.get_user(user_id))
        keys = await store.list_keys(user_id=user_id, limit=KEYS_LISTED)
        return UserInfoAnswer(
            user_id=user.id,
            user_info=render_user(user),
            keys=[render_key(key) for key in keys.items],
        )

    return answer(await on_store(gateway, work))


# -- spend and the document ----------------------------------------------------------------------


async def _spend_logs(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    return answer(await spend_logs(gateway, http))


async def _global_spend(gateway: Gateway, http: web.Request) -> web.Response:
    await caller(http, gateway)
    return answer(await global_spend(gateway, http))


async def _openapi(http: web.Request) -> web.Response:
    return answer(openapi_document())


#: (method, path) -> its handler; the paths and their types are `openapi.ENDPOINTS`.
HANDLERS: Final[dict[tuple[str, str], Handler]] = {
    ("POST", "/key/generate"): key_generate,
    ("POST", "/key/update"): key_update,
    ("POST", "/key/delete"): key_delete,
    ("GET", "/key/info"): key_info,
    ("GET", "/key/list"): key_list,
    ("POST", "/key/regenerate"): key_regenerate,
    ("POST", "/key/{key}/regenerate"): key_regenerate,
    ("POST", "/key/block"): _blocking(True),
    ("POST", "/key/unblock"): _blocking(False),
    ("POST", "/team/new"): team_new,
    ("POST", "/team/update"): team_update,
    ("POST", "/team/delete"): team_delete,
    ("GET", "/team/info"): team_info,
    ("GET", "/team/list"): team_list,
    ("POST", "/user/new"): user_new,
    ("POST", "/user/update"): user_update,
    ("POST", "/user/delete"): user_delete,
    ("GET", "/user/info"): user_info,
    ("GET", "/spend/logs"): _spend_logs,
    ("GET", "/global/spend"): _global_spend,
}
