"""Human rendering of reports (rich tables), used only by the CLI."""

from __future__ import annotations

import time
from typing import Any

from rollout.durations import format_duration


def status_text(data: dict[str, Any]) -> str:
    """Render `status` data as a header, a host table and the last verdict."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    buf = StringIO()
    console = Console(file=buf, width=120, force_terminal=False, color_system=None)
    pct = f" ({data['percent']}%)" if data["percent"] else ""
    console.print(f"rollout {data['id']}: {data['state']}, stage {data['stage']}{pct}")
    if data.get("note"):
        console.print(data["note"])
    if data.get("reason") and not data["active"]:
        console.print(f"reason: {data['reason']}")
    if data["state"] in ("shadow", "live"):
        console.print(f"in stage for {format_duration(time.time() - data['stage_entered_at'])}")
    hosts = Table("host", "state", "sha256", "note", box=None, pad_edge=False)
    for host, rec in data["hosts"].items():
        hosts.add_row(host, rec["state"], (rec["sha256"] or "(no file)")[:12], rec.get("reason") or "")
    console.print(hosts)
    verdict = data.get("last_verdict")
    if verdict:
        looks = ""
        if verdict.get("look"):
            looks = f" (look {verdict['look']} of {verdict.get('planned_looks') or '?'} planned)"
        console.print(f"last gate ({verdict['stage']}){looks}: {verdict['decision']}: {verdict['why']}")
        rows = [m for m in verdict["measurements"] if m.get("details", {}).get("value") is not None]
        if rows:
            table = Table("check", "cohort", "baseline", "bound", "verdict", "why", box=None)
            for m in rows:
                d = m["details"]
                shown = d.get("shown") or {}
                table.add_row(
                    m["check"],
                    shown.get("value") or _num(d.get("value")),
                    shown.get("baseline") or _num(d.get("baseline")),
                    str(d.get("bound", "")),
                    m["outcome"] + ("" if m["enforce"] else " (observe)"),
                    m["why"],
                )
            console.print(table)
    return buf.getvalue().rstrip()


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
