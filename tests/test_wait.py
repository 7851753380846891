"""`rollout wait` through the real CLI in a subprocess: every exit code."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rollout.core import progress
from rollout.core.state import RolloutState
from tests.conftest import LocalFleet, make_fleet

ROOT = Path(__file__).resolve().parent.parent


def _rollout(fleet: LocalFleet, env: dict[str, str], *args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rollout", "--state-dir", str(fleet.state), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _wait(fleet: LocalFleet, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    proc = _rollout(fleet, env, "wait", "--json", "--interval", "0.1s", *args)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, json.loads(out), err


def test_wait_exits_0_when_run_auto_completes_it(tmp_path: Path, child_env: dict[str, str]) -> None:
    fleet = make_fleet(tmp_path, n=2, stages=["shadow", {"percent": 100, "bake": "1s"}])
    fleet.rewrite(health={"interval": "0.2s", "checks": [{"name": "ok", "run": "true"}]})
    driver = _rollout(fleet, child_env, "run", str(fleet.playbook), "--auto")
    try:
        code, data, err = _wait(fleet, child_env, "--timeout", "90s")
    finally:
        driver.communicate(timeout=120)
    assert code == 0, (data, err)
    assert data["state"] == "complete"
    assert data["outcome"] == "complete"
    assert driver.returncode == 0


def test_wait_exits_3_after_a_rollback_or_an_abort(tmp_path: Path, child_env: dict[str, str]) -> None:
    fleet = make_fleet(
        tmp_path,
        n=2,
        stages=["shadow", 100],
        checks=[{"name": "shadow-only", "run": 'test "$ROLLOUT_PERCENT" = 0'}],
    )
    assert fleet.cli("run", str(fleet.playbook), "--auto").exit_code == 3
    code, data, _ = _wait(fleet, child_env)
    assert (code, data["state"]) == (3, "rolled-back")
    assert "gate 100% failed" in data["outcome"]
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("abort", "--reason", "changed my mind").exit_code == 0
    code, data, _ = _wait(fleet, child_env)
    assert (code, data["outcome"]) == (3, "aborted: changed my mind")


def test_wait_exits_4_when_the_rollback_failed(tmp_path: Path, child_env: dict[str, str]) -> None:
    fleet = make_fleet(tmp_path, n=2, stages=["shadow", 100])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    fleet.file("dev-02").write_text("{}\n")
    assert fleet.cli("abort").exit_code == 4
    code, data, _ = _wait(fleet, child_env)
    assert code == 4
    assert data["outcome"].startswith("rollback-failed: rollback failed: not restored: dev-02")


def test_wait_exits_5_at_the_timeout_while_a_stage_bakes(tmp_path: Path, child_env: dict[str, str]) -> None:
    fleet = make_fleet(tmp_path, n=2, stages=["shadow", {"percent": 50, "bake": "1h"}, 100])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    began = time.monotonic()
    code, data, _ = _wait(fleet, child_env, "--timeout", "1s")
    assert code == 5
    assert 1.0 <= time.monotonic() - began < 30
    assert data["outcome"].startswith("still going after 1s: live at 50%, bake 59m")
    assert 3500 < data["bake_left_s"] <= 3600


def test_wait_exits_5_when_paused(fleet: LocalFleet, child_env: dict[str, str]) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("pause", "--reason", "waiting for the vendor").exit_code == 0
    code, data, _ = _wait(fleet, child_env, "--timeout", "60s")
    assert code == 5
    assert data["outcome"].startswith("waiting for a human: paused (waiting for the vendor)")


def test_wait_exits_5_when_nobody_drives_a_stage_ready_to_gate(
    fleet: LocalFleet, child_env: dict[str, str]
) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    code, data, _ = _wait(fleet, child_env, "--timeout", "60s")
    assert code == 5
    assert "no `run --auto` drives it; `rollout advance` gates it" in data["outcome"]


def test_status_json_has_bake_time_left_and_the_next_check(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=2, stages=["shadow", {"percent": 50, "bake": "10m"}, 100])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    status = fleet.status()
    assert 590 < status["bake_left_s"] <= 600
    assert status["next_check_at"] == status["bake_ends_at"]  # nobody drives it: when advance may gate
    assert status["paused"] is None and status["driven"] is False


def test_an_inconclusive_gate_waits_for_a_human_only_when_nobody_drives_it() -> None:
    state = RolloutState.from_json(
        {
            "state": "live",
            "stage": "25%",
            "stage_entered_at": 100.0,
            "last_verdict": {
                "stage": "25%",
                "decision": "inconclusive",
                "measured_at": 200.0,
                "why": "3 of 10",
            },
        }
    )
    assert progress.outcome(state, driven=True, busy=False, bake_left=0) is None
    code, why = progress.outcome(state, driven=False, busy=False, bake_left=0) or (0, "")
    assert code == 5 and "gate 25% inconclusive (3 of 10)" in why
    assert progress.outcome(state, driven=False, busy=True, bake_left=0) is None


def test_status_watch_redraws_until_complete_and_exits_like_wait(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    fleet = make_fleet(tmp_path, n=2, stages=["shadow", {"percent": 100, "bake": "1s"}])
    fleet.rewrite(health={"interval": "0.2s", "checks": [{"name": "ok", "run": "true"}]})
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    driver = _rollout(fleet, child_env, "run", "--auto")
    try:
        watch = _rollout(fleet, child_env, "status", "--watch", "--interval", "0.1s")
        out, err = watch.communicate(timeout=120)
    finally:
        driver.communicate(timeout=120)
    assert watch.returncode == 0, err
    assert out.count("rollout test-rollout-") >= 2  # drawn again as it changed (not a terminal: no clearing)
    assert out.rstrip().endswith(": complete")
    assert fleet.cli("pause").exit_code == 5  # complete: nothing to pause


def test_status_watch_exits_5_when_paused(fleet: LocalFleet, child_env: dict[str, str]) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("pause", "--reason", "lunch").exit_code == 0
    proc = _rollout(fleet, child_env, "status", "--watch", "--json", "--interval", "0.1s")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 5
    assert json.loads(out)["outcome"].startswith("waiting for a human: paused (lunch)")
