"""The faults `FakeGemini` can be told to commit, one per request, and Google's error bodies.

A fault strikes before anything else, authentication included. Before the headers: ``delay``
(then answer), ``status`` (a Google error), ``blocked`` (a 200 whose ``promptFeedback`` blocks
the prompt: no candidates), ``reset`` (TCP reset), ``hang`` (silence until the client or the
server quits). After them, on a stream: ``slow_first_token``, ``cut`` (close mid-stream),
``stall`` (silence, connection kept), ``malformed`` (a garbage event, then the rest),
``no_finish`` (no ``finishReason`` anywhere) and ``error_event`` (an error object as an event,
then a clean end). On a whole answer ``slow_first_token`` delays the body, ``cut`` sends half of
it, ``stall`` none of it and ``malformed`` garbage; the two others change nothing there.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar, Literal, get_args

from fakes.fake_server.faults import CommonKind, FaultBase

FaultKind = Literal[CommonKind, "blocked"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

INTERNAL = (
    "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"


def error_body(
    code: int, message: str, status: str, details: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    """Google's ``google.rpc.Status`` as the Gemini API sends it."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def key_invalid_details() -> tuple[dict[str, Any], ...]:
    """What accompanies "API key not valid": an ``ErrorInfo`` of reason API_KEY_INVALID."""
    info = {
        "@type": _ERROR_INFO,
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    return (info,)


@dataclass(frozen=True, slots=True)
class Fault(FaultBase):
    """One misbehaviour: ``Fault("cut", after_chunks=3)``; class methods build error answers."""

    KINDS: ClassVar[tuple[str, ...]] = FAULT_KINDS
    TARGET_FIELD: ClassVar[str] = "method"

    kind: FaultKind
    _: KW_ONLY
    #: Only a request for this method ("generateContent", "streamGenerateContent",
    #: "batchEmbedContents", ...) consumes it; None: any.
    method: str | None = None
    #: Stream events sent before a ``cut``, ``stall``, ``malformed`` or ``error_event``.
    after_chunks: int = 1
    #: The ``google.rpc.Code`` name, message and details of a ``status`` fault (and of an
    #: ``error_event``'s error object), whose HTTP status is ``status``.
    error_status: str = "INTERNAL"
    message: str = INTERNAL
    details: tuple[dict[str, Any], ...] = ()
    #: The ``promptFeedback.blockReason`` of a ``blocked`` answer.
    block_reason: str = "SAFETY"

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.error_status, self.details)

    @classmethod
    def http_error(
        cls,
        status: int,
        error_status: str,
        message: str,
        details: tuple[dict[str, Any], ...] = (),
        *,
        method: str | None = None,
    ) -> Fault:
        """Any Google error answer; the presets below are the common ones."""
        return cls(
            "status",
            status=status,
            error_status=error_status,
            message=message,
            details=details,
            method=method,
        )

    @classmethod
    def rate_limited(cls, retry_delay: float = 17.0, *, method: str | None = None) -> Fault:
        """429 RESOURCE_EXHAUSTED with the quota that ran out and a ``RetryInfo``."""
        message = (
            "You exceeded your current quota, please check your plan and billing details. "
            f"Please retry in {retry_delay:g}s."
        )
        violation = {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        }
        details = (
            {"@type": _QUOTA_FAILURE, "violations": [violation]},
            {"@type": _RETRY_INFO, "retryDelay": f"{retry_delay:g}s"},
        )
        return cls.http_error(429, "RESOURCE_EXHAUSTED", message, details, method=method)

    @classmethod
    def server_error(cls, *, method: str | None = None) -> Fault:
        return cls.http_error(500, "INTERNAL", INTERNAL, method=method)

    @classmethod
    def unavailable(cls, *, method: str | None = None) -> Fault:
        """503 UNAVAILABLE: Gemini's word for an overloaded model."""
        message = "The model is overloaded. Please try again later."
        return cls.http_error(503, "UNAVAILABLE", message, method=method)

    @classmethod
    def timeout(cls, *, method: str | None = None) -> Fault:
        message = "Deadline expired before operation could complete."
        return cls.http_error(504, "DEADLINE_EXCEEDED", message, method=method)

    @classmethod
    def invalid_key(cls, *, method: str | None = None) -> Fault:
        """How Gemini reports a wrong key: 400 INVALID_ARGUMENT, reason API_KEY_INVALID."""
        message = "API key not valid. Please pass a valid API key."
        details = key_invalid_details()
        return cls.http_error(400, "INVALID_ARGUMENT", message, details, method=method)

    @classmethod
    def permission_denied(cls, *, method: str | None = None) -> Fault:
        message = "Your API key doesn't have the required permissions."
        return cls.http_error(403, "PERMISSION_DENIED", message, method=method)

    @classmethod
    def context_window(cls, *, method: str | None = None) -> Fault:
        message = (
            "The input token count (1200293) exceeds the maximum number of tokens allowed "
            "(1048576)."
        )
        return cls.http_error(400, "INVALID_ARGUMENT", message, method=method)

    @classmethod
    def bad_request(
        cls,
        message: str = "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
        *,
        method: str | None = None,
    ) -> Fault:
        return cls.http_error(400, "INVALID_ARGUMENT", message, method=method)

    @classmethod
    def blocked(cls, reason: str = "SAFETY", *, method: str | None = None) -> Fault:
        """A 200 answer with no candidates: ``promptFeedback.blockReason`` refuses the prompt."""
        return cls("blocked", block_reason=reason, method=method)
