"""The Responses body a native deployment is sent, and its answers as the caller sees them.

The gateway keeps conversations itself (`turnout.gateway.responses_store`), for native and
translated deployments alike: so the body carried to a deployment that speaks the Responses API
(`turnout.providers.openai_responses`) holds the whole conversation as ``input``, not a
``previous_response_id`` only the gateway knows, and says ``store: false``, since the gateway,
not the upstream, keeps what it answers. The conversation is kept as Responses items for this,
beside the chat messages a translated turn replays; items lose the ids the gateway or the
caller gave them, which an upstream that stores nothing could not resolve.

What the caller receives is the upstream's `response` object with the settings it asked for
put back (``store`` and ``previous_response_id``, which the upstream was sent otherwise), under
the upstream's own id, which is the id the gateway stores it by.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Fields of the caller's body the gateway reads for itself and never sends upstream.
_GATEWAY_ONLY = ("previous_response_id", "tags", "timeout", "stream_timeout")
#: Item kinds whose ``id`` and ``status`` are optional, and dropped when replayed.
_PLAIN_ITEMS = frozenset({"message", "function_call", "function_call_output"})


def carried_body(body: Mapping[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """The Responses body for a native deployment: the caller's, its conversation expanded
    (`history`, then this turn's input) and not stored upstream."""
    native = {name: value for name, value in body.items() if name not in _GATEWAY_ONLY}
    native["input"] = [*history, *turn_items(body.get("input"))]
    native["store"] = False
    return native


def turn_items(value: Any) -> list[dict[str, Any]]:
    """A request's ``input`` (already checked) as replayable items."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return [_plain(item) for item in value] if isinstance(value, list) else []


def replay_items(output: list[Any]) -> list[dict[str, Any]]:
    """A response's output as the input items that replay it: its messages and function
    calls (reasoning and hosted tools' items cannot be replayed to an upstream storing nothing)."""
    items: list[dict[str, Any]] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            parts = [_part(part) for part in item.get("content") or () if isinstance(part, dict)]
            items.append({"type": "message", "role": "assistant", "content": parts})
        elif item.get("type") == "function_call":
            items.append(_plain(item))
    return items


def as_sent(response: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """The upstream's `response` object with the caller's own ``store`` and
    ``previous_response_id`` put back."""
    response["store"] = body.get("store", True) is not False
    response["previous_response_id"] = body.get("previous_response_id")
    return response


def _plain(item: Any) -> Any:
    if not isinstance(item, dict) or item.get("type", "message") not in _PLAIN_ITEMS:
        return item
    return {name: value for name, value in item.items() if name not in ("id", "status")}


def _part(part: dict[str, Any]) -> dict[str, Any]:
    """An output part as input takes it: text, or a refusal, without annotations or logprobs."""
    if part.get("type") == "refusal":
        return {"type": "refusal", "refusal": part.get("refusal", "")}
    return {"type": "output_text", "text": part.get("text", "")}
