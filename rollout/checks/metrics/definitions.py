"""The built-in metrics and how a cohort's usage records become a value and test samples.

Calls are columns (`models.calls.Calls`: one array per field, sorted by time), and every sum,
count, slice and quantile below is computed on the arrays (numpy), never one Python object per
call: a gate over a million calls costs what reading them costs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollout.checks.metrics.stats import RatioEstimate, quantile_variance, ratio_estimate
from rollout.util.durations import period_label

if TYPE_CHECKING:
    from rollout.models.calls import Calls
    from rollout.models.usage import UsageRecord

SUCCESS = 0  # the outcome code of a successful call (models.calls.OUTCOME_CODE["success"])

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class MetricDef:
    """A metric: how it is tested (rate: two proportions; scale: Mann-Whitney) and which way is better."""

    name: str
    test: str  # "rate" | "scale"
    lower_is_better: bool
    unit: str  # "ratio" | "s" | "usd_per_day" | "usd_per_window" | "usd" | "tokens"
    event: Callable[[Calls], Any] | None = None  # rate: which calls count (a bool array)
    sample: Callable[[Calls], Any] | None = None  # scale: the per-call values (a float array)
    summary: Callable[[Any], float] | None = None  # scale: per-call values -> value
    # Spend metrics: the value is spend per host-second x this many seconds x the fleet's hosts
    # (a day for cost_per_day_usd; the check's window for cost_usd, set by `over_window`).
    spend_span_s: float = 0.0
    per_window: bool = False  # the span is the check's window (a budget: $300 per 7d)
    per: str = ""  # how a value's period is written after it: "/7d"

    @property
    def spend(self) -> bool:
        """Return True for a metric of spend per host-second scaled to a span (cost_per_day_usd, cost_usd)."""
        return self.spend_span_s > 0 or self.per_window

    def over_window(self, window: float) -> MetricDef:
        """Return this metric as a check with `window` measures it (a budget's span is its window)."""
        if not self.per_window:
            return self
        return dataclasses.replace(self, spend_span_s=window, per=f"/{period_label(window)}")


def _mean(values: Any) -> float:
    import numpy as np
    return float(np.sum(values)) / len(values)


def quantile(values: Any, q: float) -> float:
    """Return the q-quantile with linear interpolation between closest ranks (as stats.quantile)."""
    import numpy as np
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if not len(ordered):
        raise ValueError("quantile of no values")
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    a, b = float(ordered[low]), float(ordered[high])
    return a + (b - a) * (pos - low)


# Not a metric a check names: the per-call half of cost_per_day_usd (spend rate = calls per
# host-second x cost per call), which carries a price change without the call rate's bursts.
COST_PER_CALL = MetricDef("cost_per_call_usd", "scale", True, "usd", sample=lambda c: c.cost, summary=_mean)


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        MetricDef("error_rate", "rate", True, "ratio", event=lambda c: c.outcome != SUCCESS),
        MetricDef("success_rate", "rate", False, "ratio", event=lambda c: c.outcome == SUCCESS),
        MetricDef("failover_rate", "rate", True, "ratio", event=lambda c: c.failover != 0),
        MetricDef("latency_mean_s", "scale", True, "s", sample=lambda c: c.duration, summary=_mean),
        MetricDef(
            "latency_p95_s",
            "scale",
            True,
            "s",
            sample=lambda c: c.duration,
            summary=lambda v: quantile(v, 0.95),
        ),
        MetricDef(
            "cost_per_day_usd",
            "scale",
            True,
            "usd_per_day",
            sample=lambda c: c.cost,
            spend_span_s=SECONDS_PER_DAY,
            per="/day",
        ),
        MetricDef(
            "tokens_per_call",
            "scale",
            True,
            "tokens",
            sample=lambda c: c.tokens,
            summary=_mean,
        ),
        # A budget: what the whole fleet would spend over one `window` (7d: a week) on the
        # cohort's config, from the spend per host-second of the usage records in that window.
        MetricDef("cost_usd", "scale", True, "usd_per_window", sample=lambda c: c.cost, per_window=True),
    )
}


