"""Judge one metric: canary against absolute bounds and against the baseline, with why.

Absolute bounds are decided on a one-sided interval (Wilson for rates, a t-interval on batch means
for means, a slice-robust interval on spend per host-second for cost): beyond the bound at the
look's confidence fails, inside the bound at the check's confidence passes, anything else is
inconclusive. The regression against the baseline is a difference-in-differences per canary host
when the hosts have calls from before their switch, so which hosts landed in the canary does not
decide. The look's alpha comes from `stats.look_alpha` (alpha spending over the stage's looks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rollout.checks.base import Outcome
from rollout.checks.metrics.bounds import DEFAULT_ALPHA, P95_SHARE, SUGGESTIVE_P, Bounds
from rollout.checks.metrics.definitions import (
    COST_PER_CALL,
    Cohort,
    HostPeriods,
    MetricDef,
    Period,
    batch_means,
    estimate,
    format_value,
    placebo_variance,
)
from rollout.checks.metrics.stats import (
    RatioEstimate,
    normal_isf,
    normal_sf,
    rate_regression_p,
    relative_regression,
    scale_regression_p,
    t_isf,
    wilson_interval,
)

__all__ = ["DEFAULT_ALPHA", "P95_SHARE", "SUGGESTIVE_P", "Bounds", "Assessment", "assess"]


@dataclass(frozen=True)
class Assessment:
    """The verdict on one metric, the sentence explaining it, and the numbers behind it."""

    outcome: Outcome  # pass | fail | inconclusive
    why: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Part:
    outcome: Outcome
    text: str  # a clause that follows "<metric> <value> on canary (<counts>)"
    needed: int | None = None


def assess(
    metric: MetricDef,
    bounds: Bounds,
    canary: Cohort,
    baseline: Cohort | None,
    alpha_look: float | None = None,
    hold_p: float | None = None,
) -> Assessment:
    """Decide pass / fail / inconclusive for the canary cohort (baseline None: no hosts left on it).
    `alpha_look` is what this look may spend of the check's alpha (default: all of it); a change
    over the margin with p below `hold_p` (default the check's alpha) is inconclusive, not a pass."""
    spend = bounds.alpha if alpha_look is None else alpha_look
    details = _details(metric, bounds, canary, baseline)
    notes = "".join(f" ({n})" for n in canary.notes + (baseline.notes if baseline else []))

    def verdict(outcome: Outcome, why: str, needed: int | None = None) -> Assessment:
        if needed:
            details["needed"] = needed
        return Assessment(outcome, why + notes, details)

    waiting = _waiting_for_data(metric, bounds, canary, baseline)
    if waiting is not None:
        return verdict(waiting.outcome, waiting.text, waiting.needed)
    parts: list[_Part] = []
    absolute = _absolute(metric, bounds, canary, baseline, spend, details)
    if absolute is not None:
        parts.append(absolute)
    if bounds.max_regression is not None:
        if baseline is None or baseline.value is None:
            parts.append(_Part("pass", "no baseline hosts left to compare with"))
        else:
            hold = bounds.alpha if hold_p is None else max(bounds.alpha, hold_p)
            parts.append(_regression(metric, bounds, canary, baseline, spend, hold, details))
    seen = f"{metric.name} {format_value(metric, canary.value)} on canary ({_count(canary)})"
    outcome, text, needed = _combine(parts, f"is within {bounds.describe(metric)}")
    return verdict(outcome, f"{seen} {text}", needed)


def _details(metric: MetricDef, bounds: Bounds, canary: Cohort, baseline: Cohort | None) -> dict[str, Any]:
    """Return the numbers every assessment records, before any test adds its own."""
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
    return details


def _waiting_for_data(
    metric: MetricDef, bounds: Bounds, canary: Cohort, baseline: Cohort | None
) -> _Part | None:
    """Return an inconclusive part (the whole sentence) while a cohort is below `min_samples` or
    the canary has no value yet; None when there is enough to test."""
    wants_baseline = bounds.max_regression is not None and baseline is not None
    short = [c for c in (canary, baseline if wants_baseline else None) if c is not None and _short(c, bounds)]
    if short:
        needed = max(bounds.min_samples - (c.samples or 0) for c in short)
        counts = ", ".join(f"{c.name} has {c.samples}" for c in short)
        return _Part(
            "inconclusive",
            f"{metric.name}: too few samples ({counts}, need {bounds.min_samples} each): "
            f"{needed} more needed{_how_long(needed, short)}",
            needed,
        )
    if canary.value is None:
        return _Part("inconclusive", f"{metric.name}: no data for the canary yet", bounds.min_samples)
    return None


def _combine(parts: list[_Part], otherwise: str) -> tuple[Outcome, str, int | None]:
    """Return the outcome the parts decide (any fail, else any inconclusive, else pass), the
    clauses that decide it, and the most calls any of them still needs."""
    for outcome in ("fail", "inconclusive"):
        deciding = [p for p in parts if p.outcome == outcome]
        if deciding:
            needed = max((p.needed or 0 for p in deciding), default=0)
            return outcome, ", and ".join(p.text for p in deciding), needed or None
    if not parts:
        return "pass", otherwise, None
    return "pass", ", and ".join(p.text for p in parts), None


def _absolute(
    metric: MetricDef,
    bounds: Bounds,
    canary: Cohort,
    baseline: Cohort | None,
    spend: float,
    details: dict[str, Any],
) -> _Part | None:
    """Decide `max`/`min` on a one-sided interval: fail at the look's alpha, pass at the check's."""
    if bounds.max is None and bounds.min is None:
        return None

    def fmt(v: float | None) -> str:
        return format_value(metric, v)

    value = canary.value
    assert value is not None
    if metric.name == "latency_p95_s" and canary.period is not None:
        return _absolute_p95(metric, bounds, canary, baseline, spend, details)
    fail_iv = _interval(metric, canary, spend, clustered=True)
    pass_iv = _interval(metric, canary, bounds.alpha)
    if fail_iv is None or pass_iv is None:
        # A bare value (a Prometheus query without sample counts): the value itself decides.
        if bounds.max is not None and value > bounds.max:
            return _fleetwide(metric, bounds, baseline, _Part("fail", f"is above max {fmt(bounds.max)}"))
        if bounds.min is not None and value < bounds.min:
            return _fleetwide(metric, bounds, baseline, _Part("fail", f"is below min {fmt(bounds.min)}"))
        return _Part("pass", f"is within {_absolute_text(metric, bounds)}")
    details["interval"] = {"fail": list(fail_iv), "pass": list(pass_iv), "alpha_look": spend}
    fail_conf, pass_conf = _confidence(spend), _confidence(bounds.alpha)
    if bounds.max is not None and fail_iv[0] > bounds.max:
        part = _Part(
            "fail", f"is above max {fmt(bounds.max)} (its {fail_conf} lower bound is {fmt(fail_iv[0])})"
        )
        return _fleetwide(metric, bounds, baseline, part)
    if bounds.min is not None and fail_iv[1] < bounds.min:
        part = _Part(
            "fail", f"is below min {fmt(bounds.min)} (its {fail_conf} upper bound is {fmt(fail_iv[1])})"
        )
        return _fleetwide(metric, bounds, baseline, part)
    clear_max = bounds.max is None or pass_iv[1] < bounds.max
    clear_min = bounds.min is None or pass_iv[0] > bounds.min
    if clear_max and clear_min:
        shown = []
        if bounds.max is not None:
            shown.append(f"below max {fmt(bounds.max)} (its {pass_conf} upper bound is {fmt(pass_iv[1])})")
        if bounds.min is not None:
            shown.append(f"above min {fmt(bounds.min)} (its {pass_conf} lower bound is {fmt(pass_iv[0])})")
        return _Part("pass", "is " + " and ".join(shown))
    bound = bounds.max if not clear_max else bounds.min
    assert bound is not None
    which = "max" if not clear_max else "min"
    # Calls needed for the interval's half-width to shrink inside the gap to the bound (1/sqrt(n)).
    half = (pass_iv[1] - value) if which == "max" and value < bound else (value - fail_iv[0])
    if which == "min":
        half = (value - pass_iv[0]) if value > bound else (fail_iv[1] - value)
    needed = _more_calls(canary.samples or 0, half, abs(value - bound))
    more = f": about {needed} more calls needed{_how_long(needed, [canary])}" if needed else ""
    lo, hi = (pass_iv[0], pass_iv[1]) if value < bound or which == "min" else (fail_iv[0], fail_iv[1])
    part = _Part(
        "inconclusive",
        f"cannot be told from {which} {fmt(bound)} yet (interval {fmt(lo)} to {fmt(hi)}){more}",
        needed or None,
    )
    return _fleetwide(metric, bounds, baseline, part) if value > bound and which == "max" else part


def _absolute_p95(
    metric: MetricDef,
    bounds: Bounds,
    canary: Cohort,
    baseline: Cohort | None,
    spend: float,
    details: dict[str, Any],
) -> _Part:
    """p95 above max is more than 5% of calls above max: a Wilson interval on that share."""
    import numpy as np
    assert canary.period is not None
    durations = canary.period.join().duration
    n = len(durations)
    z_fail, z_pass = normal_isf(spend), normal_isf(bounds.alpha)
    fail_conf, pass_conf = _confidence(spend), _confidence(bounds.alpha)
    texts: list[str] = []
    for which, bound in (("max", bounds.max), ("min", bounds.min)):
        if bound is None:
            continue
        above = int(np.count_nonzero(durations > bound))
        share = f"{above}/{n} calls above {format_value(metric, bound)}"
        lo_f, hi_f = wilson_interval(above, n, z_fail)
        lo_p, hi_p = wilson_interval(above, n, z_pass)
        details.setdefault("interval", {})[which] = {"share_above": above / n, "fail": [lo_f, hi_f]}
        if which == "max" and lo_f > P95_SHARE:
            part = _Part("fail", f"is above max ({share}, {fail_conf} lower bound {lo_f * 100:.1f}% > 5%)")
            return _fleetwide(metric, bounds, baseline, part)
        if which == "min" and hi_f < P95_SHARE:
            part = _Part("fail", f"is below min ({share}, {fail_conf} upper bound {hi_f * 100:.1f}% < 5%)")
            return _fleetwide(metric, bounds, baseline, part)
        if which == "max" and hi_p < P95_SHARE:
            texts.append(f"is below max ({share}, {pass_conf} upper bound {hi_p * 100:.1f}% < 5%)")
        elif which == "min" and lo_p > P95_SHARE:
            texts.append(f"is above min ({share}, {pass_conf} lower bound {lo_p * 100:.1f}% > 5%)")
        else:
            gap = abs(above / n - P95_SHARE)
            needed = _more_calls(n, max(hi_p - above / n, above / n - lo_p), gap)
            more = f": about {needed} more calls needed{_how_long(needed, [canary])}" if needed else ""
            return _Part("inconclusive", f"cannot be told from {which} yet ({share}){more}", needed or None)
    return _Part("pass", " and ".join(texts))


def _interval(
    metric: MetricDef, canary: Cohort, alpha: float, clustered: bool = False
) -> tuple[float, float] | None:
    """Return a one-sided-at-`alpha` interval (each end) on the canary's value, or None;
    `clustered` widens a rate's interval by the errors' clustering in time (the fail side)."""
    import numpy as np
    if metric.test == "rate":
        if canary.events is None or not canary.samples:
            return None
        # A fail uses Wilson on the calls' effective number (n / design effect): errors that come
        # together (a provider's incident) count as fewer independent calls, as the one-second
        # slices show, so a burst of errors on a high-error canary host does not read as a breach.
        deff = _design_effect(metric, canary) if clustered else 1.0
        return wilson_interval(canary.events, canary.samples, normal_isf(alpha) * math.sqrt(deff))
    if canary.period is None or not canary.period.calls:
        return None
    if metric.spend:
        est = estimate(metric, canary.period)
        if est is None or not math.isfinite(est.variance):
            return None
        half = normal_isf(alpha) * math.sqrt(est.variance)
        return (max(0.0, est.value - half) * canary.spend_scale, (est.value + half) * canary.spend_scale)
    # Means: a t-interval on batch means (each the mean of ~10 consecutive calls), so heavy tails
    # and bursts of slow calls widen the interval instead of hiding in a per-call variance.
    assert canary.value is not None
    batches = batch_means(metric, canary.period)
    if len(batches) >= 2:
        k = len(batches)
        mean = sum(batches) / k
        sd = math.sqrt(sum((b - mean) ** 2 for b in batches) / (k - 1))
        half = t_isf(alpha, k - 1) * sd / math.sqrt(k)
        return canary.value - half, canary.value + half
    assert metric.sample is not None
    values = np.asarray(metric.sample(canary.period.join()), dtype=np.float64)
    if len(values) < 2:
        return None
    mean = float(np.sum(values)) / len(values)
    sd = math.sqrt(float(np.sum((values - mean) ** 2)) / (len(values) - 1))
    half = t_isf(alpha, len(values) - 1) * sd / math.sqrt(len(values))
    return canary.value - half, canary.value + half


def _design_effect(metric: MetricDef, canary: Cohort) -> float:
    """Return how much the slices' spread widens a rate's binomial variance (at least 1)."""
    if canary.period is None or not canary.period.calls or not canary.samples:
        return 1.0
    est = estimate(metric, canary.period)
    n = canary.samples
    adjusted = ((canary.events or 0) + 1) / (n + 2)
    binomial = adjusted * (1 - adjusted) / (n + 2)
    if est is None or not math.isfinite(est.variance) or binomial <= 0:
        return 1.0
    return max(1.0, est.variance / binomial)


def _fleetwide(metric: MetricDef, bounds: Bounds, baseline: Cohort | None, part: _Part) -> _Part:
    """A breach the baseline hosts share over the same period is the fleet's, not the candidate's."""
    if baseline is None or baseline.value is None:
        return part
    above = bounds.max is not None and baseline.value > bounds.max
    below = bounds.min is not None and baseline.value < bounds.min
    if not (above or below):
        return part
    fleet = f"fleet-wide: baseline at {format_value(metric, baseline.value)} too"
    if bounds.fail_fleetwide:
        return _Part("fail", f"{part.text} ({fleet}; on_fleetwide: fail)")
    return _Part("inconclusive", f"{part.text}, but {fleet}: holding, not blaming the candidate")


def _regression(
    metric: MetricDef,
    bounds: Bounds,
    canary: Cohort,
    baseline: Cohort,
    spend: float,
    hold: float,
    details: dict[str, Any],
) -> _Part:
    """Test "canary worse than expected by more than the margin" at the look's alpha; over the
    margin with p below `hold` but not significant is inconclusive (keep sampling)."""

    def fmt(v: float | None) -> str:
        return format_value(metric, v)

    margin = bounds.max_regression
    assert margin is not None and canary.value is not None and baseline.value is not None
    factor = 1 + margin if metric.lower_is_better else 1 - margin
    allowed = f"{margin * 100:g}%"
    p: float | None
    did = _did(metric, canary.did or []) if canary.did else None
    observed = estimate(metric, canary.period) if canary.period is not None else None
    if canary.did and (did is None or observed is None):
        return _Part("inconclusive", "has no calls since the switch to compare with its own past yet")
    if did is not None and observed is not None:
        expected = did.expected
        scale = canary.spend_scale if metric.spend else 1.0
        hosts = did.hosts
        against = (
            f"vs {fmt(expected * scale)} expected from each host's own calls before its switch and "
            f"the baseline's change over the same periods (difference-in-differences, "
            f"{hosts} host{'s' if hosts != 1 else ''})"
        )
        # The contrast varies at least as much as it did over windows of this length before.
        var = max(observed.variance, did.observed.variance) + factor * factor * did.expected_var
        if did.placebo_var is not None:
            var = max(var, did.placebo_var + factor * factor * did.expected_var)
        p = _p(observed, RatioEstimate(expected, 0.0), factor, metric.lower_is_better, var)
        rel = relative_regression(observed.value, expected, metric.lower_is_better)
        details["method"] = "difference-in-differences"
        if metric.spend:
            split = _cost_split(canary, did, var, factor, metric.lower_is_better)
            if split is not None:
                p, clause, numbers = split
                against += clause
                details["cost_split"] = numbers
        details["expected"] = expected * scale
    elif observed is not None and baseline.period is not None and estimate(metric, baseline.period):
        base = estimate(metric, baseline.period)
        assert base is not None
        against = (
            f"vs baseline {fmt(baseline.value)} ({_count(baseline)}) compared directly "
            "(no canary host has calls from before its switch, so host differences are not separated)"
        )
        p = _p(observed, base, factor, metric.lower_is_better)
        rel = relative_regression(observed.value, base.value, metric.lower_is_better)
        details["method"] = "direct"
    else:
        against = f"vs baseline {fmt(baseline.value)} ({_count(baseline)})"
        rel = relative_regression(canary.value, baseline.value, metric.lower_is_better)
        p = _counts_p(metric, canary, baseline, margin)
        details["method"] = "counts" if p is not None else "values"
    details["p_value"] = p
    details["regression"] = rel if rel is None or math.isfinite(rel) else None
    change = _change(rel)
    if p is None:
        if rel is not None and rel > margin:
            return _Part("fail", f"{against}: {change}, over the {allowed} allowed")
        return _Part("pass", f"{against}: {change}, within {allowed}")
    if p < spend and rel is not None and rel > margin:
        return _Part(
            "fail", f"{against}: {change}, significantly over the {allowed} allowed (p={p:.2g} < {spend:.2g})"
        )
    if rel is not None and rel > margin and p < hold:
        # Over the margin and suggestive, not yet significant at this look's alpha: sample more
        # rather than promote (an extension only holds; it never fails by itself).
        z_now, z_need = normal_isf(max(p, 1e-300)), normal_isf(spend)
        n = canary.samples or 0
        needed = max(1, math.ceil(n * (z_need / z_now) ** 2 - n)) if n and z_now > 0 else None
        more = f": about {needed} more calls needed{_how_long(needed, [canary])}" if needed else ""
        return _Part(
            "inconclusive",
            f"{against}: {change}, over the {allowed} allowed but not yet significantly "
            f"(p={p:.2g}, needs < {spend:.2g}){more}",
            needed,
        )
    return _Part("pass", f"{against}: {change}, not significantly over {allowed} (p={p:.2g})")


def _cost_split(
    canary: Cohort, did: _DiD, spend_var: float, factor: float, lower_is_better: bool
) -> tuple[float, str, dict[str, Any]] | None:
    """Test cost per day as its two halves: spend per host-second = calls per host-second x cost
    per call. Over a bake of seconds the call rate moves with bursts far more than a price change
    moves the spend, so the spend rate's p also allows for the call-rate bursts seen before the
    switch (pooled over the fleet's hosts, a tail of any shape: `_burst_tail`); and the cost per
    call's difference-in-differences, which a price change moves without the bursts, is tested on
    its own. Either significant at half the look's alpha fails (Bonferroni: the returned p is the
    smaller, doubled), and only when the cost per day shown is over the margin (the caller)."""
    assert canary.did is not None
    per = _did(COST_PER_CALL, canary.did)
    if per is None or per.expected <= 0 or did.expected <= 0:
        return None
    seen = estimate(COST_PER_CALL, canary.period) if canary.period is not None else None
    own = max(per.observed.variance, seen.variance if seen is not None else 0.0)
    var_c = own + factor * factor * per.expected_var
    if per.placebo_var is not None:
        var_c = max(var_c, per.placebo_var + factor * factor * per.expected_var)
    p_call = _p(per.observed, RatioEstimate(per.expected, 0.0), factor, lower_is_better, var_c)
    observed = did.observed
    p_rate = _p(observed, RatioEstimate(did.expected, 0.0), factor, lower_is_better, spend_var)
    bursts = (canary.rate_placebo or 0.0) * did.spread_sq
    if bursts > 0:
        gap = observed.value - factor * did.expected
        p_rate = max(p_rate, _burst_tail(gap if lower_is_better else -gap, spend_var, bursts))
    per_call = per.observed.value / per.expected
    calls = (observed.value / did.expected) / per_call if per_call > 0 else math.nan
    numbers = {
        "cost_per_call_ratio": per_call,
        "call_rate_ratio": calls,
        "p_spend_rate": p_rate,
        "p_cost_per_call": p_call,
        "rate_placebo": canary.rate_placebo,
    }
    clause = (
        f"; cost per call {_ratio_text(per_call, 'higher', 'lower')} and calls per host-second "
        f"{_ratio_text(calls, 'more', 'fewer')} than expected (spend rate p={p_rate:.2g}, "
        f"cost per call p={p_call:.2g}: the smaller, doubled, decides)"
    )
    return min(1.0, 2 * min(p_rate, p_call)), clause, numbers


@dataclass(frozen=True)
class _DiD:
    observed: RatioEstimate  # the canary's value since the switch, pooled over its hosts
    expected: float  # what it would be had nothing changed
    expected_var: float
    placebo_var: float | None  # the contrast's variance seen over windows before the switch
    hosts: int  # canary hosts compared with their own past
    spread_sq: float = 0.0  # sum of (weight x expected)^2 over hosts / total weight^2


def _did(metric: MetricDef, cells: list[HostPeriods]) -> _DiD | None:
    """Per host, its own value before the switch times the baseline's change over the same
    periods is what it would show had nothing changed; weighted like the canary's calls
    (host-seconds for cost). The baseline's terms are shared by every host, so their errors add
    up (correlated); the hosts' own terms are independent."""
    weights: list[float] = []
    own_var = shared_sd = total = observed = observed_var = placebo = spread = 0.0
    placebo_known = True
    memo: dict[tuple[Any, ...], RatioEstimate | None] = {}

    def cached(period: Period) -> RatioEstimate | None:
        # Hosts that switched together share their baseline periods: estimate each once.
        key = (period.spans, period.calls)
        if key not in memo:
            memo[key] = estimate(metric, period)
        return memo[key]

    for cell in cells:
        post, pre = estimate(metric, cell.post), estimate(metric, cell.pre)
        b1, b0 = cached(cell.baseline_post), cached(cell.baseline_pre)
        if post is None or pre is None or b1 is None or b0 is None:
            continue  # no calls on one side yet (a host that just switched): it cannot tell yet
        length = max(e for _, e in cell.post.spans) - min(s for s, _ in cell.post.spans)
        w = _weight(metric, cell.post)
        weights.append(w)
        observed += w * post.value
        observed_var += w * w * post.variance
        seen = placebo_variance(metric, cell, length)
        placebo_known = placebo_known and seen is not None
        placebo += w * w * (seen or 0.0)
        if b0.value > 0:
            change = b1.value / b0.value
            e = pre.value * change
            v_own = change * change * pre.variance
            v_shared = (pre.value / b0.value) ** 2 * b1.variance + (e / b0.value) ** 2 * b0.variance
        else:  # the baseline had none before: its change is read as a difference
            e = max(0.0, pre.value + b1.value - b0.value)
            v_own, v_shared = pre.variance, b1.variance + b0.variance
        total += w * e
        spread += (w * e) ** 2
        own_var += w * w * v_own
        shared_sd += w * math.sqrt(v_shared)
    weight = sum(weights)
    if weight <= 0:
        return None
    w2 = weight * weight
    return _DiD(
        RatioEstimate(observed / weight, observed_var / w2),
        total / weight,
        (own_var + shared_sd * shared_sd) / w2,
        placebo / w2 if placebo_known else None,
        len(weights),
        spread / w2,
    )


def _weight(metric: MetricDef, period: Period) -> float:
    return period.host_seconds if metric.spend else float(period.calls)


def _p(
    observed: RatioEstimate | None,
    expected: RatioEstimate,
    factor: float,
    lower_is_better: bool,
    variance: float | None = None,
) -> float:
    """One-sided p of "observed is worse than factor x expected" (normal approximation); the
    variance of the contrast defaults to the sum of both sides'."""
    assert observed is not None
    diff = observed.value - factor * expected.value
    if not lower_is_better:
        diff = -diff
    var = observed.variance + factor * factor * expected.variance if variance is None else variance
    if not math.isfinite(var):
        return 1.0
    if var <= 0:
        return 0.0 if diff > 0 else 1.0
    return normal_sf(diff / math.sqrt(var))


def _counts_p(metric: MetricDef, canary: Cohort, baseline: Cohort, margin: float) -> float | None:
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
    if canary.values is not None and len(canary.values) and baseline.values is not None and len(baseline.values):
        return scale_regression_p(canary.values, baseline.values, margin, metric.lower_is_better)
    return None


def _absolute_text(metric: MetricDef, bounds: Bounds) -> str:
    parts = []
    if bounds.max is not None:
        parts.append(f"max {format_value(metric, bounds.max)}")
    if bounds.min is not None:
        parts.append(f"min {format_value(metric, bounds.min)}")
    return ", ".join(parts)


def _confidence(alpha: float) -> str:
    digits = max(2, int(math.ceil(-math.log10(alpha))) + 1) if alpha > 0 else 2
    text = f"{(1 - alpha) * 100:.{digits}g}".rstrip("0").rstrip(".")
    return f"{text}%"


def _more_calls(n: int, half: float, gap: float) -> int:
    """Calls to add for an interval of half-width `half` at n calls to fit inside `gap`."""
    if n <= 0 or gap <= 0 or half <= 0 or not math.isfinite(half):
        return 0
    return max(1, int(math.ceil(n * (half / gap) ** 2 - n)))


def _how_long(needed: int, cohorts: list[Cohort]) -> str:
    rates = [c.calls_per_s for c in cohorts if c.calls_per_s]
    if not needed or not rates:
        return ""
    seconds = needed / min(rates)
    return f" (about {_short_duration(seconds)} at {min(rates):.1f} calls/s)"


def _short_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))}s"
    if seconds < 3600:
        return f"{round(seconds / 60)}m"
    return f"{seconds / 3600:.1f}h"


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


def _burst_tail(gap: float, normal_var: float, burst_var: float) -> float:
    """Bound P(N + B >= gap) for N normal with `normal_var` (Poisson arrivals, per-call spread)
    and B a burst term of any shape with `burst_var`: the best split gap = a + b of the normal
    tail at a plus Cantelli's bound var / (var + b^2) at b. Bursts are rare and large, so their
    tail is far heavier than a normal one with the same variance."""
    if gap <= 0:
        return 1.0
    sd = math.sqrt(max(normal_var, 0.0))
    best = 1.0
    for i in range(51):
        a = gap * i / 50
        normal = normal_sf(a / sd) if sd > 0 else (0.0 if a > 0 else 0.5)
        b = gap - a
        best = min(best, normal + burst_var / (burst_var + b * b))
    return best


def _ratio_text(ratio: float, up: str, down: str) -> str:
    if not math.isfinite(ratio):
        return "unknown"
    if abs(ratio - 1) < 0.0005:
        return "unchanged"
    return f"{abs(ratio - 1) * 100:.1f}% {up if ratio > 1 else down}"
