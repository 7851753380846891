"""The rollout state machine: one table of states, the verbs each allows, and transitions."""

from __future__ import annotations

from enum import StrEnum

from rollout.util.errors import Refused


class Phase(StrEnum):
    """Where a rollout stands in the state machine (a str: state.json's `state` holds it as is)."""

    STARTING = "starting"  # backing up hosts; nothing written to a host yet (only abort allowed)
    SHADOW = "shadow"  # candidate staged beside the live file on every host; nothing live changed
    LIVE = "live"  # candidate live on the current stage's cohort
    COMPLETE = "complete"  # 100% passed its final gate
    ROLLED_BACK = "rolled-back"  # a health gate failed; every touched host restored
    ABORTED = "aborted"  # the operator aborted; every touched host restored
    REVERTING = "reverting"  # an undo of a complete rollout is under way (or was interrupted)
    REVERTED = "reverted"  # a complete rollout undone; every host restored
    ROLLBACK_FAILED = "rollback-failed"  # some hosts could not be restored; `abort` retries them


ACTIVE = frozenset({Phase.STARTING, Phase.SHADOW, Phase.LIVE, Phase.REVERTING, Phase.ROLLBACK_FAILED})

# Verbs that change a rollout, per state. status/diff/history are always allowed.
ALLOWED: dict[Phase, frozenset[str]] = {
    Phase.STARTING: frozenset({"abort"}),
    Phase.SHADOW: frozenset({"advance", "abort", "run", "pause", "resume"}),
    Phase.LIVE: frozenset({"advance", "abort", "run", "pause", "resume"}),
    Phase.COMPLETE: frozenset({"undo"}),
    Phase.ROLLED_BACK: frozenset(
        {"retry"}
    ),  # a new rollout of the same frozen inputs; this one stays as it is
    Phase.ABORTED: frozenset({"retry"}),
    Phase.REVERTING: frozenset({"undo", "abort"}),
    Phase.REVERTED: frozenset(),
    Phase.ROLLBACK_FAILED: frozenset({"abort"}),
}

# Paused is a flag on a shadow or live rollout (`RolloutState.paused`: time, reason, operator), not a
# state of its own: the rollout is still where it was, every gate still measures it and a failed
# gate still rolls it back; only promotion waits. `pause` sets it, `resume` clears it; while it is
# set these verbs are refused (`run --auto` goes on measuring and does not promote).
PAUSED_REFUSES = frozenset({"advance"})

# (state, event) -> next state. Every state change goes through `transition`.
TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.STARTING, "staged"): Phase.SHADOW,
    (Phase.STARTING, "promote"): Phase.LIVE,
    (Phase.STARTING, "abort"): Phase.ABORTED,
    (Phase.SHADOW, "promote"): Phase.LIVE,
    (Phase.LIVE, "promote"): Phase.LIVE,
    (Phase.LIVE, "finish"): Phase.COMPLETE,
    (Phase.SHADOW, "gate-failed"): Phase.ROLLED_BACK,
    (Phase.LIVE, "gate-failed"): Phase.ROLLED_BACK,
    (Phase.SHADOW, "abort"): Phase.ABORTED,
    (Phase.LIVE, "abort"): Phase.ABORTED,
    (Phase.ROLLBACK_FAILED, "abort"): Phase.ABORTED,
    (Phase.COMPLETE, "undo-begin"): Phase.REVERTING,
    (Phase.REVERTING, "undo"): Phase.REVERTED,
    (Phase.REVERTING, "abort"): Phase.REVERTED,  # aborting an interrupted undo finishes it
    (Phase.REVERTING, "restore-incomplete"): Phase.ROLLBACK_FAILED,
    (Phase.ROLLBACK_FAILED, "gate-failed"): Phase.ROLLED_BACK,
    (Phase.ROLLBACK_FAILED, "undo"): Phase.REVERTED,
    (Phase.SHADOW, "restore-incomplete"): Phase.ROLLBACK_FAILED,
    (Phase.LIVE, "restore-incomplete"): Phase.ROLLBACK_FAILED,
    (Phase.ROLLBACK_FAILED, "restore-incomplete"): Phase.ROLLBACK_FAILED,
}


def require(state: Phase, verb: str) -> None:
    """Raise Refused (exit 5) unless `verb` is allowed in `state`, saying what is allowed."""
    allowed = ALLOWED.get(state, frozenset())
    if verb not in allowed:
        options = ", ".join(sorted(allowed | {"status", "diff", "history"}))
        raise Refused(f"cannot {verb}: the rollout is {state} (allowed now: {options})")


def transition(state: Phase, event: str) -> Phase:
    """Return the state after `event`; a missing entry is a bug, not user input."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise AssertionError(f"no transition from {state!r} on {event!r}") from None


def require_unpaused(paused: object, verb: str) -> None:
    """Raise Refused (exit 5) when the rollout is paused and `verb` would promote it."""
    if paused and verb in PAUSED_REFUSES:
        why = paused.get("reason") if isinstance(paused, dict) else None
        detail = f" ({why})" if why else ""
        raise Refused(f"cannot {verb}: the rollout is paused{detail}; `rollout resume` lets it go on")
