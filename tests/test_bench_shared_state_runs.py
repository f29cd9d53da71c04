"""The shared-state benchmark keeps working (its figures are not checked: timing belongs to it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services import missing_service

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_shared_state.py"

pytestmark = pytest.mark.services


def test_shared_state_benchmark_runs_and_prints_its_table() -> None:
    if shutil.which("wrk") is None:
        missing_service(
            "wrk is not installed: the shared-state benchmark drives its load with wrk "
            "(a benchmark tool, not a test service; apt-get install wrk)"
        )
    if shutil.which("redis-server") is None:
        missing_service("redis-server is not installed")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| target | req/s @32 | p50 ms | p99 ms | gateway CPU µs/req |" in result.stdout
    for row in ("| in-process state |", "| Redis state |", "| Redis state, 2 workers |"):
        assert row in result.stdout
    assert "Redis state / in-process state, one worker each:" in result.stdout
    assert "two workers / one worker, both on Redis state:" in result.stdout
    assert "sequential clean requests:" in result.stdout
