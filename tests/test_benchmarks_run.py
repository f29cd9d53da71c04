"""The benchmark script keeps working (its figures are not checked: timing belongs to it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_router.py"


def test_router_benchmark_runs_and_prints_its_tables() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "| hybrid |" in result.stdout
    assert "Per-deployment state:" in result.stdout
