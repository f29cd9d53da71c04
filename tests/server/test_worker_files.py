"""The files a gateway's workers share: each worker reads every live peer's latest file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from turnout.gateway.worker_files import WorkerFile


def test_each_worker_reads_the_others_files_and_not_its_own(tmp_path: Path) -> None:
    files = [WorkerFile(tmp_path, worker, ".json", lambda _: True) for worker in (11, 12, 13)]
    for file in files:
        file.write(f"from {file.worker}".encode())
    assert sorted(files[0].others()) == [b"from 12", b"from 13"]


def test_two_kinds_of_file_of_one_worker_do_not_share_a_scratch_file(tmp_path: Path) -> None:
    health = WorkerFile(tmp_path, 11, ".json", lambda _: True)
    traffic = WorkerFile(tmp_path, 11, ".msgpack", lambda _: True)
    health.write(b"health")
    traffic.write(b"traffic")
    reader = WorkerFile(tmp_path, 12, ".json", lambda _: True)
    assert list(reader.others()) == [b"health"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["11.json", "11.msgpack"]


def test_a_peer_left_out_of_a_listing_taken_during_its_rename_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `readdir` racing a rename may leave the renamed file out: a peer listed once is then
    read by name."""
    peer = WorkerFile(tmp_path, 12, ".json", lambda _: True)
    peer.write(b"first")
    reader = WorkerFile(tmp_path, 11, ".json", lambda _: True)
    assert list(reader.others()) == [b"first"]
    peer.write(b"second")

    def listing_without_the_peer(path: str | Path) -> Iterator[os.DirEntry[str]]:
        return iter([])

    monkeypatch.setattr(os, "scandir", listing_without_the_peer)
    assert list(reader.others()) == [b"second"]


def test_a_peer_whose_process_ended_is_no_longer_read(tmp_path: Path) -> None:
    running = {12: True}
    peer = WorkerFile(tmp_path, 12, ".json", lambda _: True)
    peer.write(b"state")
    reader = WorkerFile(tmp_path, 11, ".json", lambda pid: running.get(pid, False))
    assert list(reader.others()) == [b"state"]
    running[12] = False
    assert list(reader.others()) == []


def test_a_peer_that_removed_its_file_is_skipped(tmp_path: Path) -> None:
    peer = WorkerFile(tmp_path, 12, ".json", lambda _: True)
    peer.write(b"state")
    reader = WorkerFile(tmp_path, 11, ".json", lambda _: True)
    assert list(reader.others()) == [b"state"]
    peer.remove()
    assert list(reader.others()) == []