@dataclass(frozen=True)
class Period:
    """One group of hosts over one stretch of time: their calls (each host's, in host order, as
    views of its columns), and when each host was watched."""

    parts: tuple[Calls, ...]
    spans: tuple[tuple[float, float], ...]  # (start, end) of each host watched

    @property
    def calls(self) -> int:
        return sum(len(p) for p in self.parts)

    def join(self) -> Calls:
        """Return every call of the period in one set of columns (host after host): a copy, for
        the moment it is needed (the parts are views and cost nothing)."""
        from rollout.models.calls import concat

        return concat(self.parts)

    def ordered(self) -> Calls:
        """Return the period's calls in time order (ties: host order, then file order): a copy."""
        import numpy as np

        from rollout.models.calls import Calls
        joined = self.join()
        if len(self.parts) <= 1:
            return joined
        order = np.argsort(joined.ts, kind="stable")
        return Calls(*(c[order] for c in joined.columns()))

    @property
    def host_seconds(self) -> float:
        return sum(max(0.0, end - start) for start, end in self.spans)


@dataclass(frozen=True)
class HostPeriods:
    """A canary host before and since it switched, and the baseline hosts over the same stretches:
    the four cells of a difference-in-differences."""

    host: str
    post: Period
    pre: Period
    baseline_post: Period
    baseline_pre: Period


MAX_SLICES = 30


_estimate_cache: dict[tuple[Any, ...], RatioEstimate | None] = {}


def estimate(metric: MetricDef, period: Period) -> RatioEstimate | None:
    """Return the metric over a period with a variance robust to bursts and heavy tails (cached:
    a period before a switch is the same at every look)."""
    key = _period_key(metric, period)
    if key in _estimate_cache:
        return _estimate_cache[key]
    found = _estimate(metric, period)
    if len(_estimate_cache) >= _CACHE_SIZE:
        _estimate_cache.pop(next(iter(_estimate_cache)))
    _estimate_cache[key] = found
    return found


def _estimate(metric: MetricDef, period: Period) -> RatioEstimate | None:
    """Return the metric over a period with a variance robust to bursts and heavy tails.

    Rates are events per call, means are sums per call, cost is dollars per host-second (the
    quantity cost_per_day_usd shows, before scaling to a day and a fleet), p95 is the sample
    quantile. Time slices of about a second (at most 30) serve as clusters for the variance.
    """
    import numpy as np
    n = period.calls
    if not n or not period.spans:
        return None
    if metric.name == "latency_p95_s":
        durations = period.join().duration
        return RatioEstimate(quantile(durations, 0.95), quantile_variance(durations, 0.95))
    start = min(s for s, _ in period.spans)
    end = max(e for _, e in period.spans)
    m = max(1, min(MAX_SLICES, int(end - start)))
    width = (end - start) / m if end > start else 1.0
    ys, counts = np.zeros(m), np.zeros(m)
    squares = total = 0.0
    events = 0
    for part in period.parts:  # each host's calls: views, summed slice by slice, never copied whole
        # int() of (ts - start) / width, clipped to the slices: the slice each call falls in
        slots = np.clip(((part.ts - start) / width).astype(np.int64), 0, m - 1)
        counts += np.bincount(slots, minlength=m)
        if metric.spend:
            values = part.cost
        elif metric.test == "rate":
            assert metric.event is not None
            mask = metric.event(part)
            events += int(np.count_nonzero(mask))
            values = mask.astype(np.float64)
        else:
            assert metric.sample is not None
            values = np.asarray(metric.sample(part), dtype=np.float64)
        ys += np.bincount(slots, weights=values, minlength=m)
        squares += float(np.dot(values, values))
        total += float(np.sum(values))
    if metric.spend:
        xs = [0.0] * m
        for s, e in period.spans:
            for j in range(m):
                lo, hi = start + j * width, start + (j + 1) * width
                xs[j] += max(0.0, min(e, hi) - max(s, lo))
        seconds = period.host_seconds
        if seconds <= 0:
            return None
        # Compound Poisson: the variance of a sum of calls arriving at random is the sum of squares.
        return ratio_estimate(ys.tolist(), xs, squares / (seconds * seconds))
    if metric.test == "rate":
        adjusted = (events + 1) / (n + 2)  # Agresti-Caffo: zero counts keep a variance
        return ratio_estimate(ys.tolist(), counts.tolist(), adjusted * (1 - adjusted) / (n + 2))
    mean = total / n
    per_call = max(0.0, squares / n - mean * mean) * n / max(n - 1, 1) / n
    return ratio_estimate(ys.tolist(), counts.tolist(), per_call)


