"""state.json: version 3 is written, and a file from before `version` (copied from real runs of
the earlier code: one live at 25%, one aborted after a pause with a drifted host left by
decision) reads the same and is written back with every field it had."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rollout.core.machine import Phase
from rollout.core.state import STATE_VERSION, HostState, RolloutState, decode, encode
from rollout.edges.store import Store
from rollout.util.errors import BadInput
from tests.conftest import LocalFleet

DATA = Path(__file__).parent / "data"
OLD = ["state-v1-live", "state-v1-aborted"]


def _old(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name / "state.json").read_text())
    assert "version" not in data  # written before the field existed
    return data


def _same_fields(old: dict[str, Any], new: dict[str, Any], changed: frozenset[str] = frozenset()) -> None:
    """Every field of `old` reads the same in `new`: equal, or null in `old` and left out of `new`
    (`jq .paused`, `.get("paused")` read null either way); `new` adds only `version`."""
    for key, value in old.items():
        if key in changed:
            continue
        if key == "hosts":
            assert set(new["hosts"]) == set(value)
            for host, rec in value.items():
                _same_fields(rec, new["hosts"][host])
        elif value is None:
            assert new.get(key) is None, key
        else:
            assert new[key] == value, key
    assert set(new) - set(old) <= {"version", *changed}


@pytest.mark.parametrize("name", OLD)
def test_a_state_file_from_before_version_round_trips_every_field(name: str) -> None:
    old = _old(name)
    state = RolloutState.from_json(old)
    new = state.to_json()
    assert new["version"] == STATE_VERSION == 3
    _same_fields(old, new)
    assert json.loads(encode(decode(encode(state)))) == json.loads(encode(state))


def test_the_old_files_decode_into_the_typed_state() -> None:
    live = decode((DATA / "state-v1-live" / "state.json").read_bytes())
    assert (live.phase, live.stage, live.percent, live.stage_index) == (Phase.LIVE, "25%", 25, 1)
    assert {h: r.state for h, r in live.hosts.items()} == {
        "dev-01": HostState.SHADOW,
        "dev-02": HostState.SHADOW,
        "dev-03": HostState.SHADOW,
        "dev-04": HostState.CANDIDATE,
    }
    assert live.hosts["dev-01"].shadow_staged and not live.hosts["dev-04"].shadow_staged
    assert live.hosts["dev-04"].touched and live.journal is not None and live.journal["seq"] == 9
    aborted = decode((DATA / "state-v1-aborted" / "state.json").read_bytes())
    assert aborted.phase == Phase.ABORTED and aborted.reason == "theirs"
    assert [r["event"] for r in aborted.reasons] == ["paused", "rollback-failed", "aborted"]
    drifted = aborted.hosts["dev-02"]
    assert (drifted.state, drifted.drift_accepted, drifted.touched) == (HostState.DRIFTED, True, True)


@pytest.mark.parametrize("name", OLD)
def test_verbs_read_an_old_rollout_folder_and_write_version_3(tmp_path: Path, name: str) -> None:
    from click.testing import CliRunner

    from rollout.cli import cli

    state_dir = tmp_path / "state"
    folder = state_dir / _old(name)["id"]
    shutil.copytree(DATA / name, folder)
    old = _old(name)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--state-dir", str(state_dir), *args])

    result = run("status", "--json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert (status["id"], status["state"], status["stage"], status["percent"]) == (
        old["id"],
        old["state"],
        old["stage"],
        old["percent"],
    )
    assert {h: r["state"] for h, r in status["hosts"].items()} == {
        h: r["state"] for h, r in old["hosts"].items()
    }
    assert [e["event"] for e in status["history"]][0] == "started"
    result = run("history", "--verify")
    assert result.exit_code == 0, result.output  # the chain's head in the old file still matches

    if old["state"] != "live":
        return  # an aborted rollout allows only `retry`, which needs its hosts
    result = run("pause", "--reason", "check")
    assert result.exit_code == 0, result.output
    written = json.loads((folder / "state.json").read_text())
    assert written["version"] == 3
    _same_fields(old, written, changed=frozenset({"updated", "journal", "paused", "reasons"}))
    assert written["paused"]["reason"] == "check"
    assert run("history", "--verify").exit_code == 0


def test_fields_this_version_does_not_know_are_kept() -> None:
    old = _old("state-v1-live")
    old["rollout_from_the_future"] = {"kept": [1, 2]}
    old["hosts"]["dev-01"]["agent_seen"] = "2026-12-01"
    new = RolloutState.from_json(old).to_json()
    assert new["rollout_from_the_future"] == {"kept": [1, 2]}
    assert new["hosts"]["dev-01"]["agent_seen"] == "2026-12-01"


def test_a_state_file_of_a_newer_version_is_refused_not_misread() -> None:
    with pytest.raises(BadInput, match="state.json version 4 is newer"):
        RolloutState.from_json({**_old("state-v1-live"), "version": 4})


def test_a_new_rollout_writes_version_3_as_one_line(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    text = (fleet.rollout_dir() / "state.json").read_text()
    assert text.count("\n") == 1 and json.loads(text)["version"] == 3
    (rollout,) = Store(fleet.state).rollouts()
    assert rollout.state.phase == Phase.SHADOW
    assert all(r.state == HostState.SHADOW and r.shadow_staged for r in rollout.state.hosts.values())


def test_a_version_2_rollout_is_aborted_by_this_version_file_by_file(tmp_path: Path) -> None:
    """A rollout live at 34% written by the code before bundles (version 2, no per-file records):
    status reads it, abort restores every host from its backups, and state.json keeps its fields."""
    from click.testing import CliRunner

    from rollout.cli import cli

    old: dict[str, Any] = json.loads((DATA / "state-v2-live" / "state.json").read_text())
    assert old["version"] == 2 and all("files" not in r for r in old["hosts"].values())
    folder = tmp_path / "state" / old["id"]
    shutil.copytree(DATA / "state-v2-live", folder)
    state = json.loads((folder / "state.json").read_text())
    state["playbook_file"] = str(tmp_path / "playbook.yml")  # where its hosts' relative paths start
    (folder / "state.json").write_text(json.dumps(state))
    candidate = (folder / "candidate" / "candidate.json").read_bytes()
    for host, rec in old["hosts"].items():
        f = tmp_path / "fleet" / host / "opencode.json"
        f.parent.mkdir(parents=True)
        f.write_bytes(candidate if rec["state"] == "candidate" else (folder / "baseline" / host).read_bytes())
        if rec["shadow"]:
            (f.parent / "opencode.json.rollout-shadow").write_bytes(candidate)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "state"), *args])

    status = json.loads(run("status", "--json").stdout)
    assert {h: r["state"] for h, r in status["hosts"].items()} == {
        h: r["state"] for h, r in old["hosts"].items()
    }
    assert all("files" not in r for r in status["hosts"].values())
    result = run("abort", "--reason", "old one")
    assert result.exit_code == 0, result.output
    for host in old["hosts"]:
        f = tmp_path / "fleet" / host / "opencode.json"
        assert f.read_bytes() == (folder / "baseline" / host).read_bytes()
        assert not (f.parent / "opencode.json.rollout-shadow").exists()
    written = json.loads((folder / "state.json").read_text())
    assert written["version"] == STATE_VERSION and written["state"] == "aborted"
    assert all("files" not in r for r in written["hosts"].values())  # a bundle of one writes what 2 did
    assert run("history", "--verify").exit_code == 0
