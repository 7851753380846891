"""Budget windows: `metric: cost_usd` with `window: 7d` and `max: 300` is $300 a week, through the CLI."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from rollout.checks.metrics.definitions import METRICS, cohort_from_records, format_value
from rollout.models import cost
from rollout.models.usage import UsageRecord, dump_usage_lines
from tests.conftest import LocalFleet, make_fleet

USAGE = "fleet/{host}/usage.jsonl"


def budget(**keys: Any) -> dict[str, Any]:
    check: dict[str, Any] = {
        "name": "weekly-budget",
        "metric": "cost_usd",
        "source": {"type": "usage-log", "path": USAGE},
        "window": "7d",
        "max": 300,
        "min_samples": 20,
    }
    check.update(keys)
    return {k: v for k, v in check.items() if v is not None}


def spend(fleet: LocalFleet, canary_cost: float, baseline_cost: float, per_host: int = 100) -> list[str]:
    """Write calls on every host (each canary call costing `canary_cost`); return the canary."""
    canary = [h for h, s in fleet.status()["hosts"].items() if s["state"] == "candidate"]
    now = time.time()
    for host in fleet.hosts:
        each = canary_cost if host in canary else baseline_cost
        records = [
            UsageRecord(now + i / per_host, "build", "opencode/big-pickle", 1000, 200, each, 3.0, "success")
            for i in range(per_host)
        ]
        (fleet.root / USAGE.replace("{host}", host)).write_text(dump_usage_lines(records))
    return canary


def live_at_25(fleet: LocalFleet) -> None:
    assert fleet.cli("start", str(fleet.playbook)).exit_code == 0
    result = fleet.cli("advance")
    assert result.exit_code == 0, result.output


def test_a_budget_over_its_window_rolls_back_naming_the_spend_per_window(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[budget()])
    live_at_25(fleet)
    spend(fleet, canary_cost=0.50, baseline_cost=0.0)  # 50 $/s per canary host: far over $300/7d
    result = fleet.cli("advance")
    assert result.exit_code == 3, result.output
    assert all(b == fleet.baseline for b in fleet.bytes_on().values())
    status = fleet.status()
    assert status["state"] == "rolled-back"
    assert "weekly-budget" in status["reason"] and "is above max $300.00/7d" in status["reason"]
    (m,) = status["last_verdict"]["measurements"]
    d = m["details"]
    assert d["metric"] == "cost_usd" and d["bound"] == "max $300.00/7d"
    assert d["shown"]["value"].endswith("/7d") and d["value"] > 300
    assert d["limits"] == {
        "max": 300.0,
        "min": None,
        "max_regression": None,
        "lower_is_better": True,
        "unit": "usd_per_window",
        "per": "/7d",
    }


def test_a_budget_the_candidate_stays_inside_passes_and_the_value_scales_with_the_window(
    tmp_path: Path,
) -> None:
    fleet = make_fleet(tmp_path, checks=[budget(), budget(name="daily", window="1d", max=1000)])
    live_at_25(fleet)
    spend(fleet, canary_cost=1e-9, baseline_cost=1e-9)
    result = fleet.cli("advance")
    assert result.exit_code == 0, result.output
    week, day = fleet.status()["last_verdict"]["measurements"]
    assert week["outcome"] == "pass" and day["outcome"] == "pass"
    assert week["details"]["shown"]["value"].endswith("/7d")
    assert day["details"]["shown"]["value"].endswith("/1d")


def test_a_budget_projects_the_spend_rate_over_its_window_for_the_whole_fleet() -> None:
    records = [UsageRecord(1000.0 + i, "build", "m/x", 0, 0, 0.01, 1.0, "success") for i in range(100)]
    cost_usd = METRICS["cost_usd"]
    week, day = cost_usd.over_window(7 * 86400), cost_usd.over_window(86400)
    # 100 calls at $0.01 over 2 hosts x 100 s: $0.005 per host-second, for 8 hosts over the span.
    w = cohort_from_records(week, "canary", ("a", "b"), records, 200.0, 8)
    d = cohort_from_records(day, "canary", ("a", "b"), records, 200.0, 8)
    assert w.value == pytest.approx(0.005 * 7 * 86400 * 8)
    assert d.value == pytest.approx(0.005 * 86400 * 8)
    assert format_value(week, w.value) == "$24,192.00/7d"
    daily = cohort_from_records(METRICS["cost_per_day_usd"], "canary", ("a", "b"), records, 200.0, 8)
    assert daily.value == pytest.approx(d.value)
    assert (week.per, cost_usd.over_window(36 * 3600).per, cost_usd.over_window(90).per) == (
        "/7d",
        "/36h",
        "/90s",
    )


def test_a_budget_the_baseline_breaches_too_holds_instead_of_blaming_the_candidate(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, checks=[budget()])
    live_at_25(fleet)
    spend(fleet, canary_cost=0.5, baseline_cost=0.5)
    before = fleet.bytes_on()
    result = fleet.cli("advance")
    assert result.exit_code == 5, result.output
    assert "fleet-wide" in result.stdout
    assert fleet.bytes_on() == before


def test_budget_validation_names_the_file_and_the_field(tmp_path: Path) -> None:
    cases = [
        ({"window": None}, "health.checks[0].window: missing: a cost_usd check is a budget over its window"),
        ({"max": None}, "health.checks[0]: a metric check needs max, min or max_regression"),
        ({"window": "7 days"}, "health.checks[0].window: must be a duration like 10m, got '7 days'"),
        ({"window": "0s"}, "health.checks[0].window: must be a duration like 10m"),
        ({"max": -1}, "health.checks[0].max: must be a number >= 0, got -1"),
        ({"max": "300$"}, "health.checks[0].max: must be a number >= 0, got '300$'"),
    ]
    for i, (keys, message) in enumerate(cases):
        fleet = make_fleet(tmp_path / str(i), checks=[budget(**keys)])
        result = fleet.cli("validate", str(fleet.playbook), "--json")
        assert result.exit_code == 2, (keys, result.output)
        error = json.loads(result.stdout)["error"]["message"]
        assert re.match(rf"{re.escape(str(fleet.playbook))}:\d+: ", error), error  # file:line: field: message
        assert message in error, (keys, error)
        assert not fleet.state.exists()


def test_plan_reads_a_budget_as_its_daily_rate() -> None:
    checks = [
        {"name": "daily-cost", "metric": "cost_per_day_usd", "max": 100},
        {"name": "weekly", "metric": "cost_usd", "window": "7d", "max": 300, "enforce": False},
    ]
    weekly = cost.CostBound("weekly", 300 / 7, False, (300.0, 7 * 86400.0))
    assert cost.bounds_from_checks(checks) == [cost.CostBound("daily-cost", 100.0, True), weekly]
    assert weekly.to_json() == {
        "check": "weekly",
        "max_per_day": 300 / 7,
        "enforce": False,
        "budget": {"max": 300.0, "window_s": 604800.0},
    }
