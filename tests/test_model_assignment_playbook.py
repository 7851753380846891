"""The shipped model-assignment playbooks through the real CLI: validate, plan's cost, start's journal."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rollout.cli import cli

PLAYBOOKS = Path(__file__).parent.parent / "playbooks"
SONNET = "anthropic/claude-sonnet-4-5"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_shipped_playbooks_validate():
    result = run("validate", str(PLAYBOOKS / "model-assignment.yml"))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{PLAYBOOKS / 'model-assignment.yml'}: ok: 4 host(s) over ssh, stages shadow -> 25% -> 50% "
        "-> 100%, 7 check(s), candidate opencode\n"
    )
    result = run("validate", str(PLAYBOOKS / "oh-my-opencode.yml"))
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("3 check(s), candidate oh-my-opencode\n")


def test_shipped_assignment_is_the_plans():
    doc = json.loads((PLAYBOOKS / "model-assignment" / "opencode.json").read_text())
    got = {name: (a["model"], a["temperature"]) for name, a in doc["agent"].items()}
    assert got == {
        "OpenAgent": ("opencode/big-pickle", 0.2),
        "OpenCoder": ("openai/gpt-5.2", 0.1),
        "CoderAgent": ("opencode/big-pickle", 0.0),
        "TestEngineer": ("openai/gpt-5-mini", 0.1),
        "CodeReviewer": ("openai/gpt-5.2", 0.0),
        "BuildAgent": ("openai/gpt-5-mini", 0.1),
        "ContextScout": ("google/gemini-2.0-flash-lite", 0.0),
        "ExternalScout": ("google/gemini-2.0-flash", 0.2),
        "TaskManager": ("openai/gpt-5.2", 0.0),
        "DocWriter": ("openai/gpt-5-mini", 0.2),
        "OpenFrontendSpecialist": ("anthropic/claude-sonnet-4-5", 0.3),
        "OpenDevopsSpecialist": ("openai/gpt-5.2", 0.0),
        "ContextOrganizer": ("google/gemini-2.0-flash", 0.1),
    }
    chains = json.loads((PLAYBOOKS / "model-assignment" / "oh-my-opencode.json").read_text())["agents"]
    assert chains["CoderAgent"]["fallback_models"] == ["openai/gpt-5-mini", "opencode/qwen3-coder"]
    assert chains["TaskManager"]["fallback_models"] == [SONNET, "google/gemini-3-pro-preview"]
    assert {n: a["model"] for n, a in chains.items()} == {n: m for n, (m, _) in got.items()}


def test_shipped_guardrails():
    checks = {
        c["name"]: c
        for c in yaml.safe_load((PLAYBOOKS / "model-assignment.yml").read_text())["health"]["checks"]
    }
    assert (checks["error-rate"]["max"], checks["error-rate"]["max_regression"]) == (0.05, 0.10)
    assert (checks["mean-latency"]["max"], checks["mean-latency"]["max_regression"]) == (10, 0.10)
    assert checks["failover-rate"]["max"] == 0.15
    assert checks["daily-cost"]["max"] == 100
    assert (checks["daily-cost-alert"]["max"], checks["daily-cost-alert"]["enforce"]) == (50, False)
    weekly = checks["weekly-budget"]
    assert (weekly["metric"], weekly["window"], weekly["max"], weekly["enforce"]) == (
        "cost_usd",
        "7d",
        300,
        False,
    )


def broken_copy(tmp_path: Path) -> Path:
    shutil.copy(PLAYBOOKS / "model-assignment.yml", tmp_path / "model-assignment.yml")
    (tmp_path / "model-assignment").mkdir()
    doc = json.loads((PLAYBOOKS / "model-assignment" / "opencode.json").read_text())
    doc["fallbacks"] = {"models": {"openai/gpt-5.2": [SONNET]}}
    doc["agent"]["CoderAgent"]["model"] = "opencode/big-pickel"
    doc["agent"]["DocWriter"]["temperature"] = 3
    doc["agent"]["BuildAgent"]["fallback_models"] = ["opencode/qwen3-coder"]
    (tmp_path / "model-assignment" / "opencode.json").write_text(json.dumps(doc, indent=2))
    return tmp_path / "model-assignment.yml"


def test_broken_copy_exits_2_with_every_problem(tmp_path):
    result = run("validate", str(broken_copy(tmp_path)))
    assert result.exit_code == 2
    source = tmp_path / "model-assignment" / "opencode.json"
    assert result.stdout == ""
    assert result.stderr == "".join(
        line + "\n"
        for line in [
            f"error: {source}: the candidate config (opencode) is invalid: 3 error(s)",
            f"  {source}:22: agent.CoderAgent.model: agent CoderAgent: unknown model opencode/big-pickel "
            "(closest known: opencode/big-pickle)",
            f"  {source}:42: warning: agent.BuildAgent.fallback_models: agent BuildAgent: unknown agent key "
            "'fallback_models' (OpenCode passes it to the provider as an option)",
            f"  {source}:68: agent.DocWriter.temperature: agent DocWriter: temperature 3 is outside 0-2",
            f"  {source}:89: fallbacks: unknown top-level key 'fallbacks' (OpenCode refuses the file)",
        ]
    )


def test_validate_in_a_real_subprocess(tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "rollout", "validate", str(PLAYBOOKS / "model-assignment.yml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (ok.returncode, ok.stderr) == (0, "")
    bad = subprocess.run(
        [sys.executable, "-m", "rollout", "validate", str(broken_copy(tmp_path))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.count(": agent ") == 3 and "unknown top-level key 'fallbacks'" in bad.stderr


# --- plan and start on a local copy with recorded usage ----------------------------------


def usage_line(ts: float, agent: str, inp: int, out: int) -> str:
    return json.dumps({"ts": ts, "gen_ai.agent.name": agent, "gen_ai.request.model": SONNET,
                       "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
                       "cost_usd": 0.0, "duration_s": 2.0, "outcome": "success"})  # fmt: skip


def local_copy(tmp_path: Path, daily_max: float = 100) -> Path:
    """The shipped playbook on two local hosts whose agents all run on Sonnet today."""
    root = tmp_path / "pb"
    shutil.copytree(PLAYBOOKS / "model-assignment", root / "model-assignment")
    doc = yaml.safe_load((PLAYBOOKS / "model-assignment.yml").read_text())
    doc["config"]["path"] = "fleet/{host}/opencode.json"
    doc["targets"] = {"transport": "local", "hosts": ["dev-01", "dev-02"]}
    for check in doc["health"]["checks"]:
        if "source" in check:
            check["source"] = {"type": "usage-log", "path": "fleet/{host}/usage.jsonl"}
        if check["name"] == "daily-cost":
            check["max"] = daily_max
    (root / "playbook.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    today = {"$schema": "https://opencode.ai/config.json", "model": SONNET}
    # 12 hours of calls over both hosts: the numbers of tests/test_cost.py, by hand.
    usage = {
        "dev-01": [usage_line(0, "CoderAgent", 100_000, 10_000),
                   usage_line(43_200, "CoderAgent", 300_000, 30_000)],
        "dev-02": [usage_line(10_000, "TaskManager", 500_000, 50_000),
                   usage_line(21_600, "CoderAgent", 200_000, 20_000)],
    }  # fmt: skip
    for host, lines in usage.items():
        (root / "fleet" / host).mkdir(parents=True)
        (root / "fleet" / host / "opencode.json").write_text(json.dumps(today, indent=2))
        (root / "fleet" / host / "usage.jsonl").write_text("\n".join(lines) + "\n")
    return root / "playbook.yml"


COST_LINES = [
    "cost projection (4 usage records over 12.0 h):",
    "  agent         calls/day  baseline/day  candidate/day  models",
    "  CoderAgent            6         $5.40          $0.00  "
    "anthropic/claude-sonnet-4-5 -> opencode/big-pickle",
    "  TaskManager           2         $4.50          $3.15  anthropic/claude-sonnet-4-5 -> openai/gpt-5.2",
    "  total per day    baseline $9.90  candidate $3.15",
    "  total per month  baseline $301.12  candidate $95.81",
    "  total per year   baseline $3,613.50  candidate $1,149.75",
    "  saving: $6.75/day, $2,463.75/year (68.2%)",
]


def test_plan_shows_the_cost_projection(tmp_path):
    playbook = local_copy(tmp_path, daily_max=3)
    result = run("plan", str(playbook))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index(COST_LINES[0])
    assert lines[start:] == [*COST_LINES, "  ABOVE bound daily-cost: candidate $3.15/day > max $3.00/day"]
    data = json.loads(run("plan", "--json", str(playbook)).stdout)["cost"]
    assert data["baseline_usd"]["day"] == pytest.approx(9.90)
    assert data["saving_percent"] == pytest.approx(68.1818, abs=1e-4)
    assert [b["exceeded"] for b in data["bounds"]] == [True, False, False]


def test_plan_says_when_no_usage_is_recorded(tmp_path):
    playbook = local_copy(tmp_path)
    for host in ("dev-01", "dev-02"):
        (playbook.parent / "fleet" / host / "usage.jsonl").unlink()
    result = run("plan", str(playbook))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "cost projection: not available (no usage recorded: nothing to project from)"
    )


def test_start_journals_the_projection(tmp_path):
    playbook = local_copy(tmp_path)
    state = tmp_path / "state"
    result = run("--state-dir", str(state), "start", str(playbook))
    assert result.exit_code == 0, result.output
    assert COST_LINES[-1] in result.stdout.splitlines()
    (folder,) = [p for p in state.iterdir() if p.is_dir()]
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    (projected,) = [e for e in events if e["event"] == "cost-projection"]
    assert projected["cost"]["candidate_usd"]["day"] == pytest.approx(3.15)
    assert projected["cost"]["bounds"] == [
        {"check": "daily-cost", "max_per_day": 100.0, "enforce": True, "exceeded": False},
        {"check": "daily-cost-alert", "max_per_day": 50.0, "enforce": False, "exceeded": False},
        {
            "check": "weekly-budget",
            "max_per_day": pytest.approx(300 / 7),
            "enforce": False,
            "budget": {"max": 300.0, "window_s": 604800.0},
            "exceeded": False,
        },
    ]
    assert [e["event"] for e in events].index("started") < [e["event"] for e in events].index(
        "cost-projection"
    )
