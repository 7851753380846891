"""`rollout abort` and `rollout undo`: put every touched host back to its baseline bytes."""

from __future__ import annotations

from pathlib import Path

from rollout import machine
from rollout.commands.common import Report, finish_restore, open_run
from rollout.engine import reconcile
from rollout.fleet import ProgressFn
from rollout.store import Store


def abort(
    state_dir: Path, rollout_id: str | None = None, reason: str = "", progress: ProgressFn | None = None
) -> Report:
    """Restore every touched host now; exit 4 naming any host that could not be restored."""
    return _restore(state_dir, rollout_id, "abort", reason or "aborted by the operator", progress)


def undo(
    state_dir: Path, rollout_id: str | None = None, reason: str = "", progress: ProgressFn | None = None
) -> Report:
    """Take a complete rollout back to the baseline on every host."""
    return _restore(state_dir, rollout_id, "undo", reason or "undone by the operator", progress)


def _restore(
    state_dir: Path, rollout_id: str | None, verb: str, reason: str, progress: ProgressFn | None
) -> Report:
    store = Store(state_dir)
    with store.lock():
        if verb == "undo" and rollout_id is None:
            done = [r for r in store.rollouts() if r.state["state"] == machine.COMPLETE]
            rollout = done[-1] if done else store.pick(None, verb)
        else:
            rollout = store.pick(rollout_id, verb)
        machine.require(rollout.state["state"], verb)
        run = open_run(rollout, progress)
        report = Report(data={"id": rollout.id})
        try:
            reconciled = reconcile(run)
            if reconciled:
                from rollout.commands.show import reconciled_text

                report.say(reconciled_text(reconciled))
            rollout.log(f"{verb}-requested", reason=reason)
            finish_restore(run, verb, reason, report)
        finally:
            run.fleet.close()
        report.say(f"rollout {rollout.id}: {rollout.state['state']}")
        report.data["state"] = rollout.state["state"]
        return report
