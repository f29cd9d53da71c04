"""The router's answer to a non-streaming request: the provider's body plus where it was served.

It lives in the router, not in `wire`, because it names the deployment that served it and the
attempts the router made: both router-level facts that the wire types below config cannot know.
"""

from __future__ import annotations

from typing import Any

import msgspec

from turnout.config.router import Deployment
from turnout.errors import AttemptRecord
from turnout.wire import ProviderResponse


class Response:
    """The router's answer: the provider's body plus where and how it was served."""

    __slots__ = ("_answer", "attempts", "cost", "deployment", "latency", "usage")

    def __init__(
        self,
        answer: ProviderResponse,
        deployment: Deployment,
        attempts: tuple[AttemptRecord, ...],
        cost: float | None,
        latency: float,
    ) -> None:
        self._answer = answer
        self.usage = answer.usage
        self.deployment = deployment
        self.attempts = attempts
        #: In US dollars, when the deployment's prices are known.
        self.cost = cost
        #: Seconds from the request entering the router to the answer.
        self.latency = latency

    @property
    def body(self) -> dict[str, Any]:
        """The answer in OpenAI's shape (decoded on first use when it came as bytes)."""
        return self._answer.body

    @property
    def raw(self) -> bytes | None:
        """The upstream's bytes, when the provider relayed them untranslated."""
        return self._answer.raw

    def encode(self) -> bytes:
        """The answer as JSON bytes, without decoding what arrived as bytes."""
        raw = self._answer.raw
        return raw if raw is not None else msgspec.json.encode(self._answer.body)

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
