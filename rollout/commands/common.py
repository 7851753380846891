"""What the verbs share: the Report they return, loading inputs, opening a rollout's hosts."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rollout import configkinds
from rollout.commands.report import Report, frozen_playbook
from rollout.configkinds.base import ConfigContext, Problem
from rollout.core import machine, playbook
from rollout.core.pathcheck import check_paths
from rollout.core.playbook import Playbook
from rollout.core.state import HostState
from rollout.edges.backends import StateAt, pull_store_of
from rollout.edges.engine import RestoreReport, Run, restore
from rollout.edges.journal import now_iso
from rollout.edges.store import Rollout
from rollout.hosts import transports
from rollout.hosts.fleet import Fleet, ProgressFn
from rollout.util import who
from rollout.util.errors import ROLLBACK_INCOMPLETE, ROLLED_BACK, BadInput

__all__ = ["Report", "frozen_playbook"]  # kept in commands.report, named here as before


def check_candidate(pb: Playbook, data: bytes) -> list[Problem]:
    """Return the candidate's problems (errors and warnings) for this playbook."""
    ctx = ConfigContext(base_dir=pb.base_dir, options=pb.config_options, source=str(pb.config_source))
    return configkinds.check_candidate(data, pb.config_kind, ctx)


def load_checked(
    path: str | Path, state_dir: Path | None = None, state: StateAt | None = None
) -> tuple[Playbook, bytes, list[Problem]]:
    """Load a playbook and its candidate; raise BadInput listing every error found (with the state
    folder given, also a host path inside it; with `state`, a folder or a server, pull hosts
    not added there)."""
    pb = playbook.load(path)
    check_paths(pb, state_dir)
    check_pull_hosts(pb, state if state is not None else state_dir)
    if is_bundle(pb):
        from rollout.commands import bundles

        inputs = bundles.read_inputs(pb)
        return pb, inputs[pb.files[0].name], bundles.check_inputs(pb, inputs)
    try:
        data = pb.config_source.read_bytes()
    except OSError as e:
        raise BadInput(f"{pb.file}: config.source: cannot read {pb.config_source} ({e})") from None
    problems = check_candidate(pb, data)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        rendered = [p.render(str(pb.config_source)) for p in problems]
        kind = (
            pb.config_kind
            if pb.config_kind_why == "config.kind"
            else f"{pb.config_kind}, {pb.config_kind_why}"
        )
        raise BadInput(
            f"{pb.config_source}: the candidate config ({kind}) is invalid: {len(errors)} error(s)",
            rendered,
        )
    return pb, data, problems


def is_bundle(pb: Playbook) -> bool:
    """Return True unless the playbook is the one-file form with a source (as before bundles)."""
    return len(pb.files) != 1 or pb.files[0].patch is not None


def sha256(data: bytes) -> str:
    """Return the hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def open_run(rollout: Rollout, progress: ProgressFn | None = None, fleet: Fleet | None = None) -> Run:
    """Return a Run over the rollout's frozen playbook with a Fleet to its hosts (or `fleet`, reused)."""
    pb = frozen_playbook(rollout)
    if fleet is None:
        pull = pull_store_of(rollout) if pb.transport == "pull" else None
        fleet = Fleet(build_transport(pb, rollout.dir.parent, pull), progress)
    return Run(rollout=rollout, playbook=pb, fleet=fleet)


def build_transport(pb: Playbook, state_dir: StateAt | None, pull_store: Any = None) -> Any:
    """Return the playbook's transport (a pull transport answers from the pull store of the state
    `state_dir` names, a folder or a server, or from `pull_store` when given)."""
    transport = transports.get(pb.transport).build(pb.transport_options, pb.base_dir, pb.hosts)
    bind = getattr(transport, "bind_pull_store", None)
    if bind is not None:
        if pull_store is None:
            if state_dir is None:
                raise BadInput(
                    f"{pb.file}: targets.transport: pull needs a state (--state) to keep its agents' reports"
                )
            from rollout.edges.backends import open_pull_store

            pull_store = open_pull_store(state_dir)
        bind(pull_store)
    return transport


def check_pull_hosts(pb: Playbook, state_dir: StateAt | None) -> None:
    """Refuse (exit 2) a pull playbook naming hosts not added with `rollout hosts add` (in the
    state folder, or on the state server)."""
    if pb.transport != "pull" or state_dir is None:
        return
    from rollout.edges.backends import open_pull_store

    store = open_pull_store(state_dir)
    missing = store.missing(pb.hosts)
    if missing:
        raise BadInput(
            f"{pb.file}: targets.hosts: not added as pull hosts in {store.where}: {', '.join(missing)} "
            f"(`rollout hosts add NAME` gives each its token)"
        )


def finish_restore(run: Run, event: str, reason: str, report: Report) -> RestoreReport:
    """Restore every touched host, move the state machine, and set the exit code."""
    state = run.rollout.state
    result = restore(run)
    if result.not_restored:
        state.resolution = state.resolution or event
        state.phase = machine.transition(state.phase, "restore-incomplete")
        report.exit_code = ROLLBACK_INCOMPLETE
        names = ", ".join(f"{h} ({why})" for h, why in sorted(result.not_restored.items()))
        report.say(f"NOT restored: {names}")
        drifted = sorted(h for h in result.not_restored if run.hosts[h].state == HostState.DRIFTED)
        pending = sorted(h for h in result.not_restored if run.hosts[h].state == HostState.PENDING)
        if pending:  # pull fleets (issue 15)
            report.say(
                f"{', '.join(pending)}: the baseline is assigned; each agent takes it on its next poll. "
                "`rollout status` shows who has not confirmed; `rollout abort` again finishes once they have."
            )
        if len(drifted) + len(pending) < len(result.not_restored):
            report.say("Run `rollout abort` again once they are reachable; nothing else was changed on them.")
        if drifted:
            hosts = " ".join(drifted)
            report.say(
                f"{', '.join(drifted)}: changed by someone else; left as it is. If that is right, "
                f"`rollout abort --accept-drift {hosts}` records the decision and lets the rollout end."
            )
    else:
        target, state.resolution = state.resolution or event, None
        state.phase = machine.transition(state.phase, target)
        if event == "gate-failed":
            report.exit_code = ROLLED_BACK
        restored = len(result.restored)
        if result.left:
            report.say(
                f"restored {restored} host(s) to their baseline bytes; left as they are by decision "
                f"(drifted): {', '.join(sorted(result.left))}"
            )
        else:
            report.say(f"restored {restored} host(s) to their baseline bytes; every touched host is back")
    for host, why in sorted(result.warnings.items()):
        report.say(f"warning: {host}: {why}")
    state.reason = reason  # the latest; `reasons` keeps every one given
    who.add_reason(state.reasons, state.phase, reason, now_iso())
    run.rollout.commit(state.phase, reason=reason, restored=result.restored, not_restored=result.not_restored)
    return result
