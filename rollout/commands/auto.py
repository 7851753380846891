"""`rollout run --auto`: drive a rollout through every stage unattended."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rollout.commands.advance import advance_run, bake_left
from rollout.commands.common import Report, build_transport, finish_restore, open_run
from rollout.commands.holds import deadline_step, held_wait, keeps_measuring
from rollout.commands.stage import report_verdict
from rollout.commands.start import start
from rollout.core import machine, playbook
from rollout.core.machine import Phase
from rollout.edges import journal
from rollout.edges.backends import StateAt, open_store
from rollout.edges.engine import Run, reconcile
from rollout.edges.gate import evaluate, looked_before
from rollout.edges.store import Rollout, Store
from rollout.hosts.fleet import Fleet, ProgressFn
from rollout.util.durations import format_duration
from rollout.util.errors import OK, REFUSED, Refused

Say = Callable[[str], None]


def run_auto(
    state_dir: StateAt,
    playbook_path: str | Path | None = None,
    progress: ProgressFn | None = None,
    say: Say | None = None,
    sleep: Callable[[float], None] = time.sleep,
    *,
    force: bool = False,
    allow_overridden: bool = False,
) -> Report:
    """Start (when given a playbook) and advance until complete, rolled back or stopped.
    Waits out bake times, measuring the gate every `health.interval` meanwhile (a failure rolls
    back at once); retries a gate that could not measure every `health.interval`;
    stops with exit 5 on an inconclusive gate."""
    emit = say or (lambda line: None)
    total = Report()
    fleet: Fleet | None = None
    if playbook_path is not None:
        fleet = _start(playbook_path, state_dir, progress, total, emit, allow_overridden)
        if fleet is None:
            return total
    drive = _Drive(open_store(state_dir), total, emit, progress, force, fleet, total.data.get("id"))
    while True:
        wait = drive.step()
        if wait is None:
            return total
        # The lock is released while waiting so `status` and `abort` stay usable.
        if wait > 0:
            sleep(wait)
            drive.sample_due = True


def _start(
    playbook_path: str | Path,
    state_dir: StateAt,
    progress: ProgressFn | None,
    total: Report,
    emit: Say,
    allow_overridden: bool = False,
) -> Fleet | None:
    """Start the rollout on a Fleet the stages go on using; return None when it stops there."""
    fleet = _fleet_for(playbook_path, state_dir, progress)
    try:
        first = start(playbook_path, state_dir, progress, fleet, allow_overridden=allow_overridden)
    except BaseException:
        fleet.close()
        raise
    _relay(first, total, emit)
    if first.exit_code != OK and not (first.exit_code == REFUSED and first.data.get("decision") == "retry"):
        fleet.close()
        return None
    return fleet


@dataclass
class _Drive:
    """What `run --auto` carries from one step under the lock to the next."""

    store: Store
    total: Report
    emit: Say
    progress: ProgressFn | None
    force: bool
    fleet: Fleet | None  # connections kept from stage to stage while there is no bake to wait
    rollout_id: str | None
    sample_due: bool = False  # set after sleeping inside a bake: measure the gate before sleeping again
    extending: int | None = None  # the stage whose inconclusive gate is sampling past its bake

    def step(self) -> float | None:
        """Take one step under the lock; return how long to wait before the next (at most one
        `health.interval`; 0: go on at once, on the same connections), or None when done."""
        with self.store.lock():
            run = open_run(self._pick(), self.progress, self.fleet)
            self.fleet, keep = run.fleet, False
            try:
                wait = self._step(run)
                keep = wait is not None and wait <= 0
            finally:
                if not keep:
                    run.fleet.close()
        interval = run.playbook.health.interval
        if wait is not None and wait > 0 and interval > 0:
            wait = min(wait, interval)
        return wait

    def _pick(self) -> Rollout:
        """Return the rollout to drive, refusing one that someone else moved on meanwhile."""
        rollout = self.store.pick(self.rollout_id, "run")
        if self.rollout_id is not None and rollout.state.phase not in (Phase.SHADOW, Phase.LIVE):
            # Someone else (an operator's `abort`) moved it on while we waited.
            raise Refused(f"stopped: rollout {rollout.id} is now {rollout.state.phase}")
        self.rollout_id = self.total.data["id"] = rollout.id
        rollout.drive()  # `rollout wait` sees the rollout is driven, not waiting for a human
        machine.require(rollout.state.phase, "run")
        journal.require_intact(rollout, "run", self.force)
        return rollout

    def _step(self, run: Run) -> float | None:
        """Act on a missed deadline, sample a baking gate when due, gate a baked stage."""
        missed = deadline_step(run)  # past the stage's deadline: alert once, or roll back
        if missed is not None:
            _relay(missed, self.total, self.emit)
            if run.rollout.state.phase not in (Phase.SHADOW, Phase.LIVE):
                return None
        wait = held_wait(run, bake_left(run))  # paused: measured, not promoted
        if wait > 0 and self.sample_due:
            sampled = _sample_bake(run)
            if sampled is not None:
                _relay(sampled, self.total, self.emit)
                return None
        return wait if wait > 0 else self._gate(run)

    def _gate(self, run: Run) -> float | None:
        """Gate the baked stage and promote it; return the wait before the next step, None when done."""
        interval = run.playbook.health.interval
        index = run.rollout.state.stage_index
        stage = run.playbook.stages[index]
        step = advance_run(run)
        sampling = self._sampling_on(run, index, step)
        if sampling is not None:
            return sampling
        decision = step.data.get("decision")
        _relay(step, self.total, self.emit, skip_reused=True)
        phase = run.rollout.state.phase
        # A deadline still ahead keeps an inconclusive gate measured.
        again = decision == "retry" or keeps_measuring(run, decision)
        if decision == "inconclusive" and self.extending == index and not again:
            self.emit(
                f"stopped for a human: gate {stage.name} is still inconclusive after "
                f"sampling {format_duration(run.playbook.health.extension(stage))} past its bake"
            )
        if phase == Phase.COMPLETE or _stops(step, again):
            return None
        return bake_left(run) if not again else interval

    def _sampling_on(self, run: Run, index: int, step: Report) -> float | None:
        """Return the wait before the next sample when an inconclusive gate may go on sampling
        past its bake (sparse data, up to health.max_extend); None when it may not."""
        more = extension_left(run)
        stage = run.playbook.stages[index]
        # A look that began before the extension's end held weak evidence: look once more.
        at_end = more <= 0 and looked_before(run, stage.bake + run.playbook.health.extension(stage))
        if (
            step.data.get("decision") != "inconclusive"
            or step.exit_code != REFUSED
            or not (more > 0 or at_end)
        ):
            return None
        if self.extending != index:
            why = (step.data.get("verdict") or {}).get("why", "")
            self.emit(
                f"gate {run.playbook.stages[index].name}: inconclusive when its bake ended, sampling up to "
                f"{format_duration(more)} more: {why}"
            )
        self.extending = index
        interval = run.playbook.health.interval
        return 0.0 if at_end else min(interval, more) if interval > 0 else more


def _stops(step: Report, again: bool) -> bool:
    """Return True when a gate's step ends `run --auto`: it did not pass, and is not one to
    measure again (a gate that could not measure, or one a deadline still ahead keeps measured)."""
    return step.exit_code != OK and not (step.exit_code == REFUSED and again)


def extension_left(run: Run) -> float:
    """Return how much longer an inconclusive gate may keep sampling past its stage's bake."""
    state = run.rollout.state
    stage = run.playbook.stages[state.stage_index]
    bake_end = state.stage_entered_at + stage.bake
    left: float = bake_end + run.playbook.health.extension(stage) - time.time()
    return max(0.0, left)


def _sample_bake(run: Run) -> Report | None:
    """Measure a baking stage's gate (every `health.interval`); roll back now if it fails."""
    reconcile(run)
    stage = run.playbook.stages[run.rollout.state.stage_index]
    verdict = evaluate(run, stage)
    if verdict.decision != "fail":
        return None
    report = Report(data={"id": run.rollout.id, "decision": "fail"})
    report_verdict(run, stage, verdict, report)
    report.say(f"rolling back: gate {stage.name} failed while baking")
    finish_restore(run, "gate-failed", f"gate {stage.name} failed: {verdict.why}", report)
    return report


def _fleet_for(playbook_path: str | Path, state_dir: StateAt, progress: ProgressFn | None) -> Fleet:
    """Return a Fleet to the playbook's hosts, for `start` and then every stage to share (a pull
    transport bound to the state folder's inbox)."""
    pb = playbook.load(playbook_path)
    return Fleet(build_transport(pb, state_dir), progress)


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
