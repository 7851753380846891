"""Whole rollouts through the real CLI over SSH to 8 loopback hosts served by a real sshd."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from rollout.cli import cli
from rollout.core.cohorts import cohort_for, host_order
from tests.conftest import dump
from tests.sshd import Sshd, _no_real_home, own_sshd, sshd, sshd_keys

__all__ = ["_no_real_home", "own_sshd", "sshd", "sshd_keys"]

BASELINE = dump({"model": "anthropic/claude-sonnet-4-5", "small_model": "openai/gpt-5-mini"})
CANDIDATE = dump({"model": "openai/gpt-5.2", "small_model": "openai/gpt-5-mini"})
# A host is unhealthy when a `broken` marker sits beside its config file.
CHECK = 'test -s "$ROLLOUT_CONFIG_PATH" && test ! -e "$(dirname "$ROLLOUT_CONFIG_PATH")/broken"'


@dataclass
class SshFleet:
    """Hosts reached over SSH; they share this machine's disk, each under its own folder."""

    root: Path
    hosts: list[str]
    playbook: Path
    state: Path
    name: str

    def file(self, host: str) -> Path:
        return self.root / "fleet dir" / host / "opencode.json"

    def bytes_on(self) -> dict[str, bytes | None]:
        return {h: self.file(h).read_bytes() if self.file(h).exists() else None for h in self.hosts}

    def cohort(self, percent: int) -> list[str]:
        return cohort_for(percent, host_order(self.hosts, self.name))

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--state-dir", str(self.state), *args])

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def leftovers(self) -> list[str]:
        """Return temp or shadow files left in any host folder."""
        return sorted(
            p.name for p in (self.root / "fleet dir").rglob("*") if p.name != "opencode.json" and p.is_file()
        )


def make_fleet(root: Path, servers: list[Sshd], stages: list[Any], name: str = "ssh-e2e") -> SshFleet:
    """Write a playbook for every host of `servers`, baseline files (mode 0640) and known_hosts."""
    hosts = [s.spec(h) for s in servers for h in s.hosts]
    known = root / "known_hosts"
    known.write_text("".join(s.known_hosts(root / f"kh-{s.port}").read_text() for s in servers))
    for host in hosts:
        f = root / "fleet dir" / host / "opencode.json"
        f.parent.mkdir(parents=True)
        f.write_bytes(BASELINE)
        f.chmod(0o640)
    (root / "candidate.json").write_bytes(CANDIDATE)
    book = {
        "name": name,
        "config": {"source": "candidate.json", "path": str(root / "fleet dir" / "{host}" / "opencode.json")},
        "targets": {
            "transport": "ssh",
            "hosts": hosts,
            "ssh": {
                "key_file": str(servers[0].key_file),
                "known_hosts": "known_hosts",
                "connect_timeout": "30s",
            },
        },
        "stages": stages,
        "health": {"checks": [{"name": "healthy", "run": CHECK, "timeout": "30s"}]},
    }
    playbook = root / "playbook.yml"
    playbook.write_text(yaml.safe_dump(book, sort_keys=False))
    return SshFleet(root, hosts, playbook, root / "state", name)


@pytest.fixture
def fleet(tmp_path: Path, sshd: Sshd) -> SshFleet:
    return make_fleet(tmp_path, [sshd], ["shadow", 25, 50, 100])


