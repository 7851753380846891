"""apply_patch: a host's candidate is the patch applied to its own file, in its own format."""

from __future__ import annotations

import json

import pytest
import yaml

from rollout.core.patching import apply_patch, load_patch
from rollout.util.errors import BadInput

# Three developers' opencode.jsonc files: personal providers, keys, MCP servers, comments.
DEV01 = b"""{
  "$schema": "https://opencode.ai/config.json",
  // my own proxy
  "provider": {
    "corp": {"options": {"baseURL": "https://llm.corp.example/v1", "apiKey": "sk-live-dev01secret99"}}
  },
  "agent": {
    "build": {
      "model": "anthropic/claude-sonnet-4-5", // what we used in Q3
      "temperature": 0.2
    },
    "plan": { "model": "openai/gpt-5" }
  },
  "mcp": {
    "jira": {"type": "remote", "url": "https://jira.example/mcp"}, // work tracker
    "scratch": {"type": "local", "command": ["npx", "scratch-mcp"]}
  }
}
"""
DEV02 = b"""{
\t"$schema": "https://opencode.ai/config.json",
\t"permission": {"bash": "ask"},
\t"agent": {
\t\t/* reviewer I added */
\t\t"review": {"model": "openai/gpt-5-mini", "description": "reviews diffs", "mode": "subagent"},
\t},
}
"""
DEV03 = b"""{"$schema":"https://opencode.ai/config.json","theme":"tokyonight"}
"""

MERGE = json.dumps(
    {"agent": {"build": {"model": "openai/gpt-5"}, "plan": {"model": "anthropic/claude-opus-4-5"}}}
).encode()


def test_merge_patch_changes_only_the_plans_keys_on_each_host() -> None:
    out1 = apply_patch(DEV01, MERGE, "merge", "opencode", where="dev-01: opencode.jsonc")
    assert out1 == DEV01.replace(b'"anthropic/claude-sonnet-4-5"', b'"openai/gpt-5"').replace(
        b'"plan": { "model": "openai/gpt-5" }', b'"plan": { "model": "anthropic/claude-opus-4-5" }'
    )
    out2 = apply_patch(DEV02, MERGE, "merge", "opencode", where="dev-02: opencode.jsonc")
    assert out2 == (
        b"{\n"
        b'\t"$schema": "https://opencode.ai/config.json",\n'
        b'\t"permission": {"bash": "ask"},\n'
        b'\t"agent": {\n'
        b"\t\t/* reviewer I added */\n"
        b'\t\t"review": {"model": "openai/gpt-5-mini", "description": "reviews diffs", "mode": "subagent"},\n'
        b'\t\t"build": {\n\t\t\t"model": "openai/gpt-5"\n\t\t},\n'
        b'\t\t"plan": {\n\t\t\t"model": "anthropic/claude-opus-4-5"\n\t\t},\n'
        b"\t},\n"
        b"}\n"
    )
    out3 = apply_patch(DEV03, MERGE, "merge", "opencode", where="dev-03: opencode.jsonc")
    assert out3 == (
        b'{"$schema":"https://opencode.ai/config.json","theme":"tokyonight", "agent": '
        b'{"build": {"model": "openai/gpt-5"}, "plan": {"model": "anthropic/claude-opus-4-5"}}}\n'
    )
    for out in (out1, out2, out3):
        assert b"sk-live" not in out or out is out1


def test_merge_patch_null_deletes_a_key_and_its_own_line_comment() -> None:
    patch = b'{"mcp": {"jira": null}, "agent": {"build": {"temperature": null}}}'
    out = apply_patch(DEV01, patch, "merge", "opencode", where="dev-01: opencode.jsonc")
    assert b"jira" not in out and b"work tracker" not in out
    assert b'"model": "anthropic/claude-sonnet-4-5" // what we used in Q3\n    }' in out
    assert b'"scratch": {"type": "local", "command": ["npx", "scratch-mcp"]}\n  }' in out
    assert b"// my own proxy" in out and b"sk-live-dev01secret99" in out  # the host's own key stays


def test_merge_patch_on_a_host_without_the_file_starts_from_an_empty_object() -> None:
    out = apply_patch(
        None, b"agent:\n  build:\n    model: openai/gpt-5\n", "merge", "opencode", where="dev-04: x"
    )
    assert json.loads(out) == {"agent": {"build": {"model": "openai/gpt-5"}}}
    assert out.endswith(b"\n")


