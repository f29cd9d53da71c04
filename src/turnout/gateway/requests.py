"""Turning an HTTP body into a router `Request`, checking only what routing relies on.

The gateway validates the fields it reads (model, stream, token limits, the prompt's container)
and says exactly which one is wrong, in OpenAI's words where OpenAI has them. Every other field
passes through untouched: the upstream is the authority on its own parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from turnout.errors import InvalidRequestError
from turnout.wire import AttemptLimits, Operation, Principal, Request

_DECODE = msgspec.json.Decoder().decode

#: Header a caller may use to route by tags (comma-separated), besides a ``tags`` body field.
TAGS_HEADER = "x-turnout-tags"
#: The caller's deadline for the whole request, in milliseconds.
TIMEOUT_HEADER = "x-turnout-timeout-ms"
#: The OpenAI SDK's read timeout in seconds: for a request answered whole, the time it waits.
SDK_TIMEOUT_HEADER = "x-stainless-read-timeout"
#: What is kept of the SDK's read timeout for the answer's way back to it, which must arrive
#: before the SDK gives up (it would retry, twice by default): 5% of it, within these bounds.
SDK_MARGIN = 0.05
SDK_MARGIN_CAP = 1.0
#: The caller's limits on each attempt, in milliseconds: a stream's first chunk, the gap
#: between two chunks, and an answer sent whole. They replace the deployment's learned limits
#: for this request; a deployment's configured limit still bounds them.
FIRST_TOKEN_HEADER = "x-turnout-first-token-timeout-ms"
IDLE_HEADER = "x-turnout-idle-timeout-ms"
ATTEMPT_HEADER = "x-turnout-attempt-timeout-ms"


#: Deepest nesting of arrays and objects accepted in a body. Real requests (tool schemas
#: included) stay far below it; past it, decoding, re-encoding for an upstream and walking a
#: prompt would recurse toward Python's limit.
MAX_NESTING = 128


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequestError("The request body is empty: send a JSON object")
    try:
        value = _DECODE(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise _too_deep() from None
    if not isinstance(value, dict):
        raise InvalidRequestError("The request body must be a JSON object")
    # Nesting can exceed the limit only with more brackets than the limit: most bodies skip
    # the walk after two counts at memory speed.
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING and _nested_deeper(value, MAX_NESTING):
        raise _too_deep()
    return value


def _too_deep() -> InvalidRequestError:
    return InvalidRequestError(
        f"The request body nests arrays and objects more than {MAX_NESTING} levels deep"
    )


def _nested_deeper(value: dict[str, Any], limit: int) -> bool:
    """Whether `value` nests containers more than `limit` levels deep, level by level."""
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            below.extend(item for item in items if isinstance(item, dict | list))
        level = below
        depth += 1
    return False


def build_request(
    body: dict[str, Any],
    operation: Operation,
    headers: Mapping[str, str],
    principal: Principal | None = None,
    *,
    ids: tuple[str, str | None] | None = None,
) -> Request:
    """A router request from a decoded body, or an `InvalidRequestError` naming the field;
    `principal`: who the gateway authenticated, carried on the request; `ids`: the gateway's
    own id for the request and the caller's (None: a fresh own id, no caller's)."""
    model = body.get("model")
    if model is None:
        raise InvalidRequestError("you must provide a model parameter", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("`model` must be a non-empty string", param="model")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError("`stream` must be a boolean", param="stream")
    if operation is Operation.EMBEDDING and stream:
        raise InvalidRequestError("embeddings cannot be streamed", param="stream")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidRequestError(f"`{name}` must be an integer", param=name)
        if isinstance(value, int) and value < 1:
            raise InvalidRequestError(f"`{name}` must be at least 1", param=name)
    _check_prompt(body, operation)
    request = Request(
        model=model,
        body=body,
        operation=operation,
        tags=_tags(body, headers),
        timeout=_deadline(headers, streamed=stream is True),
        limits=attempt_limits(body, headers, streamed=stream is True),
        start_within=sdk_wait(headers) if stream is True else None,
        principal=principal,
    )
    if ids is not None:
        request.request_id, request.client_request_id = ids
    return request


def prompt_of(body: dict[str, Any]) -> object:
    """What the caller asked (chat messages, a completion's prompt, an embedding's input),
    for a request log that captures content."""
    for name in ("messages", "prompt", "input"):
        if name in body:
            return body[name]
    return None


def attempt_limits(
    body: dict[str, Any], headers: Mapping[str, str], *, streamed: bool
) -> AttemptLimits | None:
    """The caller's limits on each attempt, from headers (milliseconds) or LiteLLM's body
    fields ``timeout`` and ``stream_timeout`` (seconds, per call, as LiteLLM reads them: for a
    stream ``stream_timeout``, else ``timeout``, bounds the first chunk and each gap). The body
    fields are taken out of the body: upstreams do not know them. A header wins over the
    body."""
    call = _body_seconds(body, "timeout")
    streaming = _body_seconds(body, "stream_timeout")
    first = _header_seconds(headers, FIRST_TOKEN_HEADER)
    idle = _header_seconds(headers, IDLE_HEADER)
    whole = _header_seconds(headers, ATTEMPT_HEADER)
    per_read = (streaming or call) if streamed else None
    first = first if first is not None else per_read
    idle = idle if idle is not None else per_read
    whole = whole if whole is not None else call
    if first is None and idle is None and whole is None:
        return None
    return AttemptLimits(first_token=first, idle=idle, request=whole)


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf")
    )


def _body_seconds(body: dict[str, Any], name: str) -> float | None:
    if name not in body:
        return None
    value = body.pop(name)
    if value is None:
        return None
    if not _positive(value):
        raise InvalidRequestError(f"`{name}` must be a positive number of seconds", param=name)
    return float(value)


def _header_seconds(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        milliseconds = float(value)
    except ValueError:
        milliseconds = 0.0
    if not _positive(milliseconds):
        raise InvalidRequestError(f"`{name}` must be a positive number of milliseconds", param=name)
    return milliseconds / 1000.0


def _deadline(headers: Mapping[str, str], *, streamed: bool) -> float | None:
    """Seconds the caller will wait for the whole answer: the sooner of its explicit deadline
    and, for an answer sent whole, the SDK's read timeout (less a margin, so that the answer,
    or the error, arrives before the SDK gives up on its own and retries)."""
    value = headers.get(TIMEOUT_HEADER)
    explicit: float | None = None
    if value is not None:
        try:
            milliseconds = float(value)
        except ValueError:
            milliseconds = 0.0
        if not milliseconds > 0 or milliseconds == float("inf"):
            raise InvalidRequestError(
                f"`{TIMEOUT_HEADER}` must be a positive number of milliseconds",
                param=TIMEOUT_HEADER,
            )
        explicit = milliseconds / 1000.0
    sdk = None if streamed else sdk_wait(headers)
    if sdk is None or (explicit is not None and explicit <= sdk):
        return explicit
    return sdk


def sdk_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds within which the SDK must see the response begin (its read timeout, less a
    margin for the way back), or None when it did not say. For an answer sent whole that is
    the whole answer; for a stream, its first chunk (the response starts with it)."""
    value = headers.get(SDK_TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not 0 < seconds < float("inf"):
        return None
    return seconds - min(max(SDK_MARGIN, seconds * 0.05), SDK_MARGIN_CAP, seconds / 2)


def _check_prompt(body: Mapping[str, Any], operation: Operation) -> None:
    if operation is Operation.CHAT:
        messages = body.get("messages")
        if messages is None:
            raise InvalidRequestError("you must provide a messages parameter", param="messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequestError("`messages` must be a non-empty array", param="messages")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidRequestError(
                    f"`messages[{index}]` must be an object with a string `role`",
                    param=f"messages[{index}]",
                )
    elif operation is Operation.COMPLETION:
        prompt = body.get("prompt")
        if not isinstance(prompt, (str, list)):
            raise InvalidRequestError("`prompt` must be a string or an array", param="prompt")
    else:
        value = body.get("input")
        if value is None:
            raise InvalidRequestError("you must provide an input parameter", param="input")
        if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
            raise InvalidRequestError(
                "`input` must be a string or a non-empty array", param="input"
            )


def _tags(body: Mapping[str, Any], headers: Mapping[str, str]) -> frozenset[str]:
    tags = body.get("tags")
    found: set[str] = set()
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidRequestError("`tags` must be an array of strings", param="tags")
        found.update(tags)
    header = headers.get(TAGS_HEADER)
    if header and not is_text(header):
        raise InvalidRequestError(f"`{TAGS_HEADER}` must be UTF-8 text", param=TAGS_HEADER)
    if header:
        found.update(tag.strip() for tag in header.split(",") if tag.strip())
    return frozenset(found)


def is_text(value: str) -> bool:
    """False for a header value holding bytes that are not UTF-8 (aiohttp keeps those as
    surrogates, which no later `.encode()` survives)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
