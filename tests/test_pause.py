"""pause / resume: run --auto keeps measuring (and rolling back) but does not promote while paused;
advance refuses while paused."""

from __future__ import annotations

import json
from pathlib import Path

from rollout.commands.auto import run_auto
from rollout.commands.pause import resume
from tests.conftest import LocalFleet, make_fleet


def _events(fleet: LocalFleet) -> list[str]:
    lines = (fleet.rollout_dir() / "events.jsonl").read_text().splitlines()
    return [json.loads(line)["event"] for line in lines]


def test_advance_refuses_while_paused_and_goes_on_after_resume(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    result = fleet.cli("pause", "--reason", "freeze until Monday")
    assert result.exit_code == 0, result.output
    assert "paused at shadow" in result.stdout
    status = fleet.status()
    assert status["paused"]["reason"] == "freeze until Monday"
    assert status["state"] == "shadow"  # a flag, not a state: the rollout is where it was
    before = fleet.bytes_on()
    result = fleet.cli("advance")
    assert result.exit_code == 5
    assert "cannot advance: the rollout is paused (freeze until Monday)" in result.stderr
    assert fleet.bytes_on() == before
    assert fleet.cli("pause").exit_code == 5  # already paused
    result = fleet.cli("resume")
    assert result.exit_code == 0, result.output
    assert fleet.status()["paused"] is None
    assert fleet.cli("resume").exit_code == 5  # not paused
    assert fleet.cli("advance").exit_code == 0
    assert fleet.status()["percent"] == 25
    assert "paused" in _events(fleet) and "resumed" in _events(fleet)
    assert [r["event"] for r in fleet.status()["reasons"]] == ["paused"]


def test_pause_is_refused_where_nothing_can_promote(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("abort").exit_code == 0
    result = fleet.cli("pause")
    assert result.exit_code == 5
    assert "cannot pause: no active rollout" in result.stderr


def _paused_fleet(tmp_path: Path) -> LocalFleet:
    flag = tmp_path / "fail-now"
    fleet = make_fleet(
        tmp_path,
        n=4,
        stages=["shadow", 50, 100],
        checks=[{"name": "not-failing", "run": f"test ! -e {flag}"}],
    )
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("pause", "--reason", "hold").exit_code == 0
    return fleet


def test_run_auto_while_paused_measures_and_rolls_back_on_a_failed_gate(tmp_path: Path) -> None:
    fleet = _paused_fleet(tmp_path)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            (tmp_path / "fail-now").touch()  # the gate fails while the rollout is held
        assert len(sleeps) < 10, "run --auto did not roll back"

    report = run_auto(fleet.state, sleep=sleep)
    assert report.exit_code == 3, report.lines
    events = _events(fleet)
    assert "stage-entered" not in events  # never promoted while paused
    assert events.count("gate") >= 3  # but measured every interval
    assert fleet.status()["state"] == "rolled-back"
    assert set(fleet.bytes_on().values()) == {fleet.baseline}


def test_run_auto_promotes_once_resumed(tmp_path: Path) -> None:
    fleet = _paused_fleet(tmp_path)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            assert "stage-entered" not in _events(fleet)
            resume(fleet.state)  # the lock is free while run --auto waits
        assert len(sleeps) < 10

    report = run_auto(fleet.state, sleep=sleep)
    assert report.exit_code == 0, report.lines
    assert fleet.status()["state"] == "complete"
    assert set(fleet.bytes_on().values()) == {fleet.candidate}
