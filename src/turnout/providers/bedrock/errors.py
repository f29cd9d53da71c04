"""Bedrock's errors, HTTP or in-stream, classified into turnout's tree in one place.

An HTTP error names its exception in the ``x-amzn-ErrorType`` header
(``ValidationException:http://internal.amazon.com/...``; the part before the colon counts), or
else in the JSON body's ``__type``/``code``, with the text in ``message`` (or ``Message``). In a
ConverseStream the same exceptions arrive as event-stream frames whose ``:exception-type`` header
is the lower-camel member name (``throttlingException``) and whose payload is ``{"message"}``.
Both paths end in `classify`, keyed by the lowercased exception name, so a throttle means the
same thing whichever way it came.

Authentication failures come from AWS's signing layer, not from Bedrock's own model: a wrong key
is ``UnrecognizedClientException`` (403), a wrong secret ``InvalidSignatureException`` (403), an
expired session ``ExpiredTokenException``. Turnout reports them as `AuthenticationError` (401):
the deployment's credentials are wrong, whatever status AWS chose.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from turnout.errors import (
    AuthenticationError,
    ContentPolicyError,
    ContextWindowExceededError,
    ProviderError,
    ServerError,
    StreamInterruptedError,
)
from turnout.providers.headers import Now, retry_after
from turnout.providers.statuses import by_status, mentions

PROVIDER = "bedrock"

#: Exceptions of AWS's authentication layer (any AWS service answers them).
_AUTHENTICATION = frozenset(
    {
        "unrecognizedclientexception",
        "invalidsignatureexception",
        "signaturedoesnotmatch",
        "incompletesignature",
        "incompletesignatureexception",
        "expiredtokenexception",
        "invalidclienttokenid",
        "missingauthenticationtoken",
        "missingauthenticationtokenexception",
        "requestexpired",
    }
)
#: The status each of Bedrock's own exceptions stands for, whatever status it came with
#: (ServiceQuotaExceeded, a quota, is a 400).
_STATUS_OF_EXCEPTION = {
    "validationexception": 400,
    "accessdeniedexception": 403,
    "resourcenotfoundexception": 404,
    "modeltimeoutexception": 408,
    "throttlingexception": 429,
    "servicequotaexceededexception": 429,
}
#: Exceptions that mean the deployment failed, not the request.
_SERVER = frozenset(
    {
        "internalserverexception",
        "internalfailure",
        "serviceunavailableexception",
        "serviceunavailable",
        "modelerrorexception",
        "modelstreamerrorexception",
        # The (imported) model is still loading: the deployment is briefly unavailable, which
        # is not the caller's quota, so not a rate limit even though it comes as a 429.
        "modelnotreadyexception",
    }
)
#: How Bedrock's models say that the prompt does not fit (Anthropic, Llama, Mistral, Nova...).
_CONTEXT_HINTS = (
    "input is too long",
    "prompt is too long",
    "too many input tokens",
    "too many total text bytes",
    "input tokens exceeds",
    "input tokens exceeded",
    "maximum context length",
    "context length",
    "context window",
    "too large for model",
)
#: How a model's own filter refuses a prompt ("This request has been blocked by our content
#: filters."). Guardrails do not answer with errors: see `bedrock_response`.
_POLICY_HINTS = ("content filter", "blocked by")
#: 403s whose text says the caller's identity (not its permissions) is wrong.
_AUTHENTICATION_HINTS = ("security token", "signature", "api key", "authenticat")
_HINTS = ((_CONTEXT_HINTS, ContextWindowExceededError), (_POLICY_HINTS, ContentPolicyError))


class _ErrorView(msgspec.Struct):
    message: str | None = None
    Message: str | None = None
    code: str | None = None
    type_: str | None = msgspec.field(default=None, name="__type")


_ERROR = msgspec.json.Decoder(_ErrorView)


def http_error(status: int, body: bytes, headers: Mapping[str, str], now: Now) -> ProviderError:
    """The error of a non-2xx reply, from its ``x-amzn-ErrorType`` and JSON body."""
    kind = _header(headers, "x-amzn-errortype")
    try:
        view = _ERROR.decode(body) if body else _ErrorView()
    except (msgspec.DecodeError, msgspec.ValidationError):
        message = body.decode("utf-8", "replace").strip()
    else:
        message = view.message or view.Message or ""
        kind = kind or view.code or view.type_
    return classify(_name(kind), message or "no error message", status, retry_after(headers, now))


def stream_exception(exception_type: str, payload: bytes) -> ProviderError:
    """The error of an ``exception`` frame in a streamed body."""
    try:
        view = _ERROR.decode(payload) if payload else _ErrorView()
        message = view.message or view.Message or ""
    except (msgspec.DecodeError, msgspec.ValidationError):
        message = payload.decode("utf-8", "replace").strip()
    return classify(_name(exception_type), message or "no error message", None, None)


def frame_error(headers: Mapping[str, object], payload: bytes) -> ProviderError | None:
    """The error an event-stream frame stands for (an ``exception`` or ``error`` frame), if
    any: the same for a ConverseStream and an InvokeModelWithResponseStream."""
    kind = headers.get(":message-type")
    if kind == "exception":
        return stream_exception(str(headers.get(":exception-type", "")), payload)
    if kind == "error":
        message = str(headers.get(":error-message") or "no error message")
        return classify(str(headers.get(":error-code", "")), message, None, None)
    return None


def classify(kind: str, message: str, status: int | None, wait: float | None) -> ProviderError:
    """Map one Bedrock exception (its name, text, HTTP status if any) to turnout's tree.

    ``kind`` is empty when the reply named none; the status decides then, as for any upstream.
    `wait` is what the reply's headers said about retrying (None inside a stream).
    """
    text = f"{PROVIDER}: {_display(kind)}{message}"
    name = kind.lower()
    lowered = message.lower()
    retry_after = wait
    if name in _AUTHENTICATION:
        return AuthenticationError(text, status=status)
    if name in _SERVER:
        return ServerError(text, status=status, retry_after=retry_after)
    meaning = _STATUS_OF_EXCEPTION.get(name)
    if meaning is not None:
        return by_status(
            text,
            meaning,
            reported=status or meaning,
            lowered=lowered,
            hints=_HINTS,
            retry_after=retry_after,
        )
    if status is None:
        return StreamInterruptedError(text)
    if status == 403 and mentions(lowered, _AUTHENTICATION_HINTS):
        return AuthenticationError(text, status=status)
    return by_status(text, status, lowered=lowered, hints=_HINTS, retry_after=retry_after)


def _name(kind: str | None) -> str:
    """The bare name of ``ValidationException:http://...`` or ``com.amazon#ValidationException``."""
    if not kind:
        return ""
    return kind.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def _display(kind: str) -> str:
    return f"{kind}: " if kind else ""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, item in headers.items():
            if key.lower() == name:
                return item
    return value
