"""Services that must not be silently skipped.

Tests that need an external service (Redis, PostgreSQL) are marked ``services`` and get it from
a fixture. When the service cannot be had, the test skips on a developer's machine but fails
when ``TURNOUT_REQUIRE_SERVICES=1`` (as `.ci/run` sets), so CI never passes by skipping.
"""

from __future__ import annotations

import os

import pytest


def services_required() -> bool:
    return os.environ.get("TURNOUT_REQUIRE_SERVICES") == "1"


def missing_service(reason: str) -> None:
    """Skip, or fail when services are required, because a service is not available."""
    if services_required():
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)
