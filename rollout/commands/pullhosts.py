"""`rollout hosts add|list|revoke`: the hosts of pull fleets and their tokens (kept hashed)."""

from __future__ import annotations

from datetime import UTC, datetime

from rollout.commands.common import Report
from rollout.edges.backends import StateAt, open_pull_store


def _when(t: float | None) -> str:
    return "never" if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def add(state_dir: StateAt, name: str) -> Report:
    """Register a pull host; its token is in the report once (stdout), never stored in clear."""
    token = open_pull_store(state_dir).add(name)
    report = Report(data={"host": name, "token": token})
    report.say(token)
    return report


def revoke(state_dir: StateAt, name: str) -> Report:
    """Forget a pull host's token: its agent is refused from now on."""
    open_pull_store(state_dir).revoke(name)
    report = Report(data={"host": name, "revoked": True})
    report.say(f"{name}: token revoked")
    return report


def list_hosts(state_dir: StateAt) -> Report:
    """List pull hosts: name, when added, when its agent last reported (never a token)."""
    store = open_pull_store(state_dir)
    rows = []
    known = store.hosts()
    reports = store.read_reports(sorted(known))
    for name, entry in sorted(known.items()):
        found = reports.get(name)
        rows.append(
            {
                "host": name,
                "created": _when(entry.get("created")),
                "last_seen": _when(found.time if found else None),
                "agent_version": found.agent_version if found else None,
                "errors": found.errors if found else [],
            }
        )
    report = Report(data={"hosts": rows})
    if not rows:
        report.say(f"no pull hosts in {store.where} (`rollout hosts add NAME`)")
    for row in rows:
        tail = f"  errors: {'; '.join(row['errors'])}" if row["errors"] else ""
        report.say(f"{row['host']}  added {row['created']}  last seen {row['last_seen']}{tail}")
    return report
