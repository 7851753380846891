"""`rollout run --auto`: drive a rollout through every stage unattended."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rollout import driver, journal, machine, playbook, transports
from rollout.commands.advance import advance_run, bake_left
from rollout.commands.common import Report, finish_restore, open_run
from rollout.commands.holds import deadline_step, held_wait, keeps_measuring
from rollout.commands.stage import report_verdict
from rollout.commands.start import start
from rollout.durations import format_duration
from rollout.engine import Run, reconcile
from rollout.errors import OK, REFUSED, Refused
from rollout.fleet import Fleet, ProgressFn
from rollout.gate import evaluate, looked_before
from rollout.store import Store

Say = Callable[[str], None]


def run_auto(
    state_dir: Path,
    playbook_path: str | Path | None = None,
    progress: ProgressFn | None = None,
    say: Say | None = None,
    sleep: Callable[[float], None] = time.sleep,
    *,
    force: bool = False,
) -> Report:
    """Start (when given a playbook) and advance until complete, rolled back or stopped.
    Waits out bake times, measuring the gate every `health.interval` meanwhile (a failure rolls
    back at once); retries a gate that could not measure every `health.interval`;
    stops with exit 5 on an inconclusive gate."""
    emit = say or (lambda line: None)
    total = Report()
    fleet: Fleet | None = None  # connections kept from stage to stage while there is no bake to wait
    if playbook_path is not None:
        fleet = _fleet_for(playbook_path, progress)
        try:
            first = start(playbook_path, state_dir, progress, fleet)
        except BaseException:
            fleet.close()
            raise
        _relay(first, total, emit)
        if first.exit_code != OK and not (first.exit_code == REFUSED and first.data.get("decision") == "retry"):
            fleet.close()
            return total
    store = Store(state_dir)
    rollout_id: str | None = total.data.get("id")
    sample_due = False  # set after sleeping inside a bake: measure the gate before sleeping again
    extending: int | None = None  # the stage whose inconclusive gate is sampling past its bake
    while True:
        with store.lock():
            rollout = store.pick(rollout_id, "run")
            if rollout_id is not None and rollout.state["state"] not in (machine.SHADOW, machine.LIVE):
                # Someone else (an operator's `abort`) moved it on while we waited.
                raise Refused(f"stopped: rollout {rollout.id} is now {rollout.state['state']}")
            rollout_id = total.data["id"] = rollout.id
            driver.claim(rollout.dir)  # `rollout wait` sees the rollout is driven, not waiting for a human
            machine.require(rollout.state["state"], "run")
            journal.require_intact(rollout, "run", force)
            run = open_run(rollout, progress, fleet)
            fleet, keep = run.fleet, False
            try:
                missed = deadline_step(run)  # past the stage's deadline: alert once, or roll back
                if missed is not None:
                    _relay(missed, total, emit)
                    if rollout.state["state"] not in (machine.SHADOW, machine.LIVE):
                        return total
                wait = held_wait(run, bake_left(run))  # paused: measured, not promoted
                interval = run.playbook.health.interval
                index = rollout.state["stage_index"]
                stage = run.playbook.stages[index]
                if wait > 0 and sample_due:
                    sampled = _sample_bake(run)
                    if sampled is not None:
                        _relay(sampled, total, emit)
                        return total
                if wait <= 0:
                    step = advance_run(run)
                    decision = step.data.get("decision")
                    more = extension_left(run)
                    # A look that began before the extension's end held weak evidence: look once more.
                    at_end = more <= 0 and looked_before(run, stage.bake + run.playbook.health.extension(stage))
                    if decision == "inconclusive" and step.exit_code == REFUSED and (more > 0 or at_end):
                        # Sparse data: keep sampling past the bake (up to health.max_extend).
                        if extending != index:
                            why = (step.data.get("verdict") or {}).get("why", "")
                            emit(
                                f"gate {stage.name}: inconclusive when its bake ended, sampling up to "
                                f"{format_duration(more)} more: {why}"
                            )
                        extending = index
                        wait = 0.0 if at_end else min(interval, more) if interval > 0 else more
                    else:
                        _relay(step, total, emit, skip_reused=True)
                        state = rollout.state["state"]
                        # A deadline still ahead keeps an inconclusive gate measured.
                        again = decision == "retry" or keeps_measuring(run, decision)
                        if decision == "inconclusive" and extending == index and not again:
                            emit(
                                f"stopped for a human: gate {stage.name} is still inconclusive after "
                                f"sampling {format_duration(run.playbook.health.extension(stage))} "
                                "past its bake"
                            )
                        if step.exit_code != OK and not (step.exit_code == REFUSED and again):
                            return total
                        if state == machine.COMPLETE:
                            return total
                        wait = bake_left(run) if not again else interval
                        index = rollout.state["stage_index"]
                        stage = run.playbook.stages[index]
                keep = wait <= 0
            finally:
                if not keep:
                    run.fleet.close()
        # The lock is released while waiting so `status` and `abort` stay usable.
        if wait > 0:
            wait = min(wait, interval) if interval > 0 else wait
            sleep(wait)
            sample_due = True


def extension_left(run: Run) -> float:
    """Return how much longer an inconclusive gate may keep sampling past its stage's bake."""
    state = run.rollout.state
    stage = run.playbook.stages[state["stage_index"]]
    bake_end = float(state["stage_entered_at"]) + stage.bake
    left: float = bake_end + run.playbook.health.extension(stage) - time.time()
    return max(0.0, left)


def _sample_bake(run: Run) -> Report | None:
    """Measure a baking stage's gate (every `health.interval`); roll back now if it fails."""
    reconcile(run)
    stage = run.playbook.stages[run.rollout.state["stage_index"]]
    verdict = evaluate(run, stage)
    if verdict.decision != "fail":
        return None
    report = Report(data={"id": run.rollout.id, "decision": "fail"})
    report_verdict(run, stage, verdict, report)
    report.say(f"rolling back: gate {stage.name} failed while baking")
    finish_restore(run, "gate-failed", f"gate {stage.name} failed: {verdict.why}", report)
    return report


def _fleet_for(playbook_path: str | Path, progress: ProgressFn | None) -> Fleet:
    """Return a Fleet to the playbook's hosts, for `start` and then every stage to share."""
    pb = playbook.load(playbook_path)
    return Fleet(transports.kind(pb.transport).build(pb.transport_options, pb.base_dir, pb.hosts), progress)


def _relay(step: Report, total: Report, emit: Say, skip_reused: bool = False) -> None:
    lines = step.lines
    if skip_reused and step.data.get("reused"):
        # The gate `start` (or the last sample) just passed and printed is not printed as a second
        # PASS: one short line says it was not measured again.
        prefix = step.data["reused"]
        lines = [
            f"{prefix.split(':')[0]}: not measured again: {line.rsplit('(', 1)[-1].rstrip(')')}"
            if line.startswith(prefix)
            else line
            for line in lines
        ]
    for line in lines:
        emit(line)
    total.lines.extend(lines)
    total.exit_code = step.exit_code
    total.data.update(step.data)