_CACHE_SIZE = 512
# Periods before a switch do not change from look to look: their sums are kept between looks.
_window_cache: dict[tuple[Any, ...], list[float | None]] = {}


def _period_key(metric: MetricDef, period: Period) -> tuple[Any, ...]:
    filled = [p for p in period.parts if len(p)]
    first = float(filled[0].ts[0]) if filled else None
    last = float(filled[-1].ts[-1]) if filled else None
    return (metric.name, period.spans, period.calls, first, last)


def _values(metric: MetricDef, calls: Calls) -> Any:
    """Return the metric's per-call values: 1.0 or 0.0 for a rate's events, else the samples."""
    import numpy as np
    if metric.test == "rate":
        assert metric.event is not None
        return metric.event(calls).astype(np.float64)
    assert metric.sample is not None
    return np.asarray(metric.sample(calls), dtype=np.float64)


def window_values(metric: MetricDef, period: Period, length: float, end: float, k: int) -> list[float | None]:
    """Return the metric over each of the `k` windows of `length` seconds that end at `end`
    (None for a window without calls or host-seconds); cached: a period before a switch is the
    same at every look."""
    import numpy as np
    key = (_period_key(metric, period), length, end, k)
    found = _window_cache.get(key)
    if found is not None:
        return found
    origin = end - k * length
    edges = [origin + j * length for j in range(k + 1)]
    ys, xs = np.zeros(k), np.zeros(k)
    for part in period.parts:  # each host's calls are in time order: a window is a run of them
        cuts = np.searchsorted(part.ts, edges, side="left")
        sums = np.concatenate((np.zeros(1), np.cumsum(_values(metric, part))))
        ys += sums[cuts[1:]] - sums[cuts[:-1]]
        xs += np.diff(cuts)
    out: list[float | None] = []
    for j in range(k):
        lo, hi = edges[j], edges[j + 1]
        y = float(ys[j])
        x = sum(max(0.0, min(e, hi) - max(s, lo)) for s, e in period.spans) if metric.spend else float(xs[j])
        out.append(y / x if x > 0 else None)
    if len(_window_cache) >= _CACHE_SIZE:
        _window_cache.pop(next(iter(_window_cache)))
    _window_cache[key] = out
    return out


def placebo_variance(metric: MetricDef, cell: HostPeriods, length: float) -> float | None:
    """Return the variance of the host-vs-baseline contrast over windows of `length` seconds
    before the switch, when nothing had changed yet: how far the canary's value drifts from what
    the baseline predicts over such a window, with every burst and slow stretch of its own (a
    fleet-wide incident moves both sides and cancels). None with fewer than 3 windows."""
    if length <= 0 or not cell.pre.spans or metric.name == "latency_p95_s":
        return None
    start = min(s for s, _ in cell.pre.spans)
    end = max(e for _, e in cell.pre.spans)
    k = min(60, int((end - start) / length))
    if k < 3:
        return None
    own = window_values(metric, cell.pre, length, end, k)
    base = window_values(metric, cell.baseline_pre, length, end, k)
    pairs = [(a, b) for a, b in zip(own, base, strict=True) if a is not None and b is not None]
    if len(pairs) < 3:
        return None
    mean_b = sum(b for _, b in pairs) / len(pairs)
    ratio = sum(a for a, _ in pairs) / len(pairs) / mean_b if mean_b > 0 else 1.0
    # A shared shock may add to both sides (an incident's errors) or scale both (a slower
    # provider): the contrast that cancels it best, a difference or a scaled one, is the floor.
    return min(_spread([a - b for a, b in pairs]), _spread([a - ratio * b for a, b in pairs]))


