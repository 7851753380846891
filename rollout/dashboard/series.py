"""Each metric check's looks over time, from the journal's gate events (pure; no I/O).

Every `gate` event carries the verdict's measurements; a metric check's details hold the canary's
value, the baseline's, and (since the bounds are journaled as numbers, `details.limits`) its `max`,
`min` and `max_regression`. These are the points the dashboard plots.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

Outcomes = dict[str, int]  # outcome -> how many measurements had it

# Units of the metrics journaled before `details.limits` existed.
_UNITS = {
    "error_rate": "ratio",
    "success_rate": "ratio",
    "failover_rate": "ratio",
    "latency_mean_s": "s",
    "latency_p95_s": "s",
    "cost_per_day_usd": "usd_per_day",
    "cost_usd": "usd_per_window",
    "tokens_per_call": "tokens",
}


def epoch(stamp: Any) -> float | None:
    """Return epoch seconds of a journal time (ISO 8601), None when it is not one."""
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def regression_bound(details: dict[str, Any]) -> float | None:
    """Return the value the canary may reach before `max_regression` is breached: the margin over
    what the gate compared it with (the difference-in-differences' expectation, else the baseline)."""
    limits = details.get("limits") or {}
    margin = _number(limits.get("max_regression"))
    reference = _number(details.get("expected"))
    if reference is None:
        reference = _number(details.get("baseline"))
    if margin is None or reference is None:
        return None
    return reference * (1 + margin if limits.get("lower_is_better", True) else 1 - margin)


def metric_series(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one entry per metric check, in the order checks first appear, with a point per look
    that measured it: time, stage, canary and baseline values, bounds, outcome, samples."""
    checks: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("event") != "gate" or not isinstance(event.get("verdict"), dict):
            continue
        t = epoch(event.get("time"))
        if t is None:
            continue
        for m in event["verdict"].get("measurements") or []:
            details = m.get("details") if isinstance(m, dict) else None
            if not isinstance(details, dict) or not isinstance(details.get("metric"), str):
                continue
            canary, baseline = _number(details.get("value")), _number(details.get("baseline"))
            if canary is None and baseline is None:
                continue  # shadow, or no calls yet: nothing to draw
            found = details.get("limits")
            limits: dict[str, Any] = found if isinstance(found, dict) else {}
            metric = details["metric"]
            entry = checks.setdefault(
                str(m.get("check")),
                {
                    "check": str(m.get("check")),
                    "metric": metric,
                    "unit": limits.get("unit") or _UNITS.get(metric, ""),
                    "per": limits.get("per") or ("/day" if metric == "cost_per_day_usd" else ""),
                    "enforce": bool(m.get("enforce", True)),
                    "bound": details.get("bound"),
                    "points": [],
                },
            )
            entry["bound"] = details.get("bound")
            entry["why"] = m.get(
                "why"
            )  # the last look's sentence (a day of looks would repeat it 1440 times)
            entry["points"].append(
                {
                    "t": t,
                    "stage": event.get("stage"),
                    "look": details.get("look"),
                    "canary": canary,
                    "baseline": baseline,
                    "max": _number(limits.get("max")),
                    "min": _number(limits.get("min")),
                    "regression_bound": regression_bound(details),
                    "outcome": m.get("outcome"),
                    "samples": details.get("samples"),
                    "baseline_samples": details.get("baseline_samples"),
                }
            )
    return list(checks.values())


def thinned(checks: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Return the checks with at most about `limit` points each, for a plot no wider than that:
    the looks are cut into `limit` stretches of time, each keeping its last point and every
    failed one (a failure is never thinned away); the first and last looks are always kept."""
    out = []
    for check in checks:
        points = check["points"]
        if limit < 2 or len(points) <= limit:
            out.append(check)
            continue
        t0, t1 = points[0]["t"], points[-1]["t"]
        width = (t1 - t0) / limit or 1.0
        buckets = [min(limit - 1, int((p["t"] - t0) / width)) for p in points]
        kept: list[dict[str, Any]] = []
        for i, p in enumerate(points):
            last_of_bucket = i + 1 == len(points) or buckets[i + 1] != buckets[i]
            if i == 0 or last_of_bucket or p["outcome"] == "fail":
                kept.append(p)
        out.append({**check, "points": kept, "looks": len(points)})
    return out


def last_results(events: list[dict[str, Any]]) -> dict[str, Outcomes]:
    """Return, for each check, how many of its measurements had each outcome at its last look."""
    found: dict[str, Outcomes] = {}
    for event in events:
        if event.get("event") != "gate" or not isinstance(event.get("verdict"), dict):
            continue
        look: dict[str, Outcomes] = {}
        for m in event["verdict"].get("measurements") or []:
            if isinstance(m, dict) and isinstance(m.get("outcome"), str):
                look.setdefault(str(m.get("check")), {}).setdefault(m["outcome"], 0)
                look[str(m.get("check"))][m["outcome"]] += 1
        found.update(look)
    return found


def decisions(events: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Return how many gate decisions of each kind each stage had: (stage, decision) -> count."""
    counts: dict[tuple[str, str], int] = {}
    for event in events:
        if event.get("event") == "gate" and isinstance(event.get("decision"), str):
            key = (str(event.get("stage")), event["decision"])
            counts[key] = counts.get(key, 0) + 1
    return counts
