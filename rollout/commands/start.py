"""`rollout start`: snapshot every host, freeze the inputs, stage the shadow, run its checks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rollout.commands.common import Report, build_transport, finish_restore, load_checked, sha256
from rollout.commands.stage import go_live, report_verdict
from rollout.configkinds.base import Problem
from rollout.core import cohorts, diffing, machine
from rollout.core.machine import Phase
from rollout.core.playbook import Playbook
from rollout.core.state import HostRecord, HostState, RolloutState
from rollout.edges.engine import Run, stage_shadow
from rollout.edges.gate import evaluate, reset_counters
from rollout.edges.journal import now_iso
from rollout.edges.projection import project_for
from rollout.edges.store import Store, backup_names
from rollout.hosts.fleet import Fleet, ProgressFn
from rollout.models.cost import summary_lines
from rollout.util.atomic import write_atomic
from rollout.util.errors import REFUSED, Refused


def start(
    playbook_path: str | Path,
    state_dir: Path,
    progress: ProgressFn | None = None,
    fleet: Fleet | None = None,
) -> Report:
    """Start a rollout; nothing is written to a host before every host is read and backed up.
    A `fleet` given by the caller (run --auto) is used and left open for the stages that follow."""
    pb, data, problems = load_checked(playbook_path, state_dir)
    return start_from(pb, data, problems, pb.file.read_bytes(), state_dir, progress, fleet)


def start_from(
    pb: Playbook,
    data: bytes,
    problems: list[Problem],
    playbook_bytes: bytes,
    state_dir: Path,
    progress: ProgressFn | None = None,
    fleet: Fleet | None = None,
    retry_of: str | None = None,
) -> Report:
    """Start a rollout of `data` under the validated `pb` (whose file's bytes are frozen as
    `playbook_bytes`); `retry_of` names the rollout it retries, if any."""
    store = Store(state_dir)
    report = Report()
    for p in problems:
        report.say(p.render(str(pb.config_source)))
    with store.lock():
        active = store.active()
        if active is not None:
            raise Refused(
                f"cannot start: rollout {active.id} is still {active.state.phase} "
                "(advance it to completion or abort it first)"
            )
        own = fleet is None
        if fleet is None:
            fleet = Fleet(build_transport(pb, state_dir), progress)
        try:
            snapshot = _snapshot(fleet, pb)
            projected = project_for(
                pb, data, {h: snapshot[h][0].data for h in pb.hosts if snapshot[h] is not None}, fleet
            )
            frozen = {"playbook.yml": playbook_bytes, f"candidate/{pb.config_source.name}": data}
            initial = _initial_state(pb, data, snapshot)
            initial.retry_of = retry_of
            rollout = store.create(pb.name, initial, frozen)
            run = Run(rollout=rollout, playbook=pb, fleet=fleet)
            _freeze(run, data, snapshot)
            if projected is not None:
                rollout.log("cost-projection", cost=projected.to_json())
                report.lines.extend(summary_lines(projected))
            report.data["id"] = rollout.id
            report.say(
                f"rollout {rollout.id}: {len(pb.hosts)} host(s), stages "
                + " -> ".join(s.name for s in pb.stages)
            )
            report.say(f"baseline of every host backed up in {rollout.dir / 'baseline'}")
            _start_first_stage(run, report)
        finally:
            if own:
                fleet.close()
    return report


def _snapshot(fleet: Fleet, pb: Any) -> dict[str, Any]:
    """Read every host's live and shadow file; refuse to start if any host cannot be read."""
    results = fleet.map(
        list(pb.hosts), lambda s: (s.read(pb.path_on(s.host)), s.read(pb.shadow_on(s.host))), "snapshot"
    )
    failed = {h: r.error for h, r in results.items() if r.value is None}
    if pb.transport == "pull":
        # Issue 15: a pull host whose agent has not reported (or not uploaded its bytes) is unknown
        # and gets nothing until it has; the rollout starts with the others.
        return {
            h: r.value
            if r.value is not None and (r.value[0].sha256 is None or r.value[0].data is not None)
            else None
            for h, r in results.items()
        }
    if failed:
        names = "; ".join(f"{h}: {why}" for h, why in failed.items())
        raise Refused(
            f"cannot start: could not read the current file on every host ({names}); nothing written"
        )
    return {h: r.value for h, r in results.items()}