def test_full_rollout_to_100_percent_over_ssh(fleet: SshFleet) -> None:
    owned = os.geteuid() == 0  # as root, the files belong to someone else: the rollout must keep that
    if owned:
        for host in fleet.hosts:
            os.chown(fleet.file(host), 4242, 4343)
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 0, result.output
    assert "shadow: candidate staged beside the live file on 8 host(s)" in result.stdout
    assert {h: v["state"] for h, v in fleet.status()["hosts"].items()} == dict.fromkeys(fleet.hosts, "shadow")
    assert fleet.bytes_on() == dict.fromkeys(fleet.hosts, BASELINE)
    for live_on in (2, 4, 8):
        result = fleet.cli("advance")
        assert result.exit_code == 0, result.output
        assert f"candidate live on {live_on}/8 host(s)" in result.stdout
    result = fleet.cli("advance", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    status = fleet.status()
    assert (status["state"], status["percent"]) == ("complete", 100)
    assert {h: v["state"] for h, v in status["hosts"].items()} == dict.fromkeys(fleet.hosts, "candidate")
    assert fleet.bytes_on() == dict.fromkeys(fleet.hosts, CANDIDATE)
    assert {stat.S_IMODE(fleet.file(h).stat().st_mode) for h in fleet.hosts} == {0o640}
    if owned:
        assert {(fleet.file(h).stat().st_uid, fleet.file(h).stat().st_gid) for h in fleet.hosts} == {
            (4242, 4343)
        }
    assert fleet.leftovers() == []


def test_check_failing_on_one_host_at_50_rolls_back_every_host(tmp_path: Path, sshd: Sshd) -> None:
    fleet = make_fleet(tmp_path, [sshd], [25, 50, 100])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    sick = fleet.cohort(50)[-1]
    assert sick not in fleet.cohort(25)
    (fleet.file(sick).parent / "broken").touch()
    result = fleet.cli("advance")
    assert result.exit_code == 3, result.output
    assert f"  healthy @ {sick}: fail: exit 1" in result.stdout
    assert "restored 4 host(s) to their baseline bytes; every touched host is back" in result.stdout
    assert fleet.bytes_on() == dict.fromkeys(fleet.hosts, BASELINE)
    assert {stat.S_IMODE(fleet.file(h).stat().st_mode) for h in fleet.hosts} == {0o640}
    status = fleet.status()
    assert status["state"] == "rolled-back", status["state"]
    assert {h: v["state"] for h, v in status["hosts"].items()} == dict.fromkeys(fleet.hosts, "baseline")


def test_drift_between_stages_is_never_clobbered(tmp_path: Path, sshd: Sshd) -> None:
    fleet = make_fleet(tmp_path, [sshd], [25, 50, 100])
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    edited = fleet.cohort(50)[-1]
    human = b'{"model": "edited/by-hand"}\n'
    fleet.file(edited).write_bytes(human)
    result = fleet.cli("advance")
    assert result.exit_code == 5, result.output  # live on part of its cohort only (issue 18), was 0
    assert f"warning: {edited} not switched: drifted" in result.stdout
    assert "candidate live on 3/8 host(s)" in result.stdout
    assert fleet.status()["hosts"][edited]["state"] == "drifted"
    assert fleet.file(edited).read_bytes() == human
    result = fleet.cli("abort", "--reason", "drift seen")
    assert result.exit_code == 0, result.output
    expected = dict.fromkeys(fleet.hosts, BASELINE) | {edited: human}
    assert fleet.bytes_on() == expected


def test_host_down_during_rollback_is_named_then_abort_restores_it(
    tmp_path: Path, sshd: Sshd, own_sshd: Sshd
) -> None:
    sshd_seven = dataclasses.replace(sshd, hosts=sshd.hosts[:7])  # the same server: its proc, no size limit
    fleet = make_fleet(tmp_path, [sshd_seven, own_sshd], [50, 100])
    assert len(fleet.hosts) == 8
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    assert fleet.cli("advance").exit_code == 0
    assert fleet.bytes_on() == dict.fromkeys(fleet.hosts, CANDIDATE)
    down = own_sshd.spec(own_sshd.hosts[0])
    own_sshd.stop()
    result = fleet.cli("abort", "--reason", "bad latency")
    assert result.exit_code == 4, result.output
    assert f"NOT restored: {down} (unreachable: ssh root@127.0.0.2:{own_sshd.port}: connection refused" in (
        result.stdout
    )
    assert f"  restore: {down}: ssh root@127.0.0.2:{own_sshd.port}: connection refused" in result.stderr
    assert fleet.bytes_on() == dict.fromkeys(fleet.hosts, BASELINE) | {down: CANDIDATE}
    assert fleet.status()["hosts"][down]["state"] == "unknown"

    own_sshd.start()
    result = fleet.cli("abort")
    assert result.exit_code == 0, result.output
    assert fleet.bytes_on() == dict.fromkeys(fleet.hosts, BASELINE)
    assert fleet.status()["hosts"][down]["state"] == "baseline"


def test_unknown_host_key_refuses_start_and_writes_nothing(fleet: SshFleet) -> None:
    lines = (fleet.root / "known_hosts").read_text().splitlines(keepends=True)
    (fleet.root / "known_hosts").write_text("".join(lines[1:]))
    stranger = fleet.hosts[0]
    result = fleet.cli("start", str(fleet.playbook), "--json")
    assert result.exit_code == 5, result.output
    assert result.stderr.startswith(
        f"error: cannot start: could not read the current file on every host ({stranger}: "
    )
    assert "host key not found in" in result.stderr
    assert "  snapshot:" not in result.stderr  # --json keeps progress quiet
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 5
    assert f"  snapshot: {stranger}: ssh root@{stranger}: host key not found in" in result.stderr
    assert fleet.bytes_on() == dict.fromkeys(fleet.hosts, BASELINE)
    assert fleet.leftovers() == []


def test_run_auto_in_a_real_process_over_ssh(tmp_path: Path, sshd: Sshd) -> None:
    fleet = make_fleet(tmp_path, [sshd], [50, 100])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rollout",
            "--state-dir",
            str(fleet.state),
            "run",
            str(fleet.playbook),
            "--auto",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "candidate live on 4/8 host(s)" in proc.stdout
    assert proc.stderr == ""  # not a terminal: only failed hosts would be listed
    assert fleet.status()["state"] == "complete"
    assert fleet.bytes_on() == dict.fromkeys(fleet.hosts, CANDIDATE)
