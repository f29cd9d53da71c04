"""The virtual-key benchmark keeps working (its figures are not checked: timing belongs to it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services import missing_service

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_keys.py"

pytestmark = pytest.mark.services


def test_keys_benchmark_runs_and_prints_its_table() -> None:
    if shutil.which("wrk") is None:
        missing_service(
            "wrk is not installed: the keys benchmark drives its load with wrk "
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
    assert "| load | req/s @32 | p50 ms | p99 ms | gateway CPU µs/req | errors |" in result.stdout
    for ledger in ("in-process ledger", "Redis ledger"):
        assert f"| {ledger}, master key |" in result.stdout
        assert f"| {ledger}, virtual key |" in result.stdout
    assert "Ratios: virtual key / master key" in result.stdout
