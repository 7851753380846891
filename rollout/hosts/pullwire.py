"""Words the agent and the server share over the pull API (light: no network, no processes)."""

from __future__ import annotations

# How a report says the candidate's switch failed on the laptop (its activate failed, or it was not
# ready in time) and the files were put back: the server folds it as a failed switch.
SWITCH_FAILED = "switch failed on the laptop: "
# How a report says files found in place (applied by an agent that did not run ready) are not ready:
# nothing to put them back with, so the host stays pending and the stage deadline decides.
NOT_READY = "not ready on the laptop: "
# The same words of agents of version 1 (activate only), still understood.
_LEGACY = ("activation failed on the laptop: ",)


def switch_failed(why: str) -> str:
    """Return the report error saying the switch failed on the laptop because of `why`."""
    return SWITCH_FAILED + why


def failed_switch(errors: list[str]) -> str | None:
    """Return the error of `errors` that says the switch failed on the laptop (None: none does)."""
    return next((e for e in errors if e.startswith((SWITCH_FAILED, *_LEGACY))), None)


def assignment_key(doc: dict[str, object]) -> str:
    """Return what names one assignment: its rollout and when it was assigned."""
    return f"{doc.get('rollout')}:{doc.get('assigned_at')}"
