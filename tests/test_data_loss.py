"""Defects that lost data on the first day (issue 18), each pinned by a test that failed before."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from rollout.edges.store import backup_names
from rollout.hosts.transports import local
from tests.conftest import LocalFleet, make_fleet


def _fleet_with_hosts(tmp_path: Path, hosts: list[str]) -> LocalFleet:
    fleet = make_fleet(tmp_path, n=len(hosts), stages=["shadow", 100])
    for old in fleet.hosts:
        fleet.file(old).unlink()
    fleet.hosts = hosts
    for i, h in enumerate(hosts):
        fleet.file(h).parent.mkdir(parents=True, exist_ok=True)
        fleet.file(h).write_bytes(b'{"model": "anthropic/claude-sonnet-4-5", "host": %d}\n' % i)
    doc = yaml.safe_load(fleet.playbook.read_text())
    doc["targets"]["hosts"] = hosts
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    return fleet


def test_backups_of_hosts_differing_only_in_punctuation_do_not_collide(tmp_path: Path) -> None:
    fleet = _fleet_with_hosts(tmp_path, ["a;b", "a b", "a?b", "a_b"])
    before = fleet.bytes_on()
    assert len(set(before.values())) == 4
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0  # live on every host
    assert all(fleet.file(h).read_bytes() == fleet.candidate for h in fleet.hosts)
    result = fleet.cli("abort", "--reason", "test")
    assert result.exit_code == 0, result.output
    assert fleet.bytes_on() == before
    names = sorted(p.name for p in (fleet.rollout_dir() / "baseline").iterdir())
    assert len(names) == 4 and "a_b" in names


def test_backup_names_are_unique_case_insensitively_and_never_hidden() -> None:
    names = backup_names(["Dev-01", "dev-01", ".", "..", "a/b", "x" * 300])
    assert len({n.casefold() for n in names.values()}) == 6
    assert names["Dev-01"] == "Dev-01"
    assert not any(n.startswith(".") for n in names.values())
    assert all(len(n) < 120 for n in names.values())


def test_backup_names_of_an_older_state_file_still_resolve(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    state_file = fleet.rollout_dir() / "state.json"
    state = json.loads(state_file.read_text())
    for rec in state["hosts"].values():
        del rec["backup"]  # what a rollout started by an earlier version holds
    state_file.write_text(json.dumps(state))
    assert fleet.cli("abort").exit_code == 0
    assert all(fleet.file(h).read_bytes() == fleet.baseline for h in fleet.hosts)


def _shadow_refused(fleet: LocalFleet, shadow_path: str, expect: str) -> None:
    doc = yaml.safe_load(fleet.playbook.read_text())
    doc["config"]["shadow_path"] = shadow_path
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    before = {p: p.read_bytes() for p in fleet.root.rglob("*") if p.is_file()}
    for verb in ("validate", "start"):
        result = fleet.cli(verb, str(fleet.playbook))
        assert result.exit_code == 2, (verb, result.output)
        assert expect in result.stderr and "Traceback" not in result.output
    assert {p: p.read_bytes() for p in fleet.root.rglob("*") if p.is_file()} == before
    assert not fleet.state.exists() or not any(p.is_dir() for p in fleet.state.iterdir())


def test_invariant_10_shadow_path_is_never_the_live_file(fleet: LocalFleet) -> None:
    _shadow_refused(fleet, "{path}", "is its own live file")


def test_invariant_10_shadow_path_is_never_another_hosts_live_file(fleet: LocalFleet) -> None:
    _shadow_refused(fleet, "fleet/{host}/../dev-01/opencode.json", "is the live file of host dev-01")
    _shadow_refused(fleet, "fleet/{host}/../dev-01/shadow", "is the shadow path of dev-01 and dev-02")


def test_invariant_10_shadow_path_through_a_symlink_to_a_live_file(fleet: LocalFleet) -> None:
    for h in fleet.hosts:
        (fleet.root / "fleet" / h / "link").symlink_to(fleet.file(h))
    _shadow_refused(fleet, "fleet/{host}/link", "is its own live file")


def test_invariant_10_shadow_path_is_never_the_playbook_or_candidate(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=1)
    _shadow_refused(fleet, "playbook.yml", "is the playbook")
    _shadow_refused(fleet, "candidate.json", "is the candidate")


def test_invariant_10_no_host_path_inside_the_state_folder(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=2)
    fleet.state = fleet.root / "fleet"  # the hosts' folders are inside it
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 2, result.output
    assert "inside the state folder" in result.stderr
    assert not (fleet.state / ".lock").exists()


def _race(monkeypatch: pytest.MonkeyPatch, theirs: bytes) -> None:
    """Land another writer's bytes on the target between the hash check and the rename."""
    real = local.write_temp

    def write_then_race(path: Path, data: bytes, mode: int) -> Path:
        tmp = real(path, data, mode)
        other = path.with_name(path.name + ".theirs")
        other.write_bytes(theirs)
        os.replace(other, path)
        return tmp

    monkeypatch.setattr(local, "write_temp", write_then_race)


