"""Cut hosts' usage records into the periods a metric gate compares (pure; no I/O).

The canary is every canary host since it switched (within the window), the baseline every host
still on the old config over the same stretch. For the difference-in-differences each canary host
also gets its own calls from before its switch and the baseline hosts' calls over the same two
stretches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rollout.checks.metrics.definitions import (
    Cohort,
    HostPeriods,
    MetricDef,
    Period,
    cohort_from_records,
)
from rollout.models.calls import Calls
from rollout.models.usage import UsageRecord
from rollout.util.durations import format_duration

CLOCK_SKEW_S = 60.0  # records stamped slightly in the future still count


def split_cohorts(
    metric: MetricDef,
    records: Mapping[str, Sequence[UsageRecord] | Calls],
    canary_hosts: tuple[str, ...],
    baseline_hosts: tuple[str, ...],
    switched_at: Mapping[str, float],
    now: float,
    window: float,
    fleet_size: int,
    first_seen: Mapping[str, float] | None = None,
) -> tuple[Cohort, Cohort | None]:
    """Return the canary and baseline cohorts (baseline None when no host is left on it).
    `records` are each host's calls (columns sorted by time, or records); `first_seen` is when
    each host's first call was, where calls before the window were already let go."""
    import numpy as np
    starts = {h: max(now - window, switched_at.get(h, now - window)) for h in canary_hosts}
    baseline_hosts = tuple(h for h in baseline_hosts if h not in starts)
    by_host = {h: _calls(records.get(h, ())) for h in canary_hosts + baseline_hosts}
    stamps = {h: c.ts for h, c in by_host.items()}
    seen = first_seen or {}
    # When each host's logging began: its first call ever (kept apart from calls let go).
    first: dict[str, float | None] = {
        h: seen.get(h, float(ts[0]) if len(ts) else None) for h, ts in stamps.items()
    }

    def period(hosts: tuple[str, ...], lo: Mapping[str, float], hi: float, *, post: bool) -> Period:
        parts: list[Calls] = []
        spans = []
        for h in hosts:
            ts = stamps[h]
            left = int(np.searchsorted(ts, lo[h], side="left"))
            if post:
                right = int(np.searchsorted(ts, hi + CLOCK_SKEW_S, side="right"))
            else:
                right = int(np.searchsorted(ts, hi, side="left"))
            if right > left:
                parts.append(by_host[h].slice(left, right))
            # Before a switch a host is watched from its first recorded call (logging began then).
            began = first[h]
            begin = lo[h] if post else min(hi, max(lo[h], began if began is not None else hi))
            spans.append((begin, hi))
        return Period(tuple(parts), tuple(spans))

    def cohort(name: str, hosts: tuple[str, ...], lo: Mapping[str, float]) -> Cohort:
        watched = period(hosts, lo, now, post=True)
        found = cohort_from_records(metric, name, hosts, watched, watched.host_seconds, fleet_size)
        found.period, found.spend_scale = watched, metric.spend_span_s * fleet_size
        wall = now - min(lo.values())
        found.calls_per_s = watched.calls / wall if wall > 0 else None
        return found

    since = min(starts.values())  # the baseline is measured over the stretch the canary is live
    canary = cohort("canary", canary_hosts, starts)
    if baseline_hosts:
        cells = []
        for h in canary_hosts:
            switched, began = switched_at.get(h), first[h]
            if switched is None or began is None or began >= switched:
                continue  # no calls from before its switch: nothing to difference against
            pre_lo = max(switched - window, began)
            pre = dict.fromkeys((h, *baseline_hosts), pre_lo)
            post = dict.fromkeys(baseline_hosts, starts[h])
            cells.append(
                HostPeriods(
                    h,
                    period((h,), starts, now, post=True),
                    period((h,), pre, switched, post=False),
                    period(baseline_hosts, post, now, post=True),
                    period(baseline_hosts, pre, switched, post=False),
                )
            )
        canary.did = cells or None
        if metric.spend and cells:
            switch = min(switched_at[c.host] for c in cells)
            earliest = min((b for b in first.values() if b is not None), default=switch)
            lo = max(switch - window, earliest)
            canary.rate_placebo = rate_placebo(stamps, canary_hosts + baseline_hosts, lo, switch, now - since)
    canary.notes.append(f"window {format_duration(now - since)}")
    baseline = (
        cohort("baseline", baseline_hosts, dict.fromkeys(baseline_hosts, since)) if baseline_hosts else None
    )
    return canary, baseline


MAX_PLACEBO_WINDOWS = 200


def _calls(found: Sequence[UsageRecord] | Calls) -> Calls:
    return found if isinstance(found, Calls) else Calls.from_records(found)


def rate_placebo(
    stamps: Mapping[str, Any], hosts: tuple[str, ...], lo: float, hi: float, length: float
) -> float | None:
    """Return the relative variance of one host's call rate against the other hosts' over windows
    of `length` seconds in [lo, hi), before any host switched, beyond what Poisson arrivals give:
    each host's calls in a window over its mean, minus the other hosts' over theirs, pooled over
    every host (so a burst on any host of the fleet counts, not only on the few canary hosts).
    Windows slide by about a second. None with fewer than two hosts with calls or a history
    shorter than three windows."""
    import numpy as np
    if length <= 0 or hi - lo < 3 * length:
        return None
    counts: dict[str, list[int]] = {}
    starts: list[float] = []
    step = max(min(1.0, length), (hi - lo - length) / MAX_PLACEBO_WINDOWS)
    a = lo
    while a + length <= hi + 1e-9:
        starts.append(a)
        a += step
    begins = np.asarray(starts)
    for h in hosts:
        ts = stamps.get(h, np.empty(0))
        ends = np.searchsorted(ts, begins + length, side="left") - np.searchsorted(ts, begins, side="left")
        counts[h] = ends.tolist()
    means = {h: sum(c) / len(c) for h, c in counts.items() if c and sum(c) > 0}
    if len(means) < 2 or len(starts) < 3:
        return None
    pooled, used = 0.0, 0
    for h, mean in means.items():
        others = [o for o in means if o != h]
        rest_mean = sum(means[o] for o in others)
        diffs = [
            counts[h][j] / mean - sum(counts[o][j] for o in others) / rest_mean for j in range(len(starts))
        ]
        centre = sum(diffs) / len(diffs)
        spread = sum((d - centre) ** 2 for d in diffs) / (len(diffs) - 1)
        # What Poisson arrivals alone would give; the rest is bursts (or slow swings).
        pooled += max(0.0, spread - 1 / mean - 1 / rest_mean)
        used += 1
    return pooled / used
