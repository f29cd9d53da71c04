"""The connection guard's socket tests again, on uvloop (what `turnout serve` runs): its
transports are not asyncio's classes, and its reads split and join packets its own way."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import test_connection_limits as on_asyncio
import uvloop

CASES: list[Callable[[], Coroutine[Any, Any, None]]] = [
    on_asyncio.test_when_every_connection_is_busy_a_new_one_gets_a_503_then_service_resumes,
    on_asyncio.test_a_partial_body_gets_a_408_and_the_connection_closes,
    on_asyncio.test_a_half_request_in_the_packet_ending_the_previous_one_is_closed,
    on_asyncio.test_a_half_request_in_the_packet_ending_the_previous_body_is_closed,
    on_asyncio.test_a_kept_alive_connection_still_waits_its_keepalive_timeout,
    on_asyncio.test_a_stalled_body_is_closed_before_a_steady_one_at_the_cap,
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__.removeprefix("test_"))
def test_on_uvloop(case: Callable[[], Coroutine[Any, Any, None]]) -> None:
    uvloop.run(case())


def test_headers_without_their_body_never_lock_out_a_real_client_on_uvloop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    uvloop.run(on_asyncio.test_headers_without_their_body_never_lock_out_a_real_client(caplog))


def test_silent_sockets_over_the_cap_never_lock_out_a_real_client_on_uvloop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    uvloop.run(on_asyncio.test_silent_sockets_over_the_cap_never_lock_out_a_real_client(caplog))
