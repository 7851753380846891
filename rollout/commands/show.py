"""`rollout status`, `diff`, `history`: read what is on disk (status also reconciles a crash)."""

from __future__ import annotations

import json
from typing import Any

from rollout.commands.report import Report
from rollout.core import machine
from rollout.edges.backends import StateAt, open_store
from rollout.edges.store import Rollout, Store
from rollout.util.errors import Refused


def status(state_dir: StateAt, rollout_id: str | None = None) -> Report:
    """Describe one rollout: its state, stage, percent, every host, the journal, the last verdict."""
    store = open_store(state_dir)
    store.tidy()
    rollout = store.pick(rollout_id, "show status", fallback_latest=True)
    note = _reconcile_if_free(store, rollout)
    data = status_data(rollout, keep_clock=True)
    if note:
        data["note"] = note
    return Report(data=data)


def status_data(
    rollout: Rollout, events: list[dict[str, Any]] | None = None, keep_clock: bool = False
) -> dict[str, Any]:
    """Return the `status --json` object of a rollout as it is on disk (reads only; `serve` uses it
    as is). `events`: the journal, when the caller has read it already."""
    s = rollout.state
    data: dict[str, Any] = {
        "id": rollout.id,
        "name": s.name,
        "state": s.phase,
        "stage": s.stage,
        "percent": s.percent,
        "active": s.phase in machine.ACTIVE,
        "stage_entered_at": s.stage_entered_at,
        "hosts": {
            h: {
                "state": rec.state,
                "sha256": rec.sha256,
                **({"reason": rec.reason} if rec.reason else {}),
                **({"switch_failed": rec.switch_failed} if rec.switch_failed else {}),
                **({"held_back": rec.held_back} if rec.held_back else {}),
                **({"files": _files_json(rec.files)} if rec.files else {}),
                **({"assigned_at": rec.assigned_at} if rec.assigned_at is not None else {}),
            }
            for h, rec in s.hosts.items()
        },
        "candidate_sha256": s.candidate_sha256,
        "intent": s.intent.to_json() if s.intent is not None else None,
        "last_verdict": s.last_verdict,
        "reason": s.reason,
        "reasons": s.reasons,
        "history": [
            {"time": e["time"], "event": e["event"], "stage": e.get("stage"), "operator": e.get("operator")}
            for e in (rollout.events() if events is None else events)
        ],
        "folder": str(rollout.dir),
        "state_at": rollout.location(),
    }
    from rollout.commands.wait import timing_of

    data.update(timing_of(rollout, keep_clock))  # bake time left, the next check, paused, driven
    return data


def _files_json(files: dict[str, Any]) -> dict[str, Any]:
    """Return a bundle host's files as `status --json` shows them (the host's own fields speak for
    the bundle as a whole)."""
    return {
        name: {
            "state": f.state,
            "path": f.path,
            "sha256": f.sha256,
            "baseline_sha256": f.baseline_sha256,
            "candidate_sha256": f.candidate_sha256,
            "switched": f.switched,
        }
        for name, f in files.items()
    }


def _pull_active(rollout: Rollout) -> bool:
    """Return True for an active pull rollout: status folds its agents' reports first (issue 15)."""
    hosts = list(rollout.state.hosts)
    return (
        rollout.state.phase in machine.ACTIVE
        and bool(hosts)
        and rollout.read_blob(f"pull/assign/{hosts[0]}.json") is not None
    )


def _reconcile_if_free(store: Store, rollout: Rollout) -> str | None:
    """Finish an interrupted intent so status tells the truth, unless an operation is running."""
    if rollout.state.intent is None and not _pull_active(rollout):
        return None
    from rollout.commands.common import open_run
    from rollout.edges.engine import reconcile

    try:
        with store.lock():
            fresh = rollout.reloaded()
            run = open_run(fresh, None)
            try:
                found = reconcile(run)
            finally:
                run.fleet.close()
            rollout.state = fresh.state
            return reconciled_text(found) if found is not None else None
    except Refused:
        return "an operation is in progress; host states may be changing"


