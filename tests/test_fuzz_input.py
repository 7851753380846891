"""Seeded fuzzing of playbooks and candidates: bad input is exit 2, never a traceback, nothing touched.

Each case mutates a valid playbook or candidate (wrong types, huge values, NUL, deep nesting,
aliases, missing and unknown keys, broken text) and runs `validate`, then `start`, on a local
fleet. Invalid input must exit 2 at both with a short message and leave the hosts and the state
folder exactly as they were; input that happens to be valid must start (0, or 3/5 when the
mutated checks fail or cannot measure), never crash. A case id names the seed and the mutation,
so a failure reproduces with `-k`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from rollout.cli import cli
from tests.conftest import BASELINE, CANDIDATE, dump

SEED = 18
CASES = 320
HOSTS = ["dev-01", "dev-02", "dev-03", "dev-04"]
LAUGH_ANCHORS = "".join(
    f"x-l{i}: &l{i} [" + ", ".join(["lol"] * 9 if i == 0 else [f"*l{i - 1}"] * 9) + "]\n" for i in range(8)
)
YAML_CANDIDATE = "model_list:\n  - model_name: coder\n    litellm_params: {model: openai/gpt-5-mini}\n"


class Raw(str):
    """Text put into the document as written (a value the dumper could not produce)."""


def nasty(rng: random.Random, *, in_json: bool) -> Any:
    """Return one troublesome value: wrong type, huge, NUL, deep, an alias bomb, odd paths."""
    deep: Any = "bottom"
    for _ in range(rng.choice([101, 150])):
        deep = [deep] if rng.random() < 0.5 else {"k": deep}
    values: list[Any] = [
        None, True, False, 0, -1, 1.5, 10**18, [], {}, [None], {"a": 1}, ["shadow", 100],
        "", " ", "x" * 10_000, "a\0b", "ü-ñ", "on", "yes", "{host}", "../x", "fleet/{host}/",
        "fleet/{host}", "~nosuchuser/x", "fleet/{host}/" + "c" * 5000, "30s", "1h", "-5s",
        Raw("9" * 5000), Raw("9" * 400), Raw("1e400"), deep,
    ]  # fmt: skip
    if not in_json:
        values += [Raw(".inf"), Raw(".nan"), Raw("*l7"), Raw("*l3"), Raw("!!binary Zm9v"), Raw("2026-13-45")]
    else:
        values += [Raw("[" * 1000 + "]" * 1000), Raw("NaN"), Raw("1e99999")]
    return rng.choice(values)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return the path of every value in a document (mapping keys and list indexes), 8 deep."""
    found = [prefix]
    if len(prefix) >= 8:
        return found
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        found += paths(value, (*prefix, key))
    return found


def mutate(doc: Any, rng: random.Random, *, in_json: bool) -> tuple[Any, str]:
    """Apply one mutation at a random place; return the document and what was done."""
    where = rng.choice(paths(doc))
    label = ".".join(map(str, where)) or "<root>"
    if not where:
        return nasty(rng, in_json=in_json), f"root={type(doc).__name__}"
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    op = rng.choice(["set", "set", "set", "delete", "add"])
    if op == "delete":
        del parent[where[-1]]
    elif op == "add" and isinstance(parent, dict):
        parent[rng.choice(["colour", "on", "yes", "x" * 300, "path", "checks"])] = nasty(rng, in_json=in_json)
    else:
        op = "set"
        parent[where[-1]] = nasty(rng, in_json=in_json)
    return doc, f"{op}:{label[:40]}"


def render(doc: Any, *, as_json: bool) -> str:
    """Dump a document, then put every Raw value back as written."""
    raws: dict[str, str] = {}

    def swap(node: Any) -> Any:
        if isinstance(node, Raw):
            token = f"RAWTOKEN{len(raws)}X"
            raws[token] = str(node)
            return token
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    swapped = swap(doc)
    text = json.dumps(swapped, indent=2) if as_json else yaml.safe_dump(swapped, sort_keys=False)
    for token, raw in raws.items():
        text = text.replace(f'"{token}"' if as_json else token, raw)
    if not as_json and "*l" in text:
        text = LAUGH_ANCHORS + text
    return text


