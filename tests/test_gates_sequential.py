"""The statistics of metric gates, pure and seeded: intervals against reference values, alpha spent
over looks, false alarms over many looks, host differences, fleet-wide breaches, cost as a rate."""

from __future__ import annotations

import math
import random

import pytest

from rollout.checks.metrics.assess import Assessment, Bounds, assess
from rollout.checks.metrics.definitions import METRICS, Cohort
from rollout.checks.metrics.periods import split_cohorts
from rollout.checks.metrics.stats import (
    betainc,
    clopper_pearson_interval,
    look_alpha,
    normal_isf,
    stage_share,
    t_isf,
    t_sf,
    wilson_interval,
)
from rollout.models.usage import UsageRecord

NOW = 1_000_000.0
SWITCH = NOW - 60.0  # the canary went live a minute ago
HOSTS = ("c1", "b1", "b2", "b3")


def test_intervals_match_reference_values() -> None:
    # Tables of the normal and t quantiles (t_{0.975,10} = 2.228139, t_{0.99,5} = 3.364930), the t
    # tail P(T3 > 2) = 0.069663, Wilson's closed form worked by hand, Clopper-Pearson's 1/13.
    assert normal_isf(0.01) == pytest.approx(2.326348, abs=1e-6)
    assert normal_isf(0.5) == pytest.approx(0.0, abs=1e-9)
    assert t_isf(0.025, 10) == pytest.approx(2.228139, abs=1e-6)
    assert t_isf(0.01, 5) == pytest.approx(3.364930, abs=1e-6)
    assert t_sf(2.0, 3) == pytest.approx(0.069663, abs=1e-6)
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)  # I_0.4(2, 3), a binomial sum
    lo, hi = wilson_interval(1, 13, normal_isf(0.025))
    assert (lo, hi) == (pytest.approx(0.013710, abs=1e-5), pytest.approx(0.333140, abs=1e-5))
    lo, hi = clopper_pearson_interval(1, 13, 0.025)
    assert (lo, hi) == (pytest.approx(0.001946, abs=1e-6), pytest.approx(0.360297, abs=1e-6))
    assert wilson_interval(0, 200, normal_isf(0.01))[1] == pytest.approx(0.0264, abs=1e-4)


def test_look_alpha_spends_at_most_alpha_over_every_look_of_every_stage() -> None:
    rng = random.Random(3)
    for bake, extension in ((5.0, 5.0), (600.0, 0.0), (0.0, 0.0), (0.0, 30.0), (60.0, 600.0)):
        for _ in range(20):
            spent = 0.0
            for stage in range(3):
                # looks at random moments, some at the same moment, far past the plan
                times = sorted(
                    rng.uniform(0, 20 * (bake + extension + 1)) for _ in range(rng.randint(1, 400))
                )
                times += [times[-1]] * 5
                since: float | None = None
                for k, at in enumerate(times, start=1):
                    spent += look_alpha(0.01, k, since, at, bake, extension, stage, 3)
                    since = at
            assert spent <= 0.01
    # every planned look, taken every second, spends 90% of its stage's share by the plan's end
    spent = sum(
        look_alpha(0.01, k, k - 1.0 if k > 1 else None, float(k), 5.0, 5.0, 0, 3) for k in range(1, 11)
    )
    assert spent == pytest.approx(stage_share(0.01, 0, 3) * (0.9 + 0.05 * (1 - 1 / 11)))
    # a look that comes later (more data) gets more; the 25% stage more than the 50% one
    assert look_alpha(0.01, 5, 4.0, 5.0, 5.0, 5.0, 0, 3) > look_alpha(0.01, 2, 1.0, 2.0, 5.0, 5.0, 0, 3)
    assert look_alpha(0.01, 5, 4.0, 5.0, 5.0, 5.0, 0, 3) > look_alpha(0.01, 5, 4.0, 5.0, 5.0, 5.0, 1, 3)
    # a look right after the last one still has some alpha to spend
    assert look_alpha(0.01, 7, 3.0, 3.0, 5.0, 5.0, 0, 3) > 0
    assert stage_share(0.01, 0, 3) + stage_share(0.01, 1, 3) + stage_share(0.01, 2, 3) == pytest.approx(0.01)


