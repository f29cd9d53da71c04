"""The wheel ships what the gateway reads from its own package: the status page's static files
(its script and style, and uPlot with its licence), built from this checkout with the project's
own build backend."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

ROOT = Path(__file__).resolve().parent.parent
STATIC = "turnout/gateway/static"
SHIPPED = (
    f"{STATIC}/status.js",
    f"{STATIC}/status.css",
    f"{STATIC}/uplot/uPlot.iife.min.js",
    f"{STATIC}/uplot/uPlot.min.css",
    f"{STATIC}/uplot/LICENSE",
)


def test_the_wheel_ships_the_status_pages_static_files(tmp_path: Path) -> None:
    (wheel,) = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in SHIPPED:
            assert name in names, f"{name} is not in the wheel"
            source = ROOT / "src" / name
            assert archive.read(name) == source.read_bytes()
        assert b"MIT" in archive.read(f"{STATIC}/uplot/LICENSE")
