"""The management API's endpoints, each with its types, and the OpenAPI document made from them.

`ENDPOINTS` is the one list of paths: `turnout.gateway.management` registers a handler for each,
and `openapi_document` describes each from the msgspec types the handler validates its body or
query with and encodes its answer from (`msgspec.json.schema_components`). A field added to a
type is in the document as soon as it is served.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from turnout.gateway.management_schema import (
    DailySpendRow,
    DeletedKeys,
    DeletedTeams,
    DeletedUsers,
    DeleteKeysRequest,
    DeleteTeamsRequest,
    DeleteUsersRequest,
    GeneratedKey,
    GenerateKeyRequest,
    GlobalSpend,
    GlobalSpendQuery,
    KeyInfo,
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
    SpendLog,
    SpendLogsQuery,
    TeamInfo,
    TeamInfoAnswer,
    TeamInfoQuery,
    UpdateKeyRequest,
    UpdateTeamRequest,
    UpdateUserRequest,
    UserInfo,
    UserInfoAnswer,
    UserInfoQuery,
)

#: Where the document is served.
OPENAPI_PATH: Final = "/openapi.json"


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    summary: str
    #: The answer's type, or a tuple of the types it may be.
    answer: Any
    body: type[msgspec.Struct] | None = None
    query: type[msgspec.Struct] | None = None


ENDPOINTS: Final = (
    Endpoint("POST", "/key/generate", "Create a key", GeneratedKey, GenerateKeyRequest),
    Endpoint("POST", "/key/update", "Change a key's settings", KeyInfo, UpdateKeyRequest),
    Endpoint("POST", "/key/delete", "Delete keys (kept for audit)", DeletedKeys, DeleteKeysRequest),
    Endpoint("GET", "/key/info", "A key's settings and spend", KeyInfoAnswer, query=KeyInfoQuery),
    Endpoint("GET", "/key/list", "Keys, a page at a time", KeyListAnswer, query=KeyListQuery),
    Endpoint(
        "POST", "/key/regenerate", "A new secret for a key", GeneratedKey, RegenerateKeyRequest
    ),
    Endpoint(
        "POST",
        "/key/{key}/regenerate",
        "A new secret for the key in the path",
        GeneratedKey,
        RegenerateKeyRequest,
    ),
    Endpoint("POST", "/key/block", "Stop a key working", KeyInfo, KeyRef),
    Endpoint("POST", "/key/unblock", "Let a blocked key work again", KeyInfo, KeyRef),
    Endpoint("POST", "/team/new", "Create a team", TeamInfo, NewTeamRequest),
    Endpoint("POST", "/team/update", "Change a team", TeamInfo, UpdateTeamRequest),
    Endpoint("POST", "/team/delete", "Delete teams", DeletedTeams, DeleteTeamsRequest),
    Endpoint("GET", "/team/info", "A team and its keys", TeamInfoAnswer, query=TeamInfoQuery),
    Endpoint("GET", "/team/list", "Teams, a page at a time", list[TeamInfo], query=PageQuery),
    Endpoint("POST", "/user/new", "Create a user (and a key)", NewUserAnswer, NewUserRequest),
    Endpoint("POST", "/user/update", "Change a user", UserInfo, UpdateUserRequest),
    Endpoint("POST", "/user/delete", "Delete users", DeletedUsers, DeleteUsersRequest),
    Endpoint("GET", "/user/info", "A user and their keys", UserInfoAnswer, query=UserInfoQuery),
    Endpoint(
        "GET",
        "/spend/logs",
        "Spend per request, or per day with summarize",
        (list[SpendLog], list[DailySpendRow]),
        query=SpendLogsQuery,
    ),
    Endpoint("GET", "/global/spend", "Total spend", GlobalSpend, query=GlobalSpendQuery),
)

_ERROR: Final = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}


@functools.cache
def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the management API (built once; the types do not change at run time)."""
    types: list[Any] = []
    for endpoint in ENDPOINTS:
        types.extend(_answers(endpoint))
        if endpoint.body is not None:
            types.append(endpoint.body)
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    found = iter(schemas)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        shapes = [next(found) for _ in _answers(endpoint)]
        answer = shapes[0] if len(shapes) == 1 else {"oneOf": shapes}
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "security": [{"masterKey": []}],
            "responses": {
                "200": {"description": "OK", "content": _json(answer)},
                "default": {"description": "An error, in OpenAI's shape", "content": _json(_ERROR)},
            },
        }
        if endpoint.body is not None:
            operation["requestBody"] = {"required": True, "content": _json(next(found))}
        if endpoint.query is not None:
            operation["parameters"] = _parameters(endpoint.query)
        if "{key}" in endpoint.path:
            operation.setdefault("parameters", []).append(
                {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
            )
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "turnout management API (LiteLLM-compatible)", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"masterKey": {"type": "http", "scheme": "bearer"}},
        },
    }


def _answers(endpoint: Endpoint) -> tuple[Any, ...]:
    return endpoint.answer if isinstance(endpoint.answer, tuple) else (endpoint.answer,)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _parameters(kind: type[msgspec.Struct]) -> list[dict[str, Any]]:
    schema = msgspec.json.schema(kind)
    name = kind.__name__
    own = schema["$defs"][name]
    required = set(own.get("required", ()))
    return [
        {"name": field, "in": "query", "required": field in required, "schema": spec}
        for field, spec in own["properties"].items()
    ]
