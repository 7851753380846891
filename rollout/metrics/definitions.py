"""The built-in metrics and how a cohort's usage records become a value and test samples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rollout.metrics.stats import quantile
from rollout.usage import UsageRecord

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class MetricDef:
    """A metric: how it is tested (rate: two proportions; scale: Mann-Whitney) and which way is better."""

    name: str
    test: str  # "rate" | "scale"
    lower_is_better: bool
    unit: str  # "ratio" | "s" | "usd_per_day" | "tokens"
    event: Callable[[UsageRecord], bool] | None = None  # rate: what counts as an event
    sample: Callable[[UsageRecord], float] | None = None  # scale: the per-call value
    summary: Callable[[Sequence[float]], float] | None = None  # scale: per-call values -> value


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        MetricDef("error_rate", "rate", True, "ratio", event=lambda r: r.outcome != "success"),
        MetricDef("success_rate", "rate", False, "ratio", event=lambda r: r.outcome == "success"),
        MetricDef("failover_rate", "rate", True, "ratio", event=lambda r: r.failover),
        MetricDef("latency_mean_s", "scale", True, "s", sample=lambda r: r.duration_s, summary=_mean),
        MetricDef(
            "latency_p95_s",
            "scale",
            True,
            "s",
            sample=lambda r: r.duration_s,
            summary=lambda v: quantile(v, 0.95),
        ),
        MetricDef("cost_per_day_usd", "scale", True, "usd_per_day", sample=lambda r: r.cost_usd),
        MetricDef(
            "tokens_per_call",
            "scale",
            True,
            "tokens",
            sample=lambda r: float(r.input_tokens + r.output_tokens),
            summary=_mean,
        ),
    )
}


@dataclass
class Cohort:
    """What a cohort measured: its value, sample count, and what a statistical test needs."""

    name: str  # "canary" | "baseline"
    hosts: tuple[str, ...]
    value: float | None
    samples: int | None  # None: the source cannot count samples (a bare Prometheus value)
    events: int | None = None  # rate metrics: calls that count (errors, failovers, successes)
    values: list[float] | None = None  # scale metrics: one value per call
    notes: list[str] = field(default_factory=list)


def cohort_from_records(
    metric: MetricDef,
    name: str,
    hosts: tuple[str, ...],
    records: Sequence[UsageRecord],
    host_seconds: float,
    fleet_size: int,
) -> Cohort:
    """Compute a metric over a cohort's records (cost: projected per day for the whole fleet)."""
    n = len(records)
    if metric.test == "rate":
        assert metric.event is not None
        events = sum(1 for r in records if metric.event(r))
        return Cohort(name, hosts, events / n if n else None, n, events=events)
    assert metric.sample is not None
    values = [metric.sample(r) for r in records]
    if not n:
        return Cohort(name, hosts, None, 0, values=values)
    if metric.name == "cost_per_day_usd":
        # Spend per host-second observed, times a day, times every host of the fleet: what the
        # fleet would pay per day if every host ran this cohort's config.
        value = sum(values) / host_seconds * SECONDS_PER_DAY * fleet_size if host_seconds > 0 else None
    else:
        assert metric.summary is not None
        value = metric.summary(values)
    return Cohort(name, hosts, value, n, values=values)


def format_value(metric: MetricDef, value: float | None) -> str:
    """Return a value as a person reads it: 4.2%, 3.10s, $42.00/day, 1234 tokens."""
    if value is None:
        return "n/a"
    if metric.unit == "ratio":
        return f"{value * 100:.1f}%"
    if metric.unit == "s":
        return f"{value:.2f}s"
    if metric.unit == "usd_per_day":
        return f"${value:,.2f}/day"
    return f"{value:,.0f} tokens"
