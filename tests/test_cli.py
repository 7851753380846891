"""The verbs through the real CLI: bad input, refusals, bake times, run --auto, undo, status --json."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import LocalFleet, make_fleet


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.playbook.write_text("name: [unclosed"), "invalid YAML"),
        (lambda f: f.rewrite(colour="blue"), "colour: unknown key (expected one of:"),
        (
            lambda f: f.rewrite(config={"source": "missing.json", "path": "fleet/{host}/x"}),
            "config.source: candidate file not found",
        ),
        (lambda f: f.rewrite(targets={"hosts": ["a", "b", "a"]}), "targets.hosts[2]: duplicate host 'a'"),
        (
            lambda f: f.rewrite(stages=["shadow", 50, 25, 100]),
            "stages[2]: percents must increase: 25 after 50",
        ),
        (lambda f: f.rewrite(stages=[25, 50]), "stages: the last stage must be 100"),
        (
            lambda f: f.rewrite(config={"source": "candidate.json", "path": "shared.json"}),
            "config.path: 'shared.json' has no {host}",
        ),
        (
            lambda f: f.rewrite(health={"checks": [{"name": "x"}]}),
            "health.checks[0]: cannot tell the check's kind",
        ),
        (
            lambda f: f.rewrite(health={"checks": [{"run": "true", "stages": [75]}]}),
            "health.checks[0].stages: no stage named '75'",
        ),
        (
            lambda f: f.rewrite(stages=[{"percent": 100, "bake": "soon"}]),
            "stages[0].bake: must be a duration",
        ),
        (
            lambda f: (f.root / "candidate.json").write_text('{\n  "model": 1,\n}'),
            "candidate.json:3: invalid JSON",
        ),
    ],
)
def test_bad_input_exits_2_names_file_and_field_and_touches_nothing(
    fleet: LocalFleet, mutate: object, message: str
) -> None:
    mutate(fleet)  # type: ignore[operator]
    before = fleet.bytes_on()
    for verb in ("validate", "plan", "start"):
        result = fleet.cli(verb, str(fleet.playbook))
        assert result.exit_code == 2, (verb, result.output)
        assert message in result.stderr
        assert "Traceback" not in result.output
    assert fleet.bytes_on() == before
    assert not fleet.state.exists() or not any(p.is_dir() for p in fleet.state.iterdir())


def test_missing_playbook(fleet: LocalFleet) -> None:
    result = fleet.cli("validate", "nowhere.yml")
    assert result.exit_code == 2
    assert result.stderr == "error: nowhere.yml: playbook not found\n"


def test_validate_and_plan_touch_nothing(fleet: LocalFleet) -> None:
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 0
    assert "ok: 8 host(s) over local, stages shadow -> 25% -> 50% -> 100%" in result.stdout
    result = fleet.cli("plan", str(fleet.playbook))
    assert result.exit_code == 0, result.output
    assert "dev-01..dev-08: same change" in result.stdout
    assert "25%      live on 2 host(s)" in result.stdout
    assert not fleet.state.exists()
    assert not any(fleet.shadow(h).exists() for h in fleet.hosts)


def test_advance_before_bake_is_over_exits_5_with_time_left(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, stages=["shadow", {"percent": 50, "bake": "10m"}, 100])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    before = fleet.bytes_on()
    result = fleet.cli("advance")
    assert result.exit_code == 5
    assert "stage 50% is baking, 9m5" in result.stderr or "stage 50% is baking, 10m00s" in result.stderr
    assert "left (of 10m00s); nothing changed" in result.stderr
    assert fleet.bytes_on() == before


def test_verbs_not_allowed_in_state_exit_5_and_say_what_is(fleet: LocalFleet) -> None:
    result = fleet.cli("advance")
    assert result.exit_code == 5
    assert "no active rollout" in result.stderr
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 5 and "is still shadow" in result.stderr
    rid = fleet.status()["id"]
    result = fleet.cli("undo", rid)
    assert result.exit_code == 5
    assert (
        "cannot undo: the rollout is shadow (allowed now: abort, advance, diff, history, pause, resume, run, status)"
        in result.stderr
    )


def test_run_auto_completes_then_undo_reverts(fleet: LocalFleet) -> None:
    result = fleet.cli("run", str(fleet.playbook), "--auto")
    assert result.exit_code == 0, result.output
    assert "complete: the candidate is live on every host" in result.stdout
    assert all(b == fleet.candidate for b in fleet.bytes_on().values())
    status = fleet.status()
    assert status["state"] == "complete" and status["percent"] == 100
    result = fleet.cli("undo", "--reason", "changed our minds")
    assert result.exit_code == 0
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())
    assert fleet.status()["state"] == "reverted"


def test_run_auto_rolls_back_on_failed_gate_at_50(tmp_path: Path) -> None:
    check = {
        "name": "no-big-pickle-at-50",
        "stages": [50],
        "run": 'if grep -q big-pickle "$ROLLOUT_CONFIG_PATH"; then echo "pickle on $ROLLOUT_HOST"; exit 9; fi',
    }
    fleet = make_fleet(tmp_path, checks=[check])
    result = fleet.cli("run", str(fleet.playbook), "--auto")
    assert result.exit_code == 3, result.output
    assert "gate 50%: FAIL" in result.stdout
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())
    status = fleet.status()
    assert status["state"] == "rolled-back" and status["stage"] == "50%"
    assert "exit 9: pickle on" in status["reason"]
    events = [e["event"] for e in status["history"]]
    assert events[-1] == "rolled-back" and "restored" in events


def test_local_check_runs_once_on_control_machine(tmp_path: Path) -> None:
    check = {"name": "count", "on": "local", "run": 'echo "$ROLLOUT_STAGE $ROLLOUT_HOSTS" >> calls.log'}
    fleet = make_fleet(tmp_path, n=4, checks=[check], stages=["shadow", 50, 100])
    fleet.rewrite(health={"interval": "10m", "checks": [check]})
    result = fleet.cli("run", str(fleet.playbook), "--auto")
    assert result.exit_code == 0
    calls = (fleet.root / "calls.log").read_text().splitlines()
    # The shadow gate passed at start, within health.interval: advancing does not measure it again.
    assert [c.split()[0] for c in calls] == ["shadow", "50%", "100%"]
    # Printed once (issue 18): the advance that reuses it does not print it again.
    assert result.stdout.count("gate shadow: PASS") == 1
    assert len(calls[1].split()) == 3  # 50% of 4 hosts, plus the stage name


def test_a_gate_passed_longer_ago_than_the_interval_is_measured_again(tmp_path: Path) -> None:
    check = {"name": "count", "on": "local", "run": 'echo "$ROLLOUT_STAGE" >> calls.log'}
    fleet = make_fleet(tmp_path, n=4, checks=[check], stages=["shadow", 100])
    fleet.rewrite(health={"interval": "0.2s", "checks": [check]})
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    time.sleep(0.5)
    assert fleet.cli("advance").exit_code == 0
    assert (fleet.root / "calls.log").read_text().split() == ["shadow", "shadow"]


def test_unmeasurable_check_retries_then_fails_at_the_consecutive_error_limit(tmp_path: Path) -> None:
    check = {"name": "slow", "run": "sleep 5", "timeout": "0.2s", "stages": [25]}
    fleet = make_fleet(tmp_path, checks=[check])
    fleet.rewrite(health={"consecutive_error_limit": 2, "checks": [check]})
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    first = fleet.cli("advance")
    assert first.exit_code == 5
    assert "could not measure (slow 1/2 consecutive errors)" in first.stdout
    second = fleet.cli("advance")
    assert second.exit_code == 3
    assert "could not measure slow 2 times in a row" in second.stdout
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())


def test_status_json_contract(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    data = fleet.status()
    assert {"id", "state", "stage", "percent", "hosts", "history"} <= set(data)
    assert data["state"] == "shadow" and data["stage"] == "shadow" and data["percent"] == 0
    assert set(data["hosts"]) == set(fleet.hosts)
    for rec in data["hosts"].values():
        assert rec["state"] == "shadow" and len(rec["sha256"]) == 64
    assert all({"time", "event", "stage"} <= set(e) for e in data["history"])


def test_state_dir_before_or_after_the_verb_and_from_env(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    after = subprocess.run(
        [sys.executable, "-m", "rollout", "status", "--json", "--state-dir", str(fleet.state)],
        capture_output=True,
        text=True,
        check=True,
    )
    env = subprocess.run(
        [sys.executable, "-m", "rollout", "status", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "ROLLOUT_STATE_DIR": str(fleet.state)},
    )
    assert json.loads(after.stdout)["id"] == json.loads(env.stdout)["id"] == fleet.status()["id"]


def test_diff_groups_hosts_with_the_same_baseline(fleet: LocalFleet) -> None:
    fleet.file("dev-08").write_text('{"model": "x/y"}')
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    result = fleet.cli("diff")
    assert result.exit_code == 0
    assert "dev-01..dev-07: same change" in result.stdout
    assert "dev-08: change" in result.stdout
    assert (
        'Value of root[\'model\'] changed from "anthropic/claude-sonnet-4-5" to "openai/gpt-5.2".'
        in result.stdout
    )


def test_unexpected_failure_exits_1_and_says_where_the_traceback_is(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    journal = fleet.rollout_dir() / "candidate" / "candidate.json"
    journal.unlink()  # the frozen candidate vanished: not user input, a broken state folder
    result = fleet.cli("advance")
    assert result.exit_code == 1
    assert "error: unexpected failure; traceback written to" in result.stderr
    log = fleet.rollout_dir() / "crash.log"
    assert "FileNotFoundError" in log.read_text()
    assert "Traceback" not in result.stderr


def test_unreachable_cohort_host_is_a_gate_error_then_rejoins(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=4, stages=["shadow", 50, 100])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    order = json.loads((fleet.rollout_dir() / "state.json").read_text())["order"]
    first = order[0]
    fleet.file(first).unlink()
    fleet.file(first).mkdir()  # the host's file cannot be read or replaced: like a host that is down
    result = fleet.cli("advance")
    assert result.exit_code == 5  # live on part of its cohort only: says so (issue 18), was 0
    assert f"warning: {first} not switched: unreachable" in result.stdout
    assert fleet.status()["hosts"][first]["state"] == "unknown"
    result = fleet.cli("advance")
    assert result.exit_code == 5
    assert f"reachable on {first}: host unreachable" in result.stdout
    fleet.file(first).rmdir()
    fleet.file(first).write_bytes(fleet.baseline)  # the host is back
    result = fleet.cli("advance")
    assert result.exit_code == 0, result.output
    assert f"{first}: shadow" in result.stdout  # still on the baseline, its shadow copy kept
    assert fleet.cli("advance").exit_code == 0
    assert all(b == fleet.candidate for b in fleet.bytes_on().values())
    assert fleet.status()["state"] == "complete"
    assert not any(fleet.shadow(h).exists() for h in fleet.hosts)
