"""Pull fleets, the verbs' side: publish what each host should hold, and fold what agents report
into the rollout's state (under the lock; the server only writes the inbox).

The wire format of an assignment is a list of files, so a bundle of files fits it unchanged:
`files_for(rollout, playbook, host)` is the one place that turns the host's bundle (its
FileRecords) into that list, every file with its own hashes and bytes. A pull playbook moves a
bundle of files, sources or patches (the patched candidate of a host first heard after start is
computed by `pull_patch` as its report is folded); the agent applies all of them or none, runs
activate and ready itself, and `fold_reports` folds each file's reported hash into its FileRecord.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from rollout.core import cohorts
from rollout.core.machine import Phase
from rollout.core.playbook import Playbook
from rollout.core.state import FileRecord, HostRecord, HostState
from rollout.edges import activation, pull_patch
from rollout.edges.backends import pull_store_of
from rollout.edges.bundle import (
    FilePlan,
    bundle_sha,
    candidate_bytes,
    host_state,
    read_backup,
    spec_of,
    sum_up,
)
from rollout.edges.store import Rollout
from rollout.hosts.pullstore import Report
from rollout.hosts.pullwire import NOT_READY, assignment_key, failed_switch

WIRE_VERSION = 1
NO_READY = ("1",)  # agent versions that do not run `ready`


class _NoSpec:
    activate: str | None = None


_NO_SPEC = _NoSpec()


def blob_name(host: str) -> str:
    """Return the rollout blob holding `host`'s assignment."""
    return f"pull/assign/{host}.json"


def files_for(rollout: Rollout, playbook: Playbook, host: str) -> list[dict[str, Any]]:
    """Return the files `host` should hold: path (on the laptop), the sha256 to hold, the sha256
    the agent may replace (compare-and-swap), and the bytes (base64; null: no file)."""
    rec = rollout.state.hosts[host]
    if rec.assigned_at is None:
        return []
    to_candidate = rec.assigned_sha256 != rec.baseline_sha256
    out = []
    for f in rec.files.values():
        data: bytes | None
        target: str | None
        if to_candidate and f.candidate_sha256 is not None:
            data, target, expect = (
                candidate_bytes(rollout, f.candidate_sha256),
                f.candidate_sha256,
                f.baseline_sha256,
            )
        else:
            data, target, expect = read_backup(rollout, f), f.baseline_sha256, f.candidate_sha256
        out.append(
            {
                "path": f.path,
                "sha256": target,
                "expect_sha256": expect,
                "content_b64": base64.b64encode(data).decode() if data is not None else None,
            }
        )
    return out


def assignment_for(rollout: Rollout, playbook: Playbook, host: str) -> dict[str, Any]:
    """Return the assignment document `host`'s agent fetches."""
    rec = rollout.state.hosts[host]
    return {
        "version": WIRE_VERSION,
        "rollout": rollout.id,
        "host": host,
        "assigned_at": rec.assigned_at,
        "files": files_for(rollout, playbook, host),
        # Paths to report (and to upload, until something is assigned): the host's baseline, then
        # its other OpenCode layers (never assigned: uploaded when they change), for start's check.
        "watch": list(
            dict.fromkeys(
                [*([f.path for f in rec.files.values()] or [playbook.path_on(host)]),
                 *pull_patch.layer_paths(playbook, host)]
            )
        ),  # fmt: skip
        "poll_interval": getattr(playbook.transport_options, "poll_interval", 60.0),
        **activation_for(rollout, playbook, host),
    }


