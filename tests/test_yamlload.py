"""The YAML loader: playbook keys as written, and bounded size, nesting and alias expansion."""

from __future__ import annotations

import pytest
import yaml

from rollout.util import yamlload


def laughs(levels: int, width: int = 9) -> str:
    """Billion laughs: each anchor is a list of `width` aliases of the one before."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_playbook_keys_are_taken_as_written():
    doc = yamlload.safe_load("on: local\noff: 1\nyes: [on, no]\nNo: x\ntrue: t\n<<: {ON: merged}\n")
    assert doc == {"on": "local", "off": 1, "yes": [True, False], "No": "x", True: "t", "ON": "merged"}


def test_candidate_configs_are_read_as_pyyaml_reads_them():
    assert yamlload.load_config("on: local\nyes: 1\n") == {True: "local"} | {True: 1}


def test_aliases_that_stay_small_are_fine():
    assert yamlload.safe_load("a: &a [1, 2]\nb: [*a, *a]\n") == {"a": [1, 2], "b": [[1, 2], [1, 2]]}
    assert len(yamlload.safe_load(laughs(3))["l3"]) == 9


@pytest.mark.parametrize("load", [yamlload.safe_load, yamlload.load_config])
@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        (laughs(8), "aliases expand to more than 100,000 nodes", 6),
        ("a: &a [1, *a]\n", "recursive alias *a", 1),
        ("x:\n  - " + "[" * 100 + "]" * 100 + "\n", "nested deeper than 100 levels", 2),
        ("x: " + "9" * 5000 + "\n", "integer too long (5,000 characters)", 1),
        ("when: 2026-13-45\n", "month must be in 1..12", 1),
    ],
    ids=["billion-laughs", "recursive-alias", "deep", "5000-digits", "bad-date"],
)
def test_documents_past_the_bounds_are_yaml_errors(load, text, problem, line):
    with pytest.raises(yaml.YAMLError) as e:
        load(text)
    assert e.value.problem == problem  # type: ignore[attr-defined]
    assert e.value.problem_mark.line + 1 == line  # type: ignore[attr-defined]


def test_a_document_nested_past_what_libyaml_survives_is_refused_not_a_segfault():
    with pytest.raises(yaml.YAMLError, match="nested deeper than 100 levels"):
        yamlload.load_config("[" * 200_000 + "]" * 200_000)


def test_a_playbook_larger_than_a_megabyte_is_refused():
    with pytest.raises(yaml.YAMLError, match="document too large: 1,048,58[0-9] characters"):
        yamlload.safe_load("a: " + "x" * (1 << 20) + "\n")
