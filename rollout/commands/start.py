"""`rollout start`: snapshot every host, freeze the inputs, stage the shadow, run its checks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rollout.commands import bundles, layers
from rollout.commands.bundles import Snapshot
from rollout.commands.common import Report, build_transport, finish_restore, is_bundle, load_checked, sha256
from rollout.commands.stage import go_live, report_verdict
from rollout.configkinds.base import Problem
from rollout.core import cohorts, diffing, machine
from rollout.core.machine import Phase
from rollout.core.playbook import Playbook
from rollout.core.state import FileRecord, HostRecord, HostState, RolloutState
from rollout.edges.backends import StateAt, local_folder, open_store
from rollout.edges.bundle import bundle_sha, candidate_blob, input_blob
from rollout.edges.engine import Run, stage_shadow
from rollout.edges.gate import evaluate, reset_counters
from rollout.edges.journal import now_iso
from rollout.edges.projection import project_for, typical_candidate
from rollout.edges.store import backup_names
from rollout.hosts.fleet import Fleet, ProgressFn
from rollout.models.cost import summary_lines
from rollout.util.errors import REFUSED, BadInput, Refused


def start(
    playbook_path: str | Path,
    state_dir: StateAt,
    progress: ProgressFn | None = None,
    fleet: Fleet | None = None,
    allow_overridden: bool = False,
) -> Report:
    """Start a rollout; nothing is written to a host before every host is read and backed up.
    A `fleet` given by the caller (run --auto) is used and left open for the stages that follow."""
    pb, data, problems = load_checked(playbook_path, local_folder(state_dir), state_dir)
    return start_from(
        pb,
        data,
        problems,
        pb.file.read_bytes(),
        state_dir,
        progress,
        fleet,
        allow_overridden=allow_overridden,
    )


def start_from(
    pb: Playbook,
    data: bytes,
    problems: list[Problem],
    playbook_bytes: bytes,
    state_dir: StateAt,
    progress: ProgressFn | None = None,
    fleet: Fleet | None = None,
    retry_of: str | None = None,
    allow_overridden: bool = False,
    inputs: dict[str, bytes] | None = None,
) -> Report:
    """Start a rollout of `data` under the validated `pb` (whose file's bytes are frozen as
    `playbook_bytes`); `retry_of` names the rollout it retries, if any; `inputs`: a bundle's
    files' sources and patches (read from the playbook's folder when omitted)."""
    store = open_store(state_dir)
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
            if inputs is None and is_bundle(pb):
                inputs = bundles.read_inputs(pb)
            candidates = _candidates(pb, data, inputs, snapshot, report)
            first = pb.files[0]
            first_candidates = {h: candidates[h][first.name] for h in pb.hosts if h in snapshot}
            _check_layers(pb, fleet, snapshot, first_candidates, report, allow_overridden)
            live = {h: snapshot[h][first.name][0].data for h in pb.hosts if h in snapshot}
            projected = project_for(pb, typical_candidate(pb, data, live, first_candidates), live, fleet)
            frozen = {"playbook.yml": playbook_bytes, f"candidate/{pb.config_source.name}": data}
            initial = _initial_state(pb, data, inputs, snapshot, candidates)
            initial.retry_of = retry_of
            rollout = store.create(pb.name, initial, frozen)
            run = Run(rollout=rollout, playbook=pb, fleet=fleet)
            for i, f in enumerate(pb.files if inputs is not None else ()):
                assert inputs is not None
                rollout.write_blob(input_blob(i), inputs[f.name])  # what `retry` starts from again
                if f.patch is None and pb.transport == "pull":  # a host that reports late gets it too
                    rollout.write_blob(candidate_blob(sha256(inputs[f.name])), inputs[f.name])
            _freeze(run, candidates, snapshot)
            if projected is not None:
                rollout.log("cost-projection", cost=projected.to_json())
                report.lines.extend(summary_lines(projected))
            report.data["id"] = rollout.id
            report.say(
                f"rollout {rollout.id}: {len(pb.hosts)} host(s), stages "
                + " -> ".join(s.name for s in pb.stages)
            )
            report.say(f"baseline of every host backed up in {rollout.location('baseline')}")
            _start_first_stage(run, report)
        finally:
            if own:
                fleet.close()
    return report


def _check_layers(
    pb: Playbook,
    fleet: Fleet,
    snapshot: Snapshot,
    candidates: dict[str, bytes],
    report: Report,
    allow: bool,
) -> None:
    """Refuse (exit 2, nothing written) when a higher OpenCode layer on some host overrides a key
    the change to the bundle's first file changes: every gate would pass while those hosts keep
    the old value."""
    first = pb.files[0].name
    baselines = {h: snapshot[h][first][0].data for h in pb.hosts if h in snapshot}
    overridden = layers.report(pb, fleet, baselines, candidates)
    report.data["overridden"] = overridden
    unchecked = layers.unchecked_hosts(pb, fleet, list(pb.hosts))
    note = layers.unchecked_note(pb, unchecked)
    if note is not None:
        report.say(note)
        report.data["layers_unchecked"] = unchecked
    if not overridden:
        return
    if allow:
        report.lines.extend(f"warning: {line}" for line in overridden)
        return
    hosts = layers.hosts_named(pb.hosts, overridden)
    raise BadInput(
        f"cannot start: the change would not take effect on {len(hosts)} host(s): {', '.join(hosts)} "
        "(a higher OpenCode layer sets the same keys; nothing written; --allow-overridden starts anyway)",
        overridden,
    )


def _snapshot(fleet: Fleet, pb: Playbook) -> Snapshot:
    """Read every host's live and shadow files; refuse to start if any host cannot be read."""

    def read(s: Any) -> dict[str, tuple[Any, Any]] | None:
        if pb.transport == "pull" and not all(s.holds(f.path_on(s.host)) for f in pb.files):
            return None  # its agent has not reported these files (with their bytes) yet
        return {f.name: (s.read(f.path_on(s.host)), s.read(f.shadow_on(s.host))) for f in pb.files}

    results = fleet.map(list(pb.hosts), read, "snapshot")
    failed = {h: r.error for h, r in results.items() if r.value is None}
    if pb.transport == "pull":
        # Issue 15: a pull host whose agent has not reported (or not uploaded its bytes) is unknown
        # and gets nothing until it has; the rollout starts with the others.
        return {h: r.value for h, r in results.items() if r.value is not None}
    if failed:
        names = "; ".join(f"{h}: {why}" for h, why in failed.items())
        raise Refused(
            f"cannot start: could not read the current file on every host ({names}); nothing written"
        )
    return {h: r.value for h, r in results.items() if r.value is not None}


