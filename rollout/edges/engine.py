"""Effects on hosts, each journaled as an intent before it happens and reconciled after a crash."""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

from rollout.core.playbook import Playbook
from rollout.core.state import HostRecord, HostState, Intent
from rollout.edges.store import Rollout
from rollout.hosts.fleet import Fleet, HostResult
from rollout.hosts.transports.base import FileState, SwapResult


@dataclass
class Run:
    """One verb's working set: the rollout on disk, its frozen playbook, sessions to its hosts."""

    rollout: Rollout
    playbook: Playbook
    fleet: Fleet

    @property
    def hosts(self) -> dict[str, HostRecord]:
        return self.rollout.state.hosts

    @property
    def candidate_sha(self) -> str:
        return self.rollout.state.candidate_sha256


@dataclass
class RestoreReport:
    """Who holds the baseline again, and who does not (with why)."""

    restored: list[str] = field(default_factory=list)
    not_restored: dict[str, str] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)  # drifted, left as they are by the operator's decision
    warnings: dict[str, str] = field(default_factory=dict)


def classify(live: str | None, shadow: str | None, baseline: str | None, candidate: str) -> HostState:
    """Return a host's state from the hashes it really holds."""
    if live == baseline:
        return HostState.SHADOW if shadow == candidate else HostState.BASELINE
    if live == candidate:
        return HostState.CANDIDATE
    return HostState.DRIFTED


def _record_read(rec: HostRecord, live: FileState, shadow: FileState, candidate: str) -> HostState:
    """Record in `rec` what a read of the host found; return its state."""
    rec.state = classify(live.sha256, shadow.sha256, rec.baseline_sha256, candidate)
    rec.sha256 = live.sha256
    rec.shadow_staged = shadow.sha256 == candidate
    return rec.state


def _begin(run: Run, action: str, hosts: list[str]) -> None:
    run.rollout.state.intent = Intent(action, hosts, time.time())
    run.rollout.commit("intent", action=action, hosts=hosts)


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


def read_hosts(
    run: Run, hosts: list[str], *, sweep: bool = False
) -> dict[str, HostResult[tuple[FileState, FileState]]]:
    """Read each host's live and shadow file (hash only matters here); with `sweep`, first remove
    the temp files an interrupted swap left beside them."""
    pb = run.playbook

    def read(s: Any) -> tuple[FileState, FileState]:
        if sweep:
            s.cleanup(pb.path_on(s.host))
            s.cleanup(pb.shadow_on(s.host))
        return s.read(pb.path_on(s.host)), s.read(pb.shadow_on(s.host))

    return run.fleet.map(hosts, read, label="read")


def reconcile(run: Run) -> dict[str, str] | None:
    """Finish an interrupted intent: read the hosts' real hashes and record what they hold."""
    if _is_pull(run):  # issue 15
        return sync_pull(run)
    intent = run.rollout.state.intent
    if intent is None:
        return None
    found: dict[str, str] = {}
    for host, r in read_hosts(run, list(intent.hosts), sweep=True).items():
        rec = run.hosts[host]
        if r.value is None:
            rec.state, rec.reason = HostState.UNKNOWN, r.error
            found[host] = f"{HostState.UNKNOWN}: {r.error}"
            continue
        state = _record_read(rec, *r.value, run.candidate_sha)
        if state == HostState.CANDIDATE:
            rec.touched = True
            rec.switched_at = rec.switched_at or intent.time
        found[host] = state
    _end(run, "reconciled", action=intent.action, hosts=found)
    return found


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
        found[host] = _record_read(rec, *r.value, run.candidate_sha)
        rec.reason = None
    run.rollout.commit("refreshed", hosts=found)
    return found


def stage_shadow(run: Run, hosts: list[str] | None = None) -> dict[str, str]:
    """Write the candidate to the hosts' shadow paths; return hosts that could not take it."""
    pb, data = run.playbook, run.rollout.candidate()
    hosts = list(pb.hosts) if hosts is None else hosts
    hosts = [h for h in hosts if not run.hosts[h].baseline_unread]  # issue 15: nothing for the unheard
    _begin(run, "shadow", hosts)

    def put(s: Any) -> SwapResult:
        rec = run.hosts[s.host]
        mode = rec.baseline_mode if rec.baseline_mode is not None else 0o600
        result: SwapResult = s.swap(pb.shadow_on(s.host), data, rec.shadow_before, mode)
        return result

    failed: dict[str, str] = {}
    for host, r in run.fleet.map(hosts, put, label="shadow").items():
        rec = run.hosts[host]
        if r.value is not None and r.value.swapped:
            rec.state, rec.shadow_staged = HostState.SHADOW, True
        else:
            failed[host] = r.error or (r.value.reason if r.value else "unknown")
    _end(run, "shadow-staged", hosts=[h for h in hosts if h not in failed], failed=failed)
    return failed


def clear_shadow(run: Run, hosts: list[str]) -> dict[str, str]:
    """Remove the shadow copies this rollout wrote (only if they are still the candidate)."""
    hosts = [h for h in hosts if run.hosts[h].shadow_staged]
    if not hosts:
        return {}
    _begin(run, "unshadow", hosts)
    pb, cand = run.playbook, run.candidate_sha
    left: dict[str, str] = {}
    for host, r in run.fleet.map(hosts, lambda s: s.swap(pb.shadow_on(s.host), None, cand, None)).items():
        rec = run.hosts[host]
        if r.value is not None and (r.value.swapped or r.value.actual_sha256 is None):
            rec.shadow_staged = False
            if rec.state == HostState.SHADOW:
                rec.state = HostState.BASELINE
        else:
            left[host] = r.error or "shadow copy changed on the host; left in place"
    _end(run, "shadow-cleared", hosts=[h for h in hosts if h not in left], left=left)
    return left


