"""Human rendering of reports (rich tables), used only by the CLI."""

from __future__ import annotations

import time
from typing import Any

from rollout.util.durations import format_duration


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
        console.print(data["note"], soft_wrap=True, markup=False, highlight=False)
    if data.get("reason") and not data["active"]:
        console.print(f"reason: {data['reason']}")
    if data["state"] in ("shadow", "live"):
        console.print(f"in stage for {format_duration(time.time() - data['stage_entered_at'])}")
        for line in _progress_lines(data):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
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


def _progress_lines(data: dict[str, Any]) -> list[str]:
    """Say whether the stage is paused, how much bake is left, and who drives it."""
    lines = []
    paused = data.get("paused")
    if paused:
        lines.append(f"PAUSED since {paused.get('at')} by {paused.get('operator')}: {paused.get('reason')}")
    left = data.get("bake_left_s")
    if left:
        lines.append(f"bake: {format_duration(left)} left")
    lines.append(
        "driven by run --auto"
        if data.get("driven")
        else "no run --auto drives it: `rollout advance` gates it once the bake is over"
    )
    return lines
