"""The published playbook schema: valid, printed by `rollout schema playbook`, and true of the shipped playbooks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from rollout.cli import cli
from tests.conftest import make_fleet

PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"


def test_the_verb_prints_a_valid_draft_2020_12_schema() -> None:
    result = CliRunner().invoke(cli, ["schema", "playbook"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    assert "health" in schema["properties"]


def test_every_shipped_playbook_validates_against_it() -> None:
    schema = json.loads(CliRunner().invoke(cli, ["schema", "playbook"]).stdout)
    shipped = sorted(p for p in PLAYBOOKS.glob("*.yml") if "bad" not in p.name)
    assert shipped
    for path in shipped:
        errors = list(Draft202012Validator(schema).iter_errors(yaml.safe_load(path.read_text())))
        assert errors == [], (path, [e.message for e in errors])


def test_a_misspelt_key_is_named_with_its_line_and_the_closest_key(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path)
    text = fleet.playbook.read_text().replace("health:", "helth:")
    fleet.playbook.write_text(text)
    line = text.splitlines().index("helth:") + 1
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 2
    assert f"{fleet.playbook}:{line}: helth: unknown key 'helth' (did you mean 'health'?)" in result.output
    assert not fleet.state.exists()


def test_every_error_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, stages=["shadow", 50, 25, 100])
    doc = yaml.safe_load(fleet.playbook.read_text())
    doc["helth"] = {}
    doc["health"]["checks"][0]["timeout"] = "soon"
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = fleet.cli("validate", str(fleet.playbook), "--json")
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["error"]["problems"]
    assert len(problems) == 3, problems
    lines = [int(re.match(rf"{re.escape(str(fleet.playbook))}:(\d+): ", p).group(1)) for p in problems]  # type: ignore[union-attr]
    assert lines == sorted(lines)
    joined = "\n".join(problems)
    assert (
        "percents must increase" in joined and "timeout: must be a duration" in joined and "helth" in joined
    )
