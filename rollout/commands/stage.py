"""Moving between stages: go live on a stage's cohort, and report a gate's verdict."""

from __future__ import annotations

import time

from rollout.checks.judge import Verdict
from rollout.commands.common import Report
from rollout.core import cohorts, machine
from rollout.core.machine import Phase
from rollout.core.playbook import Stage
from rollout.core.state import HostState
from rollout.edges.engine import Run, activate
from rollout.edges.gate import evaluate, reset_counters
from rollout.util.durations import format_duration
from rollout.util.errors import REFUSED


def go_live(run: Run, index: int, report: Report) -> None:
    """Enter stage `index`: switch its cohort (hosts not yet on the candidate) to the candidate.
    Hosts outside the cohort keep their shadow copy until their own stage promotes it."""
    state, pb = run.rollout.state, run.playbook
    stage = pb.stages[index]
    cohort = cohorts.cohort_for(stage.percent, state.order)
    skipped = activate(run, cohort)
    state.stage_index, state.stage, state.percent = index, stage.name, stage.percent
    state.stage_entered_at = time.time()
    if state.phase != Phase.LIVE:
        state.phase = machine.transition(state.phase, "promote")
    reset_counters(run)
    run.rollout.commit("stage-entered", percent=stage.percent, cohort=cohort, skipped=skipped)
    on = sum(1 for h in pb.hosts if run.hosts[h].state == HostState.CANDIDATE)
    report.say(f"stage {stage.name}: candidate live on {on}/{len(pb.hosts)} host(s)")
    for host, why in sorted(skipped.items()):
        report.say(f"warning: {host} not switched: {why}")
    if skipped:
        # Live on part of the cohort is not the stage the operator asked for: not a plain success.
        report.say(
            f"stage {stage.name} is live on {len(cohort) - len(skipped)} of its {len(cohort)} host(s); "
            "`rollout advance` gates it and retries the others when they are back, `rollout abort` restores all"
        )
        report.exit_code = REFUSED
    failed = [h for h in cohort if run.hosts[h].switch_failed]
    if failed:
        # A failed switch (files put back) or activation is a failed gate: measure it now, so the
        # rollback does not wait out the bake on a stage that is not what was asked for.
        verdict = evaluate(run, stage)
        report_verdict(run, stage, verdict, report)
        report.data["decision"] = verdict.decision
        if verdict.decision == "fail":
            from rollout.commands.common import finish_restore

            report.say(f"rolling back: the switch failed on {', '.join(failed)}")
            finish_restore(run, "gate-failed", f"gate {stage.name} failed: {verdict.why}", report)
            return
    if stage.bake:
        report.say(f"baking {format_duration(stage.bake)}; `rollout advance` after that gates this stage")


def report_verdict(run: Run, stage: Stage, verdict: Verdict, report: Report) -> None:
    """Add a gate's verdict, with each failing or pending measurement, to the report."""
    report.data["verdict"] = verdict.to_json()
    report.say(f"gate {stage.name}: {verdict.decision.upper()}: {verdict.why}")
    for m in verdict.measurements:
        # Metric checks show their numbers when they pass too; other passes stay quiet (one per host).
        if m.outcome != "pass" or m.details.get("value") is not None:
            where = m.host or "local"
            tail = (m.details.get("output_tail") or "").strip()
            line = f"  {m.check} @ {where}: {m.outcome}: {m.why}"
            if not m.enforce:
                line += " (observe only)"
            report.say(line)
            if tail and m.outcome == "fail":
                report.say("    " + tail.splitlines()[-1][:200])
