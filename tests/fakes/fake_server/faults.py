"""What the faults of every fake share: their kinds, fields and checks, and how they are matched.

A fault strikes before anything else, authentication included. Before the headers: ``delay``
(then answer), ``status`` (the provider's error answer), ``reset`` (TCP reset), ``hang``
(silence until the client or the server quits). After them, on a stream: ``slow_first_token``,
``cut`` (close mid-stream), ``stall`` (silence, connection kept), ``malformed`` (a garbage event,
then the rest), ``no_finish`` (no closing events) and ``error_event`` (the provider's error as an
event, then a clean end). On a whole answer ``slow_first_token`` delays the body, ``cut`` sends
half of it, ``stall`` none of it and ``malformed`` garbage. Each fake adds kinds of its own.

``echo_credentials`` makes a ``status`` or ``error_event`` fault quote the credentials its
request carried at the end of its message, as a careless upstream or proxy does: the values of
``Authorization`` (without its scheme), ``api-key``, ``x-api-key``, ``x-goog-api-key``,
``x-amz-security-token`` and a ``key`` query parameter, bare, so that only a gateway that
knows its secrets can tell them from ordinary words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, replace
from typing import ClassVar, Literal, Self, get_args

#: The kinds every fake knows; a fake's ``FaultKind`` is ``Literal[CommonKind, ...its own]``.
CommonKind = Literal[
    "delay",
    "status",
    "reset",
    "hang",
    "slow_first_token",
    "cut",
    "stall",
    "malformed",
    "no_finish",
    "error_event",
]
COMMON_KINDS: tuple[CommonKind, ...] = get_args(CommonKind)
#: The request headers an ``echo_credentials`` fault quotes.
CREDENTIAL_HEADERS = (
    "authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "x-amz-security-token",
)
#: The kinds that break a whole answer (after its headers).
WHOLE_ANSWER_KINDS = ("slow_first_token", "cut", "stall", "malformed")
#: The kinds that strike a stream at its ``after_chunks``-th event.
MID_STREAM_KINDS = ("cut", "stall", "malformed", "error_event")


@dataclass(frozen=True, slots=True)
class FaultBase:
    """The fields of every fake's ``Fault``, checked; a fake's subclass adds its own.

    The subclass names, in `KINDS`, the kinds it accepts; in `COUNT_FIELD`, its field for the
    events sent before a mid-stream fault strikes; in `TARGET_FIELD`, its field for what a
    request must be to consume the fault (a path, a method, an operation; None: any request).
    """

    kind: str
    _: KW_ONLY
    #: Seconds of a ``delay`` (before the headers) or a ``slow_first_token`` (after them).
    seconds: float = 0.0
    #: The HTTP status of a ``status`` fault.
    status: int = 500
    #: The error message of a ``status`` fault or an ``error_event`` (each fake sets its own).
    message: str = ""
    #: Whether that message ends by quoting the request's credentials (see the module).
    echo_credentials: bool = False

    KINDS: ClassVar[tuple[str, ...]] = COMMON_KINDS
    COUNT_FIELD: ClassVar[str] = "after_chunks"
    TARGET_FIELD: ClassVar[str] = "path"

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {self.KINDS}")
        if self.seconds < 0 or self.strikes_after < 0:
            raise ValueError(f"seconds and {self.COUNT_FIELD} must not be negative")
        if not 400 <= self.status <= 599:
            raise ValueError(f"an error status must be 4xx or 5xx, not {self.status}")

    @property
    def strikes_after(self) -> int:
        """The events sent before a ``cut``, ``stall``, ``malformed`` or ``error_event``."""
        count: int = getattr(self, self.COUNT_FIELD)
        return count

    def echoing(self, headers: Mapping[str, str], query: Mapping[str, str]) -> Self:
        """This fault with its message quoting the credentials of a request's `headers` (names
        lowercased) and `query`; itself when it echoes nothing."""
        if not self.echo_credentials or self.kind not in ("status", "error_event"):
            return self
        found = [headers[name] for name in CREDENTIAL_HEADERS if headers.get(name)]
        # "Bearer <key>" is quoted as "<key>": a bare value, of no recognisable shape.
        found = [value.partition(" ")[2].strip() or value for value in found]
        if query.get("key"):
            found.append(query["key"])
        quoted = ", ".join(found) or "none"
        return replace(self, message=f"{self.message} (credentials received: {quoted})")

    @property
    def target(self) -> str | None:
        """What a request must be to consume this fault; None: any request."""
        target: str | None = getattr(self, self.TARGET_FIELD)
        return target
