"""Output a human reads: durations as `advance` prints them, reconciled hosts as sentences."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import LocalFleet, make_fleet


def test_plan_prints_bake_durations_like_advance(tmp_path: Path) -> None:
    fleet = make_fleet(
        tmp_path, stages=["shadow", {"percent": 25, "bake": "2h"}, {"percent": 50, "bake": 90}, 100]
    )
    result = fleet.cli("plan", str(fleet.playbook))
    assert result.exit_code == 0, result.output
    assert "live on 2 host(s): " in result.stdout
    assert ", bake 2h00m; gate:" in result.stdout
    assert ", bake 1m30s; gate:" in result.stdout
    assert "7200s" not in result.stdout


def test_status_after_a_crash_says_what_it_reconciled_in_sentences(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    state_file = fleet.rollout_dir() / "state.json"
    state = json.loads(state_file.read_text())
    # What a kill -9 in the middle of going live leaves: the intent journaled, two hosts switched.
    state["intent"] = {"action": "go-live", "hosts": ["dev-01", "dev-02", "dev-03"], "time": time.time()}
    state_file.write_text(json.dumps(state))
    fleet.file("dev-01").write_bytes(fleet.candidate)
    fleet.file("dev-02").write_bytes(fleet.candidate)
    fleet.shadow("dev-01").unlink()
    fleet.shadow("dev-02").unlink()
    result = fleet.cli("status")
    assert result.exit_code == 0, result.output
    assert (
        "Reconciled an interrupted operation:\n"
        "  dev-01, dev-02 hold the candidate.\n"
        "  dev-03 holds the baseline, with the candidate staged beside it.\n"
    ) in result.stdout
    assert "{" not in result.stdout
