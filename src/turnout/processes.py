"""Whether another process of this machine still runs: files left by workers and by earlier
runs (shared health and traffic, spilled spend rows) are read or claimed only while, or once,
their writer's process is gone."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (one owned by another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
