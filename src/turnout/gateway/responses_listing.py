"""One page of a stored response's input items, in OpenAI's cursor-paged list shape.

``GET /v1/responses/{id}/input_items`` takes ``limit`` (1 to 100, 20 by default), ``order``
(``desc``, the default, lists the last item first) and ``after``/``before`` (an item id the page
starts after or ends before); the answer says ``has_more`` so that the SDK's auto-paging asks
for the next page with ``after`` set to the page's ``last_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.errors import InvalidRequestError

_DEFAULT_LIMIT = 20
_MAX_LIMIT = 100


def page(items: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    limit = _limit(query.get("limit"))
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("`order` must be asc or desc", param="order")
    ordered = items if order == "asc" else items[::-1]
    ids = [item["id"] for item in ordered]
    start, end = 0, len(ordered)
    after, before = query.get("after"), query.get("before")
    if after is not None:
        start = _index(ids, after, "after") + 1
    if before is not None:
        end = _index(ids, before, "before")
    chosen = ordered[start:end][:limit]
    return {
        "object": "list",
        "data": chosen,
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
        "has_more": start + len(chosen) < end,
    }


def _limit(value: str | None) -> int:
    if value is None:
        return _DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= _MAX_LIMIT:
        raise InvalidRequestError(f"`limit` must be between 1 and {_MAX_LIMIT}", param="limit")
    return limit


def _index(ids: list[str], item_id: str, name: str) -> int:
    try:
        return ids.index(item_id)
    except ValueError:
        raise InvalidRequestError(
            f"`{name}`: no input item with id '{item_id}' in this response", param=name
        ) from None
