"""Effects on hosts, each journaled as an intent before it happens and reconciled after a crash.

A host's bundle (one file or several) moves as one: staged file by file in shadow, switched file by
file with compare-and-swap against each file's own recorded hash, then activated; a failure part
way through a host puts back the files already switched there before the host is reported.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

from rollout.core.playbook import Playbook
from rollout.core.state import FileRecord, HostRecord, HostState, Intent
from rollout.edges import activation
from rollout.edges.bundle import FilePlan, adopt, bundle_for, bundle_sha, host_state, read_backup, sum_up
from rollout.edges.store import Rollout
from rollout.hosts.fleet import Fleet, HostResult
from rollout.hosts.transports.base import FileState, SwapResult


@dataclass
class Run:
    """One verb's working set: the rollout on disk, its frozen playbook, sessions to its hosts."""

    rollout: Rollout
    playbook: Playbook
    fleet: Fleet
    _blobs: dict[str, bytes] = field(default_factory=dict, repr=False)  # candidates read, by hash

    def __post_init__(self) -> None:
        adopt(self.rollout, self.playbook)  # a rollout from before bundles: one file per host

    @property
    def hosts(self) -> dict[str, HostRecord]:
        return self.rollout.state.hosts

    @property
    def candidate_sha(self) -> str:
        return self.rollout.state.candidate_sha256

    def plans(self, host: str) -> list[FilePlan]:
        """Return the host's bundle with its candidate bytes."""
        return bundle_for(self.rollout, host, self.playbook, self._blobs)

    def layout(self, host: str) -> list[FilePlan]:
        """Return the host's bundle without candidate bytes (paths, hashes, activate commands)."""
        return bundle_for(self.rollout, host, self.playbook, with_data=False)

    def load(self, hosts: list[str]) -> dict[str, list[FilePlan]]:
        """Return the hosts' bundles, read here (not in a host's worker: a candidate missing from
        the rollout's folder is a broken state folder, not an unreachable host)."""
        return {h: self.plans(h) for h in hosts}

    def file_names(self) -> list[str]:
        """Return the bundle's file names, in order."""
        first = next(iter(self.hosts.values()), None)
        return list(first.files) if first is not None else []


@dataclass
class RestoreReport:
    """Who holds the baseline again, and who does not (with why)."""

    restored: list[str] = field(default_factory=list)
    not_restored: dict[str, str] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)  # drifted, left as they are by the operator's decision
    warnings: dict[str, str] = field(default_factory=dict)  # host -> what was not undone in full


def classify(live: str | None, shadow: str | None, baseline: str | None, candidate: str | None) -> HostState:
    """Return a file's state from the hashes it really holds (candidate None: not known yet)."""
    if live == baseline:
        return HostState.SHADOW if candidate is not None and shadow == candidate else HostState.BASELINE
    if candidate is not None and live == candidate:
        return HostState.CANDIDATE
    return HostState.DRIFTED


Read = dict[str, tuple[FileState, FileState]]  # file name -> (live, shadow)


def _record_read(rec: HostRecord, read: Read) -> HostState | None:
    """Record in `rec` what a read of the host found; return its state (None: part switched)."""
    for name, f in rec.files.items():
        live, shadow = read[name]
        f.state = classify(live.sha256, shadow.sha256, f.baseline_sha256, f.candidate_sha256)
        f.sha256 = live.sha256
        f.shadow_staged = shadow.sha256 == f.candidate_sha256
        f.switched = f.state == HostState.CANDIDATE
    sum_up(rec)
    state = host_state([f.state for f in rec.files.values()])
    if state is not None:
        rec.state = state
    return state


def _begin(run: Run, action: str, hosts: list[str]) -> None:
    files = run.file_names()
    run.rollout.state.intent = Intent(action, hosts, time.time(), files if len(files) > 1 else None)
    fields: dict[str, Any] = {"action": action, "hosts": hosts}
    if len(files) > 1:
        fields["files"] = files
    run.rollout.commit("intent", **fields)


