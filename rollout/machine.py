"""The rollout state machine: one table of states, the verbs each allows, and transitions."""

from __future__ import annotations

from rollout.errors import Refused

STARTING = "starting"  # backing up hosts; nothing written to a host yet (only abort allowed)
SHADOW = "shadow"  # candidate staged beside the live file on every host; nothing live changed
LIVE = "live"  # candidate live on the current stage's cohort
COMPLETE = "complete"  # 100% passed its final gate
ROLLED_BACK = "rolled-back"  # a health gate failed; every touched host restored
ABORTED = "aborted"  # the operator aborted; every touched host restored
REVERTING = "reverting"  # an undo of a complete rollout is under way (or was interrupted)
REVERTED = "reverted"  # a complete rollout undone; every host restored
ROLLBACK_FAILED = "rollback-failed"  # some hosts could not be restored; `abort` retries them

ACTIVE = frozenset({STARTING, SHADOW, LIVE, REVERTING, ROLLBACK_FAILED})

# Verbs that change a rollout, per state. status/diff/history are always allowed.
ALLOWED: dict[str, frozenset[str]] = {
    STARTING: frozenset({"abort"}),
    SHADOW: frozenset({"advance", "abort", "run", "pause", "resume"}),
    LIVE: frozenset({"advance", "abort", "run", "pause", "resume"}),
    COMPLETE: frozenset({"undo"}),
    ROLLED_BACK: frozenset({"retry"}),  # a new rollout of the same frozen inputs; this one stays as it is
    ABORTED: frozenset({"retry"}),
    REVERTING: frozenset({"undo", "abort"}),
    REVERTED: frozenset(),
    ROLLBACK_FAILED: frozenset({"abort"}),
}

# Paused is a flag on a shadow or live rollout (`state["paused"]`: time, reason, operator), not a
# state of its own: the rollout is still where it was, every gate still measures it and a failed
# gate still rolls it back; only promotion waits. `pause` sets it, `resume` clears it; while it is
# set these verbs are refused (`run --auto` goes on measuring and does not promote).
PAUSED_REFUSES = frozenset({"advance"})

# (state, event) -> next state. Every state change goes through `transition`.
TRANSITIONS: dict[tuple[str, str], str] = {
    (STARTING, "staged"): SHADOW,
    (STARTING, "promote"): LIVE,
    (STARTING, "abort"): ABORTED,
    (SHADOW, "promote"): LIVE,
    (LIVE, "promote"): LIVE,
    (LIVE, "finish"): COMPLETE,
    (SHADOW, "gate-failed"): ROLLED_BACK,
    (LIVE, "gate-failed"): ROLLED_BACK,
    (SHADOW, "abort"): ABORTED,
    (LIVE, "abort"): ABORTED,
    (ROLLBACK_FAILED, "abort"): ABORTED,
    (COMPLETE, "undo-begin"): REVERTING,
    (REVERTING, "undo"): REVERTED,
    (REVERTING, "abort"): REVERTED,  # aborting an interrupted undo finishes it
    (REVERTING, "restore-incomplete"): ROLLBACK_FAILED,
    (ROLLBACK_FAILED, "gate-failed"): ROLLED_BACK,
    (ROLLBACK_FAILED, "undo"): REVERTED,
    (SHADOW, "restore-incomplete"): ROLLBACK_FAILED,
    (LIVE, "restore-incomplete"): ROLLBACK_FAILED,
    (ROLLBACK_FAILED, "restore-incomplete"): ROLLBACK_FAILED,
}


def require(state: str, verb: str) -> None:
    """Raise Refused (exit 5) unless `verb` is allowed in `state`, saying what is allowed."""
    allowed = ALLOWED.get(state, frozenset())
    if verb not in allowed:
        options = ", ".join(sorted(allowed | {"status", "diff", "history"}))
        raise Refused(f"cannot {verb}: the rollout is {state} (allowed now: {options})")


def transition(state: str, event: str) -> str:
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