def _candidates(
    pb: Playbook, data: bytes, inputs: dict[str, bytes] | None, snapshot: Snapshot, report: Report
) -> dict[str, dict[str, bytes]]:
    """Return each host's candidate bytes per file (a patch is applied to the host's own file and
    checked there: a host it breaks is an error before anything is written). A pull host whose
    agent has not reported is left out: its candidate is computed when it first reports."""
    if inputs is None:
        return {h: {pb.files[0].name: data} for h in pb.hosts}
    per_host = bundles.host_candidates(pb, inputs, snapshot)
    if any(f.patch is not None for f in pb.files):
        seen: set[str] = set()
        for host in per_host:
            for p in bundles.disagreements(pb, per_host[host], host):
                line = p.render("")
                if p.message not in seen:
                    seen.add(p.message)
                    report.say(line)
    return per_host


def bundle_candidate_sha(pb: Playbook, data: bytes, inputs: dict[str, bytes] | None) -> str:
    """Return the rollout's candidate hash: the one file's, or one over every file's input."""
    if inputs is None:
        return sha256(data)
    return bundle_sha([(f.name, sha256(inputs[f.name])) for f in pb.files]) or sha256(data)


def _initial_state(
    pb: Playbook,
    data: bytes,
    inputs: dict[str, bytes] | None,
    snapshot: Snapshot,
    candidates: dict[str, dict[str, bytes]],
) -> RolloutState:
    hosts = {}
    backups = backup_names(pb.hosts)
    bundle = is_bundle(pb)
    for host in pb.hosts:
        if host not in snapshot:  # a pull host not heard from yet (issue 15): nothing assigned to it
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
            if bundle:  # each file gets its record now; its baseline comes with the agent's report
                hosts[host].files = {
                    f.name: FileRecord(
                        path=f.path_on(host),
                        shadow_path=f.shadow_on(host),
                        baseline_sha256=None,
                        baseline_mode=None,
                        # A source is the same for every host; a patch needs the host's own bytes:
                        # its candidate is computed from the agent's first report (edges/pull_patch).
                        candidate_sha256=sha256(inputs[f.name]) if inputs and f.patch is None else None,
                        backup=backups[host] if i == 0 else f".file-{i + 1}/{backups[host]}",
                    )
                    for i, f in enumerate(pb.files)
                }
            continue
        first_live, first_shadow = snapshot[host][pb.files[0].name]
        files: dict[str, FileRecord] = {}
        for i, f in enumerate(pb.files):
            live, shadow = snapshot[host][f.name]
            files[f.name] = FileRecord(
                path=f.path_on(host),
                shadow_path=f.shadow_on(host),
                baseline_sha256=live.sha256,
                baseline_mode=live.mode,
                candidate_sha256=sha256(candidates[host][f.name]),
                sha256=live.sha256,
                shadow_before=shadow.sha256,
                backup=(backups[host] if i == 0 else f".file-{i + 1}/{backups[host]}")
                if live.sha256 is not None
                else None,
            )
        baseline = bundle_sha([(n, f.baseline_sha256) for n, f in files.items()])
        hosts[host] = HostRecord(
            state=HostState.BASELINE,
            backup=backups[host],
            sha256=baseline,
            baseline_sha256=baseline,
            baseline_mode=first_live.mode,
            shadow_before=first_shadow.sha256,
            files=files if bundle else {},
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
        candidate_sha256=bundle_candidate_sha(pb, data, inputs),
        candidate_name=pb.config_source.name,
        hosts=hosts,
        pid=os.getpid(),
    )


