"""Every family reads an HTTP-date Retry-After against the injected clock, never the system's.

A `ManualClock` whose wall time is far from the real one makes the difference visible: the wait
is the date minus the clock's wall time, exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from turnout.errors import RateLimitError
from turnout.providers.adapter import Adapter
from turnout.providers.openai import OpenAICompatibleAdapter
from turnout.providers.registry import native_adapter
from turnout.testing import ManualClock

#: A wall time years away from the real one (2030-01-15), on the clock the adapters are given.
EPOCH = 1_894_665_600.0
WAIT = 42.0

#: A minimal 429 body in each family's own error shape.
BODIES = {
    "openai": b'{"error": {"message": "slow down", "type": "rate_limit_error"}}',
    "azure": b'{"error": {"code": "429", "message": "slow down"}}',
    "anthropic": b'{"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}',
    "gemini": b'{"error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"}}',
    "bedrock": b'{"message": "Too many requests"}',
}


def _adapter(name: str, clock: ManualClock) -> Adapter:
    if name == "openai":
        return OpenAICompatibleAdapter(name, environ={}, clock=clock)
    return native_adapter(name, environ={}, clock=clock)


@pytest.mark.parametrize("family", sorted(BODIES))
def test_an_http_date_retry_after_is_measured_on_the_injected_clock(family: str) -> None:
    clock = ManualClock(epoch=EPOCH)
    moment = datetime.fromtimestamp(EPOCH + WAIT, tz=UTC)
    headers = {"retry-after": format_datetime(moment, usegmt=True)}
    if family == "bedrock":
        headers["x-amzn-errortype"] = "ThrottlingException"
    error = _adapter(family, clock).error(429, BODIES[family], headers)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == pytest.approx(WAIT)
    clock.advance(WAIT / 2)
    later = _adapter(family, clock).error(429, BODIES[family], headers)
    assert later.retry_after == pytest.approx(WAIT / 2)
