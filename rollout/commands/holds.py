"""What holds a rollout back from promoting: a pause, and a stage's progress deadline."""

from __future__ import annotations

import time

from rollout.commands.common import Report, finish_restore
from rollout.core import deadlines
from rollout.core.deadlines import Deadline
from rollout.core.machine import Phase
from rollout.edges.engine import Run
from rollout.util.durations import format_duration


def held_wait(run: Run, wait: float) -> float:
    """Return the seconds `run --auto` waits before promoting: while paused, the stage bakes on
    (measured every `health.interval`, rolled back on a failure, never promoted)."""
    if run.rollout.state.paused:
        return max(wait, run.playbook.health.interval)
    return wait


def _deadline(run: Run) -> Deadline | None:
    index = run.rollout.state.stage_index
    found = run.playbook.deadlines
    return found[index] if index < len(found) else None


def deadline_step(run: Run, now: float | None = None) -> Report | None:
    """Once the current stage is past its progress deadline, send one `deadline` event; with
    `on_deadline: rollback`, roll back (exit 3). Return what was done, None when nothing was due."""
    state = run.rollout.state
    stage = run.playbook.stages[state.stage_index]
    limit = _deadline(run)
    entered = state.stage_entered_at
    if state.phase not in (Phase.SHADOW, Phase.LIVE) or state.deadline_sent == stage.name:
        return None
    now = time.time() if now is None else now
    if limit is None or not deadlines.missed(limit, entered, now):
        return None
    last = state.last_verdict or {}
    gate = (
        f"; last gate: {last.get('decision')} ({last.get('why')})" if last.get("stage") == stage.name else ""
    )
    paused = "; paused" if state.paused else ""
    why = (
        f"stage {stage.name} not promoted within its deadline of {format_duration(limit.seconds)} "
        f"(entered {format_duration(now - entered)} ago{gate}{paused})"
    )
    state.deadline_sent = stage.name
    run.rollout.commit("deadline", reason=why, action=limit.action, percent=stage.percent)
    report = Report(data={"id": run.rollout.id, "deadline": {"stage": stage.name, "action": limit.action}})
    report.say(f"deadline: {why}")
    if limit.action == "rollback":
        report.data["decision"] = "fail"
        report.say("rolling back: on_deadline is rollback")
        finish_restore(run, "gate-failed", why, report)
    return report


def keeps_measuring(run: Run, decision: object) -> bool:
    """Return True when `run --auto` should measure an inconclusive gate again rather than stop:
    the stage has a deadline still to come, which decides what happens if it never concludes."""
    state = run.rollout.state
    stage = run.playbook.stages[state.stage_index]
    return decision == "inconclusive" and _deadline(run) is not None and state.deadline_sent != stage.name
