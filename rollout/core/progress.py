"""Where a rollout is headed, read from its folder without the lock: bake time left, the next
check, who drives it, and whether it is finished or waiting for a human (`rollout wait`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollout.core.machine import Phase
from rollout.core.state import HostState, RolloutState
from rollout.util.errors import OK, REFUSED, ROLLBACK_INCOMPLETE, ROLLED_BACK

# End state -> the exit code `rollout wait` ends with.
FINISHED = {
    Phase.COMPLETE: OK,
    Phase.ROLLED_BACK: ROLLED_BACK,
    Phase.ABORTED: ROLLED_BACK,
    Phase.REVERTED: ROLLED_BACK,
    Phase.ROLLBACK_FAILED: ROLLBACK_INCOMPLETE,
}


@dataclass(frozen=True)
class Clock:
    """The current stage's timing: its bake, how long it has been in, how often gates look."""

    bake: float
    entered_at: float
    interval: float

    def bake_left(self, now: float) -> float:
        return max(0.0, self.bake - (now - self.entered_at))


def timing(state: RolloutState, clock: Clock | None, driven: bool, now: float) -> dict[str, Any]:
    """Return the fields `status --json` adds: bake time left, when it ends, the next check."""
    out: dict[str, Any] = {"paused": state.paused, "driven": driven}
    if clock is None or state.phase not in (Phase.SHADOW, Phase.LIVE):
        return {**out, "bake_left_s": None, "bake_ends_at": None, "next_check_at": None}
    left = clock.bake_left(now)
    ends = clock.entered_at + clock.bake
    last = state.last_verdict or {}
    measured = (
        float(last["measured_at"]) if last.get("stage") == state.stage and last.get("measured_at") else None
    )
    if driven:
        # run --auto measures a baking (or paused) stage every interval, and gates it when the bake ends.
        base = max(measured or clock.entered_at, clock.entered_at)
        nxt = base + clock.interval
        if left > 0:
            nxt = min(nxt, ends)
        nxt = max(nxt, now)
    else:
        nxt = ends  # the first moment `rollout advance` may gate it
    return {**out, "bake_left_s": round(left, 1), "bake_ends_at": ends, "next_check_at": nxt}


def outcome(state: RolloutState, *, driven: bool, busy: bool, bake_left: float) -> tuple[int, str] | None:
    """Return (exit code, why) once `rollout wait` should stop, None while the rollout is going:
    finished (0, 3, 4), or waiting for a human (5): paused, or with no `run --auto` driving it an
    interrupted start or undo, a gate that is inconclusive or could not measure, or a bake that is over."""
    now = state.phase
    if now in FINISHED:
        code = FINISHED[now]
        why = state.reason or now
        if now == Phase.ROLLBACK_FAILED:
            lost = sorted(h for h, rec in state.hosts.items() if rec.state != HostState.BASELINE)
            why = f"rollback failed: not restored: {', '.join(lost)}; `rollout abort` retries them"
        return code, f"{now}" if why == now else f"{now}: {why}"
    paused = state.paused
    if paused:
        return (
            REFUSED,
            f"waiting for a human: paused ({paused.get('reason')}); `rollout resume` lets it go on",
        )
    if driven or busy:
        return None
    if now in (Phase.STARTING, Phase.REVERTING):
        return REFUSED, f"waiting for a human: {now} was interrupted; `rollout abort` finishes it"
    last = state.last_verdict or {}
    measured = float(last.get("measured_at") or 0)
    entered = state.stage_entered_at
    if last.get("stage") == state.stage and measured >= entered:
        decision = last.get("decision")
        if decision in ("inconclusive", "retry"):
            what = "inconclusive" if decision == "inconclusive" else "could not measure"
            return REFUSED, (
                f"waiting for a human: gate {last.get('stage')} {what} ({last.get('why')}) and no "
                "`run --auto` drives it; `rollout advance` measures it again"
            )
    if bake_left <= 0:
        return REFUSED, (
            f"waiting for a human: stage {state.stage} is ready to be gated and no `run --auto` "
            "drives it; `rollout advance` gates it"
        )
    return None