def _initial_state(pb: Playbook, data: bytes, snapshot: dict[str, Any]) -> RolloutState:
    hosts = {}
    backups = backup_names(pb.hosts)
    for host in pb.hosts:
        if snapshot[host] is None:  # a pull host not heard from yet (issue 15)
            hosts[host] = HostRecord(
                state=HostState.UNKNOWN,
                backup=backups[host],
                sha256=None,
                baseline_sha256=None,
                baseline_mode=None,
                shadow_before=None,
                reason="its agent has not reported its file yet",
                baseline_unread=True,
            )
            continue
        live, shadow = snapshot[host]
        hosts[host] = HostRecord(
            state=HostState.BASELINE,
            backup=backups[host],
            sha256=live.sha256,
            baseline_sha256=live.sha256,
            baseline_mode=live.mode,
            shadow_before=shadow.sha256,
        )
    first = pb.stages[0]
    return RolloutState(
        name=pb.name,
        playbook_file=str(pb.file),
        phase=Phase.STARTING,
        stage_index=0,
        stage=first.name,
        percent=first.percent,
        created=now_iso(),
        stage_entered_at=time.time(),
        order=cohorts.host_order(pb.hosts, pb.name),
        candidate_sha256=sha256(data),
        candidate_name=pb.config_source.name,
        hosts=hosts,
        pid=os.getpid(),
    )


def _freeze(run: Run, data: bytes, snapshot: dict[str, Any]) -> None:
    """Keep the baseline backups and diffs in the rollout's folder (the playbook and candidate
    were frozen into it as it was made)."""
    r, pb = run.rollout, run.playbook
    r.write_backups(
        {
            h: snapshot[h][0].data
            for h in pb.hosts
            if snapshot[h] is not None and snapshot[h][0].data is not None
        }
    )
    if pb.transport == "pull":  # issue 15: every agent learns which file to report, before any stage
        from rollout.edges.pull import publish

        publish(r, pb)
    with r.writing("the diffs"):
        groups = _write_diffs(run, data, snapshot)
    r.log(
        "started",
        hosts=list(pb.hosts),
        candidate_sha256=r.state.candidate_sha256,
        diff_groups=groups,
        order=r.state.order,
    )


def _write_diffs(run: Run, data: bytes, snapshot: dict[str, Any]) -> int:
    """Write a diff per group of hosts with the same baseline; return how many groups."""
    r, pb = run.rollout, run.playbook
    baselines: dict[str, str | None] = {h: snapshot[h][0].sha256 for h in pb.hosts if snapshot[h] is not None}
    index = []
    for n, (sha, hosts) in enumerate(diffing.group_by_baseline(baselines), start=1):
        as_json, text = diffing.diff_one(snapshot[hosts[0]][0].data, data, pb.config_kind)
        write_atomic(r.dir / "diffs" / f"{n}.json", json.dumps(as_json, indent=2).encode())
        write_atomic(r.dir / "diffs" / f"{n}.txt", (text + "\n").encode())
        index.append({"group": n, "hosts": hosts, "baseline_sha256": sha, "changes": bool(as_json)})
    write_atomic(r.dir / "diffs" / "index.json", json.dumps(index, indent=2).encode())
    return len(index)


def _start_first_stage(run: Run, report: Report) -> None:
    pb = run.playbook
    first = pb.stages[0]
    reset_counters(run)
    if not first.is_shadow:
        go_live(run, 0, report)
        return
    run.rollout.state.phase = machine.transition(Phase.STARTING, "staged")
    run.rollout.save()
    failed = stage_shadow(run)
    if failed:
        names = "; ".join(f"{h}: {why}" for h, why in failed.items())
        report.say(f"shadow could not be staged on every host ({names}); rolling back")
        run.rollout.state.reason = f"shadow staging failed: {names}"
        finish_restore(run, "gate-failed", f"shadow staging failed: {names}", report)
        return
    report.say(
        f"shadow: candidate staged beside the live file on {len(pb.hosts)} host(s); nothing live changed"
    )
    verdict = evaluate(run, first)
    report_verdict(run, first, verdict, report)
    report.data["decision"] = verdict.decision
    if verdict.decision == "fail":
        finish_restore(run, "gate-failed", f"gate {first.name} failed: {verdict.why}", report)
    elif verdict.decision in ("inconclusive", "retry"):
        # A gate that could not decide is not a pass: say so with the contract's "not yet" code.
        report.say(f"gate {first.name} has not passed yet; `rollout advance` measures it again")
        report.exit_code = REFUSED