def _end(run: Run, event: str, **fields: Any) -> None:
    run.rollout.state.intent = None
    run.rollout.commit(event, **fields)
    if _is_pull(run):  # pull fleets (issue 15): the effect is the assignment, published after the record
        _pull().publish(run.rollout, run.playbook)


# -- pull fleets (issue 15): a host is switched only when its agent reports the new hash --------
def _is_pull(run: Run) -> bool:
    return run.playbook.transport == "pull"


def _pull() -> Any:
    from rollout.edges import pull

    return pull


def sync_pull(run: Run) -> dict[str, str] | None:
    """Fold what the agents reported into the state, finish an interrupted intent (its effect is
    an assignment not yet published), switch cohort hosts that reported late, and publish."""
    pull = _pull()
    found: dict[str, str] = pull.fold_reports(run.rollout, run.playbook)
    intent = run.rollout.state.intent
    reconciled = None
    if intent is not None:
        reconciled = {h: str(run.hosts[h].state) for h in intent.hosts}
        _end(run, "reconciled", action=intent.action, hosts=reconciled)
    elif found:
        run.rollout.commit("reports-folded", hosts=found)
    late = pull.late_hosts(run.rollout)
    if late:
        activate(run, late)
    else:
        pull.publish(run.rollout, run.playbook)
    return reconciled


# -- end of the pull hooks -------------------------------------------------------------------


def read_hosts(run: Run, hosts: list[str], *, sweep: bool = False) -> dict[str, HostResult[Read]]:
    """Read each host's live and shadow files (hash only matters here); with `sweep`, first remove
    the temp files an interrupted swap left beside them."""

    def read(s: Any) -> Read:
        out: Read = {}
        for name, f in run.hosts[s.host].files.items():
            if sweep:
                s.cleanup(f.path)
                s.cleanup(f.shadow_path)
            out[name] = (s.read(f.path), s.read(f.shadow_path))
        return out

    return run.fleet.map(hosts, read, label="read")


def reconcile(run: Run) -> dict[str, str] | None:
    """Finish an interrupted intent: read the hosts' real hashes and record what they hold. A host
    found part switched (killed between its files) has its switched files put back: a host holds
    all of its bundle or none of it."""
    if _is_pull(run):  # issue 15
        return sync_pull(run)
    intent = run.rollout.state.intent
    if intent is None:
        return None
    found: dict[str, str] = {}
    partial: list[str] = []
    for host, r in read_hosts(run, list(intent.hosts), sweep=True).items():
        rec = run.hosts[host]
        if r.value is None:
            rec.state, rec.reason = HostState.UNKNOWN, r.error
            found[host] = f"{HostState.UNKNOWN}: {r.error}"
            continue
        state = _record_read(rec, r.value)
        if state is None:
            partial.append(host)
            continue
        if state == HostState.CANDIDATE:
            rec.touched = True
            rec.switched_at = rec.switched_at or intent.time
        found[host] = state
    _end(run, "reconciled", action=intent.action, hosts=found, partial=partial)
    if partial:
        found.update(_put_back_partial(run, partial))
    if intent.action == "activate" and activation.configured(run.playbook):
        # Killed after a host's files were switched, perhaps before it was activated: activate it
        # (again: activation commands reload, they can run twice), or put it back if that fails.
        live = [h for h in intent.hosts if found.get(h) == HostState.CANDIDATE]
        for host, why in activate(run, live, again=True).items():
            found[host] = why
    return found


def _put_back_partial(run: Run, hosts: list[str]) -> dict[str, str]:
    """Put back the candidate files of hosts found part switched; return what each holds now."""
    _begin(run, "restore", hosts)
    out: dict[str, str] = {}
    results = run.fleet.map(hosts, lambda s: _restore_host(run, s, activate_after=True), label="restore")
    for host, r in results.items():
        rec = run.hosts[host]
        rec.touched = True
        if r.value is None:
            rec.state, rec.reason = HostState.UNKNOWN, f"part switched, not put back: {r.error}"
            out[host] = f"{HostState.UNKNOWN}: {rec.reason}"
        elif r.value.ok:
            rec.state, rec.reason = HostState.BASELINE, None
            out[host] = "part switched (killed between its files); its switched files were put back"
        else:
            rec.state, rec.reason = HostState.DRIFTED, r.value.why
            out[host] = f"part switched; {r.value.why}"
        sum_up(rec)
    _end(run, "restored", hosts=[h for h in hosts if run.hosts[h].state == HostState.BASELINE])
    return out


