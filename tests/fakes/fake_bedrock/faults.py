"""The faults `FakeBedrock` can be told to commit, one per request, and Bedrock's usual errors.

Kinds as in `fakes.fake_openai`: before the headers ``delay`` (then answer),
``status`` (a Bedrock error: JSON ``{"message"}`` with the exception in ``x-amzn-ErrorType``),
``reset`` (TCP reset) and ``hang``; after them, on a ConverseStream or a Claude model's
InvokeModelWithResponseStream, ``slow_first_token``, ``cut`` (close mid-stream), ``stall``
(silence, connection kept), ``malformed`` (a frame whose checksum fails, then the rest),
``no_finish`` (no ``messageStop`` nor ``metadata``; for Claude, no ``message_delta`` nor
``message_stop``) and
``error_event`` (an exception frame, then a clean end). ``guardrail`` answers normally but as a
guardrail that intervened: its blocked message and stop reason ``guardrail_intervened``.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import ClassVar, Literal, get_args

from fakes.fake_server.faults import CommonKind, FaultBase

FaultKind = Literal[CommonKind, "guardrail"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
#: The operations a fault may wait for (the last segment of the request's path).
Action = Literal["converse", "converse-stream", "invoke", "invoke-with-response-stream"]

_INTERNAL = "The system encountered an unexpected error during processing. Try your request again."
#: A guardrail's default "blocked input" message, which Bedrock returns as the answer's text.
GUARDRAIL_MESSAGE = "Sorry, the model cannot answer this question."


@dataclass(frozen=True, slots=True)
class Fault(FaultBase):
    """One misbehaviour: ``Fault("cut", after_frames=3)``; class methods build error answers."""

    KINDS: ClassVar[tuple[str, ...]] = FAULT_KINDS
    COUNT_FIELD: ClassVar[str] = "after_frames"
    TARGET_FIELD: ClassVar[str] = "action"

    kind: FaultKind
    _: KW_ONLY
    #: Only a request for this operation consumes it; None: any.
    action: Action | None = None
    #: Frames sent before a ``cut``, ``stall``, ``malformed`` or ``error_event`` strikes; by
    #: default ``messageStart`` and one delta, so that the stream has visibly started.
    after_frames: int = 2
    #: A ``status`` fault's exception name and message (its HTTP status is ``status``); an
    #: ``error_event``'s exception too (sent as its lower-camel member name).
    error_type: str = "InternalServerException"
    message: str = _INTERNAL
    #: Seconds sent as ``Retry-After`` with a ``status`` fault (Bedrock rarely sends it).
    retry_after: float | None = None

    @property
    def member(self) -> str:
        """The exception's name as a ConverseStream member (``throttlingException``)."""
        return self.error_type[:1].lower() + self.error_type[1:]

    @classmethod
    def http_error(
        cls,
        status: int,
        error_type: str,
        message: str,
        *,
        retry_after: float | None = None,
        action: Action | None = None,
    ) -> Fault:
        """Any Bedrock error answer; the presets below are the usual ones."""
        return cls(
            "status",
            status=status,
            error_type=error_type,
            message=message,
            retry_after=retry_after,
            action=action,
        )

    @classmethod
    def throttled(cls, retry_after: float | None = None, *, action: Action | None = None) -> Fault:
        message = "Too many requests, please wait before trying again."
        return cls.http_error(
            429, "ThrottlingException", message, retry_after=retry_after, action=action
        )

    @classmethod
    def internal_error(cls, *, action: Action | None = None) -> Fault:
        return cls.http_error(500, "InternalServerException", _INTERNAL, action=action)

    @classmethod
    def unavailable(cls, *, action: Action | None = None) -> Fault:
        message = "Bedrock is unable to process your request."
        return cls.http_error(503, "ServiceUnavailableException", message, action=action)

    @classmethod
    def unrecognized_client(cls, *, action: Action | None = None) -> Fault:
        message = "The security token included in the request is invalid."
        return cls.http_error(403, "UnrecognizedClientException", message, action=action)

    @classmethod
    def access_denied(cls, *, action: Action | None = None) -> Fault:
        message = "You don't have access to the model with the specified model ID."
        return cls.http_error(403, "AccessDeniedException", message, action=action)

    @classmethod
    def input_too_long(cls, *, action: Action | None = None) -> Fault:
        message = "Input is too long for requested model."
        return cls.http_error(400, "ValidationException", message, action=action)

    @classmethod
    def validation(cls, message: str, *, action: Action | None = None) -> Fault:
        return cls.http_error(400, "ValidationException", message, action=action)

    @classmethod
    def model_timeout(cls, *, action: Action | None = None) -> Fault:
        message = "Model has timed out in processing the request. Try your request again."
        return cls.http_error(408, "ModelTimeoutException", message, action=action)

    @classmethod
    def guardrail(cls, *, action: Action | None = None) -> Fault:
        return cls("guardrail", action=action)
