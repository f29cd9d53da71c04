"""The service rule itself: a missing service skips locally and fails in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

_TEST = """
import pytest
from services import missing_service

@pytest.mark.services
def test_needs_service():
    missing_service("no such service here")
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, require: bool) -> None:
    if require:
        monkeypatch.setenv("TURNOUT_REQUIRE_SERVICES", "1")
    else:
        monkeypatch.delenv("TURNOUT_REQUIRE_SERVICES", raising=False)
    shared = (Path(__file__).parent / "services.py").read_text()
    pytester.makeconftest(
        "def pytest_configure(config):\n"
        "    config.addinivalue_line('markers', 'services: needs a service')\n"
    )
    pytester.makepyfile(services=shared, test_needs_service=_TEST)


def test_missing_service_skips_on_a_developer_machine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(pytester, monkeypatch, require=False)
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio").assert_outcomes(skipped=1)


def test_missing_service_fails_when_services_are_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(pytester, monkeypatch, require=True)
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio").assert_outcomes(failed=1)
