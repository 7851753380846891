"""A bundle of two files over SSH to loopback hosts of a real sshd: both files move per host,
activation runs on each host over its connection, and one whose activation fails is put back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from rollout.cli import cli
from rollout.core.cohorts import cohort_for, host_order
from tests.conftest import dump
from tests.sshd import Sshd, _no_real_home, own_sshd, sshd, sshd_keys

__all__ = ["_no_real_home", "own_sshd", "sshd", "sshd_keys"]

NAME = "ssh-bundle"


def _files(root: Path, host: str) -> tuple[Path, Path]:
    folder = root / "fleet" / host
    return folder / "config.yaml", folder / "router.json"


def _setup(root: Path, server: Sshd, n: int) -> tuple[Path, list[str]]:
    hosts = [server.spec(h) for h in server.hosts[:n]]
    known = server.known_hosts(root / "known_hosts")
    for host in hosts:
        a, b = _files(root, host)
        a.parent.mkdir(parents=True)
        a.write_text(
            f"model_list:\n- model_name: own-{host}\n  litellm_params: {{model: openai/gpt-5-mini}}\n"
        )
        b.write_bytes(dump({"owner": host, "weight": 1}))
    (root / "config.yaml").write_text(
        "model_list:\n- model_name: canary\n  litellm_params: {model: openai/gpt-5.2}\n"
    )
    (root / "router.json").write_bytes(dump({"weight": 5}))
    log = root / "activations.log"
    activate = (
        f'echo "$ROLLOUT_HOST $ROLLOUT_ACTION $ROLLOUT_ROLLOUT_ID" >> {log}; '
        f'test ! -e "{root}/fleet/$ROLLOUT_HOST/refuse"'
    )
    book: dict[str, Any] = {
        "name": NAME,
        "config": {
            "files": [
                {
                    "source": "config.yaml",
                    "path": str(root / "fleet" / "{host}" / "config.yaml"),
                    "kind": "yaml",
                },
                {"source": "router.json", "path": str(root / "fleet" / "{host}" / "router.json")},
            ],
            "activate": activate,
            "activate_timeout": "30s",
            "ready": {"run": f'test -s "{root}/fleet/$ROLLOUT_HOST/router.json"', "deadline": "30s"},
        },
        "targets": {
            "transport": "ssh",
            "hosts": hosts,
            "ssh": {"key_file": str(server.key_file), "known_hosts": str(known), "connect_timeout": "30s"},
        },
        "stages": [50, 100],
        "health": {
            "checks": [{"name": "present", "run": 'test -s "$ROLLOUT_CONFIG_PATH"', "timeout": "30s"}]
        },
    }
    playbook = root / "playbook.yml"
    playbook.write_text(yaml.safe_dump(book, sort_keys=False))
    return playbook, hosts


def _cli(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--state-dir", str(root / "state"), *args])


def test_a_bundle_over_ssh_activates_on_each_host_and_puts_back_one_that_fails(
    tmp_path: Path, sshd: Sshd
) -> None:
    playbook, hosts = _setup(tmp_path, sshd, 4)
    before = {h: (_files(tmp_path, h)[0].read_bytes(), _files(tmp_path, h)[1].read_bytes()) for h in hosts}
    result = _cli(tmp_path, "start", str(playbook))
    assert result.exit_code == 0, result.output
    first = cohort_for(50, host_order(hosts, NAME))
    rid = json.loads(_cli(tmp_path, "status", "--json").stdout)["id"]
    log = (tmp_path / "activations.log").read_text().splitlines()
    assert sorted(log) == sorted(f"{h} switch {rid}" for h in first)
    for h in first:
        assert _files(tmp_path, h)[1].read_bytes() == dump({"weight": 5})
        assert b"canary" in _files(tmp_path, h)[0].read_bytes()
    sick = [h for h in hosts if h not in first][0]
    (tmp_path / "fleet" / sick / "refuse").touch()
    result = _cli(tmp_path, "advance")
    assert result.exit_code == 3, result.output
    assert f"switch @ {sick}: fail: switch failed: activation (switch)" in result.output
    log = (tmp_path / "activations.log").read_text().splitlines()
    assert f"{sick} switch {rid}" in log and f"{sick} restore {rid}" in log
    for h in first:
        assert f"{h} restore {rid}" in log
    after = {h: (_files(tmp_path, h)[0].read_bytes(), _files(tmp_path, h)[1].read_bytes()) for h in hosts}
    assert after == before
    status = json.loads(_cli(tmp_path, "status", "--json").stdout)
    assert status["state"] == "rolled-back"
    assert {h: v["state"] for h, v in status["hosts"].items()} == dict.fromkeys(hosts, "baseline")
    assert set(status["hosts"][sick]["files"]) == {"config.yaml", "router.json"}
