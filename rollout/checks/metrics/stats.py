"""Pure statistics for metric gates: intervals, non-inferiority tests, alpha spending over looks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def normal_sf(z: float) -> float:
    """Return P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def rate_regression_p(
    x_canary: int, n_canary: int, x_baseline: int, n_baseline: int, margin: float, lower_is_better: bool
) -> float:
    """Return the p-value of "canary's rate is worse than baseline's by more than `margin` (relative)".

    Two-proportion z-test against the margin, with the Agresti-Caffo adjustment (one success and one
    failure added to each group) so zero counts and small samples stay well-behaved.
    """
    pc = (x_canary + 1) / (n_canary + 2)
    pb = (x_baseline + 1) / (n_baseline + 2)
    factor = 1 + margin if lower_is_better else 1 - margin
    var = pc * (1 - pc) / (n_canary + 2) + factor**2 * pb * (1 - pb) / (n_baseline + 2)
    diff = pc - factor * pb if lower_is_better else factor * pb - pc
    return normal_sf(diff / math.sqrt(var))


def scale_regression_p(
    canary: Sequence[float], baseline: Sequence[float], margin: float, lower_is_better: bool
) -> float:
    """Return the p-value of "canary's values are worse than baseline's scaled by the margin".

    Mann-Whitney U, one-sided, against the baseline stretched by (1 + margin) (or shrunk by
    (1 - margin) when higher is better): a 10% margin tolerates a 10% slower canary.
    """
    factor = 1 + margin if lower_is_better else 1 - margin
    shifted = [v * factor for v in baseline]
    excess, sd = mann_whitney_u(canary, shifted)
    if sd <= 0:
        return 1.0
    worse = excess if lower_is_better else -excess
    return normal_sf((worse - 0.5) / sd)  # 0.5: continuity correction


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Return U of `a` over `b` minus its mean under no difference, and its tie-corrected
    standard deviation (normal approximation); the excess is positive when `a` tends larger."""
    n1, n2 = len(a), len(b)
    if not n1 or not n2:
        return 0.0, 0.0
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    rank_sum_a, ties, i = 0.0, 0.0, 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1  # average rank of the tied run
        count = j - i + 1
        rank_sum_a += rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        ties += count**3 - count
        i = j + 1
    u = rank_sum_a - n1 * (n1 + 1) / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    return u - n1 * n2 / 2, math.sqrt(max(var, 0.0))


def relative_regression(canary: float, baseline: float, lower_is_better: bool) -> float | None:
    """Return how much worse canary is than baseline, relative (0.3 = 30% worse); None if undefined."""
    if baseline == 0:
        if canary == baseline:
            return 0.0
        worse = canary > 0 if lower_is_better else canary < 0
        return math.inf if worse else None
    change = (canary - baseline) / abs(baseline)
    return change if lower_is_better else -change


def quantile(values: Sequence[float], q: float) -> float:
    """Return the q-quantile of `values` with linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile of no values")
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def normal_isf(p: float) -> float:
    """Return z with P(Z > z) = p for a standard normal Z (0 < p < 1)."""
    if not 0 < p < 1:
        raise ValueError(f"normal_isf needs 0 < p < 1, got {p}")
    lo, hi = -40.0, 40.0
    for _ in range(200):  # bisection: exact to float precision, cheap enough for a gate
        mid = (lo + hi) / 2
        if normal_sf(mid) > p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def betainc(a: float, b: float, x: float) -> float:
    """Return the regularized incomplete beta function I_x(a, b) (Lentz's continued fraction)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - betainc(b, a, 1.0 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return math.exp(log_front) * f / a


def t_sf(t: float, df: float) -> float:
    """Return P(T > t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_isf(p: float, df: float) -> float:
    """Return t with P(T > t) = p for Student's t with `df` degrees of freedom (0 < p < 1)."""
    if not 0 < p < 1:
        raise ValueError(f"t_isf needs 0 < p < 1, got {p}")
    lo, hi = -1e6, 1e6
    for _ in range(300):
        mid = (lo + hi) / 2
        if t_sf(mid, df) > p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10 * max(1.0, abs(mid)):
            break
    return (lo + hi) / 2


def wilson_interval(events: int, n: int, z: float) -> tuple[float, float]:
    """Return the Wilson score interval for a proportion, each end one-sided at `z`."""
    if n <= 0:
        return 0.0, 1.0
    p = events / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - half) / scale), min(1.0, (centre + half) / scale)


def clopper_pearson_interval(events: int, n: int, alpha: float) -> tuple[float, float]:
    """Return the exact (Clopper-Pearson) interval, each end one-sided at `alpha`."""

    def solve(target: float, a: float, b: float) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            if betainc(a, b, mid) < target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if events == 0 else solve(alpha, events, n - events + 1)
    upper = 1.0 if events == n else solve(1 - alpha, events + 1, n - events)
    return lower, upper


# How a stage's share of alpha is spread over its looks (see `look_alpha`).
BAKE_SHARE = 0.5  # over the bake, by time
EXTENSION_SHARE = 0.4  # over the extension, by time (folded into the bake's when there is none)
LATE_SHARE = 0.05  # past the plan (a human's late `advance`), by time
PER_LOOK_SHARE = 0.05  # by the look's number: every look gets some, even one right after the last