def _spread(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def batch_means(metric: MetricDef, period: Period) -> list[float]:
    """Return the means of consecutive batches of calls in time order (about 10 calls each, at
    most 30 batches): averages that are close to normal even when single calls are heavy-tailed."""
    import numpy as np
    assert metric.sample is not None
    values = np.asarray(metric.sample(period.ordered()), dtype=np.float64)
    n = len(values)
    k = max(1, min(MAX_SLICES, n // 10))
    out = []
    for j in range(k):
        a, b = j * n // k, (j + 1) * n // k
        if b > a:
            out.append(float(np.sum(values[a:b])) / (b - a))
    return out


@dataclass
class Cohort:
    """What a cohort measured: its value, sample count, and what a statistical test needs."""

    name: str  # "canary" | "baseline"
    hosts: tuple[str, ...]
    value: float | None
    samples: int | None  # None: the source cannot count samples (a bare Prometheus value)
    events: int | None = None  # rate metrics: calls that count (errors, failovers, successes)
    values: Any = None  # scale metrics: one value per call (a float array)
    notes: list[str] = field(default_factory=list)
    period: Period | None = None  # the calls behind the value (usage sources)
    did: list[HostPeriods] | None = None  # canary: each host before/after, with the baseline's change
    # spend metrics: their span (a day, a budget's window) times the fleet's hosts (value = rate x this)
    spend_scale: float = 1.0
    calls_per_s: float | None = None  # how fast this cohort's calls arrive
    # cost: relative variance of one host's call rate against the other hosts' beyond Poisson's over
    # windows as long as the canary has been live, before any switch (bursts); None: not measured
    rate_placebo: float | None = None


def cohort_from_records(
    metric: MetricDef,
    name: str,
    hosts: tuple[str, ...],
    records: Sequence[UsageRecord] | Calls | Period,
    host_seconds: float,
    fleet_size: int,
) -> Cohort:
    """Compute a metric over a cohort's calls (cost: projected per day for the whole fleet)."""
    import numpy as np

    from rollout.models.calls import Calls

    if isinstance(records, Period):
        parts = records.parts
    else:
        parts = (records if isinstance(records, Calls) else Calls.from_records(records),)
    n = sum(len(p) for p in parts)
    if metric.test == "rate":
        assert metric.event is not None
        event = metric.event
        events = sum(int(np.count_nonzero(event(p))) for p in parts)
        return Cohort(name, hosts, events / n if n else None, n, events=events)
    assert metric.sample is not None
    sample = metric.sample
    values = np.concatenate([np.asarray(sample(p), dtype=np.float64) for p in parts]) if parts else np.empty(0)
    if not n:
        return Cohort(name, hosts, None, 0, values=values)
    if metric.spend:
        # Spend per host-second observed, times a day (or the budget's window), times every host of
        # the fleet: what the fleet would pay over that span if every host ran this cohort's config.
        span = metric.spend_span_s
        value = float(np.sum(values)) / host_seconds * span * fleet_size if host_seconds > 0 else None
    else:
        assert metric.summary is not None
        value = metric.summary(values)
    return Cohort(name, hosts, value, n, values=values)


def format_value(metric: MetricDef, value: float | None) -> str:
    """Return a value as a person reads it: 4.2%, 3.10s, $42.00/day, $312.00/7d, 1234 tokens."""
    if value is None:
        return "n/a"
    if metric.unit == "ratio":
        return f"{value * 100:.1f}%"
    if metric.unit == "s":
        return f"{value:.2f}s"
    if metric.unit in ("usd_per_day", "usd_per_window"):
        return f"${value:,.2f}{metric.per}"
    return f"{value:,.0f} tokens"
