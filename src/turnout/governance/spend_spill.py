"""Spend log rows kept in local files when the store cannot take them before the process exits.

A gateway stopping while its database is unreachable still holds rows it owes the spend log.
Losing them would lose billing data, so the writer spills them here, one JSON-lines file per
spill, and the next start reads them back and writes them like any other rows. Writing a row
twice is harmless (the store skips a request id it already holds), so a row spilled after its
batch did reach the database is simply skipped when it comes back.

Several worker processes share one directory. A file is claimed by renaming it to a name that
carries the claiming process's id (a rename is atomic: exactly one worker wins it) and removed
once its rows are written. A claim whose process no longer runs (it crashed before finishing)
is claimed again by the next start. Rows the database refused (a value too long for its
column) are kept in ``refused-*.jsonl`` files, which no start reads back.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from turnout.governance.records import SpendRow
from turnout.processes import alive

_SPILLED = "spend-*.jsonl"
_CLAIMED = "claimed-*-spend-*.jsonl"
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(SpendRow)


class SpillDir:
    """One directory of spilled rows."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def spill(self, rows: Sequence[SpendRow]) -> Path:
        """Write `rows` to a new file (complete or not at all: written aside, then renamed)."""
        return self._write("spend", rows)

    def set_aside(self, rows: Sequence[SpendRow]) -> Path:
        """Keep rows the database refused in a file of their own, for an operator: a start
        does not read them back (they would be refused again)."""
        return self._write("refused", rows)

    def _write(self, prefix: str, rows: Sequence[SpendRow]) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}-{os.getpid()}-{time.time_ns()}.jsonl"
        aside = self.path / f".{name}.partial"
        with aside.open("wb") as out:
            for row in rows:
                out.write(_ENCODER.encode(row) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        final = self.path / name
        os.replace(aside, final)
        return final

    def claim(self) -> list[tuple[Path, list[SpendRow]]]:
        """Every spilled file no running process has claimed, claimed by this one, with its
        rows (a line that does not decode, the tail of a file cut short, is skipped)."""
        if not self.path.is_dir():
            return []
        found: list[tuple[Path, list[SpendRow]]] = []
        candidates = sorted(self.path.glob(_SPILLED)) + sorted(
            claimed for claimed in self.path.glob(_CLAIMED) if not _claimant_runs(claimed)
        )
        for path in candidates:
            original = path.name.split("-", 2)[2] if path.name.startswith("claimed-") else path.name
            mine = self.path / f"claimed-{os.getpid()}-{original}"
            try:
                os.rename(path, mine)
            except FileNotFoundError:
                continue  # another worker claimed it first
            found.append((mine, _read(mine)))
        return found

    @staticmethod
    def done(path: Path) -> None:
        """Forget a claimed file whose rows are all written."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _read(path: Path) -> list[SpendRow]:
    rows = []
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            rows.append(_DECODER.decode(line))
    return rows


def _claimant_runs(path: Path) -> bool:
    try:
        pid = int(path.name.split("-", 2)[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return False  # this process claims anew only what it left itself (a restart in place)
    return alive(pid)
