"""`advance --to 100 --yes`: gate the current stage, then skip the remaining cohorts."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import LocalFleet, make_fleet


def _events(fleet: LocalFleet) -> list[dict[str, object]]:
    lines = (fleet.rollout_dir() / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_advance_to_100_needs_yes_and_touches_nothing_without_it(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0  # live on 25%
    before = fleet.bytes_on()
    result = fleet.cli("advance", "--to", "100")
    assert result.exit_code == 2
    assert "skipping 50%: add --yes to confirm; nothing changed" in result.stderr
    assert fleet.bytes_on() == before
    assert fleet.cli("advance", "--to", "25", "--yes").exit_code == 2  # not ahead
    assert "no stage at 75%" in fleet.cli("advance", "--to", "75").stderr


def test_advance_to_100_gates_the_current_stage_then_goes_live_everywhere(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0  # live on 25%
    result = fleet.cli("advance", "--full", "--yes")
    assert result.exit_code == 0, result.output
    assert "gate 25%: PASS" in result.stdout
    assert "skipping 50% (advance --to, confirmed with --yes)" in result.stdout
    status = fleet.status()
    assert (status["state"], status["percent"]) == ("live", 100)
    assert set(fleet.bytes_on().values()) == {fleet.candidate}
    (skipped,) = [e for e in _events(fleet) if e["event"] == "stages-skipped"]
    assert skipped["skipped"] == ["50%"]
    assert fleet.cli("advance").exit_code == 0  # the 100% stage still has its own gate
    assert fleet.status()["state"] == "complete"


def test_advance_to_100_does_not_skip_a_failing_gate(tmp_path: Path) -> None:
    flag = tmp_path / "fail-now"
    fleet = make_fleet(tmp_path, checks=[{"name": "not-failing", "run": f"test ! -e {flag}"}])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    flag.touch()
    result = fleet.cli("advance", "--to", "100", "--yes")
    assert result.exit_code == 3, result.output
    assert fleet.status()["state"] == "rolled-back"
    assert set(fleet.bytes_on().values()) == {fleet.baseline}
