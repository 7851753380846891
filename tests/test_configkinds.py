"""Config kinds: JSONC, OpenCode, the registry's inference and options, schema and validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollout import configkinds
from rollout.configkinds.base import ConfigContext, ConfigParseError
from rollout.configkinds.jsonc import blank_jsonc, load_jsonc
from rollout.configkinds.locate import json_lines, path_str, yaml_lines
from rollout.util.errors import BadInput


def rendered(data: str | bytes, kind: str, source: str = "opencode.json", **options) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    ctx = ConfigContext(Path("."), options, source)
    return [p.render(source) for p in configkinds.check_candidate(raw, kind, ctx)]


# --- JSONC -------------------------------------------------------------------------------


def test_jsonc_comments_and_trailing_commas_parse_like_opencode():
    text = '{\n  // line comment\n  "a": "x // not a comment", /* block\n  */ "b": [1, 2,],\n}\n'
    doc, blanked = load_jsonc(text.encode())
    assert doc == {"a": "x // not a comment", "b": [1, 2]}
    assert blanked.count("\n") == text.count("\n")
    assert len(blanked) == len(text)


def test_jsonc_keeps_escaped_quotes_and_slashes_in_strings():
    assert load_jsonc(b'{"a": "say \\"/*hi*/\\"", "b": "http://x"}')[0] == {
        "a": 'say "/*hi*/"',
        "b": "http://x",
    }


def test_jsonc_error_names_the_original_line():
    with pytest.raises(ConfigParseError) as e:
        load_jsonc(b'{\n  // one\n  "a": 1\n  "b": 2\n}')
    assert str(e.value) == "invalid JSONC: Expecting ',' delimiter (column 3)"
    assert e.value.line == 4


def test_jsonc_rejects_what_opencode_rejects():
    with pytest.raises(ConfigParseError, match="unterminated /\\* comment"):
        load_jsonc(b'{"a": 1 /* open')
    with pytest.raises(ConfigParseError, match="NaN is not valid JSON"):
        load_jsonc(b'{"a": NaN}')
    with pytest.raises(ConfigParseError, match="Expecting property name"):
        load_jsonc(b"{a: 1}")  # JSON5 would accept this; OpenCode does not


def test_blank_jsonc_removes_only_trailing_commas():
    assert blank_jsonc("[1, 2, ]") == "[1, 2  ]"
    assert blank_jsonc('{"a": ",", }') == '{"a": ","  }'
    assert blank_jsonc('{"a": 1, "b": 2}') == '{"a": 1, "b": 2}'


def test_jsonc_kind_parses_and_reports_nothing_else():
    assert rendered("{ // ok\n}", "jsonc", "x.jsonc") == []
    assert rendered('{"a": 1,,}', "jsonc", "x.jsonc") == [
        "x.jsonc:1: invalid JSONC: Expecting property name enclosed in double quotes (column 10)"
    ]


# --- locators ----------------------------------------------------------------------------


def test_json_locator_maps_paths_to_lines():
    text = '{\n "agent": {\n  "build": {\n   "model": "x"\n  }\n },\n "list": [\n  1,\n  {"k": 2}\n ]\n}'
    lines = json_lines(text)
    assert lines[("agent", "build", "model")] == 4
    assert lines[("list", 1, "k")] == 9
    assert lines[()] == 1


def test_yaml_locator_maps_paths_to_lines():
    lines = yaml_lines("a:\n  - b: 1\n  - c:\n      d: 2\n")
    assert lines[("a", 1, "c", "d")] == 4
    assert lines[("a", 0, "b")] == 2


def test_path_str_quotes_odd_keys():
    assert path_str(("agent", "build", "model")) == "agent.build.model"
    assert path_str(("model_list", 0, "litellm_params")) == "model_list[0].litellm_params"
    assert path_str(("agent", "my.agent", "x")) == 'agent["my.agent"].x'


# --- registry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("opencode.json", "opencode"),
        ("opencode.jsonc", "opencode"),
        ("oh-my-opencode.json", "oh-my-opencode"),
        ("oh-my-opencode.jsonc", "oh-my-opencode"),
        ("settings.jsonc", "jsonc"),
        ("new-opencode.json", "opencode"),  # the README's own example (issue 18)
        ("staging.oh-my-opencode.jsonc", "oh-my-opencode"),
        ("settings.json", "json"),
        ("config.yaml", "yaml"),  # LiteLLM's config is only ever named explicitly
        ("opencode.yaml", "yaml"),
        ("notes.txt", "text"),
    ],
)
def test_infer_kind_from_file_name(name, kind):
    assert configkinds.infer(name) == kind


@pytest.mark.parametrize(
    ("head", "kind", "why"),
    [
        (
            b'{\n  "$schema": "https://opencode.ai/config.json",\n  "model": "x/y"}',
            "opencode",
            'from "$schema"',
        ),
        (
            b'// team config\n{"$schema": "https://raw.githubusercontent.com/code-yeongyu/oh-my-openagent/dev/'
            b'assets/oh-my-opencode.schema.json"}',
            "oh-my-opencode",
            'from "$schema"',
        ),
        (b'{"$schema": "https://json-schema.org/draft/2020-12/schema"}', "json", "from the .json suffix"),
        (b'{"a": {"$schema": "https://opencode.ai/config.json"}}', "json", "from the .json suffix"),
    ],
)
def test_infer_kind_from_schema(head, kind, why):
    assert configkinds.infer_why("candidate.json", head) == (kind, why)


def test_registered_kinds():
    assert configkinds.names() == [
        "json", "jsonc", "litellm", "oh-my-opencode", "opencode", "text", "toml", "yaml",
    ]  # fmt: skip


def test_parse_options_resolves_files(tmp_path):
    (tmp_path / "s.json").write_text('{"type": "object"}')
    (tmp_path / "cat.json").write_text('{"p": {"id": "p", "models": {"m": {"id": "m"}}}}')
    options = configkinds.parse_options(
        {"schema": "s.json", "validate": "true {path}", "catalog": "cat.json"}, "pb.yml", tmp_path
    )
    assert options == {
        "schema": str(tmp_path / "s.json"),
        "validate": "true {path}",
        "catalog": str(tmp_path / "cat.json"),
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"schema": "missing.json"}, "pb.yml: config.schema: schema file not found: {dir}/missing.json"),
        ({"schema": "bad.json"}, "pb.yml: config.schema: {dir}/bad.json:1: not valid JSON: Expecting value"),
        (
            {"schema": "notschema.json"},
            "pb.yml: config.schema: {dir}/notschema.json: not a valid JSON Schema: "
            "5 is not valid under any of the given schemas",
        ),
        (
            {"validate": "check-it"},
            "pb.yml: config.validate: must be a command containing {path} "
            "(replaced by the candidate file), got 'check-it'",
        ),
        ({"catalog": "nope.json"}, "pb.yml: config.catalog: {dir}/nope.json: catalog not found"),
        (
            {"catalog": "bad.json"},
            "pb.yml: config.catalog: {dir}/bad.json:1: catalog is not valid JSON: Expecting value",
        ),
        (
            {"catalog": "notcat.json"},
            "pb.yml: config.catalog: {dir}/notcat.json: p: a provider needs a 'models' object",
        ),
    ],
)
def test_parse_options_bad_input_names_the_field(tmp_path, config, message):
    (tmp_path / "bad.json").write_text("nope")
    (tmp_path / "notschema.json").write_text('{"type": 5}')
    (tmp_path / "notcat.json").write_text('{"p": {"id": "p"}}')
    with pytest.raises(BadInput) as e:
        configkinds.parse_options(config, "pb.yml", tmp_path)
    assert str(e.value) == message.replace("{dir}", str(tmp_path))


# --- schema and validate -----------------------------------------------------------------


def test_schema_violations_are_problems_with_lines(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"port": {"type": "integer"}},
                                  "required": ["name"]}))  # fmt: skip
    assert rendered('{\n  "port": "80"\n}', "json", "app.json", schema=str(schema)) == [
        "app.json:1: schema: 'name' is a required property",
        "app.json:2: port: schema: '80' is not of type 'integer'",
    ]


def test_schema_problems_never_show_secret_values(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text('{"properties": {"apiKey": {"type": "integer"}}}')
    assert rendered('{"apiKey": "sk-live-123"}', "json", "app.json", schema=str(schema)) == [
        "app.json:1: apiKey: schema: value does not satisfy the schema's 'type' rule (value hidden)"
    ]


def test_schema_applies_to_yaml_with_lines(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text('{"properties": {"a": {"type": "array", "items": {"type": "string"}}}}')
    assert rendered("a:\n  - x\n  - 3\n", "yaml", "c.yaml", schema=str(schema)) == [
        "c.yaml:3: a[1]: schema: 3 is not of type 'string'"
    ]


def test_validate_command_runs_on_the_candidate(tmp_path):
    assert rendered("{}", "json", "c.json", validate="test -s {path} && grep -q '{}' {path}") == []
    bad = rendered("{}", "json", "c.json", validate="echo 'token=hunter2 rejected' {path}; exit 3")
    assert bad == ["c.json: validate command failed (exit 3): token=***REDACTED*** rejected {path}"]
