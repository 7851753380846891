"""Durations as playbooks write them: 30, "30s", "5m", "1h30m"."""

from __future__ import annotations

import math
import re

MAX_SECONDS = 366 * 86400.0  # a year: anything longer (or .inf, or 10**400) is a mistake
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float | None:
    """Return seconds for a number or a string like "1h30m"; None when it is not a duration
    (negative, not finite, or longer than MAX_SECONDS)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return float(value) if 0 <= value <= MAX_SECONDS else None
    if not isinstance(value, str):
        return None
    text = value.strip().replace(" ", "")
    if not text:
        return None
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and total <= MAX_SECONDS else None


def format_duration(seconds: float) -> str:
    """Return a short human form: 45s, 4m05s, 1h02m."""
    if not math.isfinite(seconds):
        return "forever" if seconds > 0 else "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def period_label(seconds: float) -> str:
    """Return a period as a playbook writes it, in its largest whole unit: 7d, 36h, 90m, 45s."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