def call(ts: float, rng: random.Random, error_rate: float, latency: float, cost: float) -> UsageRecord:
    failed = rng.random() < error_rate
    return UsageRecord(
        ts=ts,
        agent="build",
        model="m/x",
        input_tokens=1000,
        output_tokens=100,
        cost_usd=cost * rng.lognormvariate(-0.32, 0.8),
        duration_s=latency * rng.lognormvariate(-0.18, 0.6),
        outcome="error" if failed else "success",
    )


def fleet_calls(
    rng: random.Random,
    rate: float,
    until: float,
    host_error: dict[str, float],
    host_latency: dict[str, float],
    canary_factor: float = 1.0,
    canary_rate: float = 1.0,
    start: float = SWITCH - 120,
) -> dict[str, list[UsageRecord]]:
    """Calls every host made from `start` to `until`; after SWITCH c1 runs the candidate."""
    out: dict[str, list[UsageRecord]] = {}
    for host in HOSTS:
        records, t = [], start
        while t < until:
            live = host == "c1" and t >= SWITCH
            step = rng.expovariate(rate * (canary_rate if live else 1.0))
            t += step
            f = canary_factor if live else 1.0
            records.append(call(t, rng, host_error[host] * f, host_latency[host] * f, 0.01))
        out[host] = records
    return out


def judge_at(
    metric: str, bounds: Bounds, by_host: dict[str, list[UsageRecord]], now: float, alpha_look: float
) -> Assessment:
    visible = {h: [r for r in rs if r.ts <= now] for h, rs in by_host.items()}
    canary, baseline = split_cohorts(
        METRICS[metric], visible, ("c1",), HOSTS[1:], {"c1": SWITCH}, now, 600.0, len(HOSTS)
    )
    return assess(METRICS[metric], bounds, canary, baseline, alpha_look)


def test_sequential_false_alarm_rate_stays_within_alpha_over_many_looks() -> None:
    """A/A with hosts that differ: 20 looks a bake, 150 bakes. Spending alpha over the looks keeps
    the bakes with any false fail at or below alpha; testing every look at alpha does not."""
    alpha, looks, trials = 0.05, 20, 150
    spent_fails = naive_fails = 0
    bounds = Bounds(max_regression=0.10, min_samples=20, alpha=alpha)
    for seed in range(trials):
        rng = random.Random(seed)
        errors = {h: 0.02 * math.exp(rng.gauss(0, 0.5)) for h in HOSTS}
        latency = {h: 4.0 * math.exp(rng.gauss(0, 0.3)) for h in HOSTS}
        calls = fleet_calls(rng, 2.0, SWITCH + looks * 5, errors, latency)
        spent = naive = False
        for k in range(1, looks + 1):
            now = SWITCH + k * 5
            spend = look_alpha(alpha, k, (k - 1) * 5.0 if k > 1 else None, k * 5.0, looks * 5.0, 0.0)
            for metric in ("error_rate", "latency_mean_s"):
                spent |= judge_at(metric, bounds, calls, now, spend).outcome == "fail"
                naive |= judge_at(metric, bounds, calls, now, alpha).outcome == "fail"
        spent_fails += spent
        naive_fails += naive
    assert spent_fails / trials <= alpha
    assert naive_fails > spent_fails  # the same data, tested afresh at every look


