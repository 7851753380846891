"""`rollout advance`: gate the current stage, then go live on the next cohort (or complete)."""

from __future__ import annotations

import time

from rollout.commands.common import Report, finish_restore, open_run
from rollout.commands.holds import deadline_step
from rollout.commands.skip import skipped_names, target_index
from rollout.commands.stage import go_live, report_verdict
from rollout.core import machine
from rollout.core.machine import Phase
from rollout.core.state import HostState
from rollout.edges import journal
from rollout.edges.backends import StateAt, open_store
from rollout.edges.engine import (
    Run,
    clear_shadow,
    reconcile,
    refresh_unknown,
    stage_shadow,
)
from rollout.edges.gate import evaluate, recent_pass
from rollout.hosts.fleet import ProgressFn
from rollout.util.durations import format_duration
from rollout.util.errors import REFUSED, Refused


def bake_left(run: Run) -> float:
    """Return the seconds until the current stage's bake time is over (0 when it is)."""
    state = run.rollout.state
    stage = run.playbook.stages[state.stage_index]
    return max(0.0, float(stage.bake) - (time.time() - state.stage_entered_at))


def advance(
    state_dir: StateAt,
    rollout_id: str | None = None,
    progress: ProgressFn | None = None,
    *,
    force: bool = False,
    to: int | None = None,
    yes: bool = False,
) -> Report:
    """Gate the current stage; on pass promote (to the next stage, or the one at `to` percent),
    on fail roll back, otherwise refuse (exit 5)."""
    store = open_store(state_dir)
    with store.lock():
        rollout = store.pick(rollout_id, "advance")
        machine.require(rollout.state.phase, "advance")
        journal.require_intact(rollout, "advance", force)
        run = open_run(rollout, progress)
        try:
            target = target_index(run, to, yes)
            missed = deadline_step(run)  # past the stage's deadline: alert once, or roll back
            if missed is not None and rollout.state.phase not in (Phase.SHADOW, Phase.LIVE):
                return missed
            report = advance_run(run, target)
            report.lines[:0] = missed.lines if missed else []
            return report
        finally:
            run.fleet.close()


def advance_run(run: Run, target: int | None = None) -> Report:
    """Advance an opened rollout (the caller holds the lock); `target`: the stage to promote to."""
    report = Report(data={"id": run.rollout.id})
    reconciled = reconcile(run)
    if reconciled:
        from rollout.commands.show import reconciled_text

        report.say(reconciled_text(reconciled))
    refreshed = refresh_unknown(run)
    for host, now in refreshed.items():
        report.say(f"{host}: {now}")
    state, pb = run.rollout.state, run.playbook
    machine.require(state.phase, "advance")
    machine.require_unpaused(state.paused, "advance")
    index = state.stage_index
    stage = pb.stages[index]
    left = bake_left(run)
    if left > 0:
        raise Refused(
            f"cannot advance: stage {stage.name} is baking, {format_duration(left)} left "
            f"(of {format_duration(stage.bake)}); nothing changed"
        )
    missing: list[str] = []
    if stage.is_shadow:
        # After a crash mid-staging some hosts may lack their shadow copy: finish staging first.
        missing = [
            h
            for h in pb.hosts
            if run.hosts[h].state == HostState.BASELINE
            and not run.hosts[h].shadow_staged
            and run.hosts[h].held_back is None  # a pull host the patch breaks gets nothing
        ]
        if missing:
            failed = stage_shadow(run, missing)
            report.say(f"staged the shadow copy on {len(missing) - len(failed)} host(s) that lacked it")
    recent = None if (reconciled or refreshed or missing) else recent_pass(run, stage)
    if recent is not None:
        ago = time.time() - float(recent["measured_at"])
        report.data.update(decision="pass", verdict=recent, reused=f"gate {stage.name}: PASS: ")
        report.say(
            f"gate {stage.name}: PASS: {recent['why']} (measured {ago:.0f}s ago, within health.interval)"
        )
        run.rollout.log("gate-reused", stage=stage.name, measured_at=recent["measured_at"])
        return _promote(run, index, report, target)
    verdict = evaluate(run, stage)
    report_verdict(run, stage, verdict, report)
    report.data["decision"] = verdict.decision
    if verdict.decision == "fail":
        report.say(f"rolling back: gate {stage.name} failed")
        finish_restore(run, "gate-failed", f"gate {stage.name} failed: {verdict.why}", report)
        return report
    if verdict.decision in ("inconclusive", "retry"):
        more = f" ({verdict.needed} more samples needed)" if verdict.needed else ""
        report.say(f"not advancing{more}; nothing changed, nothing rolled back")
        report.exit_code = REFUSED
        return report
    return _promote(run, index, report, target)


def _promote(run: Run, index: int, report: Report, target: int | None = None) -> Report:
    """The gate of stage `index` passed: go live on the next cohort (or stage `target`'s), or complete."""
    state, pb = run.rollout.state, run.playbook
    if index == len(pb.stages) - 1:
        for host, why in sorted(clear_shadow(run, list(pb.hosts)).items()):
            report.say(f"warning: {host}: shadow copy not removed: {why}")
        state.phase = machine.transition(state.phase, "finish")
        run.rollout.commit("complete", hosts=list(pb.hosts))
        off = {h: rec.state for h, rec in run.hosts.items() if rec.state != HostState.CANDIDATE}
        if off:
            names = ", ".join(f"{h} ({state})" for h, state in sorted(off.items()))
            report.say(f"rollout {run.rollout.id} complete, except: {names}")
        else:
            report.say(f"rollout {run.rollout.id} complete: the candidate is live on every host")
        return report
    if target is not None and target > index + 1:
        skipped = skipped_names(run, index, target)
        run.rollout.log("stages-skipped", skipped=skipped, to=pb.stages[target].name)
        report.say(f"skipping {', '.join(skipped)} (advance --to, confirmed with --yes)")
    go_live(run, target if target is not None else index + 1, report)
    return report
