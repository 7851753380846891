"""Bundles: several files per host that move together (config.files), activation and ready, all
through the real CLI in a subprocess over hosts that are folders with their own personal files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout.core.cohorts import cohort_for, host_order

HOSTS = ["dev-01", "dev-02", "dev-03", "dev-04"]
NAME = "bundle"


def personal_opencode(host: str) -> bytes:
    """Each developer's own opencode.json: a personal MCP server and permission."""
    doc = {
        "$schema": "https://opencode.ai/config.json",
        "model": "anthropic/claude-sonnet-4-5",
        "mcp": {f"notes-{host}": {"type": "local", "command": ["notes", host]}},
        "agent": {"build": {"model": "anthropic/claude-sonnet-4-5"}},
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def personal_omo(host: str) -> bytes:
    doc = {
        "agents": {
            "build": {"model": "anthropic/claude-sonnet-4-5", "fallback_models": [f"openai/gpt-5-{host}"]}
        }
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


CAND_OPENCODE = (
    json.dumps(
        {
            "$schema": "https://opencode.ai/config.json",
            "model": "openai/gpt-5.2",
            "agent": {"build": {"model": "openai/gpt-5.2"}},
        },
        indent=2,
    )
    + "\n"
).encode()
CAND_OMO = (
    json.dumps(
        {"agents": {"build": {"model": "openai/gpt-5.2", "fallback_models": ["anthropic/claude-sonnet-4-5"]}}}
    )
    + "\n"
).encode()


class Bundle:
    def __init__(self, root: Path, stages: list[Any], config_extra: dict[str, Any] | None = None) -> None:
        self.root = root
        self.state = root / "state"
        self.log = root / "activations.log"
        for host in HOSTS:
            folder = root / "fleet" / host
            folder.mkdir(parents=True)
            (folder / "opencode.json").write_bytes(personal_opencode(host))
            (folder / "oh-my-opencode.json").write_bytes(personal_omo(host))
        (root / "opencode.json").write_bytes(CAND_OPENCODE)
        (root / "oh-my-opencode.json").write_bytes(CAND_OMO)
        config: dict[str, Any] = {
            "files": [
                {"source": "opencode.json", "path": "fleet/{host}/opencode.json"},
                {"source": "oh-my-opencode.json", "path": "fleet/{host}/oh-my-opencode.json"},
            ],
        }
        config.update(config_extra or {})
        book = {
            "name": NAME,
            "config": config,
            "targets": {"transport": "local", "hosts": HOSTS},
            "stages": stages,
            "health": {
                "checks": [
                    {
                        "name": "parses",
                        "run": "python3 -c 'import json,os; json.load(open(os.environ[\"ROLLOUT_CONFIG_PATH\"]))'",
                    }
                ]
            },
        }
        self.playbook = root / "playbook.yml"
        self.playbook.write_text(yaml.safe_dump(book, sort_keys=False))

    def file(self, host: str, name: str) -> Path:
        return self.root / "fleet" / host / name

    def bytes_on(self, name: str) -> dict[str, bytes]:
        return {h: self.file(h, name).read_bytes() for h in HOSTS}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rollout", "--state-dir", str(self.state), *args],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=120,
        )

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def cohort(self, percent: int) -> list[str]:
        return cohort_for(percent, host_order(HOSTS, NAME))

    def activations(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def baselines(name: str) -> dict[str, bytes]:
    make = personal_opencode if name == "opencode.json" else personal_omo
    return {h: make(h) for h in HOSTS}


def test_a_bundle_moves_both_files_and_keeps_per_file_state(tmp_path: Path) -> None:
    b = Bundle(tmp_path, ["shadow", 50, 100])
    result = b.cli("start", str(b.playbook))
    assert result.returncode == 0, result.stdout + result.stderr
    status = b.status()
    host = status["hosts"]["dev-01"]
    assert host["state"] == "shadow"
    assert set(host["files"]) == {"opencode.json", "oh-my-opencode.json"}
    assert host["files"]["opencode.json"]["state"] == "shadow"
    assert b.bytes_on("opencode.json") == baselines("opencode.json")  # nothing live changed
    result = b.cli("advance")
    assert result.returncode == 0, result.stdout + result.stderr
    live = b.cohort(50)
    for h in HOSTS:
        want_oc = CAND_OPENCODE if h in live else personal_opencode(h)
        want_omo = CAND_OMO if h in live else personal_omo(h)
        assert (b.file(h, "opencode.json").read_bytes(), b.file(h, "oh-my-opencode.json").read_bytes()) == (
            want_oc,
            want_omo,
        )
    files = b.status()["hosts"][live[0]]["files"]
    assert {n: f["state"] for n, f in files.items()} == {
        "opencode.json": "candidate",
        "oh-my-opencode.json": "candidate",
    }
    result = b.cli("diff")
    assert result.returncode == 0
    assert "opencode.json: change" in result.stdout and "oh-my-opencode.json: change" in result.stdout
    result = b.cli("abort", "--reason", "enough")
    assert result.returncode == 0, result.stdout + result.stderr
    assert b.bytes_on("opencode.json") == baselines("opencode.json")
    assert b.bytes_on("oh-my-opencode.json") == baselines("oh-my-opencode.json")
    backups = sorted(
        p.relative_to(b.status()["folder"]).as_posix()
        for p in Path(b.status()["folder"]).joinpath("baseline").rglob("*")
        if p.is_file()
    )
    assert len(backups) == 8  # per host, per file


def test_second_file_failing_to_switch_puts_the_first_back_on_that_host(tmp_path: Path) -> None:
    b = Bundle(tmp_path, [50, 100])
    assert b.cli("start", str(b.playbook)).returncode == 0  # 50%: two hosts live
    late = [h for h in b.cohort(100) if h not in b.cohort(50)]
    sick = late[0]
    edited = b'{"agents": {}}\n'
    b.file(sick, "oh-my-opencode.json").write_bytes(edited)  # changed by hand: its CAS fails
    result = b.cli("advance")
    assert f"warning: {sick} not switched: oh-my-opencode.json: drifted" in result.stdout, result.stdout
    assert b.file(sick, "opencode.json").read_bytes() == personal_opencode(sick)  # put back
    assert b.file(sick, "oh-my-opencode.json").read_bytes() == edited  # never clobbered
    host = b.status()["hosts"][sick]
    assert host["state"] == "drifted"
    assert host["files"]["opencode.json"]["state"] == "baseline"
    assert host["files"]["oh-my-opencode.json"]["state"] == "drifted"
    assert b.file(late[1], "opencode.json").read_bytes() == CAND_OPENCODE


def test_a_second_file_that_cannot_be_written_is_a_failed_switch_and_the_gate_rolls_back(
    tmp_path: Path,
) -> None:
    b = Bundle(tmp_path, [50, 100])
    # The two files in different folders, the second one's folder read-only on one host.
    for h in HOSTS:
        (tmp_path / "fleet" / h / "omo").mkdir()
        (tmp_path / "fleet" / h / "oh-my-opencode.json").rename(
            tmp_path / "fleet" / h / "omo" / "oh-my-opencode.json"
        )
    book = yaml.safe_load(b.playbook.read_text())
    book["config"]["files"][1]["path"] = "fleet/{host}/omo/oh-my-opencode.json"
    b.playbook.write_text(yaml.safe_dump(book))
    assert b.cli("start", str(b.playbook)).returncode == 0
    sick = [h for h in HOSTS if h not in b.cohort(50)][0]
    # Its second file cannot be written (a file stands where its folder was; as root a read-only
    # folder would not stop the write).
    (tmp_path / "fleet" / sick / "omo").rename(tmp_path / "fleet" / sick / "omo-away")
    (tmp_path / "fleet" / sick / "omo").write_text("in the way\n")
    result = b.cli("advance")
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"switch @ {sick}: fail: switch failed: oh-my-opencode.json" in result.stdout
    for h in HOSTS:
        assert b.file(h, "opencode.json").read_bytes() == personal_opencode(h)
    assert b.status()["state"] == "rolled-back"


def test_activation_runs_after_switch_and_restore_and_a_failing_one_rolls_back(tmp_path: Path) -> None:
    log = tmp_path / "activations.log"
    activate = (
        f'echo "$ROLLOUT_HOST $ROLLOUT_ACTION $(echo "$ROLLOUT_FILES" | wc -l)" >> {log}; '
        'test ! -e "fleet/$ROLLOUT_HOST/no-reload" || { echo "reload refused"; exit 7; }'
    )
    b = Bundle(tmp_path, [50, 100], {"activate": activate, "activate_timeout": "20s"})
    assert b.cli("start", str(b.playbook)).returncode == 0
    first = b.cohort(50)
    assert sorted(b.activations()) == sorted(f"{h} switch 2" for h in first)
    sick = [h for h in HOSTS if h not in first][0]
    (tmp_path / "fleet" / sick / "no-reload").touch()
    result = b.cli("advance")
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"switch @ {sick}: fail: switch failed: activation (switch)" in result.stdout
    assert "exited 7: reload refused" in result.stdout
    lines = b.activations()
    # The sick host: switched, activation failed, files put back and activated again.
    assert f"{sick} switch 2" in lines and f"{sick} restore 2" in lines
    # The rollback restored every host that went live, and activated each again.
    for h in first:
        assert lines.count(f"{h} restore 2") == 1
    for h in HOSTS:
        assert b.file(h, "opencode.json").read_bytes() == personal_opencode(h)
        assert b.file(h, "oh-my-opencode.json").read_bytes() == personal_omo(h)
    status = b.status()
    assert status["state"] == "rolled-back"
    assert {h: v["state"] for h, v in status["hosts"].items()} == dict.fromkeys(HOSTS, "baseline")


def test_ready_is_retried_until_it_passes_then_the_host_counts(tmp_path: Path) -> None:
    # Ready on the third try: a counter file per host.
    ready = {
        "run": 'n=$(cat "fleet/$ROLLOUT_HOST/tries" 2>/dev/null || echo 0); n=$((n+1)); '
        'echo $n > "fleet/$ROLLOUT_HOST/tries"; test $n -ge 3',
        "interval": "0.1s",
        "deadline": "30s",
    }
    b = Bundle(tmp_path, [25, 100], {"ready": ready})
    result = b.cli("start", str(b.playbook))
    assert result.returncode == 0, result.stdout + result.stderr
    (live,) = b.cohort(25)
    assert (tmp_path / "fleet" / live / "tries").read_text().strip() == "3"
    assert b.status()["hosts"][live]["state"] == "candidate"


def test_ready_that_never_passes_is_a_failed_switch(tmp_path: Path) -> None:
    b = Bundle(tmp_path, [25, 100], {"ready": {"run": "exit 1", "interval": "0.1s", "deadline": "0.5s"}})
    result = b.cli("start", str(b.playbook))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not ready after" in result.stdout
    for h in HOSTS:
        assert b.file(h, "opencode.json").read_bytes() == personal_opencode(h)


def test_agents_that_disagree_between_the_two_files_are_reported(tmp_path: Path) -> None:
    b = Bundle(tmp_path, [100])
    (tmp_path / "oh-my-opencode.json").write_bytes(
        b'{"agents": {"build": {"model": "anthropic/claude-opus-4-5"}}}\n'
    )
    result = b.cli("validate", str(b.playbook))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "agent build: opencode.json assigns openai/gpt-5.2 but oh-my-opencode.json assigns anthropic/claude-opus-4-5"
        in result.stdout
    )


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"files": [{"path": "fleet/{host}/a.json"}]}, "config.files[0]"),
        (
            {"files": [{"source": "opencode.json", "patch": "opencode.json", "path": "fleet/{host}/a.json"}]},
            "config.files[0]",
        ),
        (
            {
                "source": "opencode.json",
                "files": [{"source": "opencode.json", "path": "fleet/{host}/a.json"}],
            },
            "config.source",
        ),
        (
            {
                "files": [
                    {"source": "opencode.json", "path": "fleet/{host}/a.json"},
                    {"source": "opencode.json", "path": "fleet/{host}/a.json"},
                ]
            },
            "config.files[1]",
        ),
        (
            {
                "files": [{"source": "opencode.json", "path": "fleet/{host}/a.json"}],
                "activate_timeout": "soon",
            },
            "config.activate_timeout",
        ),
    ],
)
def test_bad_bundles_exit_2_naming_the_line_and_field(
    tmp_path: Path, config: dict[str, Any], field: str
) -> None:
    b = Bundle(tmp_path, [100])
    book = yaml.safe_load(b.playbook.read_text())
    book["config"] = config
    b.playbook.write_text(yaml.safe_dump(book, sort_keys=False))
    result = b.cli("validate", str(b.playbook))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{b.playbook}:" in result.stderr and field in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_kill_between_the_files_of_a_host_is_put_back_by_status(tmp_path: Path) -> None:
    """Simulate the state a kill between two files leaves: intent journaled naming the files,
    the first file switched on one host, the second not."""
    b = Bundle(tmp_path, [50, 100])
    assert b.cli("start", str(b.playbook)).returncode == 0
    folder = Path(b.status()["folder"])
    state = json.loads((folder / "state.json").read_text())
    host = [h for h in HOSTS if h not in b.cohort(50)][0]
    state["intent"] = {
        "action": "activate",
        "hosts": [host],
        "time": 1.0,
        "files": ["opencode.json", "oh-my-opencode.json"],
    }
    (folder / "state.json").write_text(json.dumps(state))
    b.file(host, "opencode.json").write_bytes(CAND_OPENCODE)
    result = b.cli("status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "part switched" in result.stdout
    assert b.file(host, "opencode.json").read_bytes() == personal_opencode(host)
    status = b.status()
    assert status["intent"] is None and status["hosts"][host]["state"] == "baseline"


def test_a_merge_patch_gives_each_host_its_own_candidate_keeping_personal_settings(tmp_path: Path) -> None:
    b = Bundle(tmp_path, [50, 100])
    for h in HOSTS:  # a personal comment too: JSONC keeps it
        text = personal_opencode(h).decode().replace("{\n", "{\n  // my own settings\n", 1)
        b.file(h, "opencode.json").write_text(text)
    (tmp_path / "changes.json").write_text(json.dumps({"agent": {"build": {"model": "openai/gpt-5.2"}}}))
    book = yaml.safe_load(b.playbook.read_text())
    book["config"]["files"][0] = {
        "patch": "changes.json",
        "patch_format": "merge",
        "path": "fleet/{host}/opencode.json",
        "kind": "jsonc",
    }
    book["health"]["checks"][0]["run"] = 'test -s "$ROLLOUT_CONFIG_PATH"'  # JSONC: json.load would refuse it
    b.playbook.write_text(yaml.safe_dump(book, sort_keys=False))
    result = b.cli("start", str(b.playbook))
    assert result.returncode == 0, result.stdout + result.stderr
    result = b.cli("advance")  # 100%
    assert result.returncode == 0, result.stdout + result.stderr
    shas = set()
    for h in HOSTS:
        text = b.file(h, "opencode.json").read_text()
        assert "// my own settings" in text
        doc = json.loads("\n".join(line for line in text.splitlines() if "//" not in line))
        assert doc["agent"]["build"]["model"] == "openai/gpt-5.2"
        assert doc["mcp"] == {f"notes-{h}": {"type": "local", "command": ["notes", h]}}  # personal, kept
        assert doc["model"] == "anthropic/claude-sonnet-4-5"  # not in the patch: untouched
        shas.add(b.status()["hosts"][h]["files"]["opencode.json"]["candidate_sha256"])
    assert len(shas) == len(HOSTS)  # one candidate per host, frozen at start
    result = b.cli("abort", "--reason", "back")
    assert result.returncode == 0, result.stdout + result.stderr
    for h in HOSTS:
        assert "notes-" + h in b.file(h, "opencode.json").read_text()
        assert b.file(h, "oh-my-opencode.json").read_bytes() == personal_omo(h)


def test_a_json_patch_that_fails_on_one_host_names_it_and_writes_nothing(tmp_path: Path) -> None:
    b = Bundle(tmp_path, [100])
    odd = "dev-03"
    doc = json.loads(personal_opencode(odd))
    del doc["agent"]
    b.file(odd, "opencode.json").write_text(json.dumps(doc))
    (tmp_path / "ops.json").write_text(
        json.dumps([{"op": "replace", "path": "/agent/build/model", "value": "openai/gpt-5.2"}])
    )
    book = yaml.safe_load(b.playbook.read_text())
    book["config"]["files"][0] = {
        "patch": "ops.json",
        "patch_format": "json-patch",
        "path": "fleet/{host}/opencode.json",
    }
    b.playbook.write_text(yaml.safe_dump(book, sort_keys=False))
    before = {h: b.file(h, "opencode.json").read_bytes() for h in HOSTS}
    result = b.cli("start", str(b.playbook))
    assert result.returncode == 2, result.stdout + result.stderr
    assert odd in result.stderr and "Traceback" not in result.stderr
    assert {h: b.file(h, "opencode.json").read_bytes() for h in HOSTS} == before
    assert not [p for h in HOSTS for p in (tmp_path / "fleet" / h).glob("*.rollout-shadow")]


def test_retry_of_a_rolled_back_bundle_starts_again_from_its_frozen_files(tmp_path: Path) -> None:
    b = Bundle(tmp_path, [100], {"activate": 'test ! -e "fleet/$ROLLOUT_HOST/refuse"'})
    (tmp_path / "fleet" / "dev-02" / "refuse").touch()
    result = b.cli("start", str(b.playbook))
    assert result.returncode == 3, result.stdout + result.stderr
    (tmp_path / "fleet" / "dev-02" / "refuse").unlink()
    (tmp_path / "opencode.json").write_text("edited after the start: not what retry applies\n")
    result = b.cli("retry")
    assert result.returncode == 0, result.stdout + result.stderr
    assert b.bytes_on("opencode.json") == dict.fromkeys(HOSTS, CAND_OPENCODE)
    assert b.bytes_on("oh-my-opencode.json") == dict.fromkeys(HOSTS, CAND_OMO)


def test_a_kill_after_the_files_before_activation_is_activated_by_the_next_verb(tmp_path: Path) -> None:
    log = tmp_path / "activations.log"
    b = Bundle(tmp_path, [50, 100], {"activate": f'echo "$ROLLOUT_HOST $ROLLOUT_ACTION" >> {log}'})
    assert b.cli("start", str(b.playbook)).returncode == 0
    folder = Path(b.status()["folder"])
    state = json.loads((folder / "state.json").read_text())
    host = [h for h in HOSTS if h not in b.cohort(50)][0]
    files = ["opencode.json", "oh-my-opencode.json"]
    state["intent"] = {"action": "activate", "hosts": [host], "time": 1.0, "files": files}
    (folder / "state.json").write_text(json.dumps(state))
    b.file(host, "opencode.json").write_bytes(CAND_OPENCODE)
    b.file(host, "oh-my-opencode.json").write_bytes(CAND_OMO)
    result = b.cli("status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{host} switch" in b.activations()
    assert b.status()["hosts"][host]["state"] == "candidate"


def test_plan_shows_each_file_of_the_bundle_and_touches_nothing(tmp_path: Path) -> None:
    b = Bundle(tmp_path, [100])
    result = b.cli("plan", str(b.playbook), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    diffs = json.loads(result.stdout)["diffs"]
    assert {d["file"] for d in diffs} == {"opencode.json", "oh-my-opencode.json"}
    # Every host's own files differ: one group per host per file.
    assert sorted(len(d["hosts"]) for d in diffs) == [1] * 8
    assert b.bytes_on("opencode.json") == baselines("opencode.json")
    assert not b.state.exists() or not list(b.state.iterdir())


def test_status_lists_each_file_under_its_host(tmp_path: Path) -> None:
    b = Bundle(tmp_path, [50, 100])
    assert b.cli("start", str(b.playbook)).returncode == 0
    text = b.cli("status").stdout
    live = b.cohort(50)[0]
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(live + " "))
    assert lines[at + 1].split()[:2] == ["opencode.json", "candidate"]
    assert lines[at + 2].split()[:2] == ["oh-my-opencode.json", "candidate"]
    assert lines[at + 2].endswith(f"fleet/{live}/oh-my-opencode.json")


def test_checks_see_every_file_of_the_bundle_in_rollout_files(tmp_path: Path) -> None:
    b = Bundle(tmp_path, ["shadow", 100])
    book = yaml.safe_load(b.playbook.read_text())
    seen = tmp_path / "seen"
    seen.mkdir()
    book["health"]["checks"].append(
        {
            "name": "every-file-parses",
            "run": (
                "python3 -c 'import json,os,pathlib; fs=os.environ[\"ROLLOUT_FILES\"].splitlines(); "
                "[json.load(open(f)) for f in fs]; "
                f"pathlib.Path(\"{seen}\", os.environ[\"ROLLOUT_HOST\"] + \"-\" + os.environ[\"ROLLOUT_STAGE\"])"
                ".write_text(chr(10).join(fs))'"
            ),
        }
    )
    b.playbook.write_text(yaml.safe_dump(book, sort_keys=False))
    assert b.cli("start", str(b.playbook)).returncode == 0
    shadow = (seen / "dev-01-shadow").read_text().splitlines()  # in shadow: the shadow copies
    assert shadow == [str(b.file("dev-01", "opencode.json.rollout-shadow")), str(b.file("dev-01", "oh-my-opencode.json.rollout-shadow"))]
    result = b.cli("advance")
    assert result.returncode == 0, result.stdout + result.stderr
    result = b.cli("advance")
    assert result.returncode == 0, result.stdout + result.stderr
    live = (seen / "dev-01-100%").read_text().splitlines()
    assert live == [str(b.file("dev-01", "opencode.json")), str(b.file("dev-01", "oh-my-opencode.json"))]
