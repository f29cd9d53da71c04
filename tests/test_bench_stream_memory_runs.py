"""The stream memory benchmark keeps working (its figures are not checked: they belong to it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_stream_memory.py"


def test_stream_memory_benchmark_runs_and_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--stalled", "3"],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "| gateway | fast reader: RSS growth MB |" in result.stdout
    assert "| this checkout |" in result.stdout
