"""What holds `run --auto` back from promoting: a pause (and, below, a stage's progress deadline)."""

from __future__ import annotations

from rollout.engine import Run


def held_wait(run: Run, wait: float) -> float:
    """Return the seconds `run --auto` waits before promoting: while paused, the stage bakes on
    (measured every `health.interval`, rolled back on a failure, never promoted)."""
    if run.rollout.state.get("paused"):
        return max(wait, run.playbook.health.interval)
    return wait