def test_host_differences_alone_do_not_fail_a_gate() -> None:
    """The canary host is slower and errs more than the others before and after its switch:
    compared with its own past (difference-in-differences) it passes; compared directly with
    the other hosts (no calls from before its switch) the same calls look like a regression."""
    rng = random.Random(11)
    errors = {"c1": 0.06, "b1": 0.01, "b2": 0.012, "b3": 0.008}
    latency = {"c1": 6.0, "b1": 3.5, "b2": 3.8, "b3": 3.4}
    calls = fleet_calls(rng, 5.0, NOW, errors, latency)
    bounds = Bounds(max_regression=0.10, min_samples=50)
    for metric in ("error_rate", "latency_mean_s"):
        found = judge_at(metric, bounds, calls, NOW, 0.001)
        assert found.outcome == "pass", found.why
        assert "difference-in-differences, 1 host" in found.why
        assert found.details["method"] == "difference-in-differences"
        without_past = {h: [r for r in rs if r.ts >= SWITCH] for h, rs in calls.items()}
        direct = judge_at(metric, bounds, without_past, NOW, 0.001)
        assert direct.outcome != "pass"  # fail, or "over the margin, not yet significantly"
        assert "compared directly (no canary host has calls from before its switch" in direct.why


def test_a_real_regression_is_caught_by_the_difference_in_differences() -> None:
    rng = random.Random(12)
    errors = {"c1": 0.02, "b1": 0.01, "b2": 0.012, "b3": 0.008}
    latency = {"c1": 4.0, "b1": 3.5, "b2": 3.8, "b3": 3.4}
    calls = fleet_calls(rng, 10.0, NOW, errors, latency, canary_factor=1.5)
    found = judge_at("latency_mean_s", Bounds(max_regression=0.10, min_samples=50), calls, NOW, 0.001)
    assert found.outcome == "fail"
    assert "worse, significantly over the 10% allowed (p=" in found.why
    assert 0.3 < found.details["regression"] < 0.7


def rate_cohort(events: int, samples: int, name: str = "canary") -> Cohort:
    hosts = ("c1", "c2") if name == "canary" else ("b1", "b2", "b3")
    return Cohort(name, hosts, events / samples, samples, events=events)


def test_one_error_in_13_calls_says_nothing_about_a_5_percent_bound() -> None:
    found = assess(METRICS["error_rate"], Bounds(max=0.05, min_samples=10), rate_cohort(1, 13), None)
    assert found.outcome == "inconclusive"
    assert found.why.startswith(
        "error_rate 7.7% on canary (1/13 calls, 2 hosts) cannot be told from max 5.0% yet (interval "
    )
    assert "more calls needed" in found.why
    clearly = assess(METRICS["error_rate"], Bounds(max=0.05), rate_cohort(40, 200), None, 0.001)
    assert clearly.outcome == "fail"
    assert clearly.why.startswith(
        "error_rate 20.0% on canary (40/200 calls, 2 hosts) is above max 5.0% (its 99.9% lower bound is 1"
    )
    below = assess(METRICS["error_rate"], Bounds(max=0.05), rate_cohort(2, 400), None)
    assert below.outcome == "pass"
    assert "is below max 5.0% (its 99% upper bound is 2.2%)" in below.why


def test_a_fleet_wide_breach_holds_unless_on_fleetwide_fail() -> None:
    canary, baseline = rate_cohort(40, 400), rate_cohort(110, 1200, "baseline")
    held = assess(METRICS["error_rate"], Bounds(max=0.05), canary, baseline, 0.001)
    assert held.outcome == "inconclusive"
    assert held.why == (
        "error_rate 10.0% on canary (40/400 calls, 2 hosts) is above max 5.0% (its 99.9% lower bound "
        "is 6.3%), but fleet-wide: baseline at 9.2% too: holding, not blaming the candidate"
    )
    failed = assess(METRICS["error_rate"], Bounds(max=0.05, fail_fleetwide=True), canary, baseline, 0.001)
    assert failed.outcome == "fail"
    assert "(fleet-wide: baseline at 9.2% too; on_fleetwide: fail)" in failed.why
    alone = assess(METRICS["error_rate"], Bounds(max=0.05), canary, None, 0.001)
    assert alone.outcome == "fail"  # at 100% no baseline is left: the bound decides


