"""Progress deadlines: `stages[].deadline` and `health.deadline` (its default for every stage).

A stage that is not promoted within its deadline (counted from when it was entered: its gate stays
inconclusive, nobody advances it, it is paused) sends one `deadline` event; with `on_deadline:
rollback` the rollout is rolled back as if its gate had failed. The default is `alert`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rollout.util.durations import format_duration, parse_duration
from rollout.util.errors import BadInput

ACTIONS = ("alert", "rollback")
KEYS = frozenset({"deadline", "on_deadline"})


@dataclass(frozen=True)
class Deadline:
    """How long a stage may take to be promoted, and what missing it does."""

    seconds: float
    action: str = "alert"


Fail = Callable[[str, str], BadInput]


def parse(stages_raw: Any, health_raw: Any, bakes: list[float], fail: Fail) -> tuple[Deadline | None, ...]:
    """Return each stage's deadline (None: none), from its own keys or the health block's default."""
    health = health_raw if isinstance(health_raw, dict) else {}
    default = _seconds(health.get("deadline"), "health.deadline", fail)
    default_action = _action(health.get("on_deadline", "alert"), "health.on_deadline", fail)
    items = stages_raw if isinstance(stages_raw, list) else []
    out: list[Deadline | None] = []
    for i, bake in enumerate(bakes):
        item = items[i] if i < len(items) and isinstance(items[i], dict) else {}
        field = f"stages[{i}].deadline" if "deadline" in item else "health.deadline"
        seconds = (
            _seconds(item.get("deadline"), f"stages[{i}].deadline", fail) if "deadline" in item else default
        )
        action = (
            _action(item["on_deadline"], f"stages[{i}].on_deadline", fail)
            if "on_deadline" in item
            else default_action
        )
        if seconds is None:
            out.append(None)
            continue
        if seconds < bake:
            raise fail(
                field,
                f"{format_duration(seconds)} is shorter than stage {i}'s bake ({format_duration(bake)}): "
                "it could never be promoted in time",
            )
        out.append(Deadline(seconds, action))
    return tuple(out)


def _seconds(value: Any, field: str, fail: Fail) -> float | None:
    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds is None or seconds <= 0:
        raise fail(field, f"must be a duration like 30m or 2h, got {value!r}")
    return seconds


def _action(value: Any, field: str, fail: Fail) -> str:
    if value not in ACTIONS:
        raise fail(field, f"must be alert or rollback, got {value!r}")
    return str(value)


def missed(deadline: Deadline | None, entered_at: float, now: float) -> bool:
    """Return True once a stage entered at `entered_at` is past its deadline."""
    return deadline is not None and now - entered_at > deadline.seconds
