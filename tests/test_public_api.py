"""The public surface: `__all__` names exactly what the package exports, and nothing of the
server is imported by the core."""

from __future__ import annotations

import subprocess
import sys

import turnout


def test_all_lists_every_public_name_and_only_those() -> None:
    public = {name for name in vars(turnout) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(turnout, name)).__name__ == "module"}
    assert set(turnout.__all__) - {"__version__"} == public - modules
    for name in turnout.__all__:
        assert hasattr(turnout, name), name


def test_importing_the_router_loads_no_server_or_web_framework() -> None:
    code = (
        "import sys, turnout\n"
        "bad = [m for m in sys.modules if m.startswith(('turnout.gateway', 'aiohttp', 'starlette',"
        " 'uvicorn', 'granian', 'fastapi'))]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
