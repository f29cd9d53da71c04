"""turnout's one error tree.

Every failure turnout reports is a `TurnoutError`. Each class knows the HTTP status and the
OpenAI error ``type``/``code`` it becomes, and the failure kind the router uses to decide what
the failure means for the deployment's health and which fallback list applies::

    TurnoutError
    ├── ConfigError                      invalid configuration (raised at load, never per request)
    ├── InvalidRequestError        400   the caller's request is wrong (never a deployment's fault)
    │   ├── ModelNotFoundError     404   unknown model group or alias
    │   ├── NoMatchingDeploymentError 400 no deployment carries the request's tags
    │   ├── PayloadTooLargeError   413   the request body is over the gateway's limit
    │   └── PoisonRequestError     422   the request breaks every upstream that serves others
    ├── UnauthorizedError          401   the caller's gateway key is missing or wrong
    ├── ProviderError                    an upstream deployment failed; carries deployment id
    │   ├── BadRequestError        400   upstream rejected the request as malformed
    │   │   ├── UnsupportedParameterError a deployment cannot honour a parameter (declared,
    │   │   │                              or refused upstream): tried elsewhere, no health verdict
    │   │   ├── ContextWindowExceededError   prompt too long for the model
    │   │   └── ContentPolicyError           refused by a content filter
    │   ├── CredentialsRefusedError 502  the provider refused the gateway's own credentials
    │   │   ├── AuthenticationError        (upstream 401)
    │   │   └── PermissionDeniedError      (upstream 403)
    │   ├── UpstreamNotFoundError  502   the upstream does not know the deployment's model or path
    │   ├── RateLimitError         429   carries retry_after when the provider said
    │   ├── UpstreamTimeoutError   504
    │   ├── UpstreamConnectionError 502
    │   ├── ServerError            500/502/503/529 ...
    │   └── StreamInterruptedError 502   a stream broke after it had started
    ├── NoDeploymentsAvailableError 429/503 everything is cooling down, breaker-open or at a limit
    │   └── DeploymentsMisconfiguredError 502 ... each for an unknown model or a refused key
    └── DeadlineExceededError      504   the request's overall deadline passed

The mapping to an OpenAI error body happens in exactly one place: `TurnoutError.to_openai`;
whether a client's repeat of the request could succeed, and after how long, in
`TurnoutError.client_wait` (the gateway turns it into ``x-should-retry`` and Retry-After).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class FailureKind(StrEnum):
    """What a failure says about the deployment that produced it."""

    RATE_LIMITED = "rate_limited"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    STREAM_INTERRUPTED = "stream_interrupted"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"
    BAD_REQUEST = "bad_request"
    #: The deployment cannot honour a parameter of the request (`n`, `logprobs`, ...): no
    #: verdict on its health, and another deployment or model may.
    UNSUPPORTED_PARAMETER = "unsupported_parameter"
    UNAVAILABLE = "unavailable"
    DEADLINE = "deadline"
    #: The caller went away (disconnected, cancelled, stopped reading a stream).
    CANCELLED = "cancelled"


class FallbackKind(StrEnum):
    """Which fallback list a failure consults; a kind with no list uses the general one, except
    content policy (`turnout.router.table.ModelTable.fallbacks`)."""

    GENERAL = "general"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"
    RATE_LIMIT = "rate_limit"


class TurnoutError(Exception):
    """Root of every error turnout raises."""

    status: ClassVar[int] = 500
    openai_type: ClassVar[str] = "api_error"
    openai_code: ClassVar[str | None] = None
    kind: ClassVar[FailureKind] = FailureKind.SERVER_ERROR
    #: Whether another attempt (on another deployment) may succeed where this one failed.
    retryable: ClassVar[bool] = False
    #: Which fallback list applies, or None when no fallback can help (the caller's fault).
    fallback: ClassVar[FallbackKind | None] = FallbackKind.GENERAL

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.attempts: tuple[AttemptRecord, ...] = ()

    def client_wait(self) -> float | None:
        """Seconds after which the client's repeat of the request could succeed where this
        attempt did not; None when a repeat cannot fix it soon (the request is wrong, or the
        gateway already retried and fell back as far as it usefully could)."""
        return None

    def public_message(self) -> str:
        """What the caller is told, before the attempts summary (the error's own message)."""
        return self.message

    def to_openai(self) -> dict[str, Any]:
        """The error as OpenAI's error body: the one place this mapping happens."""
        message = self.public_message()
        if self.attempts:
            message = f"{message} [{summarize_attempts(self.attempts)}]"
        return {
            "error": {
                "message": message,
                "type": self.openai_type,
                "param": self.param,
                "code": self.openai_code,
            }
        }


class ConfigError(TurnoutError, ValueError):
    """The configuration is invalid; the message names the exact path of the problem."""

    status = 400
    openai_type = "invalid_request_error"
    openai_code = "invalid_config"
    fallback: ClassVar[FallbackKind | None] = None

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class InvalidRequestError(TurnoutError):
    """The caller's request is wrong; no deployment is blamed and no fallback is tried."""

    status = 400
    openai_type = "invalid_request_error"
    kind = FailureKind.BAD_REQUEST
    fallback: ClassVar[FallbackKind | None] = None


class ModelNotFoundError(InvalidRequestError):
    status = 404
    openai_code = "model_not_found"

    def __init__(self, model: str, known: Sequence[str] = ()) -> None:
        hint = f"; available: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"The model `{model}` does not exist{hint}", param="model")
        self.model = model


class NoMatchingDeploymentError(InvalidRequestError):
    openai_code = "no_matching_deployment"


class PayloadTooLargeError(InvalidRequestError):
    status = 413
    openai_code = "request_too_large"


class PoisonRequestError(InvalidRequestError):
    """The request failed with a server error on several deployments that answer other
    requests: the request itself appears to be the cause (`turnout.health.poison`).

    A 4xx, because sending the same request again would fail the same way: clients (the
    official SDKs among them) retry a 5xx but not a 422, and 422 says what happened: the
    request was well-formed, yet could not be processed. The upstream errors are in the
    attempts summary.
    """

    status = 422
    openai_code = "request_fails_upstream"

    def __init__(self, deployments: Sequence[str]) -> None:
        names = ", ".join(deployments)
        super().__init__(
            f"The request failed with a server error on {len(deployments)} deployments that "
            f"are answering other requests ({names}): the request itself appears to be the "
            "cause. It was not tried further and counts against no deployment; change it "
            "rather than sending it again unchanged"
        )
        self.deployments = tuple(deployments)


class UnauthorizedError(TurnoutError):
    """The caller did not present a valid key for the gateway itself."""

    status = 401
    openai_type = "authentication_error"
    openai_code = "invalid_api_key"
    kind = FailureKind.AUTHENTICATION
    fallback: ClassVar[FallbackKind | None] = None


class ProviderError(TurnoutError):
    """An upstream deployment failed. The deployment id is set by the router."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        deployment_id: str | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.upstream_status = status
        self.retry_after = retry_after
        self.deployment_id = deployment_id
        #: The deployment's readable name (`Deployment.name`), set with its id by the router.
        self.deployment_name: str | None = None
        #: The upstream's own id for the failed call, when its error reply carried one.
        self.upstream_request_id: str | None = None

    def _where(self) -> str:
        """The deployment, as a message names it to a reader: by name, never only by hash."""
        named = self.deployment_name or self.deployment_id
        return f"deployment `{named}`" if named else "a deployment"


class BadRequestError(ProviderError):
    """The upstream rejected the request itself: no other deployment will accept it either."""

    status = 400
    openai_type = "invalid_request_error"
    kind = FailureKind.BAD_REQUEST
    retryable = False
    fallback: ClassVar[FallbackKind | None] = None


class ContextWindowExceededError(BadRequestError):
    openai_code = "context_length_exceeded"
    kind = FailureKind.CONTEXT_WINDOW
    fallback = FallbackKind.CONTEXT_WINDOW


class ContentPolicyError(BadRequestError):
    openai_code = "content_policy_violation"
    kind = FailureKind.CONTENT_POLICY
    fallback = FallbackKind.CONTENT_POLICY


class UnsupportedParameterError(BadRequestError):
    """A deployment cannot honour a parameter of the request: its provider or model lacks it.

    Raised before anything is sent, when a group's declared capabilities rule out every
    deployment (`turnout.router.filters`), and for an upstream's own refusal of a parameter
    (Anthropic's "Extra inputs are not permitted", OpenAI's ``unsupported_parameter``). It says
    nothing about the deployment's health, is never retried on the deployment that refused,
    and goes on to another deployment of the group, then the general fallback list. Only when
    nothing could honour the parameter does the caller get it: a 400 naming the parameter
    (``param``) and each deployment's limitation (`limits`, merged across the groups tried by
    `most_informative`).
    """

    openai_code = "unsupported_parameter"
    kind = FailureKind.UNSUPPORTED_PARAMETER
    retryable = True
    fallback = FallbackKind.GENERAL

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        deployment_id: str | None = None,
        limits: Sequence[str] = (),
    ) -> None:
        super().__init__(message, status=status, param=param, deployment_id=deployment_id)
        #: One line per deployment that cannot honour the parameter, for the caller.
        self.limits: tuple[str, ...] = tuple(limits) or (message,)

    def public_message(self) -> str:
        if len(self.limits) == 1:
            return self.limits[0]
        what = f"`{self.param}`" if self.param else "a parameter of the request"
        return f"No deployment can honour {what}: " + "; ".join(self.limits)


class CredentialsRefusedError(ProviderError):
    """The provider refused the gateway's own credentials for a deployment (a wrong, revoked
    or under-privileged key in the gateway's configuration): the deployment's fault, never
    the caller's. To the caller it is a server-side error (502, ``api_error``) naming the
    deployment, not the provider's ``invalid_api_key`` 401, which the SDKs would surface as the
    caller's own `AuthenticationError`. The provider's words stay in the attempts summary."""

    status = 502
    openai_type = "api_error"
    openai_code = "upstream_credentials_refused"

    def public_message(self) -> str:
        shown = f" with {self.upstream_status}" if self.upstream_status is not None else ""
        where = self._where()
        return (
            f"The provider refused the gateway's credentials for {where}{shown}: the "
            "gateway's configuration holds a wrong, revoked or unauthorised key for it"
        )


class AuthenticationError(CredentialsRefusedError):
    """The provider said 401: the key is wrong or revoked."""

    kind = FailureKind.AUTHENTICATION


class PermissionDeniedError(CredentialsRefusedError):
    """The provider said 403 (or refused the key for billing): the key lacks access."""

    kind = FailureKind.PERMISSION


class UpstreamNotFoundError(ProviderError):
    """The provider does not know the deployment's model (or its endpoint path): the gateway's
    configuration is wrong for that deployment, not the caller's request. To the caller it is a
    server-side error (502, ``api_error``) naming the deployment, not the provider's 404, which
    the SDKs would surface as the caller's own `NotFoundError`, as if the gateway had no such
    model. The provider's words stay in the attempts summary."""

    status = 502
    openai_type = "api_error"
    openai_code = "upstream_model_not_found"
    kind = FailureKind.NOT_FOUND

    def public_message(self) -> str:
        where = self._where()
        shown = f" ({self.upstream_status})" if self.upstream_status is not None else ""
        return (
            f"The provider does not know the model configured for {where}{shown}: the "
            "gateway's configuration names a wrong model or endpoint for it"
        )


