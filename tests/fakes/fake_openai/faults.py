"""The faults `FakeOpenAI` can be told to commit, one per request, and their common presets.

A fault strikes before anything else, authentication included. Before the headers: ``delay``
(then answer), ``status`` (an OpenAI error), ``reset`` (TCP reset), ``hang`` (silence until the
client or the server quits). After them, on a stream: ``slow_first_token``, ``cut`` (close, no
[DONE]), ``stall`` (silence, connection kept), ``malformed`` (a garbage event, then the rest),
``no_done``, ``no_finish`` and ``error_event`` (an error event, then a clean end). On a whole
answer ``slow_first_token`` delays the body, ``cut`` sends half of it, ``stall`` none of it and
``malformed`` garbage; the three others change nothing there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar, Literal, get_args

from fakes.fake_openai.errors import error_body
from fakes.fake_server.faults import CommonKind, FaultBase

FaultKind = Literal[CommonKind, "no_done"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_TOO_LONG = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted "
    "in 130000 tokens. Please reduce the length of the messages."
)


@dataclass(frozen=True, slots=True)
class Fault(FaultBase):
    """One misbehaviour: ``Fault("cut", after_chunks=3)``; class methods build error answers."""

    KINDS: ClassVar[tuple[str, ...]] = FAULT_KINDS

    kind: FaultKind
    _: KW_ONLY
    #: Only a request to this path (e.g. "/v1/chat/completions") consumes it; None: any.
    path: str | None = None
    #: SSE events sent before a ``cut``, ``stall``, ``malformed`` or ``error_event`` strikes;
    #: by default the opening event and one token, so that the stream has visibly started.
    after_chunks: int = 2
    #: The body of a ``status`` fault, like an ``error_event``'s, is OpenAI's error object made
    #: of the four fields below.
    error_type: str = "server_error"
    message: str = _SERVER_ERROR
    param: str | None = None
    code: str | None = None
    #: Seconds sent as ``Retry-After`` with a ``status`` fault; None sends no such header.
    retry_after: float | None = None
    #: A body sent instead of OpenAI's error object, for fakes of servers that shape their
    #: errors otherwise (Azure's ``{"statusCode": 401, ...}``, say).
    payload: Mapping[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        if self.payload is not None:
            return dict(self.payload)
        return error_body(self.message, self.error_type, self.param, self.code)

    @classmethod
    def http_error(
        cls,
        status: int,
        message: str = _SERVER_ERROR,
        error_type: str = "server_error",
        code: str | None = None,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        path: str | None = None,
    ) -> Fault:
        """Any OpenAI error answer; the presets below are the common ones."""
        return cls(
            "status",
            status=status,
            message=message,
            error_type=error_type,
            code=code,
            param=param,
            retry_after=retry_after,
            path=path,
        )

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, *, path: str | None = None) -> Fault:
        """429 for too many requests, with ``Retry-After`` only when given."""
        wait = "" if retry_after is None else f" Please try again in {retry_after:g}s."
        message = f"Rate limit reached for requests per min (RPM).{wait}"
        code = "rate_limit_exceeded"
        return cls.http_error(429, message, "requests", code, retry_after=retry_after, path=path)

    @classmethod
    def server_error(cls, *, path: str | None = None) -> Fault:
        return cls.http_error(500, path=path)

    @classmethod
    def unavailable(cls, *, path: str | None = None) -> Fault:
        message = "The service is temporarily unavailable. Please try again later."
        return cls.http_error(503, message, "service_unavailable_error", path=path)

    @classmethod
    def overloaded(cls, status: int = 529, *, path: str | None = None) -> Fault:
        """An overload answer; 529 is not OpenAI's, but other upstreams (Anthropic) send it."""
        message = "The server is currently overloaded with other requests. Please retry later."
        return cls.http_error(status, message, "server_error", "server_is_overloaded", path=path)

    @classmethod
    def unauthorized(cls, *, path: str | None = None) -> Fault:
        message = "Incorrect API key provided. You can find your API key in your dashboard."
        return cls.http_error(401, message, "invalid_request_error", "invalid_api_key", path=path)

    @classmethod
    def context_length_exceeded(cls, *, path: str | None = None) -> Fault:
        code = "context_length_exceeded"
        error_type = "invalid_request_error"
        return cls.http_error(400, _TOO_LONG, error_type, code, param="messages", path=path)

    @classmethod
    def content_policy(cls, *, path: str | None = None) -> Fault:
        message = "Your request was rejected as a result of our safety system."
        code = "content_policy_violation"
        return cls.http_error(400, message, "invalid_request_error", code, path=path)
