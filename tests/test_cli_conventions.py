"""What a user expects of a CLI: help with exit codes and examples, completion, --json errors,
a closed pipe as a normal end, crash logs where the state folder is, readable durations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rollout.cli import cli
from tests.conftest import LocalFleet, make_fleet

REPO = Path(__file__).resolve().parent.parent


def _one_json_object(result: Result) -> dict[str, Any]:
    """stdout holds exactly one JSON object (json.loads refuses trailing text)."""
    data = json.loads(result.stdout)
    assert isinstance(data, dict), result.stdout
    return data


def test_group_help_lists_every_exit_code_and_completion() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for code, meaning in [
        ("0", "done"),
        ("1", "unexpected error"),
        ("2", "bad input"),
        ("3", "a health gate failed"),
        ("4", "a rollback could not restore some hosts"),
        ("5", "refused"),
    ]:
        assert f"  {code}  {meaning}" in result.stdout
    assert "_ROLLOUT_COMPLETE=bash_source rollout" in result.stdout


@pytest.mark.parametrize("verb", sorted(cli.commands))
def test_every_verb_help_has_an_example(verb: str) -> None:
    result = CliRunner().invoke(cli, [verb, "--help"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    at = lines.index("  Example:")
    assert lines[at + 1].strip().startswith(f"rollout {verb}"), lines[at + 1]


def _complete(words: str, state_env: str | None = None) -> list[str]:
    """Ask the CLI for bash completions of `words` (the protocol the bash_source script speaks)."""
    current = len(words.split()) - (0 if words.endswith(" ") else 1)  # the word being completed
    env = {"_ROLLOUT_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(current)}
    if state_env is not None:
        env["ROLLOUT_STATE_DIR"] = state_env
    result = CliRunner().invoke(cli, [], env=env, prog_name="rollout")
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line.startswith("plain,")]


def test_rollout_ids_complete_from_the_state_folder(fleet: LocalFleet, tmp_path: Path) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("abort").exit_code == 0
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    ids = sorted(p.name for p in fleet.state.iterdir() if (p / "state.json").is_file())
    assert len(ids) == 2
    (fleet.state / "not-a-rollout").mkdir()  # a folder without state.json is not offered
    assert sorted(_complete(f"rollout --state-dir {fleet.state} status ")) == ids
    assert sorted(_complete(f"rollout abort --state-dir {fleet.state} ")) == ids
    assert sorted(_complete("rollout diff ", state_env=str(fleet.state))) == ids
    assert sorted(_complete(f"rollout --state-dir {fleet.state} history test-roll")) == ids
    assert _complete(f"rollout --state-dir {fleet.state} history {ids[1]}") == [ids[1]]
    assert _complete(f"rollout --state-dir {fleet.state} history other-") == []
    assert _complete(f"rollout --state-dir {tmp_path / 'nowhere'} status ") == []


def test_shell_completion_is_documented_in_the_readme() -> None:
    assert "_ROLLOUT_COMPLETE=bash_source rollout" in (REPO / "README.md").read_text()


# --json: one JSON object on stdout, errors and refusals too, with the same exit code.


def test_json_usage_error_is_one_object_with_exit_2(fleet: LocalFleet) -> None:
    for args in (["validate", "--json"], ["status", "--json", "--bogus"], ["nosuch", "--json"]):
        result = fleet.cli(*args)
        assert result.exit_code == 2, (args, result.output)
        error = _one_json_object(result)["error"]
        assert error["exit_code"] == 2
        assert f"Error: {error['message']}" in result.stderr  # stderr says it to a human as ever


def test_json_bad_playbook_is_one_object_with_exit_2_and_its_problems(fleet: LocalFleet) -> None:
    (fleet.root / "candidate.json").write_text('{\n  "model": 1,\n}')
    for verb in ("validate", "plan", "start", "run"):
        args = [verb, str(fleet.playbook), "--json"] + (["--auto"] if verb == "run" else [])
        result = fleet.cli(*args)
        assert result.exit_code == 2, (verb, result.output)
        error = _one_json_object(result)["error"]
        assert error["exit_code"] == 2
        assert "candidate config" in error["message"]
        assert any("candidate.json:3: invalid JSON" in p for p in error["problems"])
    missing = fleet.cli("validate", "nowhere.yml", "--json")
    assert _one_json_object(missing) == {
        "error": {"exit_code": 2, "message": "nowhere.yml: playbook not found"}
    }


def test_json_refusals_are_one_object_with_exit_5(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, stages=["shadow", {"percent": 25, "bake": "2h"}, 100])
    for verb in ("status", "advance", "abort", "undo", "diff", "history", "run"):
        args = [verb, "--json"] + (["--auto"] if verb == "run" else [])
        result = fleet.cli(*args)
        assert result.exit_code == 5, (verb, result.output)
        error = _one_json_object(result)["error"]
        assert error["exit_code"] == 5
        assert "no active rollout" in error["message"] or "no rollouts" in error["message"]
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    result = fleet.cli("advance", "--json")  # the 25% stage bakes for 2h
    assert result.exit_code == 5
    assert _one_json_object(result)["error"] == {
        "exit_code": 5,
        "message": result_message(result),
    }
    assert "is baking, 2h00m left" in result_message(result) or "1h59m left" in result_message(result)
    undo = fleet.cli("undo", "--json")
    assert undo.exit_code == 5
    assert _one_json_object(undo)["error"]["exit_code"] == 5


def result_message(result: Result) -> str:
    message: str = json.loads(result.stdout)["error"]["message"]
    return message


def test_json_report_with_a_failing_exit_code_says_error_too(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[{"name": "always-fails", "run": "false", "stages": ["25"]}])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    result = fleet.cli("advance", "--json")  # the 25% gate fails: rolled back, exit 3
    assert result.exit_code == 3, result.output
    data = _one_json_object(result)
    assert data["decision"] == "fail"
    assert data["error"]["exit_code"] == 3
    assert "rolling back" in data["error"]["message"]


def test_json_unexpected_failure_is_one_object_with_exit_1(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    (fleet.rollout_dir() / "candidate" / "candidate.json").unlink()
    result = fleet.cli("advance", "--json")
    assert result.exit_code == 1
    error = _one_json_object(result)["error"]
    assert error["exit_code"] == 1
    assert error["message"].startswith("unexpected failure; traceback written to ")
    assert Path(error["message"].rsplit(" ", 1)[1]) == (fleet.rollout_dir() / "crash.log").resolve()


def test_demo_takes_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--json", "--playbook", str(tmp_path / "none.yml")])
    assert result.exit_code == 2
    assert "demo playbook not found" in _one_json_object(result)["error"]["message"]


# A closed pipe (`rollout plan ... | head -1`) is a normal end.


def test_closed_pipe_is_a_quiet_normal_end(fleet: LocalFleet, tmp_path: Path) -> None:
    for verb in (["plan", str(fleet.playbook)], ["--help"], ["plan", str(fleet.playbook), "--json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader went away before the first line: every write gets EPIPE
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "rollout", "--state-dir", str(fleet.state), *verb],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
                timeout=120,
            )
        finally:
            os.close(write_end)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", verb
    assert not fleet.state.exists()  # no crash log


def test_reader_that_stops_after_one_line_ends_plan_quietly(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=300)  # a plan longer than a pipe's buffer
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollout", "--state-dir", str(fleet.state), "plan", str(fleet.playbook)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"plan for test-rollout")
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    assert proc.wait(120) == 0, err
    assert err == b""
    assert not fleet.state.exists()


# Crash logs go where the state folder is.


def _crash_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    import rollout.commands.inspect

    def boom(playbook: str, state_dir: object = None) -> None:
        raise RuntimeError("a bug in validate")

    monkeypatch.setattr(rollout.commands.inspect, "validate", boom)


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_validate_crash_log_goes_under_the_given_state_dir(
    fleet: LocalFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    _crash_validate(monkeypatch)
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    args = {
        "before": ["--state-dir", str(elsewhere), "validate", str(fleet.playbook)],
        "after": ["validate", str(fleet.playbook), "--state-dir", str(elsewhere)],
        "env": ["validate", str(fleet.playbook)],
    }[where]
    env = {"ROLLOUT_STATE_DIR": str(elsewhere)} if where == "env" else {}
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 1
    log = elsewhere / "crash.log"
    assert result.stderr == f"error: unexpected failure; traceback written to {log.resolve()}\n"
    assert "RuntimeError: a bug in validate" in log.read_text()
    assert not (tmp_path / "state").exists()


def test_validate_crash_without_a_state_dir_says_where_and_makes_no_state_folder(
    fleet: LocalFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_validate(monkeypatch)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", str(fleet.playbook)])
    assert result.exit_code == 1
    prefix = "error: unexpected failure; traceback written to "
    assert result.stderr.startswith(prefix)
    log = Path(result.stderr.removeprefix(prefix).strip())
    try:
        assert "RuntimeError: a bug in validate" in log.read_text()
    finally:
        log.unlink()
    assert not (tmp_path / "state").exists()
