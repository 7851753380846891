"""Check kind `metric`: a metric over a window, canary cohort against bounds and the baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.durations import format_duration, parse_duration
from rollout.errors import BadInput
from rollout.health.base import CheckSpec, GateContext, Measurement
from rollout.metrics.assess import DEFAULT_ALPHA, Bounds, assess
from rollout.metrics.definitions import METRICS, Cohort, cohort_from_records
from rollout.metrics.prometheus import QueryError, query_value, render
from rollout.metrics.sources import HostFileSource, PrometheusSource, Source, fetch_batches, parse_source
from rollout.usage import UsageRecord

DEFAULT_WINDOW = 600.0
DEFAULT_MIN_SAMPLES = 10
CLOCK_SKEW_S = 60.0  # records stamped slightly in the future still count


@dataclass(frozen=True)
class MetricOptions:
    metric: str
    source: Source
    window: float
    bounds: Bounds


class MetricKind:
    name = "metric"
    keys = frozenset({"metric", "source", "window", "max", "min", "max_regression", "min_samples", "alpha"})

    def parse(self, spec: dict[str, Any], where: str, base_dir: Path) -> MetricOptions:
        metric = spec.get("metric")
        if metric not in METRICS:
            raise BadInput(f"{where}.metric: unknown metric {metric!r} (known: {', '.join(METRICS)})")
        if "source" not in spec:
            raise BadInput(f"{where}.source: missing (required)")
        source = parse_source(spec["source"], where)
        window = parse_duration(spec.get("window", DEFAULT_WINDOW))
        if window is None or window <= 0:
            raise BadInput(f"{where}.window: must be a duration like 10m, got {spec.get('window')!r}")
        hi, lo = _number(spec, "max", where), _number(spec, "min", where)
        if hi is not None and lo is not None and lo > hi:
            raise BadInput(f"{where}.min: {lo:g} is above max {hi:g}")
        regression = _number(spec, "max_regression", where)
        if regression is not None and not METRICS[metric].lower_is_better and regression >= 1:
            raise BadInput(f"{where}.max_regression: must be below 1 for {metric}, got {regression:g}")
        if hi is None and lo is None and regression is None:
            raise BadInput(f"{where}: a metric check needs max, min or max_regression")
        samples = spec.get("min_samples", DEFAULT_MIN_SAMPLES)
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise BadInput(f"{where}.min_samples: must be a whole number >= 1, got {samples!r}")
        alpha = _number(spec, "alpha", where)
        if alpha is not None and not 0 < alpha < 0.5:
            raise BadInput(f"{where}.alpha: must be between 0 and 0.5, got {alpha:g}")
        bounds = Bounds(hi, lo, regression, samples, DEFAULT_ALPHA if alpha is None else alpha)
        return MetricOptions(metric, source, window, bounds)

    def evaluate(self, check: CheckSpec, ctx: GateContext) -> list[Measurement]:
        opts: MetricOptions = check.options
        if ctx.stage.is_shadow:
            why = f"{opts.metric}: not measured in shadow (the candidate serves no traffic yet)"
            return [Measurement(check.name, None, "pass", why, check.enforce, {"metric": opts.metric})]
        if not ctx.canary:
            why = f"{opts.metric}: no host carries the candidate yet"
            return [Measurement(check.name, None, "inconclusive", why, check.enforce, {"needed": 1})]
        now = time.time()
        if isinstance(opts.source, PrometheusSource):
            got = _from_prometheus(opts, opts.source, ctx, check.timeout)
        else:
            got = _from_hosts(opts, opts.source, ctx, now)
        if isinstance(got, str):
            return [Measurement(check.name, None, "error", got, check.enforce, {"metric": opts.metric})]
        canary, baseline = got
        verdict = assess(METRICS[opts.metric], opts.bounds, canary, baseline)
        details = {
            **verdict.details,
            "window_s": opts.window,
            "source": opts.source.type,
            "canary_hosts": list(canary.hosts),
            "baseline_hosts": list(baseline.hosts) if baseline is not None else [],
        }
        return [Measurement(check.name, None, verdict.outcome, verdict.why, check.enforce, details)]


def _number(spec: dict[str, Any], key: str, where: str) -> float | None:
    if key not in spec:
        return None
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadInput(f"{where}.{key}: must be a number >= 0, got {value!r}")
    return float(value)


def _from_hosts(
    opts: MetricOptions, source: HostFileSource, ctx: GateContext, now: float
) -> tuple[Cohort, Cohort | None] | str:
    """Read every cohort host's records and keep those inside the window since it switched."""
    metric = METRICS[opts.metric]
    starts = {h: max(now - opts.window, ctx.switched_at.get(h, now - opts.window)) for h in ctx.canary}
    baseline_hosts = tuple(h for h in ctx.baseline_hosts if h not in starts)
    batches = fetch_batches(ctx.fleet, source, ctx.canary + baseline_hosts)
    failed = [b for b in batches.values() if isinstance(b, str)]
    if failed:
        return "; ".join(failed)
    # The baseline is measured over the same period the canary has been live.
    since = min(starts.values())
    for h in baseline_hosts:
        starts[h] = since
    picked: dict[str, list[UsageRecord]] = {}
    bad = 0
    for host, batch in batches.items():
        assert not isinstance(batch, str)
        bad += len(batch.bad_lines)
        picked[host] = [r for r in batch.records if starts[host] <= r.ts <= now + CLOCK_SKEW_S]
    fleet_size = len(ctx.playbook.hosts)

    def cohort(name: str, hosts: tuple[str, ...]) -> Cohort:
        records = [r for h in hosts for r in picked[h]]
        seconds = sum(now - starts[h] for h in hosts)
        return cohort_from_records(metric, name, hosts, records, seconds, fleet_size)

    canary = cohort("canary", ctx.canary)
    if bad:
        canary.notes.append(f"{bad} unreadable usage line{'s' if bad != 1 else ''} skipped")
    canary.notes.append(f"window {format_duration(now - since)}")
    return canary, cohort("baseline", baseline_hosts) if baseline_hosts else None


def _from_prometheus(
    opts: MetricOptions, source: PrometheusSource, ctx: GateContext, timeout: float
) -> tuple[Cohort, Cohort | None] | str:
    """Ask Prometheus for each cohort's value (averaged over hosts when the query names {host})."""
    baseline_hosts = tuple(h for h in ctx.baseline_hosts if h not in ctx.canary)

    def cohort(name: str, hosts: tuple[str, ...]) -> Cohort:
        per_host = "{host}" in source.query
        targets: list[str | None] = list(hosts) if per_host else [None]
        values = [
            query_value(source.url, render(source.query, hosts, h, opts.window), timeout) for h in targets
        ]
        found = [v for v in values if v is not None]
        value = sum(found) / len(found) if found else None
        samples: int | None = None
        if source.samples_query is not None:
            counts = [
                query_value(source.url, render(source.samples_query, hosts, h, opts.window), timeout)
                for h in targets
            ]
            samples = int(round(sum(c for c in counts if c is not None)))
        events = (
            int(round(value * samples))
            if METRICS[opts.metric].test == "rate" and value is not None and samples
            else None
        )
        return Cohort(name, hosts, value, samples, events=events)

    try:
        canary = cohort("canary", ctx.canary)
        baseline = cohort("baseline", baseline_hosts) if baseline_hosts else None
    except QueryError as e:
        return f"{opts.metric}: {e}"
    return canary, baseline


KIND = MetricKind()
