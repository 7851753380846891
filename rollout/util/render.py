"""Human rendering of reports (plain-text tables), used only by the CLI."""

from __future__ import annotations

import time
from typing import Any

from rollout.util.durations import format_duration

SMALL_FLEET = (
    40  # up to this many hosts, `status` lists every host; past it, counts and the hosts that need a person
)
NEEDS_A_PERSON = ("drifted", "unknown")


def status_text(data: dict[str, Any], all_hosts: bool = False) -> str:
    """Render `status` data as a header, the hosts (every one, or a summary of a large fleet) and the last verdict."""
    out: list[str] = []
    pct = f" ({data['percent']}%)" if data["percent"] else ""
    out.append(f"rollout {data['id']}: {data['state']}, stage {data['stage']}{pct}")
    if data.get("note"):
        out.append(str(data["note"]))
    if data.get("reason") and not data["active"]:
        out.append(f"reason: {data['reason']}")
    if data["state"] in ("shadow", "live"):
        out.append(f"in stage for {format_duration(time.time() - data['stage_entered_at'])}")
        out.extend(_progress_lines(data))
    shown = data["hosts"]
    if not all_hosts and len(shown) > SMALL_FLEET:
        out.append(_host_summary(shown))
        shown = {h: r for h, r in shown.items() if r["state"] in NEEDS_A_PERSON or r.get("reason")}
    # Plain columns, laid out as rich lays out a table without a box (rich itself took seconds for
    # 10,000 rows, and importing it was a sixth of a small `status`).
    host_rows: list[tuple[str, ...]] = []
    for h, r in shown.items():
        host_rows.append((h, r["state"], (r["sha256"] or "(no file)")[:12], r.get("reason") or ""))
        # A bundle's host: one line per file under it (its own state and hash, and its path).
        for name, f in (r.get("files") or {}).items():
            host_rows.append((f"  {name}", f["state"], (f["sha256"] or "(no file)")[:12], f["path"]))
    if host_rows:
        out.append(_plain_table(("host", "state", "sha256", "note"), host_rows))
    verdict = data.get("last_verdict")
    if verdict:
        looks = ""
        if verdict.get("look"):
            looks = f" (look {verdict['look']} of {verdict.get('planned_looks') or '?'} planned)"
        out.append(f"last gate ({verdict['stage']}){looks}: {verdict['decision']}: {verdict['why']}")
        rows = [m for m in verdict["measurements"] if m.get("details", {}).get("value") is not None]
        if rows:
            cells: list[tuple[str, ...]] = []
            for m in rows:
                d = m["details"]
                shown_values = d.get("shown") or {}
                cells.append(
                    (
                        m["check"],
                        shown_values.get("value") or _num(d.get("value")),
                        shown_values.get("baseline") or _num(d.get("baseline")),
                        str(d.get("bound", "")),
                        m["outcome"] + ("" if m["enforce"] else " (observe)"),
                        m["why"],
                    )
                )
            out.append(_wrapped_table(("check", "cohort", "baseline", "bound", "verdict", "why"), cells))
    return "\n".join(out).rstrip()


WIDTH = 120


def _wrapped_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Like `_plain_table`, with the last column wrapped so a line fits in 120 characters, and a
    space before the first column (as rich pads the edge of a table without a box)."""
    import textwrap

    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lead = 1 + sum(widths[:-1]) + 2 * (len(widths) - 1)
    room = max(30, WIDTH - lead)
    lines = []
    for line in [header, *rows]:
        wrapped = textwrap.wrap(line[-1], room) or [""]
        first = [cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=False)]
        lines.append((" " + "  ".join([*first, wrapped[0]])).rstrip())
        lines.extend((" " * lead + more).rstrip() for more in wrapped[1:])
    return "\n".join(lines)


def _plain_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, two spaces apart, as rich prints a table without a box."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    )


def _host_summary(hosts: dict[str, Any]) -> str:
    """Say how many hosts are in each state, and that the hosts listed below need a person."""
    counts: dict[str, int] = {}
    for rec in hosts.values():
        counts[rec["state"]] = counts.get(rec["state"], 0) + 1
    each = ", ".join(f"{n} {state}" for state, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    attention = sum(1 for r in hosts.values() if r["state"] in NEEDS_A_PERSON or r.get("reason"))
    tail = f"; {attention} need a person (below)" if attention else ""
    return f"hosts: {len(hosts)} ({each}){tail}; `status --hosts` lists every host"


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
