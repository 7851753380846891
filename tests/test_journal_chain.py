"""Invariant 11: the journal is hash-chained; `history --verify` names the first line touched,
and a verb refuses (exit 5) a rollout whose chain is broken unless --force."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import LocalFleet


def _lines(fleet: LocalFleet) -> list[str]:
    return (fleet.rollout_dir() / "events.jsonl").read_text().splitlines()


def _write(fleet: LocalFleet, lines: list[str], end: str = "\n") -> None:
    (fleet.rollout_dir() / "events.jsonl").write_text("\n".join(lines) + end)


def _started(fleet: LocalFleet) -> list[str]:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    lines = _lines(fleet)
    assert len(lines) >= 4
    return lines


def test_invariant_11_each_line_carries_the_hash_of_the_previous_and_state_the_last(
    fleet: LocalFleet,
) -> None:
    lines = _started(fleet)
    prev = None
    for n, line in enumerate(lines, start=1):
        record = json.loads(line)
        assert record["seq"] == n
        assert record["prev"] == prev
        prev = hashlib.sha256(line.encode()).hexdigest()
    state = json.loads((fleet.rollout_dir() / "state.json").read_text())
    assert state["journal"] == {"seq": len(lines), "sha256": prev}
    result = fleet.cli("history", "--verify")
    assert result.exit_code == 0, result.output
    assert f"ok: {len(lines)} line(s), hash chain whole" in result.stdout


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_invariant_11_verify_names_an_edited_line(fleet: LocalFleet, where: str) -> None:
    lines = _started(fleet)
    n = {"first": 1, "middle": 3, "last": len(lines)}[where]
    record = json.loads(lines[n - 1])
    record["reason"] = "nothing to see here"
    lines[n - 1] = json.dumps(record)
    _write(fleet, lines)
    result = fleet.cli("history", "--verify", "--json")
    assert result.exit_code == 2, result.output
    found = json.loads(result.stdout)["journal"]
    assert (found["line"], found["problem"]) == (n, "edited")
    assert f"events.jsonl line {n} was edited" in result.stdout


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_invariant_11_verify_names_a_removed_line(fleet: LocalFleet, where: str) -> None:
    lines = _started(fleet)
    n = {"first": 1, "middle": 3, "last": len(lines)}[where]
    del lines[n - 1]
    _write(fleet, lines)
    result = fleet.cli("history", "--verify")
    assert result.exit_code == 2, result.output
    assert f"events.jsonl line {n} was removed" in result.stderr + result.stdout


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_invariant_11_verify_names_an_inserted_line(fleet: LocalFleet, where: str) -> None:
    lines = _started(fleet)
    n = {"first": 1, "middle": 3, "last": len(lines) + 1}[where]
    forged = {**json.loads(lines[1]), "event": "gate", "decision": "pass", "why": "forged"}
    if where == "last":
        # A forger who chains the line to the last one still leaves state.json's head behind:
        # it is accepted as a line written just before a crash, so forge a line that does not chain.
        forged["prev"] = "0" * 64
    lines.insert(n - 1, json.dumps(forged))
    _write(fleet, lines)
    result = fleet.cli("history", "--verify", "--json")
    assert result.exit_code == 2, result.output
    found = json.loads(result.stdout)["journal"]
    assert (found["line"], found["problem"]) == (n, "inserted")


def test_invariant_11_verbs_refuse_a_broken_chain_unless_forced(fleet: LocalFleet) -> None:
    lines = _started(fleet)
    del lines[2]
    _write(fleet, lines)
    before = fleet.bytes_on()
    for verb in (["advance"], ["abort"], ["run", "--auto"]):
        result = fleet.cli(*verb)
        assert result.exit_code == 5, (verb, result.output)
        assert "fails verification: events.jsonl line 3 was removed" in result.stderr
        assert "--force" in result.stderr
    assert fleet.bytes_on() == before
    result = fleet.cli("abort", "--force", "--reason", "journal was edited; abort anyway")
    assert result.exit_code == 0, result.output
    assert fleet.status()["state"] == "aborted"
    forced = [json.loads(line) for line in _lines(fleet) if '"journal-forced"' in line]
    assert len(forced) == 1
    assert forced[0]["verb"] == "abort" and forced[0]["verification"]["line"] == 3
    # The break stays on record: forcing does not launder the history.
    assert fleet.cli("history", "--verify").exit_code == 2


def test_invariant_11_a_torn_last_line_is_not_tampering(fleet: LocalFleet) -> None:
    lines = _started(fleet)
    journal = fleet.rollout_dir() / "events.jsonl"
    with journal.open("a") as f:
        f.write('{"time": "2026-12-01T00:00:00.000+00:00", "event": "gat')  # a crash mid-write
    result = fleet.cli("history", "--verify")
    assert result.exit_code == 0, result.output
    assert "torn last line" in result.stdout
    assert fleet.cli("abort").exit_code == 0  # not refused; the torn bytes are cut, not swallowed
    after = _lines(fleet)
    assert after[: len(lines)] == lines
    assert all(json.loads(line) for line in after)
    assert json.loads(after[len(lines)])["torn_line_cut"] > 0
    assert fleet.cli("history", "--verify").exit_code == 0


def test_invariant_11_a_crash_between_the_event_and_state_json_is_not_tampering(fleet: LocalFleet) -> None:
    _started(fleet)
    state_file = fleet.rollout_dir() / "state.json"
    state = json.loads(state_file.read_text())
    lines = _lines(fleet)
    # state.json as it was one event earlier: the last line was written, the state save was not.
    state["journal"] = {"seq": len(lines) - 1, "sha256": hashlib.sha256(lines[-2].encode()).hexdigest()}
    state_file.write_text(json.dumps(state))
    result = fleet.cli("history", "--verify")
    assert result.exit_code == 0, result.output
    assert "1 appended after the head in state.json" in result.stdout


def test_invariant_11_a_journal_from_before_the_chain_is_legacy_not_refused(fleet: LocalFleet) -> None:
    _started(fleet)
    legacy = []
    for line in _lines(fleet):
        record = json.loads(line)
        record.pop("seq"), record.pop("prev")
        legacy.append(json.dumps(record))
    _write(fleet, legacy)
    state_file = fleet.rollout_dir() / "state.json"
    state = json.loads(state_file.read_text())
    del state["journal"]
    state_file.write_text(json.dumps(state))
    result = fleet.cli("history", "--verify")
    assert result.exit_code == 0, result.output
    assert "legacy journal" in result.stdout
    assert fleet.cli("abort").exit_code == 0
    assert all("prev" not in json.loads(line) for line in _lines(fleet))  # it stays unchained


def test_history_verify_help_and_missing_rollouts(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rollout.cli import cli

    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "none"), "history", "--verify"])
    assert result.exit_code == 5