def test_json_patch_replace_and_add_keep_everything_else() -> None:
    patch = json.dumps(
        [
            {"op": "test", "path": "/agent/build/model", "value": "anthropic/claude-sonnet-4-5"},
            {"op": "replace", "path": "/agent/build/model", "value": "openai/gpt-5"},
            {"op": "add", "path": "/agent/build/steps", "value": 40},
        ]
    ).encode()
    out = apply_patch(DEV01, patch, "json-patch", "opencode", where="dev-01: opencode.jsonc")
    assert out == DEV01.replace(b'"temperature": 0.2\n', b'"temperature": 0.2,\n      "steps": 40\n').replace(
        b'"anthropic/claude-sonnet-4-5"', b'"openai/gpt-5"'
    )


def test_json_patch_errors_name_the_host_the_op_and_keep_secrets_out() -> None:
    missing = b'[{"op": "replace", "path": "/agent/build/model", "value": "a/b"}]'
    with pytest.raises(BadInput) as e:
        apply_patch(DEV03, missing, "json-patch", "opencode", where="dev-03: opencode.json")
    assert str(e.value).startswith(
        "dev-03: opencode.json: json-patch op 1 (replace /agent/build/model): path not found"
    )
    secret = b'[{"op": "add", "path": "/x", "value": 1}, {"op": "test", "path": "/provider/corp/options/apiKey", "value": "sk-live-guessguess1"}]'
    with pytest.raises(BadInput) as e:
        apply_patch(DEV01, secret, "json-patch", "opencode", where="dev-01: opencode.jsonc")
    message = str(e.value)
    assert "json-patch op 2 (test /provider/corp/options/apiKey): test failed" in message
    assert "dev01secret" not in message and "guessguess" not in message
    with pytest.raises(BadInput, match="dev-04: o.json: json-patch op 1 .*the host has no such file"):
        apply_patch(None, missing, "json-patch", "json", where="dev-04: o.json")


def test_a_host_file_that_does_not_parse_is_named() -> None:
    with pytest.raises(
        BadInput, match=r"dev-02: opencode.json: the host's file is not valid opencode \(line 2\)"
    ):
        apply_patch(b'{\n  "a": nope\n}', MERGE, "merge", "opencode", where="dev-02: opencode.json")


LITELLM = b"""# proxy config, owned by platform
model_list:
  - model_name: fast   # cheap group
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/OPENAI_API_KEY
      weight: 1
  - model_name: smart
    litellm_params:
      model: anthropic/claude-sonnet-4-5
router_settings:
  num_retries: 2   # keep low
"""


def test_yaml_litellm_keeps_comments_order_and_indentation() -> None:
    patch = b'[{"op": "replace", "path": "/model_list/0/litellm_params/weight", "value": 5}]'
    out = apply_patch(LITELLM, patch, "json-patch", "litellm", where="proxy-1: config.yaml")
    assert out == LITELLM.replace(b"weight: 1", b"weight: 5")
    merge = b"router_settings:\n  num_retries: null\n  timeout: 30\n"
    out = apply_patch(LITELLM, merge, "merge", "litellm", where="proxy-1: config.yaml")
    assert out == LITELLM.replace(b"  num_retries: 2   # keep low\n", b"  timeout: 30\n")
    assert yaml.safe_load(out)["router_settings"] == {"timeout": 30}


def test_toml_keeps_comments() -> None:
    base = b'# codex\nmodel = "o3"  # main one\n\n[profiles.fast]\nmodel = "gpt-4o"\n'
    out = apply_patch(base, b'{"model": "gpt-5", "profiles": {"fast": {"x": 1}}}', "merge", "toml", where="c")
    assert out == b'# codex\nmodel = "gpt-5"  # main one\n\n[profiles.fast]\nmodel = "gpt-4o"\nx = 1\n'
    with pytest.raises(BadInput, match="c: TOML has no null"):
        apply_patch(base, b'[{"op": "add", "path": "/y", "value": null}]', "json-patch", "toml", where="c")


def test_load_patch_refuses_bad_shapes() -> None:
    with pytest.raises(BadInput, match="pb.yml: config.patch: a json-patch must be a list"):
        load_patch(b'{"a": 1}', "json-patch", "pb.yml: config.patch")
    with pytest.raises(BadInput, match=r"json-patch op 1 \(replace /a\): needs a value"):
        load_patch(b'[{"op": "replace", "path": "/a"}]', "json-patch", "w")
    with pytest.raises(BadInput, match="neither JSON nor YAML"):
        load_patch(b"a: [", "merge", "w")
    with pytest.raises(BadInput, match="patch_format must be one of merge, json-patch"):
        load_patch(b"{}", "strategic", "w")
    assert load_patch(b"- {op: remove, path: /a}\n", "json-patch", "w") == [{"op": "remove", "path": "/a"}]


