"""The dashboard's series from journal gate events (pure): points, bounds, old journals, thinning."""

from __future__ import annotations

from typing import Any

from rollout.dashboard.series import decisions, last_results, metric_series, regression_bound, thinned


def gate(time: str, stage: str, *measurements: dict[str, Any], decision: str = "pass") -> dict[str, Any]:
    return {
        "time": time,
        "event": "gate",
        "stage": stage,
        "decision": decision,
        "verdict": {"measurements": list(measurements)},
    }


def metric(
    check: str, value: float | None, baseline: float | None, outcome: str = "pass", **details: Any
) -> dict[str, Any]:
    return {
        "check": check,
        "host": None,
        "outcome": outcome,
        "why": f"{check} {value}",
        "enforce": True,
        "details": {"metric": "error_rate", "value": value, "baseline": baseline, "samples": 100, **details},
    }


LIMITS = {
    "max": 0.05,
    "min": None,
    "max_regression": 0.1,
    "lower_is_better": True,
    "unit": "ratio",
    "per": "",
}


def test_each_look_is_a_point_with_its_bounds_and_shadow_looks_are_not() -> None:
    events = [
        gate("2026-12-01T10:00:00.000+00:00", "shadow", metric("err", None, None)),
        {"time": "2026-12-01T10:00:01.000+00:00", "event": "stage-entered", "stage": "25%"},
        gate("2026-12-01T10:01:00.000+00:00", "25%", metric("err", 0.02, 0.01, limits=LIMITS)),
        gate(
            "2026-12-01T10:02:00.000+00:00",
            "25%",
            metric("err", 0.04, 0.01, "inconclusive", limits=LIMITS, expected=0.012),
            {"check": "has-model", "host": "h1", "outcome": "pass", "why": "ok", "enforce": True},
            decision="inconclusive",
        ),
    ]
    (err,) = metric_series(events)
    assert (err["check"], err["unit"], err["why"]) == ("err", "ratio", "err 0.04")
    assert [p["canary"] for p in err["points"]] == [0.02, 0.04]
    assert [p["t"] for p in err["points"]] == [1796119260.0, 1796119320.0]
    first, second = err["points"]
    assert first["regression_bound"] == 0.01 * 1.1  # no expectation journaled: the baseline's
    assert abs(second["regression_bound"] - 0.012 * 1.1) < 1e-12  # the difference-in-differences'
    assert (second["max"], second["min"], second["outcome"]) == (0.05, None, "inconclusive")
    assert decisions(events) == {("shadow", "pass"): 1, ("25%", "pass"): 1, ("25%", "inconclusive"): 1}
    assert last_results(events) == {"err": {"inconclusive": 1}, "has-model": {"pass": 1}}


def test_a_journal_from_before_the_bounds_were_numbers_still_plots_its_values() -> None:
    (err,) = metric_series([gate("2026-12-01T10:01:00+00:00", "25%", metric("err", 0.02, float("nan")))])
    (p,) = err["points"]
    assert (err["unit"], p["canary"], p["baseline"], p["max"], p["regression_bound"]) == (
        "ratio",
        0.02,
        None,
        None,
        None,
    )


def test_regression_bound_for_a_metric_where_higher_is_better() -> None:
    limits = {**LIMITS, "lower_is_better": False}
    assert regression_bound({"limits": limits, "baseline": 0.9}) == 0.9 * 0.9


def test_thinning_keeps_the_ends_and_every_failure() -> None:
    looks = [
        gate(
            f"2026-12-01T10:{i // 60:02d}:{i % 60:02d}+00:00",
            "25%",
            metric("err", i / 1000, 0.01, "fail" if i == 333 else "pass"),
        )
        for i in range(1000)
    ]
    (full,) = metric_series(looks)
    (thin,) = thinned([full], 100)
    assert thin["looks"] == 1000 and 95 <= len(thin["points"]) <= 102
    assert thin["points"][0] == full["points"][0] and thin["points"][-1] == full["points"][-1]
    assert any(p["outcome"] == "fail" for p in thin["points"])
    assert thinned([full], 5000) == [full]