def refresh_unknown(run: Run) -> dict[str, str]:
    """Read hosts whose state is unknown (unreachable earlier) and record what they hold now."""
    hosts = run.rollout.state.hosts_in(HostState.UNKNOWN)
    if not hosts or _is_pull(run):  # issue 15: pull hosts are refreshed from their reports (sync_pull)
        return {}
    found: dict[str, str] = {}
    for host, r in read_hosts(run, hosts).items():
        rec = run.hosts[host]
        if r.value is None:
            rec.reason = r.error
            found[host] = f"{HostState.UNKNOWN}: {r.error}"
            continue
        state = _record_read(rec, r.value)
        if state is None:  # part switched: an abort puts it back
            rec.state, rec.touched = HostState.DRIFTED, True
            rec.reason = "part switched: " + ", ".join(f"{n} {f.state}" for n, f in rec.files.items())
            found[host] = rec.reason
            continue
        found[host] = state
        rec.reason = None
    run.rollout.commit("refreshed", hosts=found)
    return found


def stage_shadow(run: Run, hosts: list[str] | None = None) -> dict[str, str]:
    """Write each host's candidate files to their shadow paths; return hosts that could not take them."""
    hosts = list(run.playbook.hosts) if hosts is None else hosts
    # Issue 15: nothing for the unheard, nor for a host the patch breaks (held back).
    hosts = [h for h in hosts if not run.hosts[h].baseline_unread and run.hosts[h].held_back is None]
    bundles = run.load(hosts)
    _begin(run, "shadow", hosts)

    def put(s: Any) -> str | None:
        rec = run.hosts[s.host]
        for plan in bundles[s.host]:
            f = rec.files[plan.name]
            if f.shadow_staged:
                continue
            mode = f.baseline_mode if f.baseline_mode is not None else 0o600
            result: SwapResult = s.swap(f.shadow_path, plan.data, f.shadow_before, mode)
            if not result.swapped:
                return f"{plan.name}: {result.reason}" if len(rec.files) > 1 else result.reason
            f.shadow_staged = True
        return None

    failed: dict[str, str] = {}
    for host, r in run.fleet.map(hosts, put, label="shadow").items():
        rec = run.hosts[host]
        if r.value is None and r.error is None:
            rec.state, rec.shadow_staged = HostState.SHADOW, True
            for f in rec.files.values():
                f.state = HostState.SHADOW
        else:
            failed[host] = r.error or r.value or "unknown"
    _end(run, "shadow-staged", hosts=[h for h in hosts if h not in failed], failed=failed)
    return failed


def clear_shadow(run: Run, hosts: list[str]) -> dict[str, str]:
    """Remove the shadow copies this rollout wrote (only those still holding the candidate)."""
    hosts = [h for h in hosts if any(f.shadow_staged for f in run.hosts[h].files.values())]
    if not hosts:
        return {}
    _begin(run, "unshadow", hosts)

    def clear(s: Any) -> str | None:
        left = []
        for name, f in run.hosts[s.host].files.items():
            if not f.shadow_staged:
                continue
            result: SwapResult = s.swap(f.shadow_path, None, f.candidate_sha256, None)
            if result.swapped or result.actual_sha256 is None:
                f.shadow_staged = False
                if f.state == HostState.SHADOW:
                    f.state = HostState.BASELINE
            else:
                left.append(name)
        return ", ".join(left) or None

    left: dict[str, str] = {}
    for host, r in run.fleet.map(hosts, clear).items():
        rec = run.hosts[host]
        if r.value is None and r.error is None:
            rec.shadow_staged = False
            if rec.state == HostState.SHADOW:
                rec.state = HostState.BASELINE
        else:
            bundle = f" ({r.value})" if r.value and len(rec.files) > 1 else ""
            left[host] = r.error or f"shadow copy changed on the host; left in place{bundle}"
    _end(run, "shadow-cleared", hosts=[h for h in hosts if h not in left], left=left)
    return left