def stage_share(alpha: float, stage: int, stages: int) -> float:
    """Return the part of `alpha` that live stage `stage` (0-based) of `stages` may spend: weights
    falling as the square of the stages left ((stages - stage)^2: 9:4:1 for three stages), so the
    first canary, whose gate decides whether the change reaches half the fleet, gets the most."""
    stages = max(stages, 1)
    stage = min(max(stage, 0), stages - 1)
    total = sum(k * k for k in range(1, stages + 1))
    return alpha * (stages - stage) ** 2 / total


def spent_by(
    alpha: float, at_s: float, bake_s: float, extension_s: float, stage: int = 0, stages: int = 1
) -> float:
    """Return how much of `alpha` a stage's gate may have spent by `at_s` seconds into the stage.

    An alpha-spending function of time (Lan-DeMets with the power family rho = 2): of the stage's
    share, BAKE_SHARE is spent over the bake as (t / bake)^2 and EXTENSION_SHARE over the extension
    as (t' / extension)^2, so a look spends what the clock moved since the last one, and the looks
    near a bake's end, which see the most calls, get the most; LATE_SHARE goes to looks past the
    plan as 1 - plan / t. It never exceeds (1 - PER_LOOK_SHARE) of the stage's share.
    """
    if at_s < 0:
        return 0.0
    bake_part, extension_part = BAKE_SHARE, EXTENSION_SHARE
    if extension_s <= 0:
        bake_part, extension_part = BAKE_SHARE + EXTENSION_SHARE, 0.0
    spent = bake_part * (min(1.0, at_s / bake_s) ** 2 if bake_s > 0 else 1.0)
    if extension_part and at_s > bake_s:
        spent += extension_part * min(1.0, (at_s - bake_s) / extension_s) ** 2
    plan = max(bake_s + extension_s, 1.0)
    if at_s > plan:
        spent += LATE_SHARE * (1.0 - plan / at_s)
    return stage_share(alpha, stage, stages) * spent


def look_alpha(
    alpha: float,
    look: int,
    since_s: float | None,
    at_s: float,
    bake_s: float,
    extension_s: float,
    stage: int = 0,
    stages: int = 1,
) -> float:
    """Return the share of `alpha` that look number `look` of a stage may spend, taken at `at_s`
    seconds into the stage, the stage's previous look having been at `since_s` (None: the first).

    Alpha spending with a union bound, so the chance of any false fail over every look of every
    stage stays at most `alpha` however the looks are correlated and however many there are: a
    look spends what `spent_by` grew since the last look, plus PER_LOOK_SHARE of the stage's share
    times 1 / (look (look + 1)), which sums to one over the looks.
    """
    before = 0.0
    if since_s is not None:
        before = spent_by(alpha, max(0.0, min(since_s, at_s)), bake_s, extension_s, stage, stages)
    grown = spent_by(alpha, at_s, bake_s, extension_s, stage, stages) - before
    look = max(look, 1)
    return max(0.0, grown) + stage_share(alpha, stage, stages) * PER_LOOK_SHARE / (look * (look + 1))


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio of sums (errors per call, seconds per call, dollars per host-second) and its variance."""

    value: float
    variance: float


def ratio_estimate(
    numerators: Sequence[float], denominators: Sequence[float], model_variance: float
) -> RatioEstimate:
    """Return sum(numerators) / sum(denominators) with a variance robust to bursts and clustering.

    Each pair is one time slice. The variance is the larger of the model's (binomial, per-call or
    compound Poisson, given by the caller) and the slices' own spread (the linearized ratio-estimator
    variance with slices as clusters), so calls that come in bursts or fail together in an incident
    are not counted as independent.
    """
    total_x = sum(denominators)
    if total_x <= 0:
        return RatioEstimate(math.nan, math.inf)
    value = sum(numerators) / total_x
    m = sum(1 for x in denominators if x > 0)
    spread = 0.0
    if m > 1:
        resid = sum((y - value * x) ** 2 for y, x in zip(numerators, denominators, strict=True))
        spread = m / (m - 1) * resid / (total_x * total_x)
    return RatioEstimate(value, max(model_variance, spread))


def quantile_variance(values: Sequence[float] | Any, q: float) -> float:
    """Return the variance of the sample q-quantile: q(1 - q) / (n f^2), with the density f
    estimated from the order statistics around it (Siddiqui-Bloch-Gastwirth). `values` may be a
    numpy array (a gate's columns), sorted by numpy then."""
    if hasattr(values, "dtype"):
        import numpy as np  # already loaded: the values are its array

        ordered: Any = np.sort(np.asarray(values, dtype=np.float64))
    else:
        ordered = sorted(values)
    n = len(ordered)
    if n < 4:
        return math.inf
    span = max(1, int(round(n ** (2 / 3) / 2)))
    k = int(q * (n - 1))
    lo, hi = max(0, k - span), min(n - 1, k + span)
    width = float(ordered[hi]) - float(ordered[lo])
    if width <= 0:
        return 0.0
    density = (hi - lo) / (n * width)
    return q * (1 - q) / (n * density * density)