def break_text(text: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Damage the bytes themselves: truncate, flip, bad UTF-8, BOM, empty."""
    op = rng.choice(["truncate", "flip", "latin1", "bom", "empty", "nul"])
    if op == "truncate":
        return text[: rng.randrange(len(text))], op
    if op == "flip":
        i = rng.randrange(len(text))
        return text[:i] + bytes([rng.randrange(256)]) + text[i + 1 :], op
    if op == "latin1":
        return text.replace(b"e", b"\xe9", 1), op
    if op == "bom":
        return b"\xef\xbb\xbf" + text, op
    if op == "nul":
        return text.replace(b"\n", b"\n\0", 1), op
    return b"", op


def base_playbook(candidate: str) -> dict[str, Any]:
    return {
        "name": "fuzz",
        "description": "a rollout",
        "config": {"source": candidate, "path": "fleet/{host}/" + ("opencode.json" if candidate.endswith("json") else "config.yaml")},
        "targets": {"transport": "local", "hosts": list(HOSTS)},
        "stages": ["shadow", {"percent": 25, "bake": 0}, 50, {"name": "all", "percent": 100}],
        "health": {
            "interval": "1s",
            "failure_limit": 0,
            "checks": [
                {"name": "parses", "run": 'test -s "$ROLLOUT_CONFIG_PATH"', "timeout": "20s", "on": "hosts"},
                {
                    "name": "errors",
                    "metric": "error_rate",
                    "source": {"type": "usage-log", "path": "fleet/{host}/usage.jsonl"},
                    "window": "10m",
                    "max": 0.05,
                    "max_regression": 0.1,
                    "min_samples": 5,
                    "stages": [25, "all"],
                },
                {"name": "probe", "http": "http://127.0.0.1:9/health", "on": "local", "status": [200], "stages": ["all"]},
            ],
        },
    }  # fmt: skip


@dataclass
class Case:
    playbook: bytes
    candidate: bytes
    candidate_name: str
    what: str


def make_cases() -> list[tuple[str, Case]]:
    rng = random.Random(SEED)
    cases = []
    for n in range(CASES):
        yaml_candidate = rng.random() < 0.25
        name = "candidate.yaml" if yaml_candidate else "candidate.json"
        playbook: Any = base_playbook(name)
        candidate: Any = yaml.safe_load(YAML_CANDIDATE) if yaml_candidate else copy.deepcopy(CANDIDATE)
        done = []
        target = rng.choice(["playbook", "playbook", "playbook", "candidate", "both"])
        if target in ("playbook", "both"):
            for _ in range(rng.choice([1, 1, 2, 3])):
                playbook, what = mutate(playbook, rng, in_json=False)
                done.append(f"pb-{what}")
        if target in ("candidate", "both"):
            candidate, what = mutate(candidate, rng, in_json=not yaml_candidate)
            done.append(f"cand-{what}")
        pb_text = render(playbook, as_json=False).encode()
        cand_text = render(candidate, as_json=not yaml_candidate).encode()
        if rng.random() < 0.1:
            pb_text, what = break_text(pb_text, rng)
            done.append(f"pb-{what}")
        if rng.random() < 0.1:
            cand_text, what = break_text(cand_text, rng)
            done.append(f"cand-{what}")
        case_id = f"{n:03d}-" + "+".join(done)
        cases.append((case_id, Case(pb_text, cand_text, name, "+".join(done))))
    return cases


def tree(*folders: Path) -> dict[str, str]:
    """Return every file (and folder) below `folders` with a hash of its bytes."""
    found: dict[str, str] = {}
    for folder in folders:
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*")):
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return found


ALL_CASES = make_cases()


@pytest.mark.parametrize("case", [c for _, c in ALL_CASES], ids=[i for i, _ in ALL_CASES])
def test_fuzzed_input_is_exit_2_or_valid_never_a_crash_and_touches_nothing(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a crash report would land in ./state: the state folder
    root, state = tmp_path / "pb", tmp_path / "state"
    for host in HOSTS:
        (root / "fleet" / host).mkdir(parents=True)
        live = "opencode.json" if case.candidate_name.endswith("json") else "config.yaml"
        (root / "fleet" / host / live).write_bytes(
            dump(BASELINE) if live.endswith("json") else YAML_CANDIDATE.encode()
        )
    (root / case.candidate_name).write_bytes(case.candidate)
    (root / "playbook.yml").write_bytes(case.playbook)
    before = tree(root, state)
    runner = CliRunner()
    checked = runner.invoke(cli, ["--state-dir", str(state), "validate", str(root / "playbook.yml")])
    started = runner.invoke(cli, ["--state-dir", str(state), "start", str(root / "playbook.yml")])
    for verb, result in (("validate", checked), ("start", started)):
        assert "Traceback" not in result.output, (verb, result.output[-3000:])
        assert result.exception is None or isinstance(result.exception, SystemExit), (verb, result.exception)
        assert len(result.output) < 20_000, (verb, len(result.output), result.output[:500])
    assert checked.exit_code in (0, 2), checked.output[-3000:]
    if checked.exit_code == 2:
        assert started.exit_code == 2, started.output[-3000:]
        assert checked.stderr.startswith("error: "), checked.output[:500]
        assert tree(root, state) == before
    else:
        # Valid input starts; mutated checks may fail (3) or not measure (5): never a crash (1).
        assert started.exit_code in (0, 3, 5), started.output[-3000:]
