"""Hosts with the same baseline share backup files, never more names per file than a filesystem allows."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from rollout.edges import store
from tests.conftest import make_fleet


def backups(fleet_state: Path) -> list[Path]:
    (folder,) = [p for p in fleet_state.iterdir() if p.is_dir()]
    return [p for p in (folder / "baseline").iterdir() if not p.name.startswith(".")]


def test_a_large_group_of_equal_baselines_gets_a_copy_per_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "LINKS_PER_COPY", 3)
    fleet = make_fleet(tmp_path, n=7)
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    files = backups(fleet.state)
    assert len(files) == 7 and all(p.read_bytes() == fleet.baseline for p in files)
    assert len({p.stat().st_ino for p in files}) == 3  # 3 + 3 + 1
    assert max(p.stat().st_nlink for p in files) <= 3


def test_a_filesystem_refusing_another_link_gets_a_new_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_link = os.link

    def link(src: str | Path, dst: str | Path) -> None:  # a filesystem allowing 2 names a file
        if os.stat(src).st_nlink >= 2:
            raise OSError(errno.EMLINK, "Too many links")
        real_link(src, dst)

    monkeypatch.setattr(store.os, "link", link)
    fleet = make_fleet(tmp_path, n=5)
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    files = backups(fleet.state)
    assert len(files) == 5 and all(p.read_bytes() == fleet.baseline for p in files)
    assert max(p.stat().st_nlink for p in files) == 1  # the temp name counted as one of the two
