"""README's SDK examples run as written against the demo gateway (`turnout serve --demo`), with
only the port changed: the Chat Completions, Responses and Messages snippets."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from serve_process import serving

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks_using(marker: str) -> list[str]:
    section = README.read_text().split("## Run the gateway", 1)[1].split("## Library", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return [block for block in blocks if marker in block]


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("chat.completions.create", "chat.completion"),
        ("client.responses.create", "Simulated answer"),
        ("client.messages.create", "Simulated answer"),
    ],
)
async def test_a_readme_example_runs_against_the_demo(
    tmp_path: Path, marker: str, expected: str
) -> None:
    (block,) = _blocks_using(marker)
    async with serving("--demo", "--port", "0") as (_, port, _):
        script = tmp_path / "example.py"
        script.write_text(block.replace("127.0.0.1:4000", f"127.0.0.1:{port}"))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert expected in out.decode()