def test_cost_per_day_is_tested_as_spend_per_host_second() -> None:
    rng = random.Random(13)
    errors = dict.fromkeys(HOSTS, 0.01)
    latency = dict.fromkeys(HOSTS, 4.0)
    bounds = Bounds(max_regression=0.10, min_samples=50)
    # The same price per call, twice the calls: the spend per day doubles, and that is what fails.
    busier = fleet_calls(rng, 5.0, NOW, errors, latency, canary_rate=2.0)
    found = judge_at("cost_per_day_usd", bounds, busier, NOW, 0.001)
    assert found.outcome == "fail", found.why
    assert "/day expected from each host's own calls before its switch" in found.why
    assert found.details["regression"] > 0.5
    # Half the calls: shown as better, never a fail.
    quieter = fleet_calls(rng, 5.0, NOW, errors, latency, canary_rate=0.5)
    found = judge_at("cost_per_day_usd", bounds, quieter, NOW, 0.5)
    assert found.outcome == "pass"
    assert "better, not significantly over 10%" in found.why


def test_p95_bound_is_the_share_of_calls_above_it() -> None:
    rng = random.Random(14)
    records = [call(SWITCH + i * 0.1, rng, 0.0, 4.0, 0.01) for i in range(500)]
    by_host = {"c1": records, "b1": [], "b2": [], "b3": []}
    canary, _ = split_cohorts(METRICS["latency_p95_s"], by_host, ("c1",), (), {"c1": SWITCH}, NOW, 600.0, 4)
    low = assess(METRICS["latency_p95_s"], Bounds(max=30.0), canary, None, 0.001)
    high = assess(METRICS["latency_p95_s"], Bounds(max=3.0), canary, None, 0.001)
    assert low.outcome == "pass" and "calls above 30.00s" in low.why
    assert high.outcome == "fail" and "is above max (" in high.why


def bursty_calls(
    rng: random.Random, switch: float, until: float, price: float, burst_on_canary: bool
) -> dict[str, list[UsageRecord]]:
    """40 calls/s a host from a minute before `switch`; the other hosts now and then double their
    rate for 1-3 s (c1 happened not to before its switch); c1 pays `price` times as much per call after the switch, and with `burst_on_canary`
    doubles its rate for the first 5 s after it."""
    out: dict[str, list[UsageRecord]] = {}
    for host in HOSTS:
        records, t, burst = [], switch - 60.0, 0.0
        while t < until:
            live = host == "c1" and t >= switch
            if host != "c1" and burst <= 0 and rng.random() < 0.03:
                burst = rng.uniform(1.0, 3.0)
            forced = live and burst_on_canary and t < switch + 5
            level = 40.0 * (2.0 if burst > 0 or forced else 1.0)
            for _ in range(int(rng.gauss(level, math.sqrt(level)))):
                records.append(call(t + rng.random(), rng, 0.01, 4.0, 0.01 * (price if live else 1.0)))
            t += 1.0
            burst -= 1.0
        out[host] = sorted(records, key=lambda r: r.ts)
    return out


