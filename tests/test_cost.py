"""Cost projection checked against a hand-computed example."""

from __future__ import annotations

import pytest

from rollout.models import catalog, cost
from rollout.models.usage import UsageRecord

SONNET, PICKLE, GPT52, MINI = (
    "anthropic/claude-sonnet-4-5", "opencode/big-pickle", "openai/gpt-5.2", "openai/gpt-5-mini",
)  # fmt: skip


def rec(ts: float, agent: str, model: str, inp: int, out: int) -> UsageRecord:
    return UsageRecord(ts, agent, model, inp, out, 0.0, 1.0, "success")


# 12 hours of records, so every figure doubles to a day.
RECORDS = [
    rec(0, "CoderAgent", SONNET, 100_000, 10_000),
    rec(10_000, "TaskManager", SONNET, 500_000, 50_000),
    rec(21_600, "CoderAgent", SONNET, 200_000, 20_000),
    rec(43_200, "CoderAgent", SONNET, 300_000, 30_000),
]
BASELINE = {"CoderAgent": {SONNET: 1.0}, "TaskManager": {SONNET: 1.0}}
CANDIDATE = {"CoderAgent": {PICKLE: 1.0}, "TaskManager": {GPT52: 1.0}}


def hand_example(bounds=()) -> cost.Projection:
    usage = cost.usage_from_records(RECORDS)
    return cost.project(BASELINE, CANDIDATE, usage, catalog.builtin(), bounds)


def test_usage_is_summed_per_agent():
    usage = cost.usage_from_records(RECORDS)
    assert usage.seconds == 43_200 and usage.records == 4
    assert usage.agents["CoderAgent"] == cost.AgentUsage("CoderAgent", 3, 600_000, 60_000, {SONNET: 660_000})


def test_projection_matches_the_hand_computation():
    p = hand_example()
    coder, tasks = p.rows
    # CoderAgent: 1.2M in + 0.12M out per day; Sonnet $3/$15 -> 3.60 + 1.80; Big Pickle is free.
    assert (coder.calls_per_day, coder.input_per_day, coder.output_per_day) == (6, 1_200_000, 120_000)
    assert coder.baseline_per_day == pytest.approx(5.40)
    assert coder.candidate_per_day == 0.0
    # TaskManager: 1M in + 0.1M out per day; Sonnet 3.00 + 1.50; GPT-5.2 $1.75/$14 -> 1.75 + 1.40.
    assert tasks.baseline_per_day == pytest.approx(4.50)
    assert tasks.candidate_per_day == pytest.approx(3.15)
    assert p.baseline_per_day == pytest.approx(9.90)
    assert p.candidate_per_day == pytest.approx(3.15)
    assert p.saving_per_day == pytest.approx(6.75)
    assert p.saving_percent == pytest.approx(68.1818, abs=1e-4)
    data = p.to_json()
    assert data["baseline_usd"]["month"] == pytest.approx(9.90 * 365 / 12)  # 301.125
    assert data["candidate_usd"]["year"] == pytest.approx(1149.75)
    assert data["saving_usd"]["year"] == pytest.approx(2463.75)


def test_summary_lines():
    bounds = [cost.CostBound("daily-cost", 3.0), cost.CostBound("daily-cost-alert", 50.0, enforce=False)]
    assert cost.summary_lines(hand_example(bounds)) == [
        "cost projection (4 usage records over 12.0 h):",
        "  agent         calls/day  baseline/day  candidate/day  models",
        "  CoderAgent            6         $5.40          $0.00  "
        "anthropic/claude-sonnet-4-5 -> opencode/big-pickle",
        "  TaskManager           2         $4.50          $3.15  anthropic/claude-sonnet-4-5 -> "
        "openai/gpt-5.2",
        "  total per day    baseline $9.90  candidate $3.15",
        "  total per month  baseline $301.12  candidate $95.81",
        "  total per year   baseline $3,613.50  candidate $1,149.75",
        "  saving: $6.75/day, $2,463.75/year (68.2%)",
        "  ABOVE bound daily-cost: candidate $3.15/day > max $3.00/day",
    ]


def test_bound_is_flagged_only_when_exceeded():
    p = hand_example([cost.CostBound("daily-cost", 100.0)])
    assert p.breaches() == []
    assert p.to_json()["bounds"] == [
        {"check": "daily-cost", "max_per_day": 100.0, "enforce": True, "exceeded": False}
    ]


def test_no_usage_says_so_instead_of_inventing_numbers():
    p = cost.project(BASELINE, CANDIDATE, cost.usage_from_records([]), catalog.builtin())
    assert not p.available
    assert cost.summary_lines(p) == [
        "cost projection: not available (no usage recorded: nothing to project from)"
    ]
    one = cost.usage_from_records([rec(5, "A", MINI, 10, 10)])
    assert cost.project({}, {}, one, catalog.builtin()).reason == (
        "1 usage record(s) all at one instant: no time span to project a day from"
    )


def test_agents_missing_from_a_config_use_default_then_recorded_models():
    records = [rec(0, "Ghost", MINI, 1_000_000, 0), rec(86_400, "Other", MINI, 1_000_000, 0)]
    usage = cost.usage_from_records(records)
    p = cost.project({"*": {SONNET: 1.0}}, {}, usage, catalog.builtin())
    ghost, other = p.rows
    assert (ghost.baseline_model, ghost.candidate_model) == (SONNET, SONNET)  # unchanged
    assert ghost.baseline_per_day == pytest.approx(3.0)
    p = cost.project({}, {}, usage, catalog.builtin())
    assert (p.rows[0].baseline_model, p.rows[0].baseline_per_day) == (MINI, pytest.approx(0.25))


def test_unpriced_model_gives_no_total_and_a_note():
    usage = cost.usage_from_records(RECORDS)
    p = cost.project(BASELINE, {"CoderAgent": {"acme/unknown": 1.0}}, usage, catalog.builtin())
    assert p.candidate_per_day is None and p.saving_per_day is None
    assert p.notes == ("CoderAgent: no price in the catalog for acme/unknown",)


def test_weighted_shares_split_the_cost():
    usage = cost.usage_from_records([rec(0, "g", MINI, 1_000_000, 0), rec(86_400, "g", MINI, 1_000_000, 0)])
    p = cost.project({"g": {MINI: 0.5, SONNET: 0.5}}, {"g": {MINI: 1.0}}, usage, catalog.builtin())
    # 2M input tokens a day: half at $0.25, half at $3 -> 0.25 + 3.00
    assert p.baseline_per_day == pytest.approx(3.25)
    assert p.rows[0].baseline_model == "anthropic/claude-sonnet-4-5 50% + openai/gpt-5-mini 50%"


def test_bounds_from_playbook_checks():
    checks = [
        {"name": "err", "metric": "error_rate", "max": 0.05},
        {"name": "daily-cost", "metric": "cost_per_day_usd", "max": 100},
        {"name": "alert", "metric": "cost_per_day_usd", "max": 50, "enforce": False},
        {"name": "odd", "metric": "cost_per_day_usd", "max_regression": 0.1},
    ]
    assert cost.bounds_from_checks(checks) == [
        cost.CostBound("daily-cost", 100.0, True),
        cost.CostBound("alert", 50.0, False),
    ]
