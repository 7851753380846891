"""One-sided tests of "canary is worse than baseline by more than a margin" (non-inferiority)."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
