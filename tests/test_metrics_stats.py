"""The statistics behind metric gates: margin tests, Mann-Whitney U, quantiles."""

from __future__ import annotations

import math

import pytest

from rollout.checks.metrics.stats import (
    mann_whitney_u,
    normal_sf,
    quantile,
    rate_regression_p,
    relative_regression,
    scale_regression_p,
)


def test_mann_whitney_u_counts_pairs_and_ties() -> None:
    # a over b: pairs (3>1, 3>2, 3=3 half, 5>1, 5>2, 5>3) -> U = 5.5; mean n1*n2/2 = 3
    excess, sd = mann_whitney_u([3, 5], [1, 2, 3])
    assert excess == 2.5
    # tie-corrected variance: n1*n2/12 * ((n+1) - sum(t^3 - t)/(n(n-1))) = 0.5 * (6 - 6/20)
    assert sd == pytest.approx(math.sqrt(0.5 * (6 - 6 / 20)))


def test_scale_regression_tolerates_the_margin() -> None:
    baseline = [float(v) for v in range(1, 101)]
    assert scale_regression_p([v * 1.05 for v in baseline], baseline, 0.10, True) > 0.5
    assert scale_regression_p([v * 1.5 for v in baseline], baseline, 0.10, True) < 0.01
    # higher is better: a canary 50% lower is a regression, 5% lower is within 10%
    assert scale_regression_p([v * 0.5 for v in baseline], baseline, 0.10, False) < 0.01
    assert scale_regression_p([v * 0.95 for v in baseline], baseline, 0.10, False) > 0.5


def test_rate_regression_on_counts() -> None:
    assert rate_regression_p(80, 400, 24, 1200, 0.10, True) < 1e-6
    assert rate_regression_p(20, 400, 60, 1200, 0.10, True) > 0.5
    assert rate_regression_p(0, 50, 0, 50, 0.10, True) > 0.4  # zero counts stay well-defined
    # success rate (higher is better): 80% vs 98%
    assert rate_regression_p(320, 400, 1176, 1200, 0.10, False) < 1e-3


def test_normal_sf_and_relative_regression() -> None:
    assert normal_sf(0) == 0.5
    assert normal_sf(2.326) == pytest.approx(0.01, abs=1e-4)
    assert relative_regression(0.2, 0.1, True) == pytest.approx(1.0)
    assert relative_regression(0.9, 1.0, False) == pytest.approx(0.1)
    assert relative_regression(0.1, 0.0, True) == math.inf
    assert relative_regression(0.0, 0.0, True) == 0.0


def test_quantile_interpolates() -> None:
    assert quantile([1, 2, 3, 4, 5], 0.5) == 3
    assert quantile(list(range(1, 101)), 0.95) == pytest.approx(95.05)
    assert quantile([7.0], 0.95) == 7.0