def _freeze(run: Run, candidates: dict[str, dict[str, bytes]], snapshot: Snapshot) -> None:
    """Keep the baseline backups, each host's candidates (by hash, once each) and the diffs in the
    rollout's folder (the playbook and the first file's input were frozen into it as it was made)."""
    r, pb = run.rollout, run.playbook
    backups: dict[str, bytes] = {}
    for host, rec in r.state.hosts.items():
        for name, f in rec.files.items():
            data = snapshot[host][name][0].data if host in snapshot else None
            if data is not None and f.backup is not None:
                backups[f.backup] = data
    r.write_backup_files(backups)
    if is_bundle(pb):
        kept = {r.state.candidate_sha256}
        for host in pb.hosts:
            for data in candidates.get(host, {}).values():
                sha = sha256(data)
                if sha not in kept:
                    kept.add(sha)
                    r.write_blob(candidate_blob(sha), data)
    if pb.transport == "pull":  # issue 15: every agent learns which file to report, before any stage
        from rollout.edges.pull import publish

        publish(r, pb)
    with r.writing("the diffs"):
        groups = _write_diffs(run, candidates, snapshot)
    r.log(
        "started",
        hosts=list(pb.hosts),
        candidate_sha256=r.state.candidate_sha256,
        diff_groups=groups,
        order=r.state.order,
        **({"files": [f.name for f in pb.files]} if is_bundle(pb) else {}),
    )


def _write_diffs(run: Run, candidates: dict[str, dict[str, bytes]], snapshot: Snapshot) -> int:
    """Write a diff per file per group of hosts whose change to it is the same (same baseline and
    same candidate); return how many groups."""
    r, pb = run.rollout, run.playbook
    bundle = is_bundle(pb)
    index = []
    n = 0
    for f in pb.files:
        keys: dict[str, str | None] = {}
        for h in pb.hosts:
            if h not in snapshot:  # a pull host not heard from yet: no baseline to diff against
                continue
            base = snapshot[h][f.name][0].sha256
            keys[h] = f"{base}:{sha256(candidates[h][f.name])}" if bundle else base
        for _key, hosts in diffing.group_by_baseline(keys):
            n += 1
            cand = candidates[hosts[0]][f.name]
            as_json, text = diffing.diff_one(snapshot[hosts[0]][f.name][0].data, cand, f.kind)
            r.write_blob(f"diffs/{n}.json", json.dumps(as_json, indent=2).encode())
            r.write_blob(f"diffs/{n}.txt", (text + "\n").encode())
            entry: dict[str, Any] = {"group": n, "hosts": hosts}
            if bundle:
                entry["file"] = f.name
            entry.update(baseline_sha256=snapshot[hosts[0]][f.name][0].sha256, changes=bool(as_json))
            if bundle:
                entry["candidate_sha256"] = sha256(cand)
            index.append(entry)
    r.write_blob("diffs/index.json", json.dumps(index, indent=2).encode())
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
