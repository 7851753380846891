"""kill -9 of `start` at every effect it makes: status tells the truth, abort finishes, no debris."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import make_fleet

ROOT = Path(__file__).resolve().parent.parent


def _debris(*folders: Path) -> list[str]:
    found = []
    for folder in folders:
        for p in folder.rglob("*"):
            if p.name.endswith((".rollout-tmp", ".rollout-shadow")) or p.name.startswith(".backup."):
                found.append(str(p))
    return found


def test_kill_9_at_every_step_of_start_leaves_no_debris(tmp_path: Path) -> None:
    killed_at = 0
    for n in range(1, 400):
        fleet = make_fleet(tmp_path / str(n), n=2, stages=["shadow", 100])
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.killpoint",
                str(n),
                "--state-dir",
                str(fleet.state),
                "start",
                str(fleet.playbook),
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode == 99:
            break  # start finished before effect n: every earlier point was tried
        assert proc.returncode == -9, (n, proc.returncode, proc.stderr)
        killed_at = n
        status = fleet.cli("status", "--json")
        assert status.exit_code in (0, 5), (n, status.output)
        assert "Traceback" not in status.output
        if status.exit_code == 0 and json.loads(status.stdout)["state"] not in ("aborted",):
            abort = fleet.cli("abort", "--reason", "killed")
            assert abort.exit_code == 0, (
                n,
                abort.output,
                (fleet.state / "crash.log").exists() and next(fleet.state.rglob("crash.log")).read_text(),
            )
        assert fleet.bytes_on() == {h: fleet.baseline for h in fleet.hosts}, n
        assert _debris(fleet.root, fleet.state) == [], n
    print(f"start killed at {killed_at} points")
    assert killed_at > 10  # the seam really killed start at many points


def _killed(fleet: Any, n: int, *args: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.killpoint", str(n), "--state-dir", str(fleet.state), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode


def test_kill_9_at_every_step_of_undo_then_abort_finishes_it(tmp_path: Path) -> None:
    killed_at = 0
    for n in range(1, 400):
        fleet = make_fleet(tmp_path / str(n), n=2, stages=["shadow", 100])
        assert fleet.cli("run", str(fleet.playbook), "--auto").exit_code == 0
        assert fleet.bytes_on() == {h: fleet.candidate for h in fleet.hosts}
        code = _killed(fleet, n, "undo")
        if code == 99:
            break
        assert code == -9, (n, code)
        killed_at = n
        status = fleet.status()
        assert status["state"] in ("complete", "reverting", "reverted"), (n, status["state"])
        if status["state"] != "complete":
            assert status["active"] or status["state"] == "reverted"
            verb = ("abort",) if status["state"] == "reverting" else ()
            if verb:
                result = fleet.cli(*verb)
                assert result.exit_code == 0, (n, result.output)
                assert fleet.status()["state"] == "reverted"
        else:
            assert fleet.cli("undo").exit_code == 0
        assert fleet.bytes_on() == {h: fleet.baseline for h in fleet.hosts}, n
        assert _debris(fleet.root, fleet.state) == [], n
    print(f"undo killed at {killed_at} points")
    assert killed_at > 5
