"""Bad input found by new users and the fuzzer: exit 2 with `file: field: message`, short, nothing touched."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import LocalFleet, make_fleet

PLAYBOOK = """\
name: test-rollout
config:
  source: {source}
  path: {path}
targets:
  transport: local
  hosts: {hosts}
stages: {stages}
health:
  interval: {interval}
  checks:
    - name: has-model
      run: grep -q model "$ROLLOUT_CONFIG_PATH"
"""
DEFAULTS = {
    "source": "candidate.json",
    "path": "fleet/{host}/opencode.json",
    "hosts": "[dev-01, dev-02, dev-03, dev-04]",
    "stages": "[shadow, 25, 50, 100]",
    "interval": "5s",
}
LAUGHS = (
    "description: [&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol], "
    + ", ".join(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 8))
    + "]\n"
)


def write(fleet: LocalFleet, prefix: str = "", **fields: str) -> None:
    fleet.playbook.write_text(prefix + PLAYBOOK.format_map(DEFAULTS | fields))


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalFleet:
    monkeypatch.chdir(tmp_path)  # a crash report would land in ./state, i.e. fleet.state
    fleet = make_fleet(tmp_path, n=4)
    write(fleet)
    return fleet


CASES = [
    (
        "bake-huge",
        {"stages": "[shadow, {percent: 100, bake: " + "9" * 400 + "}]"},
        "stages[1].bake: 999999999999999999...9999999999999999999 is too large a number for any setting",
    ),
    ("bake-inf", {"stages": "[shadow, {percent: 100, bake: .inf}]"}, "stages[1].bake: must be a duration"),
    (
        "bake-1e400-string",
        {"stages": "[shadow, {percent: 100, bake: 1e400s}]"},
        "stages[1].bake: must be a duration",
    ),
    ("interval-huge", {"interval": "9" * 400}, "health.interval: 99999999"),
    (
        "interval-over-a-year",
        {"interval": "10" * 6},
        "health.interval: must be a duration like 30s, 5m or 1h (at most 366d)",
    ),
    (
        "interval-400d",
        {"interval": "400d"},
        "health.interval: must be a duration like 30s, 5m or 1h (at most 366d)",
    ),
    ("interval-inf", {"interval": ".inf"}, "health.interval: must be a duration"),
    (
        "int-5000-digits",
        {"stages": "[shadow, " + "9" * 5000 + "]"},
        ":8: invalid YAML: integer too long (5,000 characters)",
    ),
    ("laughs-in-hosts", {"hosts": "*l7"}, ":1: invalid YAML: aliases expand to more than 100,000 nodes"),
    (
        "laughs-in-bake",
        {"stages": "[shadow, {percent: 100, bake: *l7}]"},
        "aliases expand to more than 100,000 nodes",
    ),
    (
        "host-300",
        {"hosts": "[" + "h" * 300 + ", dev-02]"},
        "targets.hosts[0]: is 300 characters long (the limit is 255)",
    ),
    (
        "host-nul",
        {"hosts": '["dev\\0-01", dev-02]'},
        "targets.hosts[0]: 'dev\\x00-01' contains a NUL character",
    ),
    ("path-folder", {"path": "fleet/{host}"}, "config.path: on host 'dev-01': 'fleet/dev-01' is a folder"),
    (
        "path-slash",
        {"path": "fleet/{host}/opencode.json/"},
        "config.path: 'fleet/{host}/opencode.json/' ends in '/'",
    ),
    (
        "path-nul",
        {"path": '"fleet/{host}/x\\0.json"'},
        "config.path: 'fleet/{host}/x\\x00.json' contains a NUL",
    ),
    ("path-5000", {"path": "fleet/{host}/" + "c" * 5000}, "is 5,013 bytes long (the limit is 4,095)"),
    ("path-under-a-file", {"path": "fleet/{host}/opencode.json/x"}, "opencode.json, which is a file"),
    ("name-10000", {}, "name: must be at most 100 printable characters"),
    ("source-10000", {"source": "s" * 10_000}, "config.source: 'sssss"),
    ("source-folder", {"source": "fleet"}, "config.source: {root}/fleet is a folder, not a candidate file"),
    (
        "host-newline",
        {"hosts": '["dev\\n01", dev-02]'},
        "targets.hosts[0]: 'dev\\n01' holds a control character",
    ),
    ("health-empty-list", {}, "health: must be a mapping, got list"),
    (
        "stage-name-10000",
        {"stages": "[shadow, {name: " + "s" * 10_000 + ", percent: 100}]"},
        "stages[1].name: must be at most 100 printable characters",
    ),
    ("check-name-10000", {}, "health.checks[0].name: must be at most 100 printable characters"),
    ("check-nul", {"interval": '5s\n  x: "a\\0b"'}, "health.x: 'a\\x00b' contains a NUL character"),
    (
        "check-max-huge",
        {"interval": "5s\n  x: " + "9" * 400},
        "health.x: 999999999999999999...9999999999999999999 is too large",
    ),
    ("check-max-nan", {"interval": "5s\n  x: .nan"}, "health.x: must be a number, got NaN"),
    ("any-path-5000", {"interval": "5s\n  x: {path: " + "p" * 5000 + "}"}, "health.x.path: 'ppppp"),
    (
        "stage-name-list",
        {"stages": "[{name: [x], percent: 0}, 100]"},
        "stages[0].name: must be a non-empty string",
    ),
]


@pytest.mark.parametrize(("fields", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_playbook_exits_2_with_a_short_message_at_validate_and_touches_nothing(
    fleet: LocalFleet, request: pytest.FixtureRequest, fields: dict[str, str], message: str
) -> None:
    case = request.node.callspec.id
    write(fleet, LAUGHS if case.startswith("laughs") else "", **fields)
    if case == "name-10000":
        fleet.playbook.write_text(fleet.playbook.read_text().replace("test-rollout", "n" * 10_000))
    if case == "check-name-10000":
        fleet.playbook.write_text(fleet.playbook.read_text().replace("has-model", "c" * 10_000))
    if case == "health-empty-list":
        text = fleet.playbook.read_text()
        fleet.playbook.write_text(text[: text.index("health:")] + "health: []\n")
    before = fleet.bytes_on()
    for verb in ("validate", "start"):
        result = fleet.cli(verb, str(fleet.playbook))
        assert result.exit_code == 2, (verb, result.output[:2000])
        assert result.stderr.startswith(f"error: {fleet.playbook}")
        assert message.replace("{root}", str(fleet.root)) in result.stderr
        assert len(result.output) < 400, result.output[:2000]
        assert "Traceback" not in result.output
    assert fleet.bytes_on() == before
    assert not fleet.state.exists()


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        ("[" * 1000 + "]" * 1000, "candidate.json: nested deeper than 100 levels"),
        ('{"model": ' + "9" * 5000 + "}", "invalid JSON: a number has too many digits (the limit is 4300)"),
    ],
    ids=["nested-1000", "int-5000-digits"],
)
def test_bad_candidate_exits_2_and_touches_nothing(fleet: LocalFleet, candidate: str, message: str) -> None:
    (fleet.root / "candidate.json").write_text(candidate)
    before = fleet.bytes_on()
    for verb in ("validate", "plan", "start"):
        result = fleet.cli(verb, str(fleet.playbook))
        assert result.exit_code == 2, (verb, result.output[:2000])
        assert message in result.stderr
        assert "Traceback" not in result.output
    assert fleet.bytes_on() == before
    assert not fleet.state.exists()


def test_on_local_as_the_readme_writes_it_runs_once_on_the_control_machine(fleet: LocalFleet) -> None:
    text = fleet.playbook.read_text().replace(
        "run: grep", "on: local\n      run: echo $ROLLOUT_STAGE >> calls.log && grep"
    )
    fleet.playbook.write_text(text.replace('"$ROLLOUT_CONFIG_PATH"', "fleet/dev-01/opencode.json"))
    assert "      on: local\n" in fleet.playbook.read_text()  # unquoted, as in the README
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 0, result.output
    result = fleet.cli("run", str(fleet.playbook), "--auto")  # advance re-reads the frozen copy
    assert result.exit_code == 0, result.output
    assert (fleet.root / "calls.log").read_text().split() == ["shadow", "25%", "50%", "100%"]


README_CANDIDATE = {
    "$schema": "https://opencode.ai/config.json",
    "agent": {"CoderAgent": {"description": "codes", "model": "opencode/big-pickel"}},
    "fallbacks": ["openai/gpt-5-mini"],
}


@pytest.mark.parametrize(
    ("name", "doc", "why"),
    [
        (
            "new-opencode.json",
            {k: v for k, v in README_CANDIDATE.items() if k != "$schema"},
            "from 'opencode' in the file name",
        ),
        ("candidate.json", README_CANDIDATE, 'from "$schema"'),
    ],
)
def test_the_readme_example_gets_the_opencode_checks(
    fleet: LocalFleet, name: str, doc: dict, why: str
) -> None:
    (fleet.root / name).write_text(json.dumps(doc, indent=2))
    write(fleet, source=name)
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 2, result.output
    source = fleet.root / name
    assert result.stderr.splitlines()[0] == (
        f"error: {source}: the candidate config (opencode, {why}) is invalid: 2 error(s)"
    )
    assert "agent.CoderAgent.model: agent CoderAgent: unknown model opencode/big-pickel" in result.stderr
    assert "fallbacks: unknown top-level key 'fallbacks'" in result.stderr
    (fleet.root / name).write_text(
        json.dumps({"$schema": doc.get("$schema", "x"), "model": "openai/gpt-5.2"})
    )
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"{source}: kind: opencode ({why})"


def test_a_5mb_candidate_starts_quickly_with_a_line_summary_for_a_diff(fleet: LocalFleet) -> None:
    items = [{"id": i, "name": f"item-{i}", "apiKey": f"sk-big-SECRET-{i}"} for i in range(60_000)]
    (fleet.root / "big.json").write_text(json.dumps({"model": "m", "items": items}, indent=2))
    assert (fleet.root / "big.json").stat().st_size > 5_000_000
    write(fleet, source="big.json")
    began = time.monotonic()
    result = fleet.cli("start", str(fleet.playbook))
    took = time.monotonic() - began
    assert result.exit_code == 0, result.output
    assert took < 20, took  # deepdiff alone took over 30 s
    text = (fleet.rollout_dir() / "diffs" / "1.txt").read_text()
    assert "over the 256 KiB deepdiff limit: a line summary instead of a deepdiff" in text
    assert "SECRET" not in text and "SECRET" not in (fleet.rollout_dir() / "diffs" / "1.json").read_text()
    result = fleet.cli("diff")
    assert result.exit_code == 0 and "line summary instead of a deepdiff" in result.stdout


def test_line_summary_of_a_large_change_is_redacted_and_names_what_changed() -> None:
    from rollout.core import diffing

    old = "".join(f'"apiKey": "sk-old-SECRET-{i}",\n"n": {i},\n' for i in range(10_000)).encode()
    new = old.replace(b'"n": 5,', b'"n": -5,')
    as_json, text = diffing.diff_one(old, new, "json")
    assert as_json["summary"]["lines_added"] == 1 and as_json["summary"]["lines_removed"] == 1
    assert text.splitlines()[-2:] == ['- "n": 5,', '+ "n": -5,']
    assert diffing.diff_one(old, old, "json") == ({}, "no change")
    as_json, text = diffing.diff_one(None, old, "json")
    assert text.startswith("new file (no baseline on the host)\n")
    assert "SECRET" not in text and "SECRET" not in json.dumps(as_json)


def test_a_check_value_of_a_shape_its_kind_does_not_expect_is_exit_2(fleet: LocalFleet) -> None:
    text = fleet.playbook.read_text().replace(
        "  checks:\n",
        "  checks:\n    - name: errors\n      metric: {error_rate: 1}\n"
        "      source: {type: usage-log, path: usage.jsonl}\n",
    )
    fleet.playbook.write_text(text)
    for verb in ("validate", "start"):
        result = fleet.cli(verb, str(fleet.playbook))
        assert result.exit_code == 2, result.output
        # the line of the field now follows the file (`file:line: field: message`)
        assert result.stderr.startswith(f"error: {fleet.playbook}:13: health.checks[0]"), result.stderr
        assert "Traceback" not in result.output
    assert not fleet.state.exists()