def activation_for(rollout: Rollout, playbook: Playbook, host: str) -> dict[str, Any]:
    """Return what the agent runs after it applied the files: the bundle's activate commands in
    order (each file's own, then config.activate; `file`: the path a file's own one is for) and
    their timeout, after a switch `config.ready` (run, timeout, interval, deadline: as the engine
    waits for a pushed host), the action (switch: the candidate was assigned; restore: the
    baseline back) and the stage being entered (ROLLOUT_STAGE / ROLLOUT_PERCENT)."""
    rec = rollout.state.hosts[host]
    if rec.assigned_at is None or not rec.files:
        return {}
    plans = [
        FilePlan(n, f.path, f.shadow_path, "text", f.baseline_sha256, f.baseline_mode,
                 f.candidate_sha256 or "", b"", (spec_of(playbook, n) or _NO_SPEC).activate)
        for n, f in rec.files.items()
    ]  # fmt: skip
    run = [{"run": command, "file": path} for command, path in activation.commands(playbook, plans)]
    action = "switch" if rec.assigned_sha256 != rec.baseline_sha256 else "restore"
    ready = playbook.ready if action == "switch" else None  # as for a pushed host: not after a restore
    if not run and ready is None:
        return {}
    out: dict[str, Any] = {"action": action, "stage": rollout.state.stage, "percent": rollout.state.percent}
    if run:
        out.update(activate=run, activate_timeout=playbook.activate_timeout)
    if ready is not None:
        out["ready"] = {
            "run": ready.run, "timeout": ready.timeout, "interval": ready.interval, "deadline": ready.deadline,
        }  # fmt: skip
    return out


def publish(rollout: Rollout, playbook: Playbook) -> int:
    """Write every host's assignment where the server reads it (only those that changed) and point
    the server at this rollout; return how many were written."""
    kept = rollout.read_blobs([blob_name(h) for h in playbook.hosts])  # one query on a server
    changed: dict[str, bytes] = {}
    for host in playbook.hosts:
        data = json.dumps(assignment_for(rollout, playbook, host), sort_keys=True).encode()
        if kept.get(blob_name(host)) != data:
            changed[blob_name(host)] = data
    rollout.write_blobs(changed)  # one transaction on a server
    pull_store_of(rollout).set_current(rollout.id)
    return len(changed)


def file_state(rec: HostRecord, f: FileRecord, reported: str | None) -> HostState:
    """Return the state of one file of a pull host from the hash its agent reports and what the
    host was assigned (the candidate bundle, or its baseline back)."""
    if rec.assigned_at is None:
        if reported == f.baseline_sha256:
            return HostState.SHADOW if rec.state == HostState.SHADOW else HostState.BASELINE
        known = f.candidate_sha256 is not None and reported == f.candidate_sha256
        return HostState.CANDIDATE if known else HostState.DRIFTED
    to_candidate = rec.assigned_sha256 != rec.baseline_sha256
    target = f.candidate_sha256 if to_candidate else f.baseline_sha256
    if reported == target:
        return HostState.CANDIDATE if to_candidate else HostState.BASELINE
    if reported in (f.baseline_sha256, f.candidate_sha256):
        return HostState.PENDING
    return HostState.DRIFTED


def _bundle_state(states: list[HostState]) -> HostState:
    """Return a pull host's state from its files': confirmed only when every file is."""
    if HostState.DRIFTED in states:
        return HostState.DRIFTED
    whole = host_state(states)
    return whole if whole is not None else HostState.PENDING


def _take_baseline(rec: HostRecord, report: Report, backups: dict[str, bytes]) -> bool:
    """Record the bytes a host's agent uploaded as its baseline (every file of its bundle);
    return False while one of them is not uploaded yet (the host stays unknown)."""
    files = list(rec.files.values())
    if any(report.files[f.path] is not None and report.uploaded.get(f.path) is None for f in files):
        return False
    for f in files:
        reported, data = report.files[f.path], report.uploaded.get(f.path)
        if data is not None and f.backup is not None:
            backups[f.backup] = data
        f.baseline_sha256, f.sha256, f.state, f.switched = reported, reported, HostState.BASELINE, False
        if reported is None:
            f.backup = None  # no such file on the laptop: a rollback removes it
    rec.baseline_sha256 = bundle_sha([(n, f.baseline_sha256) for n, f in rec.files.items()])
    rec.baseline_unread, rec.state, rec.reason = False, HostState.BASELINE, None
    sum_up(rec)
    return True


