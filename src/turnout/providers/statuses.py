"""What an upstream's HTTP status means in turnout's error tree, for every adapter.

Each adapter first turns its own error names into a status (Anthropic's error ``type``, Google's
``google.rpc.Code``, Bedrock's exception) and catches what only it knows; `by_status` decides
the rest the same way for all of them:

=========== ===================================================================================
status      turnout error
=========== ===================================================================================
400 413 422 the first of `hints` whose words the message mentions, else
            UnsupportedParameterError when it refuses a parameter (`REFUSED_PARAMETER`), else
            BadRequestError
401         AuthenticationError
403         PermissionDeniedError
404         UpstreamNotFoundError
408 504     UpstreamTimeoutError
429         RateLimitError, with the wait
other 4xx   BadRequestError
5xx         ServerError, with the wait
=========== ===================================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    UnsupportedParameterError,
    UpstreamNotFoundError,
    UpstreamTimeoutError,
)

#: The statuses of a request the upstream rejected for what it asked.
REJECTED = (400, 413, 422)

#: How upstreams refuse a parameter their model or API lacks (lowercased): pydantic's "extra
#: inputs are not permitted" (Anthropic, vLLM), OpenAI's ``unsupported_parameter`` and
#: ``unsupported_value`` codes and "Unrecognized request argument supplied", Google's
#: "Unknown name", Bedrock's "extraneous key ... is not permitted", and "does not support".
#: Such a refusal is no verdict on the request: another deployment may honour the parameter.
REFUSED_PARAMETER = (
    "extra inputs are not permitted",
    "extra_forbidden",
    "unsupported_parameter",
    "unsupported_value",
    "unsupported parameter",
    "unsupported value",
    "unrecognized request argument",
    "is not supported with this model",
    "unknown name",
    "extraneous key",
    "does not support",
)
#: Where those refusals name the parameter (the first path segment is kept).
_PARAM_NAMED = (
    re.compile(r"([A-Za-z_][\w.\[\]]*): extra inputs are not permitted", re.IGNORECASE),
    re.compile(r"unsupported (?:parameter|value): '([\w.]+)'", re.IGNORECASE),
    re.compile(r"unrecognized request arguments? supplied: (\w+)", re.IGNORECASE),
    re.compile(r'unknown name "(\w+)"', re.IGNORECASE),
    re.compile(r"extraneous key \[(\w+)\]", re.IGNORECASE),
)


def refused_param(text: str) -> str | None:
    """The parameter an upstream's refusal names, if it names one."""
    for pattern in _PARAM_NAMED:
        found = pattern.search(text)
        if found is not None:
            return re.split(r"[.\[]", found[1], maxsplit=1)[0]
    return None


#: For a rejected request: words of the message and the error they make it, first match wins.
Hints = Sequence[tuple[Iterable[str], type[ProviderError]]]


def mentions(lowered: str, words: Iterable[str]) -> bool:
    """Whether the lowercased text contains any of `words`."""
    return any(word in lowered for word in words)


def by_status(
    text: str,
    status: int,
    *,
    reported: int | None = None,
    lowered: str = "",
    hints: Hints = (),
    param: str | None = None,
    retry_after: float | None = None,
) -> ProviderError:
    """The error `status` means (see the module docstring) with the message `text`.

    `reported` is the status the error carries when the one that decided differs (an error type
    that means 429 on a reply of 400); `lowered` is the lowercased text the `hints` look in.
    """
    shown = status if reported is None else reported
    if status in REJECTED:
        for words, kind in hints:
            if mentions(lowered, words):
                return kind(text, status=shown, param=param)
        if mentions(lowered, REFUSED_PARAMETER):
            named = param or refused_param(text)
            return UnsupportedParameterError(text, status=shown, param=named)
        return BadRequestError(text, status=shown, param=param)
    if status == 401:
        return AuthenticationError(text, status=shown)
    if status == 403:
        return PermissionDeniedError(text, status=shown)
    if status == 404:
        return UpstreamNotFoundError(text, status=shown, param=param)
    if status in (408, 504):
        return UpstreamTimeoutError(text, status=shown)
    if status == 429:
        return RateLimitError(text, status=shown, retry_after=retry_after)
    if 400 <= status < 500:
        return BadRequestError(text, status=shown, param=param)
    return ServerError(text, status=shown, retry_after=retry_after)
