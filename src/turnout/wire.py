"""What the router carries: requests in, responses and stream chunks out.

Bodies stay OpenAI-shaped dictionaries: the router reads only the few fields routing needs
(model, stream, max tokens, prompt size), and passes everything else through untouched. A
provider that relays an upstream's bytes unchanged may hand them over in ``raw`` so that a
gateway can forward them without encoding the body again.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec

from turnout.tokens import estimate_prompt_tokens

#: Request ids: a random prefix per process and a counter, unique without a syscall per request.
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


class Operation(StrEnum):
    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is attributed to: the caller the gateway authenticated.

    A name, never a credential: the principal travels on the request into events, logs and
    spend records, so it holds nothing a caller could authenticate with. The gateway names its
    callers ``master`` (the master key) and ``anonymous`` (no key is configured); a virtual key
    is ``key:<key id>``, with the digest it is stored under, its alias, team and user.
    """

    name: str
    #: A virtual key's stable id (None: not a virtual key).
    key_id: str | None = None
    #: The digest the presented key is stored under (never the key itself).
    key_hash: str | None = None
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptLimits:
    """A caller's own limits on each attempt of its request, in seconds (None: the
    deployment's, learned or configured). A deployment's configured limit still bounds them."""

    #: From sending a streaming attempt to its first chunk.
    first_token: float | None = None
    #: Between two chunks of a stream.
    idle: float | None = None
    #: One whole attempt answered whole.
    request: float | None = None


@dataclass(slots=True)
class Request:
    """One caller request, addressed to a model group or alias."""

    model: str
    body: dict[str, Any]
    operation: Operation = Operation.CHAT
    #: Only deployments carrying one of these tags may serve the request.
    tags: frozenset[str] = frozenset()
    #: The caller's own overall deadline in seconds (the router's default applies otherwise).
    timeout: float | None = None
    #: The caller's own limits on each attempt (None: the deployments' own).
    limits: AttemptLimits | None = None
    #: For a stream: seconds within which its first chunk must reach the caller (the SDK's
    #: read timeout), which may come before `timeout`. Time is kept for a fallback within it.
    start_within: float | None = None
    #: The request's own id, unique within the gateway: spend rows and events are keyed by it.
    request_id: str = field(default_factory=new_request_id)
    #: Who the request is attributed to; None when the router is used as a library.
    principal: Principal | None = None
    #: The id the caller gave the request (its ``x-request-id``), when it gave one. Callers may
    #: reuse an id, so it is shown and forwarded, never used as a key.
    client_request_id: str | None = None
    _prompt_tokens: int | None = field(default=None, repr=False)

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def public_id(self) -> str:
        """The id the caller knows the request by: its own, else the request's."""
        return self.client_request_id or self.request_id

    @property
    def prompt_tokens(self) -> int:
        """Estimated prompt size, computed once and only when a filter or strategy asks."""
        if self._prompt_tokens is None:
            self._prompt_tokens = estimate_prompt_tokens(self.operation.value, self.body)
        return self._prompt_tokens

    @property
    def max_completion_tokens(self) -> int | None:
        value = self.body.get("max_completion_tokens", self.body.get("max_tokens"))
        return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Of the prompt tokens, those read from the provider's prompt cache (priced differently).
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return usage


@dataclass(frozen=True, slots=True)
class RateLimitHints:
    """What a provider said about its remaining quota (from rate-limit response headers)."""

    remaining_requests: int | None = None
    limit_requests: int | None = None
    remaining_tokens: int | None = None
    limit_tokens: int | None = None
    #: Seconds until the request / token quota resets.
    reset_requests: float | None = None
    reset_tokens: float | None = None


class _LazyBody:
    """A JSON object that may arrive as bytes and is decoded only if somebody reads it.

    The gateway forwards an upstream's bytes as they came, so on its hot path the body is never
    decoded; a library caller who reads ``.body`` (or ``.data``) pays for one decode, once.
    """

    __slots__ = ("_decoded", "raw")

    def __init__(self, decoded: dict[str, Any] | None, raw: bytes | None) -> None:
        if decoded is None and raw is None:
            raise ValueError("either the decoded object or its raw bytes are needed")
        self._decoded = decoded
        self.raw = raw

    def _object(self) -> dict[str, Any]:
        if self._decoded is None:
            assert self.raw is not None
            value = msgspec.json.decode(self.raw)
            self._decoded = value if isinstance(value, dict) else {"value": value}
        return self._decoded


class ProviderResponse(_LazyBody):
    """A provider's answer to a non-streaming call."""

    __slots__ = ("rate_limits", "upstream_request_id", "usage")

    def __init__(
        self,
        body: dict[str, Any] | None = None,
        usage: Usage | None = None,
        raw: bytes | None = None,
        rate_limits: RateLimitHints | None = None,
    ) -> None:
        super().__init__(body, raw)
        self.usage = usage if usage is not None else Usage()
        self.rate_limits = rate_limits
        #: The upstream's own id for the call (its ``x-request-id`` or the like), when it sent
        #: one: what its operators find the call by.
        self.upstream_request_id: str | None = None

    @property
    def body(self) -> dict[str, Any]:
        return self._object()


class StreamChunk(_LazyBody):
    """One event of a stream, in OpenAI's chunk shape (``raw`` is the event's data bytes)."""

    __slots__ = ("finish_reason", "rate_limits", "upstream_request_id", "usage")

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        raw: bytes | None = None,
        usage: Usage | None = None,
        finish_reason: str | None = None,
        rate_limits: RateLimitHints | None = None,
    ) -> None:
        super().__init__(data, raw)
        #: Set on the chunk that carries the stream's usage (usually the last).
        self.usage = usage
        #: Set on the chunk that ends a choice; a stream that ends without one was cut short.
        self.finish_reason = finish_reason
        self.rate_limits = rate_limits
        #: On a stream's first chunk: the upstream's own id for the call, when it sent one.
        self.upstream_request_id: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        return self._object()

    def encode(self) -> bytes:
        """The event's data as JSON bytes: the upstream's own bytes when it sent some."""
        return self.raw if self.raw is not None else msgspec.json.encode(self._object())
