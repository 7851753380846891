"""A check's processes never outlive it: its timeout bounds the verb, a kill -9 of the verb is reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import make_fleet

ROOT = Path(__file__).resolve().parent.parent


def _running(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if cmdline.strip() == needle:
                found.append(int(entry.name))
    return found


def test_a_check_that_leaves_a_process_holding_its_output_is_bounded_by_its_timeout(
    tmp_path: Path,
) -> None:
    check = {"name": "escapes", "run": "setsid sleep 311.25 & sleep 30", "timeout": "2s"}
    fleet = make_fleet(tmp_path, n=1, checks=[check])
    proc = subprocess.run(
        [sys.executable, "-m", "rollout", "--state-dir", str(fleet.state), "start", str(fleet.playbook)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # it held the verb for 300 s before
    )
    assert proc.returncode in (3, 5), proc.stdout + proc.stderr  # the shadow gate could not measure
    assert "timed out after 2s" in proc.stdout
    assert _running("sleep 311.25") == []  # what the check left behind was stopped with it


def test_a_check_left_running_by_a_killed_verb_is_reaped_by_the_next_one(tmp_path: Path) -> None:
    check = {"name": "slow", "run": "sleep 297.75", "timeout": "10m"}
    fleet = make_fleet(tmp_path, n=2, checks=[check])
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollout", "--state-dir", str(fleet.state), "start", str(fleet.playbook)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(2400):  # up to 120 s on a loaded machine
            if len(_running("sleep 297.75")) == 2:
                break
            time.sleep(0.05)
        assert len(_running("sleep 297.75")) == 2
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(_running("sleep 297.75")) == 2  # kill -9 of the verb: its checks live on
    result = fleet.cli("abort", "--reason", "killed")
    assert result.exit_code == 0, result.output
    for _ in range(100):
        if not _running("sleep 297.75"):
            break
        time.sleep(0.05)
    assert _running("sleep 297.75") == []
    assert fleet.bytes_on() == {h: fleet.baseline for h in fleet.hosts}
