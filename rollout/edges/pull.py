"""Pull fleets, the verbs' side: publish what each host should hold, and fold what agents report
into the rollout's state (under the lock; the server only writes the inbox).

The wire format of an assignment is a list of files, so a bundle of files fits it unchanged:
`files_for(rollout, playbook, host)` is the one place that turns the host's bundle (its
FileRecords) into that list, every file with its own hashes and bytes. A pull playbook moves a
bundle of files, sources or patches (validate refuses ready; the patched candidate of a host first
heard after start is computed by `pull_patch` as its report is folded); the agent applies all of
them or none, and `fold_reports` folds each file's reported hash into its FileRecord.
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
from rollout.hosts.pullstore import PullStore, Report

WIRE_VERSION = 1
# How an agent reports that the candidate's activation failed (it put the files back first).
ACTIVATION_FAILED = "activation failed on the laptop: "


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
    order (each file's own, then config.activate; `file`: the path a file's own one is for), the
    action (switch: the candidate was assigned; restore: the baseline back) and the timeout."""
    rec = rollout.state.hosts[host]
    if rec.assigned_at is None or not rec.files:
        return {}
    plans = [
        FilePlan(n, f.path, f.shadow_path, "text", f.baseline_sha256, f.baseline_mode,
                 f.candidate_sha256 or "", b"", (spec_of(playbook, n) or _NO_SPEC).activate)
        for n, f in rec.files.items()
    ]  # fmt: skip
    run = [{"run": command, "file": path} for command, path in activation.commands(playbook, plans)]
    if not run:
        return {}
    action = "switch" if rec.assigned_sha256 != rec.baseline_sha256 else "restore"
    return {"activate": run, "action": action, "activate_timeout": playbook.activate_timeout}


def publish(rollout: Rollout, playbook: Playbook) -> int:
    """Write every host's assignment where the server reads it (only those that changed) and point
    the server at this rollout; return how many were written."""
    written = 0
    for host in playbook.hosts:
        data = json.dumps(assignment_for(rollout, playbook, host), sort_keys=True).encode()
        if rollout.read_blob(blob_name(host)) != data:
            rollout.write_blob(blob_name(host), data)
            written += 1
    PullStore(rollout.dir.parent).set_current(rollout.id)
    return written


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
    """Return why the candidate's activation failed on the laptop, when its agent says so for the
    assignment in force (it then put the files back: every file reports its baseline)."""
    if rec.assigned_at is None or rec.assigned_sha256 == rec.baseline_sha256 or report.time < rec.assigned_at:
        return None
    why = next((e for e in report.errors if e.startswith(ACTIVATION_FAILED)), None)
    if why is None:
        return None
    if any(report.files[f.path] != f.baseline_sha256 for f in rec.files.values()):
        return None  # not (all) put back: folded as it is (pending or drifted)
    return why


def _switch_failed(rec: HostRecord, why: str, when: float) -> None:
    """A failed activation is a failed switch (as for a pushed host): the host holds its baseline
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
    store = PullStore(rollout.dir.parent)
    changed: dict[str, str] = {}
    backups: dict[str, bytes] = {}
    late: dict[str, dict[str, bytes | None]] = {}  # hosts heard first now whose patch is not applied yet
    for host, rec in rollout.state.hosts.items():
        report = store.read_report(host)
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
        if state == HostState.DRIFTED:
            rec.reason = f"drifted: {'; '.join(drifted)}"
        elif state != HostState.PENDING:
            rec.reason = rec.switch_failed or pull_patch.held_reason(rec)  # these keep saying so
        confirmed = state in (HostState.CANDIDATE, HostState.BASELINE) and rec.assigned_at is not None
        if confirmed and (before != state or rec.confirmed_at is None):
            rec.confirmed_at = report.time
        if state == HostState.CANDIDATE:
            rec.touched = True
            if before != HostState.CANDIDATE:
                rec.switched_at = report.time  # exposure starts when the agent confirmed it
        rec.state = state
        sum_up(rec)  # the host's hash from its files' (the ones just reported)
        if before != state:
            changed[host] = state
    if backups:
        rollout.write_backup_files(backups)
    if late:  # their candidates, from the bytes just uploaded (a host the patch breaks is held back)
        pull_patch.late_candidates(rollout, playbook, late)
    return changed


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
