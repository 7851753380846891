"""The layer that wins: plan and start report hosts where a higher OpenCode layer sets the changed keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from rollout.configkinds.opencode_layers import LayerDoc, changed_paths, findings, layer_of, order
from tests.conftest import LocalFleet, make_fleet
from tests.sshd import Sshd, _no_real_home, sshd, sshd_keys

__all__ = ["_no_real_home", "sshd", "sshd_keys"]

TARGET = "fleet/{host}/home/.config/opencode/opencode.json"


def _layered(tmp_path: Path) -> LocalFleet:
    """Four hosts whose global file is the target; dev-03 has a managed file setting agent.build.model,
    dev-02 an env file whose OPENCODE_CONFIG_CONTENT sets `model`, dev-01 a managed file on other keys."""
    fleet = make_fleet(tmp_path, n=4)
    doc = yaml.safe_load(fleet.playbook.read_text())
    doc["config"]["path"] = TARGET
    doc["config"]["layers"] = [
        "fleet/{host}/etc/opencode/opencode.json",
        {"env_file": "fleet/{host}/etc/environment"},
    ]
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    for host in fleet.hosts:
        target = fleet.root / TARGET.replace("{host}", host)
        target.parent.mkdir(parents=True)
        target.write_bytes(fleet.baseline)
    etc = fleet.root / "fleet"
    (etc / "dev-03/etc/opencode").mkdir(parents=True)
    (etc / "dev-03/etc/opencode/opencode.json").write_text(
        '{\n  // set by IT\n  "agent": {"build": {"model": "anthropic/claude-opus-4-1"}}\n}\n'
    )
    (etc / "dev-01/etc/opencode").mkdir(parents=True)
    (etc / "dev-01/etc/opencode/opencode.json").write_text('{"share": "disabled"}\n')
    (etc / "dev-02/etc").mkdir(parents=True)
    content = json.dumps(
        {"model": "openai/gpt-5", "provider": {"x": {"options": {"apiKey": "sk-env-SECRET-77"}}}}
    )
    (etc / "dev-02/etc/environment").write_text(
        f"PATH=/usr/bin\nexport OPENCODE_CONFIG_CONTENT='{content}'\n"
    )
    return fleet


def test_plan_reports_each_host_whose_higher_layer_overrides_the_change(tmp_path: Path) -> None:
    fleet = _layered(tmp_path)
    result = fleet.cli("plan", str(fleet.playbook), "--json")
    assert result.exit_code == 0, result.output
    overridden = json.loads(result.stdout)["overridden"]
    assert overridden == [
        "dev-02: model is set by OPENCODE_CONFIG_CONTENT in fleet/dev-02/etc/environment, which overrides this file",
        "dev-03: agent.build.model is set by fleet/dev-03/etc/opencode/opencode.json, which overrides this file",
    ]
    text = fleet.cli("plan", str(fleet.playbook))
    assert (
        "warning: dev-03: agent.build.model is set by fleet/dev-03/etc/opencode/opencode.json" in text.output
    )
    assert "SECRET" not in text.output


def test_start_refuses_when_a_change_cannot_take_effect_and_touches_nothing(tmp_path: Path) -> None:
    fleet = _layered(tmp_path)
    before = {h: (fleet.root / TARGET.replace("{host}", h)).read_bytes() for h in fleet.hosts}
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cmd = [sys.executable, "-m", "rollout", "--state-dir", str(fleet.state), "start", str(fleet.playbook)]
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "would not take effect on 2 host(s): dev-02, dev-03" in refused.stderr
    assert "dev-03: agent.build.model is set by fleet/dev-03/etc/opencode/opencode.json" in refused.stderr
    assert not fleet.state.exists() or not [p for p in fleet.state.iterdir() if p.is_dir()]
    after = {h: (fleet.root / TARGET.replace("{host}", h)).read_bytes() for h in fleet.hosts}
    assert after == before
    assert not list((fleet.root / "fleet").rglob("*.rollout-shadow"))
    allowed = subprocess.run(
        [*cmd, "--allow-overridden"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "warning: dev-02: model is set by OPENCODE_CONFIG_CONTENT" in allowed.stdout


def test_run_auto_refuses_too_unless_allowed(tmp_path: Path) -> None:
    fleet = _layered(tmp_path)
    result = fleet.cli("run", str(fleet.playbook), "--auto")
    assert result.exit_code == 2
    assert "would not take effect on 2 host(s): dev-02, dev-03" in result.output
    result = fleet.cli("run", str(fleet.playbook), "--auto", "--allow-overridden", "--json")
    assert result.exit_code == 0, result.output
    assert fleet.status()["state"] == "complete"


def test_a_fleet_with_no_higher_layer_setting_the_keys_starts(tmp_path: Path) -> None:
    fleet = _layered(tmp_path)
    (fleet.root / "fleet/dev-03/etc/opencode/opencode.json").write_text(
        '{"agent": {"plan": {"model": "a/b"}}}'
    )
    (fleet.root / "fleet/dev-02/etc/environment").write_text("OPENCODE_CONFIG=fleet/dev-02/custom.json\n")
    (fleet.root / "fleet/dev-02/custom.json").write_text(
        '{"model": "openai/gpt-5"}'
    )  # OPENCODE_CONFIG is above the global file
    result = fleet.cli("start", str(fleet.playbook), "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["message"].startswith(
        "cannot start: the change would not take effect on 1"
    )
    (fleet.root / "fleet/dev-02/custom.json").write_text('{"theme": "x"}')
    result = fleet.cli("start", str(fleet.playbook), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["overridden"] == []


def test_precedence_follows_opencode_merge_order() -> None:
    assert layer_of("/etc/opencode/opencode.json") == "managed"
    assert layer_of("~/.config/opencode/opencode.jsonc") == "global"
    assert layer_of("/srv/app/.opencode/opencode.json") == "dot-opencode"
    assert layer_of("/srv/app/opencode.json") == "project"
    changes = changed_paths(
        {"agent": {"build": {"model": "a/b", "temperature": 0.1}}, "plugin": ["x"]},
        {"agent": {"build": {"model": "c/d", "temperature": 0.1}}, "plugin": ["x", "y"]},
    )
    assert changes == [("agent", "build", "model"), ("plugin",)]
    project = LayerDoc(
        "/srv/app/opencode.json",
        order("/srv/app/opencode.json", "project"),
        b'{"agent": {"build": {"model": "e/f"}}, "plugin": ["z"]}',
    )
    managed = LayerDoc(
        "/etc/opencode/opencode.json", order("/etc/opencode/opencode.json", "managed"), b'{"agent": "oops"}'
    )
    # A project file overrides the global one (plugin lists are joined, not overridden) ...
    assert findings("h", "~/.config/opencode/opencode.json", changes, [project]) == [
        "h: agent.build.model is set by /srv/app/opencode.json, which overrides this file"
    ]
    # ... but not the managed folder, which itself replaces a whole object set to a non-object.
    assert findings("h", "/etc/opencode/opencode.json", changes, [project]) == []
    assert findings("h", "/srv/app/opencode.json", changes, [managed]) == [
        "h: agent.build.model is set by /etc/opencode/opencode.json, which overrides this file"
    ]


def test_layer_report_over_the_real_sshd(tmp_path: Path, sshd: Sshd) -> None:
    from tests.test_ssh_rollout import make_fleet as make_ssh_fleet

    fleet = make_ssh_fleet(tmp_path, [sshd], ["shadow", 100], name="layers-ssh")
    doc = yaml.safe_load(fleet.playbook.read_text())
    doc["config"]["kind"] = "opencode"
    doc["config"]["layers"] = [str(tmp_path / "fleet dir" / "{host}" / "etc" / "opencode" / "opencode.json")]
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    host = fleet.hosts[2]
    managed = tmp_path / "fleet dir" / host / "etc" / "opencode" / "opencode.json"
    managed.parent.mkdir(parents=True)
    managed.write_text('{"model": "anthropic/claude-opus-4-5"}\n')
    result = fleet.cli("plan", str(fleet.playbook), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["overridden"] == [
        f"{host}: model is set by {managed}, which overrides this file"
    ]
    before = fleet.bytes_on()
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 2
    assert f"would not take effect on 1 host(s): {host}" in result.output
    assert fleet.bytes_on() == before and fleet.leftovers() == []


def test_plan_of_a_patch_over_the_real_sshd_reads_each_hosts_own_file(tmp_path: Path, sshd: Sshd) -> None:
    from tests.test_ssh_rollout import make_fleet as make_ssh_fleet

    fleet = make_ssh_fleet(tmp_path, [sshd], ["shadow", 100], name="patch-ssh")
    doc = yaml.safe_load(fleet.playbook.read_text())
    doc["config"] = {
        "patch": "changes.yml",
        "patch_format": "merge",
        "path": doc["config"]["path"],
        "kind": "opencode",
        "layers": [],
    }
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "changes.yml").write_text("model: openai/gpt-5.2\n")
    personal = b'{\n  // mine\n  "theme": "gruvbox",\n  "model": "anthropic/claude-sonnet-4-5"\n}\n'
    fleet.file(fleet.hosts[0]).write_bytes(personal)
    before = fleet.bytes_on()
    result = fleet.cli("plan", str(fleet.playbook), "--json")
    assert result.exit_code == 0, result.output
    diffs = json.loads(result.stdout)["diffs"]
    assert sorted(len(d["hosts"]) for d in diffs) == [1, len(fleet.hosts) - 1]
    assert all("openai/gpt-5.2" in d["text"] and "gruvbox" not in d["text"] for d in diffs)
    assert fleet.bytes_on() == before
    from rollout.core.patching import apply_patch

    assert apply_patch(
        personal, b"model: openai/gpt-5.2\n", "merge", "opencode", where="x"
    ) == personal.replace(b"anthropic/claude-sonnet-4-5", b"openai/gpt-5.2")