@dataclass
class HostSwitch:
    """How one host's switch ended: every file switched and activated (`ok`), or why not."""

    ok: bool
    why: str = ""
    outcome: str = "switched"  # switched | drifted | failed (files put back) | partial (not all put back)
    actual_sha256: str | None = None
    pending: bool = False  # pull (issue 15): assigned; the host's agent has not confirmed it yet


def _switch_file(run: Run, s: Any, plan: FilePlan, f: FileRecord) -> SwapResult:
    """Switch one file: promote its shadow copy in place (the bytes the shadow gate checked, never
    sent again) when it is kept in the same folder, else upload the candidate."""
    live, expect, mode = f.path, f.baseline_sha256, f.baseline_mode
    # A rename is atomic only within one folder: a shadow kept elsewhere is not promoted.
    if f.shadow_staged and posixpath.dirname(f.shadow_path) == posixpath.dirname(live):
        promoted: SwapResult = s.promote(f.shadow_path, live, plan.candidate_sha256, expect, mode)
        if not promoted.source_changed:
            f.shadow_staged = not promoted.swapped
            return promoted
        # Someone changed the shadow copy: it is theirs now; send the candidate instead.
        run.rollout.log("shadow-changed", host=s.host, file=plan.name)
        f.shadow_staged = False
    result: SwapResult = s.swap(live, plan.data, expect, mode)
    return result


def _switch_host(
    run: Run, s: Any, plans: list[FilePlan], stage: tuple[str, int], *, again: bool = False
) -> HostSwitch:
    """Switch every file of the host's bundle, then activate it and wait until it is ready; a
    failure part way puts back what was switched (and activates the baseline again). With
    `again` the files are switched already: activate only."""
    rec = run.hosts[s.host]
    bundle = len(plans) > 1
    done: list[FilePlan] = list(plans) if again else []
    for plan in plans if not again else ():
        f = rec.files[plan.name]
        try:
            result = _switch_file(run, s, plan, f)
        except Exception as e:  # noqa: BLE001 - a transport failure mid-host is this host's result
            if not done:
                raise
            return _undo(run, s, done, f"{plan.name}: {_reason(e)}", activated=False)
        if not result.swapped:
            name = f"{plan.name}: " if bundle else ""
            why = f"{name}drifted: live file is no longer the recorded baseline ({_short(result.actual_sha256)})"
            f.state, f.sha256 = HostState.DRIFTED, result.actual_sha256
            if not done:
                return HostSwitch(False, why, "drifted", result.actual_sha256)
            undone = _undo(run, s, done, why, activated=False)
            undone.outcome = "drifted" if undone.outcome == "failed" else undone.outcome
            return undone
        if result.pending:  # pull (issue 15): assigned, held once the host's agent confirms it
            f.state, f.switched = HostState.PENDING, True
        else:
            f.state, f.sha256, f.switched = HostState.CANDIDATE, plan.candidate_sha256, True
        done.append(plan)
    if _is_pull(run):  # a pull host's agent runs activate and ready itself, after it applied the files
        return HostSwitch(True, pending=any(rec.files[p.name].state == HostState.PENDING for p in plans))
    failed = activation.activate(run.rollout, run.playbook, s, plans, "switch", stage)
    if failed is None:
        failed = activation.wait_ready(run.rollout, run.playbook, s, plans, stage)
    if failed is not None:
        return _undo(run, s, done, failed, activated=True, stage=stage)
    return HostSwitch(True)