def test_cost_per_day_a_burst_of_calls_is_not_a_regression_a_price_rise_is() -> None:
    """Over a bake of seconds the call rate moves with bursts far more than a price moves the
    spend: a burst on the canary host alone does not fail (its spend rate is judged against the
    fleet's bursts before the switch), and +50% per call is caught from the cost per call."""
    switch, now = NOW - 10.0, NOW
    bounds = Bounds(max_regression=0.10, min_samples=50)

    def judge(calls: dict[str, list[UsageRecord]]) -> Assessment:
        visible = {h: [r for r in rs if r.ts <= now] for h, rs in calls.items()}
        canary, baseline = split_cohorts(
            METRICS["cost_per_day_usd"], visible, ("c1",), HOSTS[1:], {"c1": switch}, now, 600.0, 4
        )
        return assess(METRICS["cost_per_day_usd"], bounds, canary, baseline, 1e-4)

    for seed in range(3):
        burst = judge(bursty_calls(random.Random(20 + seed), switch, now, 1.0, True))
        assert burst.outcome != "fail", burst.why
        assert burst.details["regression"] > 0.25  # shown worse: the burst is real spend
        assert burst.details["cost_split"]["call_rate_ratio"] > 1.2
        pricier = judge(bursty_calls(random.Random(30 + seed), switch, now, 1.5, False))
        assert pricier.outcome == "fail", pricier.why
        assert "cost per call" in pricier.why and "higher" in pricier.why


def test_errors_that_come_together_are_not_a_breach_of_max_on_their_own() -> None:
    """A 6 s canary window on a 3% host with a 1 s provider incident (+15% errors on every host):
    7.9% of calls erred, but nearly all in one second. Counted as independent calls the Wilson
    bound says "above 5%"; counted as the slices show (design effect) it cannot yet tell."""
    rng = random.Random(21)
    start = NOW - 6.0
    records = []
    for i in range(1200):
        ts = start + 6.0 * i / 1200
        rate = 0.03 + (0.60 if NOW - 3.0 <= ts < NOW - 2.5 else 0.0)
        records.append(
            UsageRecord(ts=ts, agent="build", model="m/x", input_tokens=1, output_tokens=1,
                        cost_usd=0.01, duration_s=4.0, outcome="error" if rng.random() < rate else "success")
        )  # fmt: skip
    by_host = {"c1": records, "b1": [], "b2": [], "b3": []}
    canary, _ = split_cohorts(METRICS["error_rate"], by_host, ("c1",), (), {"c1": start}, NOW, 600.0, 4)
    assert canary.events is not None and canary.samples is not None
    assert canary.events / canary.samples > 0.05
    independent = wilson_interval(canary.events, canary.samples, normal_isf(0.001))
    assert independent[0] > 0.05  # what the bound alone would have failed on
    found = assess(METRICS["error_rate"], Bounds(max=0.05, min_samples=50), canary, None, 0.001)
    assert found.outcome == "inconclusive"
    assert "cannot be told from max 5.0% yet" in found.why


def test_weak_evidence_of_a_regression_holds_the_gate_while_it_may_extend() -> None:
    """Over the margin with alpha <= p < hold_p: inconclusive while the stage may still extend
    (hold_p given), a pass at the extension's end (the check's alpha decides)."""
    errors = dict.fromkeys(HOSTS, 0.01)
    latency = dict.fromkeys(HOSTS, 4.0)
    bounds = Bounds(max_regression=0.10, min_samples=20, alpha=0.01)
    seen = 0
    for seed in range(40):
        rng = random.Random(seed)
        calls = fleet_calls(rng, 2.0, SWITCH + 30, errors, latency, canary_factor=1.2)
        visible = {h: [r for r in rs if r.ts <= SWITCH + 30] for h, rs in calls.items()}
        canary, baseline = split_cohorts(
            METRICS["latency_mean_s"], visible, ("c1",), HOSTS[1:], {"c1": SWITCH}, SWITCH + 30, 600.0, 4
        )
        final = assess(METRICS["latency_mean_s"], bounds, canary, baseline, 0.001)
        p, rel = final.details["p_value"], final.details["regression"]
        if not (0.01 <= p < 0.2 and rel > 0.10):
            continue
        seen += 1
        assert final.outcome == "pass"
        held = assess(METRICS["latency_mean_s"], bounds, canary, baseline, 0.001, hold_p=0.2)
        assert held.outcome == "inconclusive"
        assert "over the 10% allowed but not yet significantly" in held.why
    assert seen >= 3
