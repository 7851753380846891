"""`rollout pause` and `rollout resume`: hold a rollout's promotion, and let it go on."""

from __future__ import annotations

import time

from rollout.commands.common import Report
from rollout.core import machine
from rollout.edges import journal
from rollout.edges.backends import StateAt, open_store
from rollout.edges.journal import now_iso
from rollout.util import who
from rollout.util.durations import format_duration
from rollout.util.errors import Refused


def pause(state_dir: StateAt, rollout_id: str | None = None, reason: str = "", *, force: bool = False) -> Report:
    """Stop the rollout from promoting (gates still measure and still roll back on a failure)."""
    store = open_store(state_dir)
    with store.lock():
        rollout = store.pick(rollout_id, "pause")
        state = rollout.state
        machine.require(state.phase, "pause")
        journal.require_intact(rollout, "pause", force)
        if state.paused:
            since = state.paused.get("at")
            raise Refused(f"cannot pause: rollout {rollout.id} is already paused (since {since})")
        why = reason or "paused by the operator"
        state.paused = {"at": now_iso(), "since": time.time(), "reason": why, "operator": who.operator()}
        who.add_reason(state.reasons, "paused", why, state.paused["at"])
        rollout.commit("paused", reason=why, percent=state.percent)
    report = Report(data={"id": rollout.id, "paused": state.paused})
    report.say(
        f"rollout {rollout.id} paused at {state.stage}: nothing is promoted until `rollout resume`; "
        "gates still measure, and a failed gate still rolls back"
    )
    return report


def resume(state_dir: StateAt, rollout_id: str | None = None, *, force: bool = False) -> Report:
    """Let a paused rollout promote again."""
    store = open_store(state_dir)
    with store.lock():
        rollout = store.pick(rollout_id, "resume")
        state = rollout.state
        machine.require(state.phase, "resume")
        journal.require_intact(rollout, "resume", force)
        paused = state.paused
        if not paused:
            raise Refused(f"cannot resume: rollout {rollout.id} is not paused")
        held = max(0.0, time.time() - float(paused.get("since") or time.time()))
        state.paused = None
        rollout.commit("resumed", paused_for_s=round(held, 1), percent=state.percent)
    report = Report(data={"id": rollout.id, "paused": None})
    report.say(f"rollout {rollout.id} resumed at {state.stage} after {format_duration(held)} paused")
    return report
