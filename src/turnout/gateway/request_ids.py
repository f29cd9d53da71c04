"""Request ids: the one a caller sends or a fresh one, on every answer and forwarded upstream.

Every HTTP request gets two ids. The gateway's own (`turnout.wire.new_request_id`) is unique
within the gateway, so spend rows, events and the router's records are keyed by it. The id the
caller knows the request by is the caller's ``x-request-id`` when it sent a usable one, else
that same own id; it is what every answer carries back in ``x-request-id``, what the upstream
is sent, and what the request log shows. Callers reuse ids (a retrying client, a fixed value),
which is why theirs is never a key. When the two differ, answers also carry the gateway's own
in ``x-turnout-request-id``: the key of the request's spend log row.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from turnout.wire import new_request_id

#: The header a caller's id comes in, and every answer's id goes out in.
REQUEST_ID_HEADER = "x-request-id"
#: The gateway's own id for the request, on answers whose caller chose its own id.
OWN_ID_HEADER = "x-turnout-request-id"
#: Longest caller id accepted.
MAX_ID_LENGTH = 128


@dataclass(frozen=True, slots=True)
class RequestIds:
    """A request's ids: the gateway's own, and the caller's when it gave a usable one."""

    own: str
    given: str | None

    @property
    def public(self) -> str:
        """The id the caller knows the request by."""
        return self.given or self.own


#: Set on every request by the gateway's middleware, before its handler runs.
REQUEST_IDS = web.RequestKey("request_ids", RequestIds)
#: The trace the request belongs to, for the request log (set by whatever traces requests).
TRACE_ID = web.RequestKey("trace_id", str)


def accepted(value: str | None) -> str | None:
    """The caller's id when usable: 1 to 128 printable ASCII characters, no spaces (a header
    value could hold anything; an id lands in logs and upstream headers). None otherwise."""
    if value is None or not 0 < len(value) <= MAX_ID_LENGTH:
        return None
    if not value.isascii() or not value.isprintable() or " " in value:
        return None
    return value


def ids_of(http: web.Request) -> RequestIds:
    """The request's ids: the caller's ``x-request-id`` if usable, and a fresh own id."""
    ids = RequestIds(new_request_id(), accepted(http.headers.get(REQUEST_ID_HEADER)))
    http[REQUEST_IDS] = ids
    return ids


def id_headers(ids: RequestIds) -> dict[str, str]:
    """The headers naming the request on its answer."""
    if ids.given is None:
        return {REQUEST_ID_HEADER: ids.own}
    return {REQUEST_ID_HEADER: ids.given, OWN_ID_HEADER: ids.own}


def fresh_id_headers() -> dict[str, str]:
    """For an answer to a request that could not be read (no headers to take an id from)."""
    return {REQUEST_ID_HEADER: new_request_id()}
