"""`rollout abort` and `rollout undo`: put every touched host back to its baseline bytes."""

from __future__ import annotations

from rollout.commands.common import Report, finish_restore, open_run
from rollout.core import machine
from rollout.core.machine import Phase
from rollout.core.state import HostState
from rollout.edges import journal
from rollout.edges.backends import StateAt, open_store
from rollout.edges.engine import Run, reconcile
from rollout.hosts.fleet import ProgressFn
from rollout.util.errors import BadInput


def abort(
    state_dir: StateAt,
    rollout_id: str | None = None,
    reason: str = "",
    progress: ProgressFn | None = None,
    accept_drift: tuple[str, ...] = (),
    *,
    force: bool = False,
) -> Report:
    """Restore every touched host now; exit 4 naming any host that could not be restored.
    Hosts in `accept_drift` (drifted: changed by someone else) are left as they are by decision."""
    why = reason or "aborted by the operator"
    return _restore(state_dir, rollout_id, "abort", why, progress, accept_drift, force)


def undo(
    state_dir: StateAt,
    rollout_id: str | None = None,
    reason: str = "",
    progress: ProgressFn | None = None,
    *,
    force: bool = False,
) -> Report:
    """Take a complete rollout back to the baseline on every host."""
    return _restore(state_dir, rollout_id, "undo", reason or "undone by the operator", progress, (), force)


def _restore(
    state_dir: StateAt,
    rollout_id: str | None,
    verb: str,
    reason: str,
    progress: ProgressFn | None,
    accept_drift: tuple[str, ...] = (),
    force: bool = False,
) -> Report:
    store = open_store(state_dir)
    with store.lock():
        if verb == "undo" and rollout_id is None:
            undoable = (Phase.COMPLETE, Phase.REVERTING)
            done = [r for r in store.rollouts() if r.state.phase in undoable]
            rollout = done[-1] if done else store.pick(None, verb)
        else:
            rollout = store.pick(rollout_id, verb)
        machine.require(rollout.state.phase, verb)
        journal.require_intact(rollout, verb, force)
        run = open_run(rollout, progress)
        report = Report(data={"id": rollout.id})
        try:
            reconciled = reconcile(run)
            if reconciled:
                from rollout.commands.show import reconciled_text

                report.say(reconciled_text(reconciled))
            rollout.log(f"{verb}-requested", reason=reason)
            if accept_drift:
                _accept_drift(run, accept_drift, reason)
            if rollout.state.phase == Phase.COMPLETE:
                # Recorded before any host changes, so a kill mid-undo leaves a rollout that says
                # so (`reverting`) and that `undo` or `abort` finishes.
                rollout.state.phase = machine.transition(Phase.COMPLETE, "undo-begin")
                rollout.save()
            finish_restore(run, verb, reason, report)
        finally:
            run.fleet.close()
        report.say(f"rollout {rollout.id}: {rollout.state.phase}")
        report.data["state"] = rollout.state.phase
        return report


def _accept_drift(run: Run, hosts: tuple[str, ...], reason: str) -> None:
    """Record that the operator leaves these drifted hosts as they are; refuse any other host."""
    for host in hosts:
        rec = run.hosts.get(host)
        if rec is None:
            raise BadInput(f"--accept-drift: {host!r} is not a host of rollout {run.rollout.id}")
        if rec.state != HostState.DRIFTED:
            raise BadInput(
                f"--accept-drift: {host} is {rec.state}, not drifted; only a host someone else "
                "changed can be left as it is"
            )
    for host in hosts:
        run.hosts[host].drift_accepted = True
    run.rollout.commit("drift-accepted", hosts=list(hosts), reason=reason)
