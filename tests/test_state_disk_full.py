"""A full disk under the state folder: a sentence that says what was done, then status and abort work."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LocalFleet, make_fleet


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root and permission to mount, as on CI)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> Path:
    """Fill the disk to the last byte."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def _on_small_disk(tmp_path: Path, small_disk: Path) -> LocalFleet:
    fleet = make_fleet(tmp_path, n=4)
    fleet.state = small_disk / "state"
    return fleet


def test_start_on_a_full_state_disk_says_nothing_was_written(tmp_path: Path, small_disk: Path) -> None:
    fleet = _on_small_disk(tmp_path, small_disk)
    filler = _fill(small_disk)
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.stderr and "nothing was written to any host" in result.stderr
    assert "Traceback" not in result.output and "unexpected failure" not in result.output
    assert fleet.bytes_on() == {h: fleet.baseline for h in fleet.hosts}
    assert not any(fleet.shadow(h).exists() for h in fleet.hosts)
    filler.unlink()
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0


def test_a_full_state_disk_mid_rollout_leaves_what_status_and_abort_finish(
    tmp_path: Path, small_disk: Path
) -> None:
    fleet = _on_small_disk(tmp_path, small_disk)
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    filler = _fill(small_disk)
    result = fleet.cli("advance")
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.stderr and str(fleet.state) in result.stderr
    assert "Traceback" not in result.output
    filler.unlink()
    status = fleet.status()
    assert status["state"] in ("shadow", "live")
    for host, rec in status["hosts"].items():
        on_disk = fleet.file(host).read_bytes()
        assert rec["state"] == ("candidate" if on_disk == fleet.candidate else "shadow"), host
    assert fleet.cli("abort").exit_code == 0
    assert fleet.bytes_on() == {h: fleet.baseline for h in fleet.hosts}
