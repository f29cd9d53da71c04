"""The gateway benchmark keeps working (its figures are not checked: timing belongs to it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_gateway.py"


@pytest.mark.skipif(
    shutil.which("wrk") is None,
    reason="wrk is not installed: the gateway benchmark drives its load with wrk "
    "(a benchmark tool, not a test service; apt-get install wrk)",
)
def test_gateway_benchmark_runs_and_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "| target | req/s @32 | p50 ms | p99 ms |" in result.stdout
    assert "| turnout |" in result.stdout
    assert "turnout / minimal proxy throughput:" in result.stdout