# What a host found by reconcile holds, as the predicate of a sentence (singular, plural).
_HOLDS = {
    "baseline": ("holds the baseline", "hold the baseline"),
    "shadow": (
        "holds the baseline, with the candidate staged beside it",
        "hold the baseline, with the candidate staged beside it",
    ),
    "candidate": ("holds the candidate", "hold the candidate"),
    "drifted": (
        "holds neither the baseline nor the candidate (changed by someone else; left as it is)",
        "hold neither the baseline nor the candidate (changed by someone else; left as they are)",
    ),
    "pending": (
        "was assigned new bytes its agent has not yet confirmed",
        "were assigned new bytes their agents have not yet confirmed",
    ),
}


def reconciled_text(found: dict[str, str]) -> str:
    """Say what reconciling an interrupted operation found: a line, then one sentence per host state."""
    by_state: dict[str, list[str]] = {}
    for host, what in found.items():
        by_state.setdefault(what, []).append(host)
    sentences = []
    for what, hosts in by_state.items():
        one = len(hosts) == 1
        from rollout.core.diffing import host_ranges

        names = host_ranges(sorted(hosts))
        if what in _HOLDS:
            sentences.append(f"{names} {_HOLDS[what][0 if one else 1]}.")
        elif what.startswith("unknown: "):
            verb = "was" if one else "were"
            sentences.append(
                f"{names} could not be read ({what.removeprefix('unknown: ')}); {verb} marked unknown."
            )
        else:
            sentences.append(f"{names}: {what}.")
    if not sentences:
        return "Reconciled an interrupted operation (it named no hosts)."
    return "\n  ".join(["Reconciled an interrupted operation:", *sentences])


def diff(state_dir: StateAt, rollout_id: str | None = None) -> Report:
    """Show baseline vs candidate per group of hosts with the same baseline (redacted)."""
    from rollout.core.diffing import host_ranges

    rollout = open_store(state_dir).pick(rollout_id, "diff", fallback_latest=True)
    index = json.loads(_blob(rollout, "diffs/index.json"))
    report = Report(data={"id": rollout.id, "groups": []})
    for group in index:
        text = _blob(rollout, f"diffs/{group['group']}.txt").decode().rstrip()
        changes = json.loads(_blob(rollout, f"diffs/{group['group']}.json"))
        hosts = host_ranges(group["hosts"])
        label = "same change" if len(group["hosts"]) > 1 else "change"
        if group.get("file"):
            label = f"{group['file']}: {label}"
        report.say(f"{hosts}: {label}")
        report.lines.extend("  " + line for line in text.splitlines())
        report.data["groups"].append({**group, "text": text, "diff": changes})
    return report


def _blob(rollout: Rollout, name: str) -> bytes:
    data = rollout.read_blob(name)
    if data is None:
        raise FileNotFoundError(f"{rollout.location(name)} is missing")
    return data


def history(state_dir: StateAt, rollout_id: str | None = None) -> Report:
    """Show the rollout's event journal."""
    from rollout.core.diffing import host_ranges

    store = open_store(state_dir)
    if rollout_id is None and not store.rollouts():
        raise Refused(f"no rollouts in {store.where}")
    rollout = store.pick(rollout_id, "show history", fallback_latest=True)
    events = rollout.events()
    report = Report(data={"id": rollout.id, "events": events})
    report.say(f"rollout {rollout.id} ({rollout.state.phase})")
    for e in events:
        extra = e.get("why") or e.get("reason") or ""
        hosts = e.get("hosts")
        if not extra and isinstance(hosts, list) and hosts:
            extra = host_ranges(hosts)
        by = f"  [{e['operator']}]" if e.get("operator") else ""
        report.say(f"{e['time']}  {e.get('stage') or '-':8}  {e['event']:16} {extra}".rstrip() + by)
    return report


def rollouts(state_dir: StateAt) -> Report:
    """List every rollout in the state folder."""
    every = open_store(state_dir).rollouts()
    report = Report(data={"rollouts": [{"id": r.id, "state": r.state.phase} for r in every]})
    for r in every:
        report.say(f"{r.id}  {r.state.phase}  stage {r.state.stage}")
    return report