@pytest.mark.parametrize("with_exchange", [True, False], ids=["renameat2", "plain-rename"])
def test_invariant_4_a_write_landing_mid_swap_is_never_clobbered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_exchange: bool
) -> None:
    target = tmp_path / "opencode.json"
    target.write_bytes(b"baseline\n")
    if not with_exchange:
        monkeypatch.setattr(local, "exchange", lambda a, b: False)
    _race(monkeypatch, b"someone else's edit\n")
    session = local.LocalSession(host="h", cwd=tmp_path)
    result = session.swap(str(target), b"candidate\n", local.sha256_bytes(b"baseline\n"), None)
    assert not result.swapped
    assert result.actual_sha256 == local.sha256_bytes(b"someone else's edit\n")
    assert target.read_bytes() == b"someone else's edit\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opencode.json"]  # no debris


def test_invariant_4_a_file_created_mid_swap_is_never_clobbered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "opencode.json"
    _race(monkeypatch, b"created meanwhile\n")
    session = local.LocalSession(host="h", cwd=tmp_path)
    result = session.swap(str(target), b"candidate\n", None, None)
    assert not result.swapped and target.read_bytes() == b"created meanwhile\n"


def test_invariant_4_a_race_mid_activation_marks_the_host_drifted(
    fleet: LocalFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    _race(monkeypatch, b'{"model": "edited by hand"}\n')
    fleet.cli("advance")
    status = fleet.status()
    for host, rec in status["hosts"].items():
        if fleet.file(host).read_bytes() == b'{"model": "edited by hand"}\n':
            assert rec["state"] == "drifted", host
    assert any(rec["state"] == "drifted" for rec in status["hosts"].values())
    assert not any(rec["state"] == "candidate" for rec in status["hosts"].values())


def test_a_new_file_is_created_owner_only(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, n=1, stages=["shadow", 100])
    fleet.file(fleet.hosts[0]).unlink()
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert stat.S_IMODE(fleet.shadow(fleet.hosts[0]).stat().st_mode) == 0o600
    assert fleet.cli("advance").exit_code == 0
    assert fleet.file(fleet.hosts[0]).read_bytes() == fleet.candidate
    assert stat.S_IMODE(fleet.file(fleet.hosts[0]).stat().st_mode) == 0o600


def test_a_drifted_canary_gets_true_advice_and_a_way_out(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    order = json.loads((fleet.rollout_dir() / "state.json").read_text())["order"]
    edited = order[0]
    fleet.file(edited).write_bytes(b'{"model": "edited by hand"}\n')
    result = fleet.cli("abort")
    assert result.exit_code == 4
    assert f"{edited}: changed by someone else; left as it is" in result.stdout
    assert f"rollout abort --accept-drift {edited}" in result.stdout
    assert "once they are reachable" not in result.stdout
    refused = fleet.cli("abort", "--accept-drift", order[1])
    assert refused.exit_code == 2 and "not drifted" in refused.stderr
    result = fleet.cli("abort", "--accept-drift", edited, "--reason", "dev keeps the edit")
    assert result.exit_code == 0, result.output
    assert f"left as they are by decision (drifted): {edited}" in result.stdout
    assert fleet.status()["state"] == "aborted"
    assert fleet.file(edited).read_bytes() == b'{"model": "edited by hand"}\n'
    assert all(fleet.file(h).read_bytes() == fleet.baseline for h in fleet.hosts if h != edited)
    events = [json.loads(line) for line in (fleet.rollout_dir() / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "drift-accepted" and e["hosts"] == [edited] for e in events)