class RateLimitError(ProviderError):
    status = 429
    openai_type = "rate_limit_error"
    openai_code = "rate_limit_exceeded"
    kind = FailureKind.RATE_LIMITED
    fallback = FallbackKind.RATE_LIMIT

    def client_wait(self) -> float | None:
        # Busy, not broken: waiting as long as the provider asked is what helps.
        return self.retry_after


class UpstreamTimeoutError(ProviderError):
    status = 504
    openai_type = "timeout_error"
    openai_code = "timeout"
    kind = FailureKind.TIMEOUT


class UpstreamConnectionError(ProviderError):
    status = 502
    openai_code = "upstream_connection_error"
    kind = FailureKind.CONNECTION


class ServerError(ProviderError):
    status = 502
    openai_code = "upstream_server_error"
    kind = FailureKind.SERVER_ERROR


class StreamInterruptedError(ProviderError):
    """A stream broke after it started: never to be presented as a complete answer."""

    status = 502
    openai_code = "stream_interrupted"
    kind = FailureKind.STREAM_INTERRUPTED


class NoDeploymentsAvailableError(TurnoutError):
    """Every deployment of the group is cooling down, breaker-open or at a limit."""

    status = 429
    openai_type = "rate_limit_error"
    openai_code = "no_deployments_available"
    kind = FailureKind.UNAVAILABLE
    fallback = FallbackKind.GENERAL

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        rate_limited: bool = False,
        cooling_left: float | None = None,
    ) -> None:
        super().__init__(message)
        #: Seconds until the first cooling or breaker-open deployment may be tried again.
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        #: Seconds until the first deployment cooling down for a passing cause returns (None:
        #: none is; only open circuits, limits, refused keys or missing models, which a
        #: repeat cannot fix soon).
        self.cooling_left = cooling_left

    def client_wait(self) -> float | None:
        return self.cooling_left


