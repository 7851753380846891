"""`rollout history --verify`: check a rollout's hash-chained journal (invariant 11)."""

from __future__ import annotations

from pathlib import Path

from rollout.commands.common import Report
from rollout.edges import journal
from rollout.edges.store import Store
from rollout.util.errors import BAD_INPUT, Refused


def verify(state_dir: Path, rollout_id: str | None = None) -> Report:
    """Exit 0 when the chain is whole (or the journal predates it), 2 naming the first line touched."""
    store = Store(state_dir)
    if rollout_id is None and not store.rollouts():
        raise Refused(f"no rollouts in {state_dir}")
    rollout = store.pick(rollout_id, "verify", fallback_latest=True)
    found = journal.verify(rollout.dir, rollout.state.journal)
    report = Report(data={"id": rollout.id, "journal": found.to_json()})
    where = rollout.dir / journal.JOURNAL
    if found.status == "broken":
        report.exit_code = BAD_INPUT
        report.say(f"{where}: BROKEN: {found.message}")
    elif found.status == "legacy":
        report.say(f"{where}: legacy journal: {found.message}")
    else:
        report.say(f"{where}: ok: {found.message}")
    return report
