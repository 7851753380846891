"""`rollout hosts add|list|revoke`: the hosts of pull fleets and their tokens (kept hashed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rollout.commands.common import Report
from rollout.hosts.pullstore import PullStore


def _when(t: float | None) -> str:
    return "never" if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def add(state_dir: Path, name: str) -> Report:
    """Register a pull host; its token is in the report once (stdout), never stored in clear."""
    token = PullStore(state_dir).add(name)
    report = Report(data={"host": name, "token": token})
    report.say(token)
    return report


def revoke(state_dir: Path, name: str) -> Report:
    """Forget a pull host's token: its agent is refused from now on."""
    PullStore(state_dir).revoke(name)
    report = Report(data={"host": name, "revoked": True})
    report.say(f"{name}: token revoked")
    return report


def list_hosts(state_dir: Path) -> Report:
    """List pull hosts: name, when added, when its agent last reported (never a token)."""
    store = PullStore(state_dir)
    rows = []
    for name, entry in sorted(store.hosts().items()):
        found = store.read_report(name)
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
        report.say(f"no pull hosts in {state_dir} (`rollout hosts add NAME`)")
    for row in rows:
        tail = f"  errors: {'; '.join(row['errors'])}" if row["errors"] else ""
        report.say(f"{row['host']}  added {row['created']}  last seen {row['last_seen']}{tail}")
    return report