def _undo(
    run: Run, s: Any, done: list[FilePlan], why: str, *, activated: bool, stage: tuple[str, int] = ("", 0)
) -> HostSwitch:
    """Put back the files of `done` (switched on this host a moment ago); activate the baseline
    again when the candidate was activated."""
    rec = run.hosts[s.host]
    lost = []
    for plan in reversed(done):
        f = rec.files[plan.name]
        try:
            if not _put_back(run, s, f):
                lost.append(f"{plan.name} changed since it was switched")
        except Exception as e:  # noqa: BLE001 - reported with the host
            lost.append(f"{plan.name} not put back: {_reason(e)}")
    if lost:
        return HostSwitch(False, f"{why}; and {'; '.join(lost)}", "partial")
    if activated:
        again = activation.activate(run.rollout, run.playbook, s, run.layout(s.host), "restore", stage)
        if again is not None:
            return HostSwitch(False, f"{why}; files put back, but {again}", "failed")
    return HostSwitch(False, why, "failed")


def _put_back(run: Run, s: Any, f: FileRecord) -> bool:
    """Put a file's baseline bytes back (compare-and-swap against its candidate); return True
    when it holds them (it may have held them already), or (pull) when they are assigned back:
    the file is then `pending` until the host's agent confirms it."""
    data = read_backup(run.rollout, f)
    result: SwapResult = s.swap(f.path, data, f.candidate_sha256, f.baseline_mode)
    if result.swapped and result.pending:
        f.state = HostState.PENDING
        return True
    if result.swapped or result.actual_sha256 == f.baseline_sha256:
        f.state, f.sha256, f.switched = HostState.BASELINE, f.baseline_sha256, False
        return True
    f.state, f.sha256 = HostState.DRIFTED, result.actual_sha256
    return False


def activate(run: Run, hosts: list[str], *, again: bool = False) -> dict[str, str]:
    """Switch hosts to their candidate bundle (each file compare-and-swapped against its baseline
    hash), activate it and wait until it is ready. Return hosts not switched, with why (drifted
    hosts are left alone; a host that failed part way has its files put back and is named).
    With `again`, the hosts already hold their candidate files: only activate them (after a kill)."""
    skipped: dict[str, str] = {
        h: f"unreachable: {run.hosts[h].reason}" for h in hosts if run.hosts[h].state == HostState.UNKNOWN
    }
    # Issue 15: a pull host the patch breaks (held back) has no candidate and gets nothing.
    skipped.update({h: run.hosts[h].reason or "held back" for h in hosts if run.hosts[h].held_back})
    want = (HostState.CANDIDATE,) if again else (HostState.BASELINE, HostState.SHADOW)
    hosts = [h for h in hosts if run.hosts[h].state in want and h not in skipped]
    if not hosts:
        return skipped
    bundles = run.load(hosts)
    _begin(run, "activate", hosts)
    state = run.rollout.state
    stage = (state.stage, state.percent)
    now = time.time()

    def switch(s: Any) -> HostSwitch:
        return _switch_host(run, s, bundles[s.host], stage, again=again)

    for host, r in run.fleet.map(hosts, switch, label="activate").items():
        rec = run.hosts[host]
        if r.value is None:
            rec.state, rec.reason = HostState.UNKNOWN, r.error
            skipped[host] = f"unreachable: {r.error}"
            continue
        sw = r.value
        rec.shadow_staged = all(f.shadow_staged for f in rec.files.values())
        if sw.ok and _is_pull(run):  # issue 15: assigned; switched once its agent confirms
            rec.assigned_sha256 = bundle_sha([(n, f.candidate_sha256) for n, f in rec.files.items()])
            rec.assigned_at, rec.touched = now, True
            rec.confirmed_at = None if sw.pending else now
            rec.state = HostState.PENDING if sw.pending else HostState.CANDIDATE
            rec.switched_at = None if sw.pending else now
            rec.reason = rec.switch_failed = None
        elif sw.ok:
            rec.state, rec.touched = HostState.CANDIDATE, True
            rec.switched_at = (rec.switched_at or now) if again else now
            rec.reason = rec.switch_failed = None
        elif sw.outcome == "drifted":
            rec.state, rec.reason = HostState.DRIFTED, sw.why
            skipped[host] = sw.why
        elif sw.outcome == "failed":
            rec.state = HostState.SHADOW if rec.shadow_staged else HostState.BASELINE
            rec.reason = rec.switch_failed = sw.why
            rec.touched = True
            skipped[host] = f"switch failed, files put back: {sw.why}"
        else:
            rec.state, rec.reason, rec.switch_failed, rec.touched = HostState.UNKNOWN, sw.why, sw.why, True
            skipped[host] = f"switch failed part way: {sw.why}"
        sum_up(rec)
    switched = [h for h in hosts if h not in skipped]
    _end(run, "activated", hosts=switched, skipped={h: skipped[h] for h in hosts if h in skipped})
    return skipped


