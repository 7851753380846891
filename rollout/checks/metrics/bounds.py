"""A metric check's limits (parsed with the playbook; the statistics live in `assess`)."""

from __future__ import annotations

from dataclasses import dataclass

from rollout.checks.metrics.definitions import MetricDef, format_value

DEFAULT_ALPHA = 0.01
P95_SHARE = 0.05  # p95 above a bound means more than 5% of calls above it
# While a stage may still extend, a change shown over the margin with p below this is
# inconclusive (the gate keeps sampling) rather than a pass: weak evidence of a regression does not
# promote the candidate while more calls can be had. At the extension's end the check's alpha holds.
SUGGESTIVE_P = 0.2


@dataclass(frozen=True)
class Bounds:
    """A metric check's limits: absolute `max`/`min`, `max_regression` vs baseline, `min_samples`."""

    max: float | None = None
    min: float | None = None
    max_regression: float | None = None
    min_samples: int = 10
    alpha: float = DEFAULT_ALPHA
    fail_fleetwide: bool = False  # on_fleetwide: fail (default hold: a fleet-wide breach is inconclusive)

    def describe(self, metric: MetricDef) -> str:
        parts = []
        if self.max is not None:
            parts.append(f"max {format_value(metric, self.max)}")
        if self.min is not None:
            parts.append(f"min {format_value(metric, self.min)}")
        if self.max_regression is not None:
            parts.append(f"regression <= {self.max_regression * 100:g}%")
        return ", ".join(parts) or "none"