def _patch_fleet(tmp_path, patch: bytes, patch_format: str):  # type: ignore[no-untyped-def]
    from tests.conftest import make_fleet

    fleet = make_fleet(tmp_path, n=3)
    doc = yaml.safe_load(fleet.playbook.read_text())
    doc["config"] = {
        "patch": "changes.json",
        "patch_format": patch_format,
        "path": "fleet/{host}/opencode.json",
    }
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    (fleet.root / "changes.json").write_bytes(patch)
    for host, data in zip(fleet.hosts, (DEV01, DEV02, DEV03), strict=True):
        fleet.file(host).write_bytes(data)
    return fleet


def test_plan_shows_each_hosts_own_patched_file_and_touches_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fleet = _patch_fleet(tmp_path, MERGE, "merge")
    assert fleet.cli("validate", str(fleet.playbook)).exit_code == 0
    result = fleet.cli("plan", str(fleet.playbook), "--json")
    assert result.exit_code == 0, result.output
    diffs = json.loads(result.stdout)["diffs"]
    assert len(diffs) == 3
    assert "sk-live-dev01secret99" not in result.stdout
    assert fleet.bytes_on() == dict(zip(fleet.hosts, (DEV01, DEV02, DEV03), strict=True))


def test_a_patch_that_does_not_apply_on_one_host_names_that_host(tmp_path) -> None:  # type: ignore[no-untyped-def]
    patch = b'[{"op": "replace", "path": "/agent/build/model", "value": "openai/gpt-5"}]'
    fleet = _patch_fleet(tmp_path, patch, "json-patch")
    result = fleet.cli("plan", str(fleet.playbook))
    assert result.exit_code == 2
    assert "the patch gives an invalid opencode file on 2 host(s): dev-02, dev-03" in result.output
    assert (
        "dev-03: fleet/dev-03/opencode.json: json-patch op 1 (replace /agent/build/model): path not found"
        in result.output
    )


def test_a_problem_the_host_file_already_had_is_said_to_be_its_own(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fleet = _patch_fleet(tmp_path, b'{"theme": "opencode"}', "merge")
    fleet.file("dev-02").write_bytes(b'{"agent": {"build": {"model": "nope"}}}\n')
    result = fleet.cli("plan", str(fleet.playbook))
    assert result.exit_code == 2
    assert "on 1 host(s): dev-02" in result.output
    assert "model must be 'provider/model', got 'nope' (so already in the host's file)" in result.output


def test_playbook_patch_keys_are_checked_together(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fleet = _patch_fleet(tmp_path, b'{"op": "add"}', "json-patch")
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 2
    assert "config.patch: a json-patch must be a list of operations" in result.output
    doc = yaml.safe_load(fleet.playbook.read_text())
    doc["config"]["source"] = "changes.json"
    del doc["config"]["patch_format"]
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = fleet.cli("validate", str(fleet.playbook))
    assert result.exit_code == 2
    assert "config.patch: give either source (one file for every host) or patch, not both" in result.output
    del doc["config"]["source"]
    fleet.playbook.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = fleet.cli("validate", str(fleet.playbook))
    assert "config.patch: needs patch_format: merge (RFC 7386) or json-patch (RFC 6902)" in result.output


def test_the_shipped_assignment_as_a_merge_patch_keeps_each_developers_settings() -> None:
    from pathlib import Path

    from rollout import configkinds
    from rollout.configkinds.base import ConfigContext
    from rollout.configkinds.jsonc import load_jsonc

    plan = Path(__file__).resolve().parents[1] / "playbooks" / "model-assignment" / "opencode.json"
    assignment = json.loads(plan.read_bytes())
    for host, base in (("dev-01", DEV01), ("dev-02", DEV02), ("dev-03", DEV03), ("dev-04", None)):
        out = apply_patch(base, plan.read_bytes(), "merge", "opencode", where=f"{host}: opencode.json")
        doc = load_jsonc(out)[0]
        problems = configkinds.check_candidate(out, "opencode", ConfigContext(base_dir=plan.parent))
        assert [p for p in problems if p.severity == "error"] == [], host
        for key in ("model", "small_model", "default_agent"):
            assert doc[key] == assignment[key]
        for name, agent in assignment["agent"].items():
            assert {k: doc["agent"][name][k] for k in agent} == agent
        before = load_jsonc(base)[0] if base else {}
        for key in set(before) - {"agent", "model", "small_model", "default_agent"}:
            assert doc[key] == before[key]  # providers, keys, MCP servers, permissions, theme
    assert b"// my own proxy" in apply_patch(DEV01, plan.read_bytes(), "merge", "opencode", where="dev-01: x")