def activate(run: Run, hosts: list[str]) -> dict[str, str]:
    """Switch hosts to the candidate with compare-and-swap against their baseline hash.
    A host holding the shadow copy has it promoted in place (the bytes the shadow gate checked,
    never sent again); others get the candidate uploaded. Return hosts not switched, with why
    (drifted hosts are left alone)."""
    skipped: dict[str, str] = {
        h: f"unreachable: {run.hosts[h].reason}" for h in hosts if run.hosts[h].state == HostState.UNKNOWN
    }
    hosts = [h for h in hosts if run.hosts[h].state in (HostState.BASELINE, HostState.SHADOW)]
    if not hosts:
        return skipped
    pb, data, cand = run.playbook, run.rollout.candidate(), run.candidate_sha
    _begin(run, "activate", hosts)

    def switch(s: Any) -> tuple[SwapResult, bool]:
        """Return the swap's result and whether this rollout's shadow copy is still on the host."""
        rec = run.hosts[s.host]
        live, expect, mode = pb.path_on(s.host), rec.baseline_sha256, rec.baseline_mode
        shadow, kept = pb.shadow_on(s.host), rec.shadow_staged
        # A rename is atomic only within one folder: a shadow kept elsewhere is not promoted.
        if kept and posixpath.dirname(shadow) == posixpath.dirname(live):
            promoted: SwapResult = s.promote(shadow, live, cand, expect, mode)
            if not promoted.source_changed:
                return promoted, not promoted.swapped
            # Someone changed the shadow copy: it is theirs now; send the candidate instead.
            run.rollout.log("shadow-changed", host=s.host)
            kept = False
        result: SwapResult = s.swap(live, data, expect, mode)
        return result, kept

    now = time.time()
    for host, r in run.fleet.map(hosts, switch, label="activate").items():
        rec = run.hosts[host]
        if r.value is None:
            rec.state, rec.reason = HostState.UNKNOWN, r.error
            skipped[host] = f"unreachable: {r.error}"
            continue
        result, rec.shadow_staged = r.value
        if _is_pull(run) and result.swapped:  # issue 15: assigned; switched once its agent confirms
            rec.assigned_sha256, rec.assigned_at, rec.touched = cand, now, True
            rec.confirmed_at = None if result.pending else now
            rec.state = HostState.PENDING if result.pending else HostState.CANDIDATE
            rec.switched_at = None if result.pending else now
        elif result.swapped:
            rec.state, rec.sha256, rec.touched, rec.switched_at = HostState.CANDIDATE, cand, True, now
        else:
            why = f"drifted: live file is no longer the recorded baseline ({_short(result.actual_sha256)})"
            rec.state, rec.sha256, rec.reason = HostState.DRIFTED, result.actual_sha256, why
            skipped[host] = why
    switched = [h for h in hosts if h not in skipped]
    _end(run, "activated", hosts=switched, skipped={h: skipped[h] for h in hosts if h in skipped})
    return skipped


def restore(run: Run) -> RestoreReport:
    """Put every touched host back to its baseline bytes (CAS against the candidate hash)."""
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
    shadows = [h for h, rec in run.hosts.items() if rec.shadow_staged]
    if live:
        pb, cand = run.playbook, run.candidate_sha
        _begin(run, "restore", live)

        def put_back(s: Any) -> SwapResult:
            rec = run.hosts[s.host]
            data = run.rollout.read_backup(s.host)
            result: SwapResult = s.swap(pb.path_on(s.host), data, cand, rec.baseline_mode)
            return result

        for host, r in run.fleet.map(live, put_back, label="restore").items():
            rec = run.hosts[host]
            if r.value is None:
                rec.state, rec.reason = HostState.UNKNOWN, r.error
                report.not_restored[host] = f"unreachable: {r.error}"
            elif _is_pull(run) and r.value.swapped:  # issue 15: the baseline is assigned back
                if rec.assigned_at is None or rec.assigned_sha256 != rec.baseline_sha256:
                    rec.assigned_sha256, rec.assigned_at = rec.baseline_sha256, time.time()
                if r.value.pending:
                    rec.state, rec.confirmed_at = HostState.PENDING, None
                    report.not_restored[host] = "pending: its agent has not yet confirmed the rollback"
                else:
                    rec.state, rec.sha256, rec.reason = HostState.BASELINE, rec.baseline_sha256, None
                    rec.confirmed_at = rec.assigned_at
                    report.restored.append(host)
            elif r.value.swapped or r.value.actual_sha256 == rec.baseline_sha256:
                rec.state, rec.sha256, rec.reason = HostState.BASELINE, rec.baseline_sha256, None
                report.restored.append(host)
            else:
                why = (
                    f"changed by someone else since the rollout switched it ({_short(r.value.actual_sha256)}); "
                    "it is left as it is"
                )
                rec.state, rec.sha256, rec.reason = HostState.DRIFTED, r.value.actual_sha256, why
                report.not_restored[host] = why
        _end(run, "restored", hosts=report.restored, not_restored=report.not_restored)
    report.warnings.update(clear_shadow(run, shadows))
    return report


def _short(sha: str | None) -> str:
    return "file removed" if sha is None else f"sha256 {sha[:12]}"
