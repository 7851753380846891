"""Metric gates end to end through the CLI: inconclusive refuses, failure rolls back, status explains."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rollout.models.usage import UsageRecord, dump_usage_lines
from tests.conftest import LocalFleet, make_fleet

REPO = Path(__file__).resolve().parent.parent
USAGE = "fleet/{host}/usage.jsonl"


def error_gate(**keys: Any) -> dict[str, Any]:
    return {
        "name": "error-rate",
        "metric": "error_rate",
        "source": {"type": "usage-log", "path": USAGE},
        "max": 0.05,
        "max_regression": 0.10,
        "min_samples": 50,
        **keys,
    }


def calls(n: int, error_rate: float, seed: int, start: float, end: float) -> list[UsageRecord]:
    rng = random.Random(seed)
    return [
        UsageRecord(
            ts=start + (end - start) * i / n,
            agent="build",
            model="opencode/big-pickle",
            input_tokens=1000,
            output_tokens=200,
            cost_usd=0.002,
            duration_s=round(rng.uniform(2, 6), 3),
            outcome="error" if rng.random() < error_rate else "success",
        )
        for i in range(n)
    ]


def traffic(fleet: LocalFleet, per_host: int, canary_error_rate: float, future: float = 0.0) -> list[str]:
    """Write fresh usage on every host (canary hosts at the given error rate); return the canary."""
    canary = [h for h, s in fleet.status()["hosts"].items() if s["state"] == "candidate"]
    now = time.time() + future
    for i, host in enumerate(fleet.hosts):
        rate = canary_error_rate if host in canary else 0.01
        path = fleet.root / USAGE.replace("{host}", host)
        path.write_text(dump_usage_lines(calls(per_host, rate, i, now, now + 1)))
    return canary


def to_25_percent(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    result = fleet.cli("advance")  # shadow: metric checks do not measure, the candidate goes live
    assert result.exit_code == 0, result.output
    assert "gate shadow: PASS" in result.stdout


def test_inconclusive_gate_refuses_to_advance_and_says_how_many_more(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[error_gate()])
    to_25_percent(fleet)
    canary = traffic(fleet, per_host=10, canary_error_rate=0.5)
    before = fleet.bytes_on()
    result = fleet.cli("advance")
    assert result.exit_code == 5, result.output
    assert "gate 25%: INCONCLUSIVE: inconclusive: error-rate: error_rate: too few samples (canary has 20" in (
        result.stdout
    )
    assert "30 more needed" in result.stdout
    assert "not advancing (30 more samples needed); nothing changed, nothing rolled back" in result.stdout
    assert fleet.bytes_on() == before
    status = fleet.status()
    assert (status["state"], status["stage"]) == ("live", "25%")
    assert sorted(h for h, s in status["hosts"].items() if s["state"] == "candidate") == canary
    assert status["last_verdict"]["needed"] == 30


def test_error_rate_regression_rolls_back_with_the_numbers(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[error_gate()])
    to_25_percent(fleet)
    traffic(fleet, per_host=200, canary_error_rate=0.20)
    result = fleet.cli("advance")
    assert result.exit_code == 3, result.output
    assert "gate 25%: FAIL: error-rate: error_rate " in result.stdout
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())
    status = fleet.status()
    assert status["state"] == "rolled-back"
    assert "on canary (" in status["reason"] and "/400 calls, 2 hosts) is above max 5.0%" in status["reason"]
    (m,) = status["last_verdict"]["measurements"]
    assert m["details"]["samples"] == 400 and m["details"]["baseline_samples"] == 1200
    assert m["details"]["bound"] == "max 5.0%, regression <= 10%"


def test_status_shows_a_table_of_metric_verdicts(tmp_path: Path) -> None:
    observe = {
        "name": "latency",
        "metric": "latency_mean_s",
        "source": {"type": "usage-log", "path": USAGE},
        "max": 1,
        "enforce": False,
        "on_fleetwide": "fail",  # every host is above 1s: without this the breach is fleet-wide (held)
    }
    fleet = make_fleet(tmp_path, checks=[error_gate(), observe])
    to_25_percent(fleet)
    traffic(fleet, per_host=100, canary_error_rate=0.0)
    result = fleet.cli("advance")
    assert result.exit_code == 0, result.output  # the failing latency check only observes
    assert "latency @ local: fail: latency_mean_s " in result.stdout and "(observe only)" in result.stdout
    shown = fleet.cli("status")
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    header = next(line for line in lines if line.split()[:3] == ["check", "cohort", "baseline"])
    assert header.split() == ["check", "cohort", "baseline", "bound", "verdict", "why"]
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 1 :] if line.strip()}
    cohort, baseline, bound = rows["error-rate"].split()[1:4]
    assert (cohort, bound) == ("0.0%", "max")
    assert baseline.endswith("%") and float(baseline[:-1]) < 5
    assert "pass" in rows["error-rate"]
    assert "fail (observe)" in rows["latency"]


def test_run_auto_samples_during_the_bake_and_rolls_back_early(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[], stages=["shadow", {"percent": 25, "bake": "2m"}, 100])
    # Every host errs at 20% here, a fleet-wide breach: `on_fleetwide: fail` rolls back anyway.
    gate = error_gate(stages=[25], on_fleetwide="fail")
    fleet.rewrite(health={"interval": "0.2s", "checks": [gate]})
    # Calls stamped ahead (within the 60s clock-skew allowance) land in the canary's window once it
    # is live, so the first sample of the bake already sees them.
    for i, host in enumerate(fleet.hosts):
        path = fleet.root / USAGE.replace("{host}", host)
        path.write_text(dump_usage_lines(calls(200, 0.20, i, time.time() + 50, time.time() + 55)))
    result = fleet.cli("run", str(fleet.playbook), "--auto")
    assert result.exit_code == 3, result.output
    assert "gate 25%: FAIL: error-rate: error_rate " in result.stdout
    assert "rolling back: gate 25% failed while baking" in result.stdout
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())
    assert fleet.status()["state"] == "rolled-back"


def demo_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    for name in ("demo.yml", "demo-bad.yml"):
        shutil.copy(REPO / "playbooks" / name, folder / name)
    shutil.copytree(REPO / "playbooks" / "demo", folder / "demo", ignore=shutil.ignore_patterns("fleet"))
    return folder / "demo.yml"


def test_demo_bad_rolls_back_at_25_percent_with_the_reason(tmp_path: Path) -> None:
    playbook = demo_copy(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "rollout", "demo", "--bad", "--playbook", str(playbook)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "gate 25%: FAIL: error-rate: error_rate " in result.stdout
    assert "is above max 5.0%" in result.stdout
    assert "restored 2 host(s) to their baseline bytes; every touched host is back" in result.stdout
    baseline = (playbook.parent / "demo" / "opencode.baseline.json").read_bytes()
    fleet = playbook.parent / "demo" / "fleet"
    assert all((fleet / f"dev-0{i}" / "opencode.json").read_bytes() == baseline for i in range(1, 9))
    assert (fleet / "dev-01" / "usage.jsonl").stat().st_size > 0


def test_demo_rolls_the_good_assignment_to_100_percent(tmp_path: Path) -> None:
    playbook = demo_copy(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "rollout", "demo", "--playbook", str(playbook)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gate 25%: PASS" in result.stdout and "gate 50%: PASS" in result.stdout
    assert "complete: the candidate is live on every host" in result.stdout
    table = result.stdout[result.stdout.index(" check ") :]
    assert "error-rate" in table and "latency" in table and "pass (observe)" in table


def test_advance_again_reads_only_the_lines_added_since_the_last_advance(tmp_path: Path) -> None:
    """Across processes the cursors live in the rollout's blobs (metrics/...): a second `advance`
    reads only what each log gained."""
    import json

    from rollout.checks.metrics import stream

    fleet = make_fleet(tmp_path, checks=[error_gate(min_samples=10**6)])  # stays inconclusive
    to_25_percent(fleet)
    traffic(fleet, per_host=40, canary_error_rate=0.01)
    stream.forget_all()
    assert fleet.cli("advance").exit_code == 5

    def blobs() -> dict[str, dict[str, Any]]:
        found = sorted((fleet.rollout_dir() / "metrics").rglob("*.bin"))
        return {p.name: json.loads(p.read_bytes().split(b"\n", 1)[0]) for p in found}

    first = blobs()
    assert len(first) == len(fleet.hosts)
    assert all(h["read"] == {"lines": 40, "from_start": True} and h["n"] == 40 for h in first.values())
    now = time.time()
    for i, host in enumerate(fleet.hosts):
        with (fleet.root / USAGE.replace("{host}", host)).open("a") as f:
            f.write(dump_usage_lines(calls(3, 0.01, 100 + i, now, now + 1)))
    stream.forget_all()  # as a new process would: only the blobs are left
    assert fleet.cli("advance").exit_code == 5
    again = blobs()
    assert all(h["read"] == {"lines": 3, "from_start": False} and h["n"] == 43 for h in again.values())
    sizes = sorted((fleet.root / USAGE.replace("{host}", h)).stat().st_size for h in fleet.hosts)
    assert sorted(h["offset"] for h in again.values()) == sizes
