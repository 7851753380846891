"""Progress deadlines: a stage not promoted within its deadline sends a `deadline` event and, with
`on_deadline: rollback`, rolls back (exit 3 from run --auto); the default only alerts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from rollout.commands.auto import run_auto
from tests.conftest import LocalFleet, make_fleet


def _journal(fleet: LocalFleet) -> list[dict[str, Any]]:
    lines = (fleet.rollout_dir() / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _inconclusive_fleet(tmp_path: Path, **stage: Any) -> LocalFleet:
    """A fleet whose 50% gate stays inconclusive: no usage records on any host."""
    fleet = make_fleet(
        tmp_path,
        n=4,
        stages=["shadow", {"percent": 50, **stage}, 100],
        checks=[
            {
                "name": "error-rate",
                "metric": "error_rate",
                "source": {"type": "usage-log", "path": "fleet/{host}/usage.jsonl"},
                "max": 0.05,
            }
        ],
    )
    for host in fleet.hosts:
        (fleet.root / "fleet" / host / "usage.jsonl").write_text("")
    doc_health = {"interval": "0.2s"}
    import yaml

    doc = yaml.safe_load(fleet.playbook.read_text())
    doc["health"].update(doc_health)
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    return fleet


def test_run_auto_rolls_back_a_stage_whose_gate_stays_inconclusive_past_its_deadline(tmp_path: Path) -> None:
    fleet = _inconclusive_fleet(tmp_path, deadline="1s", on_deadline="rollback")
    began = time.monotonic()
    result = fleet.cli("run", str(fleet.playbook), "--auto")
    assert result.exit_code == 3, result.output
    assert time.monotonic() - began < 30
    assert "deadline: stage 50% not promoted within its deadline of 1s" in result.stdout
    assert "last gate: inconclusive" in result.stdout
    (deadline,) = [e for e in _journal(fleet) if e["event"] == "deadline"]
    assert deadline["action"] == "rollback"
    status = fleet.status()
    assert status["state"] == "rolled-back"
    assert status["reason"].startswith("stage 50% not promoted within its deadline of 1s")
    assert set(fleet.bytes_on().values()) == {fleet.baseline}


def test_an_alert_deadline_sends_one_event_and_the_rollout_goes_on(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=4, stages=["shadow", 50, 100])
    fleet.rewrite(health={"deadline": "1s", "checks": [{"name": "ok", "run": "true"}]})
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    time.sleep(1.2)  # nobody advances the 50% stage in time
    result = fleet.cli("advance")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("deadline: stage 50% not promoted within its deadline of 1s")
    assert fleet.status()["percent"] == 100
    assert [e["action"] for e in _journal(fleet) if e["event"] == "deadline"] == ["alert"]


def test_a_paused_stage_past_its_deadline_is_rolled_back_by_run_auto(tmp_path: Path) -> None:
    fleet = make_fleet(
        tmp_path, n=2, stages=["shadow", {"percent": 100, "deadline": "1s", "on_deadline": "rollback"}]
    )
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    assert fleet.cli("pause", "--reason", "hold").exit_code == 0

    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, 0.3))

    report = run_auto(fleet.state, sleep=sleep)
    assert report.exit_code == 3, report.lines
    assert any("not promoted within its deadline of 1s" in line and "paused" in line for line in report.lines)
    assert fleet.status()["state"] == "rolled-back"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"stages": ["shadow", {"percent": 100, "bake": "10m", "deadline": "5m"}]},
            "stages[1].deadline: 5m00s is shorter",
        ),
        (
            {"stages": ["shadow", {"percent": 100, "on_deadline": "panic"}]},
            "stages[1].on_deadline: must be alert or rollback",
        ),
        ({"health": {"deadline": "never", "checks": []}}, "health.deadline: must be a duration"),
    ],
)
def test_bad_deadlines_are_bad_input(fleet: LocalFleet, change: dict[str, Any], message: str) -> None:
    fleet.rewrite(**change)
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 2
    assert message in result.stderr
