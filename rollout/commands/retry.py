"""`rollout retry`: after a rollback or an abort, start a new rollout from the same frozen inputs.

It is the only verb that applies a rollout's candidate again, and it says so: nothing else (not
`start` of a changed playbook, not `run --auto`) re-applies a candidate that was rolled back.
"""

from __future__ import annotations

from rollout.commands import bundles
from rollout.commands.common import Report, check_candidate, frozen_playbook, is_bundle, sha256
from rollout.commands.start import bundle_candidate_sha, start_from
from rollout.core import machine
from rollout.core.pathcheck import check_paths
from rollout.core.playbook import Playbook
from rollout.edges import journal
from rollout.edges.backends import StateAt, local_folder, open_store
from rollout.edges.bundle import input_blob
from rollout.edges.store import Rollout
from rollout.hosts.fleet import ProgressFn
from rollout.util.errors import BadInput, Refused


def retry(
    state_dir: StateAt, rollout_id: str | None = None, progress: ProgressFn | None = None, *, force: bool = False
) -> Report:
    """Start a new rollout from a rolled-back or aborted one's frozen playbook and candidate."""
    store = open_store(state_dir)
    with store.lock():
        if rollout_id is None and store.active() is None:
            every = store.rollouts()
            if not every:
                raise Refused(f"cannot retry: no rollout in {store.where}")
            old = every[-1]
        else:
            old = store.pick(rollout_id, "retry")
        machine.require(old.state.phase, "retry")
        journal.require_intact(old, "retry", force)
        pb = frozen_playbook(old)
        data = old.candidate()
        inputs = _frozen_inputs(old, pb)
        if bundle_candidate_sha(pb, data, inputs) != old.state.candidate_sha256:
            raise BadInput(
                f"cannot retry {old.id}: its frozen candidate no longer has the hash recorded at start"
            )
        check_paths(pb, local_folder(state_dir))
        problems = bundles.check_inputs(pb, inputs) if inputs is not None else check_candidate(pb, data)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            rendered = [p.render(str(pb.config_source)) for p in problems]
            raise BadInput(f"cannot retry {old.id}: its frozen candidate is invalid now", rendered)
        frozen_bytes = old.playbook_copy.read_bytes()
        old.log("retry-requested", reason=f"a new rollout of the same candidate ({sha256(data)[:12]})")
    report = start_from(pb, data, problems, frozen_bytes, state_dir, progress, retry_of=old.id, inputs=inputs)
    report.lines[:0] = [
        f"retry of {old.id} ({old.state.phase}): a new rollout of its frozen playbook and candidate "
        f"(sha256 {old.state.candidate_sha256[:12]}); `retry` is the only verb that applies it again"
    ]
    report.data["retry_of"] = old.id
    return report


def _frozen_inputs(old: Rollout, pb: Playbook) -> dict[str, bytes] | None:
    """Return a bundle's frozen sources and patches (None: the one-file form, frozen as its candidate)."""
    if not is_bundle(pb):
        return None
    inputs: dict[str, bytes] = {}
    for i, f in enumerate(pb.files):
        data = old.read_blob(input_blob(i))
        if data is None:
            raise BadInput(
                f"cannot retry {old.id}: its frozen {f.field} ({f.name}) is missing from its folder"
            )
        inputs[f.name] = data
    return inputs
