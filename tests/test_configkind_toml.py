"""The `toml` kind: Codex CLI's config.toml parsed with tomllib, located errors, diffs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout import configkinds
from rollout.configkinds.base import ConfigParseError
from tests.conftest import LocalFleet, make_fleet

BASELINE = b"""\
model = "gpt-5-codex"
model_provider = "openai"
approval_policy = "on-request"

[model_providers.azure]
name = "Azure"
base_url = "https://example.openai.azure.com/openai"
env_key = "AZURE_OPENAI_API_KEY"
"""
CANDIDATE = (
    BASELINE.replace(b'model = "gpt-5-codex"', b'model = "gpt-5.2"')
    + b"""
[profiles.fast]
model = "gpt-5-mini"
model_reasoning_effort = "low"

[model_providers.azure.http_headers]
Authorization = "Bearer tok-SECRET-9"
"""
)


def toml_fleet(tmp_path: Path) -> LocalFleet:
    fleet = make_fleet(tmp_path, n=4, checks=[{"name": "exists", "run": 'test -s "$ROLLOUT_CONFIG_PATH"'}])
    for h in fleet.hosts:
        (fleet.root / "fleet" / h / "config.toml").write_bytes(BASELINE)
    (fleet.root / "config.toml").write_bytes(CANDIDATE)
    fleet.rewrite(config={"source": "config.toml", "path": "fleet/{host}/config.toml"})
    return fleet


def test_toml_is_inferred_from_the_file_name() -> None:
    assert configkinds.infer("config.toml") == "toml"
    assert configkinds.infer("/home/dev/.codex/CONFIG.TOML") == "toml"
    assert "toml" in configkinds.names()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (b'model = "gpt-5"\nmodel_provider = \n', 2, "invalid TOML: Invalid value (column 18)"),
        (b'model = "a"\n\n[profiles.fast]\nmodel = "b\n', 4, "invalid TOML: Illegal character"),
        (b'model = "a"\nmodel = "b"\n', 2, "invalid TOML: Cannot overwrite a value"),
        (b"[x]\na = [1,\n", 2, "invalid TOML: "),
    ],
)
def test_a_broken_toml_file_names_its_line(text: bytes, line: int, message: str) -> None:
    with pytest.raises(ConfigParseError) as e:
        configkinds.get("toml").parse(text)
    assert e.value.line == line
    assert str(e.value).startswith(message)


def test_toml_parses_to_tables() -> None:
    doc = configkinds.get("toml").parse(CANDIDATE)
    assert doc["model"] == "gpt-5.2"
    assert doc["profiles"]["fast"] == {"model": "gpt-5-mini", "model_reasoning_effort": "low"}


def test_validate_a_toml_candidate(tmp_path: Path) -> None:
    fleet = toml_fleet(tmp_path)
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 0, result.output
    assert "candidate toml" in result.stdout


def test_a_broken_toml_candidate_is_exit_2_with_its_line_and_touches_nothing(tmp_path: Path) -> None:
    fleet = toml_fleet(tmp_path)
    (fleet.root / "config.toml").write_bytes(b'model = "gpt-5.2"\n\n[profiles.fast\nmodel = "x"\n')
    for verb in ("validate", "plan", "start"):
        result = fleet.cli(verb, str(fleet.playbook))
        assert result.exit_code == 2, (verb, result.output)
        assert "config.toml:3: invalid TOML: " in result.stderr
        assert "Traceback" not in result.output
    assert all((fleet.root / "fleet" / h / "config.toml").read_bytes() == BASELINE for h in fleet.hosts)
    assert not fleet.state.exists() or not any(p.is_dir() for p in fleet.state.iterdir())


def test_toml_plan_and_diff_show_the_changed_keys(tmp_path: Path) -> None:
    fleet = toml_fleet(tmp_path)
    plan = fleet.cli("plan", str(fleet.playbook))
    assert plan.exit_code == 0, plan.output
    changed = 'Value of root[\'model\'] changed from "gpt-5-codex" to "gpt-5.2".'
    assert changed in plan.stdout
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    diff = fleet.cli("diff")
    assert diff.exit_code == 0, diff.output
    assert "dev-01..dev-04: same change" in diff.stdout
    assert changed in diff.stdout
    assert "Item root['profiles'] ({'fast': {'model': 'gpt-5-mini'," in diff.stdout
    assert "SECRET" not in plan.stdout + diff.stdout
    for _ in fleet.hosts[:4]:
        fleet.cli("advance")
    assert fleet.status()["state"] == "complete"
    assert all((fleet.root / "fleet" / h / "config.toml").read_bytes() == CANDIDATE for h in fleet.hosts)
