"""Seeded usage logs and the numbers the metric gates gave on them before records were streamed.

`python3 -m tests.metric_golden` (re)writes tests/data/metric_golden.json from the code it runs
with; tests/test_metric_stream.py checks that the streamed aggregates give the same numbers.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HOSTS = ("c1", "c2", "b1", "b2", "b3", "b4")
CANARY = ("c1", "c2")
NOW = 1_764_000_000.0
SWITCH = {"c1": NOW - 300.0, "c2": NOW - 240.0}
WINDOW = 600.0
GOLDEN = Path(__file__).parent / "data" / "metric_golden.json"
CHECKS: dict[str, dict[str, float]] = {
    "error_rate": {"max": 0.05, "max_regression": 0.1},
    "success_rate": {"min": 0.9, "max_regression": 0.1},
    "failover_rate": {"max": 0.2, "max_regression": 0.1},
    "latency_mean_s": {"max": 10.0, "max_regression": 0.1},
    "latency_p95_s": {"max": 20.0, "max_regression": 0.1},
    "tokens_per_call": {"max": 5000.0, "max_regression": 0.1},
    "cost_per_day_usd": {"max": 2000.0, "max_regression": 0.1},
    "cost_usd": {"max": 5000.0, "max_regression": 0.1},
}


def usage_lines(host: str, seed: int = 7) -> bytes:
    """Return a host's usage.jsonl: ~1 call/s over the last 25 minutes, stamped by the second
    (ties), written slightly out of order, ISO and epoch stamps mixed, a few bad lines."""
    rng = random.Random(f"{seed}-{host}")
    lines: list[str] = []
    t = NOW - 1500.0
    worse = host in CANARY
    while t < NOW - 1:
        t += rng.expovariate(1.2)
        live = worse and t >= SWITCH[host]
        stamp = float(int(t))
        ts: Any = (
            datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if rng.random() < 0.5 else stamp
        )
        record = {
            "ts": ts,
            "gen_ai.agent.name": rng.choice(["build", "plan"]),
            "gen_ai.request.model": "m/x",
            "gen_ai.usage.input_tokens": rng.randint(100, 3000),
            "gen_ai.usage.output_tokens": rng.randint(10, 900),
            "cost_usd": round(rng.lognormvariate(-4.5, 0.8) * (1.3 if live else 1.0), 6),
            "duration_s": round(rng.lognormvariate(1.2, 0.6) * (1.2 if live else 1.0), 3),
            "outcome": "success" if rng.random() > (0.06 if live else 0.03) else rng.choice(["error", "timeout"]),
            "failover": rng.random() < 0.05,
        }
        lines.append(json.dumps(record))
        if rng.random() < 0.003:
            lines.append(rng.choice(['{"ts": 1, "outcome": "maybe"}', "not json", '{"duration_s": 1}']))
    # writers append when a call ends: swap some neighbours
    for i in range(1, len(lines) - 1, 7):
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    return ("\n".join(lines) + "\n").encode()


def summary(details: dict[str, Any], outcome: str) -> dict[str, Any]:
    """Return the numbers of a verdict worth comparing."""
    keep = ("value", "baseline", "samples", "baseline_samples", "p_value", "regression", "expected", "method")
    out = {k: details.get(k) for k in keep}
    out["outcome"] = outcome
    out["interval"] = details.get("interval")
    return out


def old_verdicts() -> dict[str, Any]:
    """Return every check's verdict computed from UsageRecord lists (the code before streaming)."""
    from rollout.checks.metrics.assess import Bounds, assess
    from rollout.checks.metrics.definitions import METRICS
    from rollout.checks.metrics.periods import split_cohorts
    from rollout.models.usage import read_usage_bytes

    batches = {h: read_usage_bytes(usage_lines(h)) for h in HOSTS}
    records = {h: b.records for h, b in batches.items()}
    out: dict[str, Any] = {"_counts": {h: [len(b.records), len(b.bad_lines)] for h, b in batches.items()}}
    for name, spec in CHECKS.items():
        metric = METRICS[name].over_window(WINDOW)
        bounds = Bounds(spec.get("max"), spec.get("min"), spec["max_regression"], 10, 0.01)
        canary, baseline = split_cohorts(
            metric, records, CANARY, HOSTS[2:], SWITCH, NOW, WINDOW, len(HOSTS)
        )
        verdict = assess(metric, bounds, canary, baseline, 0.005)
        out[name] = summary(verdict.details, verdict.outcome)
    return out


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(old_verdicts(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