@dataclass
class HostRestore:
    ok: bool
    why: str = ""
    warning: str | None = None
    pending: bool = False  # pull (issue 15): the baseline is assigned back, not yet confirmed


def _restore_host(run: Run, s: Any, *, activate_after: bool) -> HostRestore:
    """Put back every file of the host's bundle (last first), then activate the baseline."""
    rec = run.hosts[s.host]
    changed = []
    for name, f in reversed(list(rec.files.items())):
        if not _put_back(run, s, f):
            changed.append(name)
    if changed:
        names = f" ({', '.join(changed)})" if len(rec.files) > 1 else ""
        why = (
            f"changed by someone else since the rollout switched it{names} "
            f"({_short(rec.files[changed[0]].sha256)}); it is left as it is"
        )
        return HostRestore(False, why)
    if _is_pull(run):  # nothing runs from here on a pull host: its agent applies (and activates) what it is assigned
        return HostRestore(True, pending=any(f.state == HostState.PENDING for f in rec.files.values()))
    warning = None
    if activate_after:
        state = run.rollout.state
        warning = activation.activate(
            run.rollout, run.playbook, s, run.layout(s.host), "restore", (state.stage, state.percent)
        )
    return HostRestore(True, warning=warning)


def restore(run: Run) -> RestoreReport:
    """Put every touched host back to its baseline bytes (CAS against the candidate hashes) and
    activate them again."""
    report = RestoreReport()
    live = [
        h
        for h, rec in run.hosts.items()
        if (rec.state in (HostState.CANDIDATE, HostState.UNKNOWN) or rec.touched)
        and rec.state != HostState.BASELINE
        and not rec.baseline_unread  # issue 15: a pull host that never reported was given nothing
    ]
    # A drifted host the operator chose to leave as it is is not retried, nor counted as lost.
    report.left = [h for h in live if run.hosts[h].drift_accepted and run.hosts[h].state == HostState.DRIFTED]
    live = [h for h in live if h not in report.left]
    shadows = [h for h, rec in run.hosts.items() if any(f.shadow_staged for f in rec.files.values())]
    if live:
        _begin(run, "restore", live)
        for host, r in run.fleet.map(
            live, lambda s: _restore_host(run, s, activate_after=True), "restore"
        ).items():
            rec = run.hosts[host]
            if r.value is None:
                rec.state, rec.reason = HostState.UNKNOWN, r.error
                report.not_restored[host] = f"unreachable: {r.error}"
            elif r.value.ok and _is_pull(run):  # issue 15: the baseline is assigned back
                if rec.assigned_at is None or rec.assigned_sha256 != rec.baseline_sha256:
                    rec.assigned_sha256, rec.assigned_at = rec.baseline_sha256, time.time()
                if r.value.pending:
                    rec.state, rec.confirmed_at = HostState.PENDING, None
                    report.not_restored[host] = "pending: its agent has not yet confirmed the rollback"
                else:
                    rec.state, rec.reason = HostState.BASELINE, None
                    rec.confirmed_at = rec.assigned_at
                    report.restored.append(host)
            elif r.value.ok:
                rec.state, rec.reason = HostState.BASELINE, None
                report.restored.append(host)
                if r.value.warning:
                    report.warnings[host] = f"files restored, but {r.value.warning}"
            else:
                rec.state, rec.reason = HostState.DRIFTED, r.value.why
                report.not_restored[host] = r.value.why
            sum_up(rec)
        _end(run, "restored", hosts=report.restored, not_restored=report.not_restored)
    for host, why in clear_shadow(run, shadows).items():
        report.warnings[host] = f"shadow copy not removed: {why}"
    return report


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _short(sha: str | None) -> str:
    return "file removed" if sha is None else f"sha256 {sha[:12]}"