def _activation_failed(rec: HostRecord, report: Report) -> str | None:
    """Return why the candidate's switch failed on the laptop (its activate failed, or it was not
    ready in time), when its agent says so for the assignment in force (it then put the files
    back: every file reports its baseline)."""
    if rec.assigned_at is None or rec.assigned_sha256 == rec.baseline_sha256 or report.time < rec.assigned_at:
        return None
    why = failed_switch(report.errors)
    if why is None:
        return None
    if any(report.files[f.path] != f.baseline_sha256 for f in rec.files.values()):
        return None  # not (all) put back: folded as it is (pending or drifted)
    return why


def _not_ready(rollout: Rollout, playbook: Playbook, rec: HostRecord, report: Report) -> str | None:
    """Return why a host holding its candidate files is not confirmed yet when the playbook waits
    for ready: its agent has not said that ready passed for the assignment in force (None: it has,
    or there is no ready)."""
    if playbook.ready is None or rec.assigned_at is None:
        return None
    if report.ready == assignment_key({"rollout": rollout.id, "assigned_at": rec.assigned_at}):
        return None
    if report.agent_version in NO_READY:
        return f"its agent (version {report.agent_version}) does not run ready: upgrade rollout there"
    said = next((e for e in report.errors if e.startswith(NOT_READY)), None)
    return said or "its agent has not reported it ready yet"


def _switch_failed(rec: HostRecord, why: str, when: float) -> None:
    """A failed activation or ready is a failed switch (as for a pushed host): the host holds its baseline
    again, the gate of its stage fails, and the server assigns it its baseline (nothing to do)."""
    for f in rec.files.values():
        f.sha256, f.state, f.switched = f.baseline_sha256, HostState.BASELINE, False
    rec.state, rec.reason, rec.switch_failed, rec.touched = HostState.BASELINE, why, why, True
    rec.assigned_sha256, rec.assigned_at, rec.confirmed_at = rec.baseline_sha256, when, when
    rec.switched_at = None
    sum_up(rec)


def fold_reports(rollout: Rollout, playbook: Playbook) -> dict[str, str]:
    """Record what each host's agent reported since the last fold; return hosts whose state
    changed (host -> new state). A host with no baseline yet gets the bytes its agent uploaded.
    Each file of the host's bundle is folded into its FileRecord; the host is confirmed only
    when every file reports its assigned hash."""
    store = pull_store_of(rollout)
    reports, marks = _to_fold(rollout, store)  # only the reports changed since the last fold
    changed: dict[str, str] = {}
    backups: dict[str, bytes] = {}
    late: dict[str, dict[str, bytes | None]] = {}  # hosts heard first now whose patch is not applied yet
    for host, rec in rollout.state.hosts.items():
        report = reports.get(host)
        if not rec.files or report is None:
            continue
        if any(f.path not in report.files for f in rec.files.values()):
            continue
        before = rec.state
        if rec.baseline_unread:
            if _take_baseline(rec, report, backups):
                changed[host] = rec.state
                if pull_patch.needs_candidate(rec):
                    late[host] = {n: report.uploaded.get(f.path) if report.files[f.path] else None
                                  for n, f in rec.files.items()}  # fmt: skip
            continue
        held = bundle_sha([(n, report.files[f.path]) for n, f in rec.files.items()])
        if rec.state == HostState.UNKNOWN and rec.assigned_at is None and rec.baseline_sha256 != held:
            continue
        failed = _activation_failed(rec, report)
        if failed is not None:
            _switch_failed(rec, failed, report.time)
            changed[host] = rec.state
            continue
        states = []
        drifted = []
        for f in rec.files.values():
            reported = report.files[f.path]
            state = file_state(rec, f, reported)
            f.sha256, f.state = reported, state
            if state == HostState.CANDIDATE:
                f.switched = True
            elif state in (HostState.BASELINE, HostState.SHADOW):
                f.switched = False
            elif state == HostState.DRIFTED:
                drifted.append(
                    report.drift.get(f.path)
                    or f"{f.path}: its agent reports other bytes than the assigned or the recorded ones"
                )
            states.append(state)
        state = _bundle_state(states)
        waiting = _not_ready(rollout, playbook, rec, report) if state == HostState.CANDIDATE else None
        if waiting is not None:
            state, rec.reason = HostState.PENDING, waiting  # it holds the files, but is not ready (yet)
        elif state == HostState.DRIFTED:
            rec.reason = f"drifted: {'; '.join(drifted)}"
        elif state != HostState.PENDING:
            rec.reason = rec.switch_failed or pull_patch.held_reason(rec)  # these keep saying so
        confirmed = state in (HostState.CANDIDATE, HostState.BASELINE) and rec.assigned_at is not None
        # When the agent first reported what it holds now (several reports may lie between folds).
        at = report.held_since([f.path for f in rec.files.values()])
        if rec.assigned_at is not None:
            at = max(at, rec.assigned_at)
        if confirmed and (before != state or rec.confirmed_at is None):
            rec.confirmed_at = at
        if state == HostState.CANDIDATE:
            rec.touched = True
            if before != HostState.CANDIDATE:
                rec.switched_at = at  # exposure starts when the agent confirmed it
        rec.state = state
        sum_up(rec)  # the host's hash from its files' (the ones just reported)
        if before != state:
            changed[host] = state
    if backups:
        rollout.write_backup_files(backups)
    if late:  # their candidates, from the bytes just uploaded (a host the patch breaks is held back)
        pull_patch.late_candidates(rollout, playbook, late)
    _mark_folded(rollout, marks)
    return changed


