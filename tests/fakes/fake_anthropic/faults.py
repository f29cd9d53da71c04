"""The faults `FakeAnthropic` can be told to commit, one per request, and their common presets.

A fault strikes before anything else, authentication included. Before the headers: ``delay``
(then answer), ``status`` (an Anthropic error answer), ``reset`` (TCP reset), ``hang`` (silence
until the client or the server quits). After them, on a stream: ``slow_first_token``, ``cut``
(close mid-stream), ``stall`` (silence, connection kept), ``malformed`` (a garbage event, then
the rest), ``no_stop`` (no ``message_stop``), ``no_finish`` (neither ``message_delta`` nor
``message_stop``) and ``error_event`` (an ``error`` event, then a clean end). On a whole answer
``slow_first_token`` delays the body, ``cut`` sends half of it, ``stall`` none of it and
``malformed`` garbage; the others change nothing there.

On the Vertex AI paths a ``status`` fault may answer in Google's shape (`Fault.vertex_error`).

``refusal`` is Anthropic's safety refusal: a 200 answer whose ``stop_reason`` is ``"refusal"``,
with ``stop_details``, after ``after_chunks`` words of text (by default none at all).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar, Literal, get_args

from fakes.fake_server.faults import CommonKind, FaultBase

FaultKind = Literal[CommonKind, "no_stop", "refusal"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

_SERVER_ERROR = "Internal server error"
_TOO_LONG = "prompt is too long: 208310 tokens > 200000 maximum"
_REFUSAL = "This request was declined because it could enable harm."


@dataclass(frozen=True, slots=True)
class Fault(FaultBase):
    """One misbehaviour: ``Fault("cut", after_chunks=5)``; class methods build error answers."""

    KINDS: ClassVar[tuple[str, ...]] = FAULT_KINDS

    kind: FaultKind
    _: KW_ONLY
    #: Only a request to this path (e.g. "/v1/messages") consumes it; None: any.
    path: str | None = None
    #: SSE events sent before a ``cut``, ``stall``, ``malformed`` or ``error_event`` strikes;
    #: by default message_start, content_block_start, ping and one token. For a ``refusal``:
    #: the words of text said before it.
    after_chunks: int = 4
    #: The body of a ``status`` fault, like an ``error_event``'s, is Anthropic's error object
    #: of ``error_type`` and ``message``.
    error_type: str = "api_error"
    message: str = _SERVER_ERROR
    #: Seconds sent as ``retry-after`` with a ``status`` fault; None sends no such header.
    retry_after: float | None = None
    #: A ``status`` fault's body in Google's shape instead, with this canonical status name
    #: (``RESOURCE_EXHAUSTED``...), as Vertex AI answers its own refusals.
    google_status: str | None = None

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        if self.google_status is not None:
            return google_error_body(self.status, self.google_status, self.message)
        return error_body(self.error_type, self.message, request_id)

    @classmethod
    def vertex_error(
        cls, status: int, google_status: str, message: str, *, path: str | None = None
    ) -> Fault:
        """An error Vertex AI answers itself, in Google's shape (authentication, quota, a model
        the project may not use), rather than the model's in Anthropic's."""
        return cls("status", status=status, message=message, google_status=google_status, path=path)

    @classmethod
    def http_error(
        cls,
        status: int,
        error_type: str,
        message: str,
        *,
        retry_after: float | None = None,
        path: str | None = None,
    ) -> Fault:
        """Any Anthropic error answer; the presets below are the documented ones."""
        return cls(
            "status",
            status=status,
            error_type=error_type,
            message=message,
            retry_after=retry_after,
            path=path,
        )

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, *, path: str | None = None) -> Fault:
        """429 ``rate_limit_error``, with ``retry-after`` only when given."""
        message = "This request would exceed the rate limit for your organization."
        return cls.http_error(429, "rate_limit_error", message, retry_after=retry_after, path=path)

    @classmethod
    def server_error(cls, *, path: str | None = None) -> Fault:
        return cls.http_error(500, "api_error", _SERVER_ERROR, path=path)

    @classmethod
    def overloaded(cls, *, path: str | None = None) -> Fault:
        return cls.http_error(529, "overloaded_error", "Overloaded", path=path)

    @classmethod
    def unauthorized(cls, *, path: str | None = None) -> Fault:
        return cls.http_error(401, "authentication_error", "invalid x-api-key", path=path)

    @classmethod
    def permission_denied(cls, *, path: str | None = None) -> Fault:
        message = "Your API key does not have permission to use the specified resource."
        return cls.http_error(403, "permission_error", message, path=path)

    @classmethod
    def context_length_exceeded(cls, *, path: str | None = None) -> Fault:
        return cls.http_error(400, "invalid_request_error", _TOO_LONG, path=path)

    @classmethod
    def content_filtered(cls, *, path: str | None = None) -> Fault:
        """The 400 Anthropic answers when its filter blocks an output it had started."""
        message = "Output blocked by content filtering policy"
        return cls.http_error(400, "invalid_request_error", message, path=path)

    @classmethod
    def refused(cls, words: int = 0, *, path: str | None = None) -> Fault:
        """A ``stop_reason: "refusal"`` answer after `words` words of text."""
        return cls("refusal", after_chunks=words, message=_REFUSAL, path=path)


def error_body(error_type: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error object, as every error answer and ``error`` event carries it (an HTTP
    answer also names its request)."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def google_error_body(code: int, status: str, message: str) -> dict[str, Any]:
    """Google's error object (``google.rpc.Status``), as Vertex AI answers its own errors."""
    return {"error": {"code": code, "message": message, "status": status}}
