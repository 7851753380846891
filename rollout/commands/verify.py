"""`rollout history --verify`: check a rollout's hash-chained journal (invariant 11)."""

from __future__ import annotations

from rollout.commands.common import Report
from rollout.edges import journal
from rollout.edges.backends import StateAt, open_store
from rollout.util.errors import BAD_INPUT, Refused


def verify(state_dir: StateAt, rollout_id: str | None = None) -> Report:
    """Exit 0 when the chain is whole (or the journal predates it), 2 naming the first line touched."""
    store = open_store(state_dir)
    if rollout_id is None and not store.rollouts():
        raise Refused(f"no rollouts in {store.where}")
    rollout = store.pick(rollout_id, "verify", fallback_latest=True)
    found = journal.verify_bytes(rollout.journal_bytes(), rollout.state.journal)
    report = Report(data={"id": rollout.id, "journal": found.to_json()})
    where = rollout.journal_where()
    if found.status == "broken":
        report.exit_code = BAD_INPUT
        report.say(f"{where}: BROKEN: {found.message}")
    elif found.status == "legacy":
        report.say(f"{where}: legacy journal: {found.message}")
    else:
        report.say(f"{where}: ok: {found.message}")
    return report