# The fold's cursor: per host, the mark of the report last folded (its file's stat, or its row's
# version on a server) and the host's record as that fold left it. A host whose report and record
# are both as they were is not read nor folded again (folding it again would change nothing).
FOLDED = "pull/folded.json"


def _record_key(rec: HostRecord) -> list[Any]:
    return [str(rec.state), rec.assigned_at, rec.assigned_sha256, rec.baseline_sha256, rec.baseline_unread]


def _to_fold(rollout: Rollout, store: Any) -> tuple[dict[str, Report], dict[str, Any]]:
    """Return the reports to fold (those changed, or whose host's record changed, since the last
    fold) and every host's report mark now."""
    hosts = list(rollout.state.hosts)
    marks: dict[str, Any] = store.report_marks(hosts)
    try:
        before = json.loads(rollout.read_blob(FOLDED) or b"{}")
    except ValueError:
        before = {}
    if not isinstance(before, dict):
        before = {}
    recs = rollout.state.hosts
    stale = [h for h in hosts if h in marks and before.get(h) != [marks[h], _record_key(recs[h])]]
    return (store.read_reports(stale) if stale else {}), marks


def _mark_folded(rollout: Rollout, marks: dict[str, Any]) -> None:
    """Keep the fold's cursor (when it changed). Kept with the records as this fold left them: if
    they are not saved after all, the next fold sees other records and folds those hosts again."""
    recs = rollout.state.hosts
    data = json.dumps({h: [m, _record_key(recs[h])] for h, m in marks.items() if h in recs}).encode()
    if rollout.read_blob(FOLDED) != data:
        rollout.write_blob(FOLDED, data)


def late_hosts(rollout: Rollout) -> list[str]:
    """Return hosts of the live cohort still on the baseline with nothing assigned (their agent
    reported only after the stage was entered): they are switched now."""
    state = rollout.state
    if state.phase != Phase.LIVE or state.percent <= 0:
        return []
    cohort = cohorts.cohort_for(state.percent, state.order)
    return [
        h
        for h in cohort
        if state.hosts[h].state in (HostState.BASELINE, HostState.SHADOW)
        and state.hosts[h].assigned_at is None
        and state.hosts[h].held_back is None  # the patch breaks its file: it gets nothing
    ]


def exposure(rollout: Rollout, percent: int) -> tuple[int, int, list[str]]:
    """Return (confirmed, cohort size, hosts not confirmed) of the cohort at `percent`."""
    cohort = cohorts.cohort_for(percent, rollout.state.order)
    on = [h for h in cohort if rollout.state.hosts[h].state == HostState.CANDIDATE]
    return len(on), len(cohort), [h for h in cohort if h not in on]
