"""Who acts and why: the operator recorded on every event, and every reason given."""

from __future__ import annotations

import getpass
import os
from typing import Any

OPERATOR_ENV = "ROLLOUT_OPERATOR"

_given: str | None = None


def set_operator(name: str | None) -> None:
    """Name the operator of this invocation (`--operator`); None falls back to the environment."""
    global _given
    _given = name.strip() if name and name.strip() else None


def operator() -> str:
    """Return who acts: `--operator`, else $ROLLOUT_OPERATOR, else login@hostname."""
    if _given:
        return _given
    named = os.environ.get(OPERATOR_ENV, "").strip()
    if named:
        return named
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid (a container)
        login = str(os.getuid())
    import socket  # loaded only when a name is needed (status never needs one)

    return f"{login}@{socket.gethostname()}"


def add_reason(reasons: list[dict[str, Any]], event: str, reason: str, when: str) -> None:
    """Keep `reason` in a rollout's list of reasons; a later one never replaces an earlier one."""
    if not reason:
        return
    reasons.append({"time": when, "event": event, "reason": reason, "operator": operator()})