class DeploymentsMisconfiguredError(NoDeploymentsAvailableError):
    """Every deployment of the group is out because its provider does not know its model (or
    refused the gateway's own credentials, the subclass): waiting will not bring one back, and
    it is no fault of the caller. A server-side error (502) that says so, as the attempt that
    put them out said, never a 429 that invites the caller to wait and repeat."""

    status = 502
    openai_type = "api_error"
    openai_code = "upstream_model_not_found"


class DeploymentsCredentialsRefusedError(DeploymentsMisconfiguredError):
    openai_code = "upstream_credentials_refused"


class DeadlineExceededError(TurnoutError):
    status = 504
    openai_type = "timeout_error"
    openai_code = "deadline_exceeded"
    kind = FailureKind.DEADLINE
    fallback = None


def fallback_kind(error: TurnoutError) -> FallbackKind | None:
    """The fallback list an error consults (None: no fallback can help)."""
    if isinstance(error, NoDeploymentsAvailableError) and error.rate_limited:
        return FallbackKind.RATE_LIMIT
    return error.fallback


#: How informative each failure kind is to a caller, when several attempts failed differently:
#: a specific verdict about the request beats a symptom of load, which beats "nothing left".
_INFORMATIVENESS: dict[FailureKind, int] = {
    FailureKind.CONTEXT_WINDOW: 90,
    FailureKind.CONTENT_POLICY: 90,
    FailureKind.BAD_REQUEST: 85,
    FailureKind.AUTHENTICATION: 70,
    FailureKind.PERMISSION: 70,
    FailureKind.NOT_FOUND: 65,
    FailureKind.RATE_LIMITED: 60,
    FailureKind.STREAM_INTERRUPTED: 55,
    FailureKind.SERVER_ERROR: 50,
    FailureKind.TIMEOUT: 45,
    FailureKind.CONNECTION: 40,
    FailureKind.DEADLINE: 30,
    FailureKind.UNAVAILABLE: 10,
    #: Below "nothing available": a deployment that could honour the parameter but is cooling
    #: down (or failed) tells the caller more than one that never could.
    FailureKind.UNSUPPORTED_PARAMETER: 5,
    FailureKind.CANCELLED: 0,
}


