"""Check kind `metric`: a metric over a window, canary cohort against bounds and the baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollout.checks.base import CheckSpec, GateContext, Measurement
from rollout.checks.metrics.bounds import DEFAULT_ALPHA, SUGGESTIVE_P, Bounds
from rollout.checks.metrics.definitions import METRICS, Cohort, MetricDef
from rollout.checks.metrics.source_spec import HostFileSource, PrometheusSource, Source, parse_source

# Reading hosts and Prometheus and the statistics are imported by `evaluate` only: a playbook is
# parsed by every verb (`status` too), a gate measured by few.
from rollout.util.durations import parse_duration
from rollout.util.errors import BadInput

if TYPE_CHECKING:
    from rollout.models.calls import Calls

DEFAULT_WINDOW = 600.0
DEFAULT_MIN_SAMPLES = 10


@dataclass(frozen=True)
class MetricOptions:
    metric: str
    source: Source
    window: float
    bounds: Bounds
    definition: MetricDef  # the metric as this check measures it (a budget's span is its window)


class MetricKind:
    name = "metric"
    keys = frozenset(
        {"metric", "source", "window", "max", "min", "max_regression", "min_samples", "alpha", "on_fleetwide"}
    )

    def parse(self, spec: dict[str, Any], where: str, base_dir: Path) -> MetricOptions:
        metric = spec.get("metric")
        if metric not in METRICS:
            raise BadInput(f"{where}.metric: unknown metric {metric!r} (known: {', '.join(METRICS)})")
        if "source" not in spec:
            raise BadInput(f"{where}.source: missing (required)")
        source = parse_source(spec["source"], where)
        definition = METRICS[metric]
        if definition.per_window and "window" not in spec:
            raise BadInput(
                f"{where}.window: missing: a {metric} check is a budget over its window "
                "(e.g. window: 7d with max: 300 for $300 a week)"
            )
        window = parse_duration(spec.get("window", DEFAULT_WINDOW))
        if window is None or window <= 0:
            raise BadInput(f"{where}.window: must be a duration like 10m, got {spec.get('window')!r}")
        hi, lo = _number(spec, "max", where), _number(spec, "min", where)
        if definition.per_window and hi is None:
            raise BadInput(
                f"{where}.max: missing: a {metric} check needs the budget per window in USD "
                f"(max: 300 with window: {spec.get('window')})"
            )
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
        fleetwide = spec.get("on_fleetwide", "hold")
        if fleetwide not in ("hold", "fail"):
            raise BadInput(f"{where}.on_fleetwide: must be 'hold' or 'fail', got {fleetwide!r}")
        bounds = Bounds(
            hi, lo, regression, samples, DEFAULT_ALPHA if alpha is None else alpha, fleetwide == "fail"
        )
        return MetricOptions(metric, source, window, bounds, definition.over_window(window))

    def evaluate(self, check: CheckSpec, ctx: GateContext) -> list[Measurement]:
        from rollout.checks.metrics.assess import assess
        from rollout.checks.metrics.stats import look_alpha

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
        gated = [st.name for st in ctx.playbook.stages if not st.is_shadow and check.applies_to(st.name)]
        position = gated.index(ctx.stage.name) if ctx.stage.name in gated else 0
        bake, extension = ctx.bake_s, ctx.extension_s
        at = bake + extension if ctx.at_s is None else ctx.at_s  # None: the stage's one look
        spend = look_alpha(
            opts.bounds.alpha, ctx.look, ctx.since_s, at, bake, extension, position, len(gated)
        )
        # Weak evidence of a regression holds the gate only while the stage may still extend.
        hold = SUGGESTIVE_P if at < bake + extension else None
        verdict = assess(opts.definition, opts.bounds, canary, baseline, spend, hold)
        details = {
            **verdict.details,
            # The bounds as numbers, so a plot of the looks can draw them (`bound` is the sentence).
            "limits": {
                "max": opts.bounds.max,
                "min": opts.bounds.min,
                "max_regression": opts.bounds.max_regression,
                "lower_is_better": opts.definition.lower_is_better,
                "unit": opts.definition.unit,
                "per": opts.definition.per,
            },
            "window_s": opts.window,
            "source": opts.source.type,
            "canary_hosts": list(canary.hosts),
            "baseline_hosts": list(baseline.hosts) if baseline is not None else [],
            "look": ctx.look,
            "planned_looks": ctx.planned_looks,
            "alpha_look": spend,
            "look_at_s": at,
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
    """Read every cohort host's records and cut them into the periods the gate compares."""
    from rollout.checks.metrics.periods import split_cohorts
    from rollout.checks.metrics.sources import fetch_looks

    baseline_hosts = tuple(h for h in ctx.baseline_hosts if h not in ctx.canary)
    looks = fetch_looks(ctx.fleet, source, ctx.canary + baseline_hosts, horizon(opts, ctx, now), ctx.blobs)
    failed = [b for b in looks.values() if isinstance(b, str)]
    if failed:
        return "; ".join(failed)
    bad = 0
    calls: dict[str, Calls] = {}
    first: dict[str, float] = {}
    for host, look in looks.items():
        assert not isinstance(look, str)
        bad += look.bad
        calls[host] = look.calls
        if look.first_ts is not None:
            first[host] = look.first_ts
    canary, baseline = split_cohorts(
        opts.definition,
        calls,
        ctx.canary,
        baseline_hosts,
        ctx.switched_at,
        now,
        opts.window,
        len(ctx.playbook.hosts),
        first,
    )
    if bad:
        canary.notes.insert(0, f"{bad} unreadable usage line{'s' if bad != 1 else ''} skipped")
    return canary, baseline


def horizon(opts: MetricOptions, ctx: GateContext, now: float) -> float:
    """Return the earliest moment a look of this rollout may still read calls from: the earliest
    switch (or now) minus the longest window of the metric checks reading the same source. Every
    period a gate compares starts at or after it, now and at every later look."""
    window = opts.window
    health = getattr(ctx.playbook, "health", None)  # the real playbook: its other checks
    for other in getattr(health, "checks", ()):
        theirs = getattr(other, "options", None)
        if isinstance(theirs, MetricOptions) and theirs.source == opts.source:
            window = max(window, theirs.window)
    switched = min(ctx.switched_at.values(), default=now)
    return min(now, switched) - window


def _from_prometheus(
    opts: MetricOptions, source: PrometheusSource, ctx: GateContext, timeout: float
) -> tuple[Cohort, Cohort | None] | str:
    """Ask Prometheus for each cohort's value (averaged over hosts when the query names {host})."""
    from rollout.checks.metrics.prometheus import QueryError, query_value, render

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
            if opts.definition.test == "rate" and value is not None and samples
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
