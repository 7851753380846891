"""Judge one metric: canary against absolute bounds and against the baseline, with why."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rollout.health.base import Outcome
from rollout.metrics.definitions import Cohort, MetricDef, format_value
from rollout.metrics.stats import rate_regression_p, relative_regression, scale_regression_p

DEFAULT_ALPHA = 0.01


@dataclass(frozen=True)
class Bounds:
    """A metric check's limits: absolute `max`/`min`, `max_regression` vs baseline, `min_samples`."""

    max: float | None = None
    min: float | None = None
    max_regression: float | None = None
    min_samples: int = 10
    alpha: float = DEFAULT_ALPHA

    def describe(self, metric: MetricDef) -> str:
        parts = []
        if self.max is not None:
            parts.append(f"max {format_value(metric, self.max)}")
        if self.min is not None:
            parts.append(f"min {format_value(metric, self.min)}")
        if self.max_regression is not None:
            parts.append(f"regression <= {self.max_regression * 100:g}%")
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Assessment:
    """The verdict on one metric, the sentence explaining it, and the numbers behind it."""

    outcome: Outcome  # pass | fail | inconclusive
    why: str
    details: dict[str, Any] = field(default_factory=dict)


def assess(metric: MetricDef, bounds: Bounds, canary: Cohort, baseline: Cohort | None) -> Assessment:
    """Decide pass / fail / inconclusive for the canary cohort (baseline None: no hosts left on it)."""

    def fmt(v: float | None) -> str:
        return format_value(metric, v)

    details: dict[str, Any] = {
        "metric": metric.name,
        "value": canary.value,
        "baseline": baseline.value if baseline is not None else None,
        "bound": bounds.describe(metric),
        "samples": canary.samples,
        "baseline_samples": baseline.samples if baseline is not None else None,
        "p_value": None,
        "regression": None,
    }
    details["shown"] = {"value": format_value(metric, canary.value)}
    if baseline is not None:
        details["shown"]["baseline"] = format_value(metric, baseline.value)
    notes = "".join(f" ({n})" for n in canary.notes + (baseline.notes if baseline else []))

    def verdict(outcome: Outcome, why: str, **extra: Any) -> Assessment:
        details.update(extra)
        return Assessment(outcome, why + notes, details)

    wants_baseline = bounds.max_regression is not None and baseline is not None
    short = [c for c in (canary, baseline if wants_baseline else None) if c is not None and _short(c, bounds)]
    if short:
        needed = max(bounds.min_samples - (c.samples or 0) for c in short)
        counts = ", ".join(f"{c.name} has {c.samples}" for c in short)
        return verdict(
            "inconclusive",
            f"{metric.name}: too few samples ({counts}, need {bounds.min_samples} each): "
            f"{needed} more needed",
            needed=needed,
        )
    if canary.value is None:
        return verdict(
            "inconclusive", f"{metric.name}: no data for the canary yet", needed=bounds.min_samples
        )
    value = canary.value
    seen = f"{metric.name} {fmt(value)} on canary ({_count(canary)})"
    if bounds.max is not None and value > bounds.max:
        return verdict("fail", f"{seen} is above max {fmt(bounds.max)}")
    if bounds.min is not None and value < bounds.min:
        return verdict("fail", f"{seen} is below min {fmt(bounds.min)}")
    if bounds.max_regression is None:
        return verdict("pass", f"{seen} is within {bounds.describe(metric)}")
    if baseline is None or baseline.value is None:
        return verdict("pass", f"{seen} is within bounds; no baseline hosts left to compare with")
    margin = bounds.max_regression
    rel = relative_regression(value, baseline.value, metric.lower_is_better)
    p = _p_value(metric, canary, baseline, margin)
    change = _change(rel)
    against = f"baseline {fmt(baseline.value)} ({_count(baseline)}): {change}"
    extra = {"p_value": p, "regression": rel if rel is None or math.isfinite(rel) else None}
    if p is None:
        if rel is not None and rel > margin:
            return verdict("fail", f"{seen} vs {against}, over the {margin * 100:g}% allowed", **extra)
        return verdict("pass", f"{seen} vs {against}, within {margin * 100:g}%", **extra)
    if p < bounds.alpha:
        return verdict(
            "fail",
            f"{seen} vs {against}, significantly over the {margin * 100:g}% allowed "
            f"(p={p:.2g} < {bounds.alpha:g})",
            **extra,
        )
    return verdict(
        "pass",
        f"{seen} vs {against}, not significantly over {margin * 100:g}% (p={p:.2g})",
        **extra,
    )


def _short(cohort: Cohort, bounds: Bounds) -> bool:
    return cohort.samples is not None and cohort.samples < bounds.min_samples


def _count(cohort: Cohort) -> str:
    hosts = f"{len(cohort.hosts)} host{'s' if len(cohort.hosts) != 1 else ''}"
    if cohort.samples is None:
        return hosts
    if cohort.events is not None:
        return f"{cohort.events}/{cohort.samples} calls, {hosts}"
    return f"{cohort.samples} calls, {hosts}"


def _change(rel: float | None) -> str:
    if rel is None:
        return "better"
    if math.isinf(rel):
        return "worse (baseline is 0)"
    if abs(rel) < 0.0005:
        return "no change"
    return f"{abs(rel) * 100:.1f}% {'worse' if rel > 0 else 'better'}"


def _p_value(metric: MetricDef, canary: Cohort, baseline: Cohort, margin: float) -> float | None:
    if metric.test == "rate":
        if None in (canary.events, canary.samples, baseline.events, baseline.samples):
            return None
        return rate_regression_p(
            canary.events or 0,
            canary.samples or 0,
            baseline.events or 0,
            baseline.samples or 0,
            margin,
            metric.lower_is_better,
        )
    if canary.values and baseline.values:
        return scale_regression_p(canary.values, baseline.values, margin, metric.lower_is_better)
    return None