def most_informative(errors: Sequence[TurnoutError]) -> TurnoutError:
    """The error that tells the caller most; among equals, the latest."""
    best = errors[0]
    for error in errors[1:]:
        if _INFORMATIVENESS[error.kind] >= _INFORMATIVENESS[best.kind]:
            best = error
    if isinstance(best, UnsupportedParameterError):
        # Nothing anywhere could honour it: the caller hears every deployment's limitation.
        limits: dict[str, None] = {}
        for error in errors:
            if isinstance(error, UnsupportedParameterError):
                limits.update(dict.fromkeys(error.limits))
        best.limits = tuple(limits)
    return best


def summarize_attempts(attempts: Sequence[AttemptRecord]) -> str:
    """One line per failed attempt, for error messages: which deployment, what went wrong."""
    parts = [attempt.describe() for attempt in attempts]
    return f"{len(attempts)} attempt{'s' if len(attempts) != 1 else ''}: " + "; ".join(parts)


#: Longest upstream message kept in an attempt record (they end up in error messages).
_MESSAGE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One try of one deployment within a request."""

    deployment_id: str
    model_group: str
    #: Monotonic start time on the router's clock.
    started: float
    duration: float
    #: None when the attempt succeeded.
    error: FailureKind | None = None
    status: int | None = None
    message: str | None = None
    #: The deployment's readable name (its id when none was given).
    deployment_name: str = ""
    #: What the attempt was billed, in US dollars, when known (None: nothing, or unpriced).
    cost: float | None = None
    #: The upstream's own id for the call, when it sent one.
    upstream_request_id: str | None = None

    @property
    def name(self) -> str:
        """How to show the deployment: its readable name, else its id."""
        return self.deployment_name or self.deployment_id

    def describe(self) -> str:
        if self.error is None:
            return f"{self.name} ({self.model_group}): ok in {self.duration:.3f}s"
        status = f" {self.status}" if self.status is not None else ""
        message = self.message or ""
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 1] + "…"
        detail = f": {message}" if message else ""
        return f"{self.name} ({self.model_group}): {self.error}{status}{detail}"
