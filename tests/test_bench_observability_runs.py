"""The observability benchmarks keep working (their figures are not checked: timing belongs to
them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_observability.py"


@pytest.mark.skipif(
    shutil.which("wrk") is None,
    reason="wrk is not installed: the benchmark drives its load with wrk "
    "(a benchmark tool, not a test service; apt-get install wrk)",
)
def test_observability_benchmark_runs_and_reports_its_ratio() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "| turnout (both off) |" in result.stdout
    assert "| turnout (tracing on) |" in result.stdout
    assert "| turnout (request log on) |" in result.stdout
    assert "tracing on / both off throughput:" in result.stdout
    assert "request log on / both off throughput:" in result.stdout
    # The traced gateway exported its spans to the receiver.
    [received] = [line for line in result.stdout.splitlines() if line.startswith("spans received")]
    assert int(received.rsplit(" ", 1)[1]) > 0


def test_tracing_path_benchmark_runs_and_encodes_two_spans_a_request() -> None:
    script = SCRIPT.parent / "bench_tracing_path.py"
    result = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "traced request path:" in result.stdout
    assert "(400 spans encoded per loop)" in result.stdout
