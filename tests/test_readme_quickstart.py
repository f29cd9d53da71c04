"""README's library quickstart runs as written, with the interpreter of the environment the
install command made (the one running these tests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _quickstart() -> str:
    section = README.read_text().split("## Library quickstart", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the library quickstart has no python block"
    return found.group(1)


def test_the_library_quickstart_runs_and_every_call_is_answered(tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(_quickstart())
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 8
    # Each line names the deployment that answered, then every attempt it took.
    assert all(line.split(" | ")[0] in {"fast-but-flaky", "steady"} for line in lines)
    assert all(" | " in line for line in lines)
