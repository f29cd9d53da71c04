"""What the router carries: requests in, responses and stream chunks out.

Bodies stay OpenAI-shaped dictionaries: the router reads only the few fields routing needs
(model, stream, max tokens, prompt size), and passes everything else through untouched. A
provider that relays an upstream's bytes unchanged may hand them over in ``raw`` so that a
gateway can forward them without encoding the body again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from turnout.tokens import estimate_prompt_tokens

if TYPE_CHECKING:
    from turnout.config import Deployment
    from turnout.router.attempt import AttemptRecord


class Operation(StrEnum):
    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"


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
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _prompt_tokens: int | None = field(default=None, repr=False)

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

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

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


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


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    """A provider's answer to a non-streaming call."""

    body: dict[str, Any]
    usage: Usage
    raw: bytes | None = None
    rate_limits: RateLimitHints | None = None


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One event of a stream, already in OpenAI's chunk shape."""

    data: dict[str, Any]
    raw: bytes | None = None
    #: Set on the chunk that carries the stream's usage (usually the last).
    usage: Usage | None = None
    #: Set on the chunk that ends a choice; a stream that ends without one was cut short.
    finish_reason: str | None = None
    rate_limits: RateLimitHints | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """The router's answer: the provider's body plus where and how it was served."""

    body: dict[str, Any]
    usage: Usage
    deployment: Deployment
    attempts: tuple[AttemptRecord, ...]
    #: In US dollars, when the deployment's prices are known.
    cost: float | None
    #: Seconds from the request entering the router to the answer.
    latency: float
    raw: bytes | None = None

    @property
    def text(self) -> str | None:
        """The first choice's text, for chat and completion answers."""
        choices = self.body.get("choices") or []
        if not choices:
            return None
        first = choices[0]
        message = first.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            return content if isinstance(content, str) else None
        text = first.get("text")
        return text if isinstance(text, str) else None
