"""`rollout status --watch`: show the status again every interval until `rollout wait` would end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rollout.commands.common import Report
from rollout.commands.show import status
from rollout.core import machine, progress
from rollout.core.state import RolloutState
from rollout.edges.backends import StateAt, open_store
from rollout.util.errors import REFUSED

Draw = Callable[[dict[str, Any]], None]


def watch(
    state_dir: StateAt,
    rollout_id: str | None,
    interval: float,
    draw: Draw,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Draw the rollout's status every `interval` until it is finished or waiting for a human;
    end with `rollout wait`'s exit code (0, 3, 4, 5)."""
    pending: tuple[int, str] | None = None
    while True:
        data = status(state_dir, rollout_id).data
        rollout_id = data["id"]  # the one first shown, even once it is no longer the active one
        draw(data)
        busy = open_store(state_dir).busy()
        found = progress.outcome(
            _state_of(data),
            driven=bool(data.get("driven")),
            busy=busy,
            bake_left=data.get("bake_left_s") or 0.0,
        )
        if found is not None and found[0] == REFUSED and data["state"] in machine.ACTIVE:
            # As for `wait`: "waiting for a human" must be seen twice in a row.
            found, pending = (found, None) if pending == found else (None, found)
        if found is not None:
            code, why = found
            report = Report(exit_code=code, data={**data, "outcome": why})
            report.say(f"rollout {data['id']}: {why}")
            return report
        sleep(min(interval, 0.2) if pending else interval)


def _state_of(data: dict[str, Any]) -> RolloutState:
    """Return the fields of `status --json` that `progress.outcome` reads, as a state."""
    return RolloutState.from_json(
        {
            "state": data["state"],
            "stage": data["stage"],
            "stage_entered_at": data["stage_entered_at"],
            "paused": data.get("paused"),
            "reason": data.get("reason"),
            "last_verdict": data.get("last_verdict"),
            "hosts": data["hosts"],
        }
    )
