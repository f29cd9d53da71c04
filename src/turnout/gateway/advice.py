"""What an error response tells the client about repeating the request.

The official SDKs repeat a request that failed with 408, 409, 429 or a 5xx twice by default,
waiting as long as ``retry-after-ms`` or Retry-After says (up to two minutes), unless the
response says ``x-should-retry: false``. The gateway has already retried and fallen back as far
as the request's deadline and the retry budget allowed, so a repeat on top multiplies its
attempts and overruns the caller's deadline. Every error therefore says
``x-should-retry: false``, except where waiting is what helps: a provider's rate limit with a
known end, or a group whose deployments are all cooling down, when that wait is within the
operator's bound (``retries.max_retry_after``) and shorter than what is left of the caller's
deadline. Then the response says ``x-should-retry: true`` with the honest wait in
``retry-after-ms`` and, rounded up, in Retry-After. The decision per error is
`TurnoutError.client_wait`; the table is in the gateway section of the architecture notes.
"""

from __future__ import annotations

import math

from turnout.errors import TurnoutError

SHOULD_RETRY = "x-should-retry"
#: Shared and never changed: aiohttp copies a response's headers.
_NO_REPEAT = {SHOULD_RETRY: "false"}


def retry_headers(error: TurnoutError, time_left: float, max_wait: float) -> dict[str, str]:
    """The headers that tell a client whether, and when, to repeat a request that failed
    with `error`, with `time_left` seconds of the caller's deadline left."""
    wait = error.client_wait()
    if wait is None or wait > max_wait or wait >= time_left:
        return _NO_REPEAT
    wait = max(wait, 0.0)
    return {
        SHOULD_RETRY: "true",
        "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
        "retry-after": str(max(1, math.ceil(wait))),
    }
