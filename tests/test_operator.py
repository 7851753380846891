"""Who and why: every event records the operator; every reason given is kept."""

from __future__ import annotations

import getpass
import json
import socket

from click.testing import CliRunner

from rollout.cli import cli
from tests.conftest import LocalFleet, make_fleet


def _events(fleet: LocalFleet) -> list[dict[str, object]]:
    lines = (fleet.rollout_dir() / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_every_event_records_the_operator_by_default_login_at_host(fleet: LocalFleet, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("ROLLOUT_OPERATOR", raising=False)
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    events = _events(fleet)
    assert events and {e["operator"] for e in events} == {f"{getpass.getuser()}@{socket.gethostname()}"}


def test_operator_from_env_group_option_and_verb_option(fleet: LocalFleet, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ROLLOUT_OPERATOR", "ci-bot")
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert {e["operator"] for e in _events(fleet)} == {"ci-bot"}
    n = len(_events(fleet))
    state = ["--state-dir", str(fleet.state)]
    result = CliRunner().invoke(cli, ["--operator", "alice", *state, "advance"])
    assert result.exit_code == 0, result.output
    assert {e["operator"] for e in _events(fleet)[n:]} == {"alice"}
    n = len(_events(fleet))
    # The verb's own --operator wins over the group's; the group's does not leak to the next call.
    result = CliRunner().invoke(cli, ["--operator", "alice", *state, "abort", "--operator", "bob"])
    assert result.exit_code == 0, result.output
    assert {e["operator"] for e in _events(fleet)[n:]} == {"bob"}
    assert fleet.status()["history"][-1]["operator"] == "bob"
    assert fleet.status()["reasons"][-1]["operator"] == "bob"


def test_a_later_abort_keeps_the_earlier_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fleet = make_fleet(tmp_path, n=2, stages=["shadow", 100])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    fleet.file("dev-01").write_text('{"model": "someone/else"}\n')  # drifted: cannot be restored
    first = fleet.cli("abort", "--reason", "latency up 40% on the canary")
    assert first.exit_code == 4, first.output
    second = fleet.cli("abort", "--accept-drift", "dev-01", "--reason", "dev-01 was hand-edited; keep it")
    assert second.exit_code == 0, second.output
    status = fleet.status()
    assert status["state"] == "aborted"
    assert [(r["event"], r["reason"]) for r in status["reasons"]] == [
        ("rollback-failed", "latency up 40% on the canary"),
        ("aborted", "dev-01 was hand-edited; keep it"),
    ]
    history = fleet.cli("history")
    assert "latency up 40% on the canary" in history.stdout
