"""Make a host use the files just switched (or restored): its `activate` commands, then `ready`.

They run on the host through its transport (transport local: here, in the playbook's folder; ssh:
over the host's connection, in the login's home), with these variables:

    ROLLOUT_HOST        the host
    ROLLOUT_ROLLOUT_ID  the rollout's id
    ROLLOUT_ACTION      switch (after its files were switched) | restore (after they were put back)
    ROLLOUT_FILES       the live paths of every file of the host's bundle, one per line
    ROLLOUT_FILE        (a file's own `activate`) that file's live path
    ROLLOUT_STAGE, ROLLOUT_PERCENT  the stage being entered (or left)

An activate command that exits non-zero or outlives `config.activate_timeout`, or a host that is
not ready by `ready.deadline`, is a failed switch for that host.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rollout.core.playbook import Playbook
from rollout.util.redact import redact_text

if TYPE_CHECKING:
    from rollout.edges.bundle import FilePlan
    from rollout.edges.store import Rollout

TAIL = 200  # characters of a failing command's output kept in its reason


def _env(
    rollout: Rollout, s: Any, plans: list[FilePlan], action: str, stage: tuple[str, int]
) -> dict[str, str]:
    return {
        "ROLLOUT_HOST": s.host,
        "ROLLOUT_ROLLOUT_ID": rollout.id,
        "ROLLOUT_ACTION": action,
        "ROLLOUT_FILES": "\n".join(p.path for p in plans),
        "ROLLOUT_STAGE": stage[0],
        "ROLLOUT_PERCENT": str(stage[1]),
    }


def configured(pb: Playbook) -> bool:
    """Return True when the playbook activates its hosts or waits for them to be ready."""
    return bool(pb.activate or pb.ready or any(f.activate for f in pb.files))


def commands(pb: Playbook, plans: list[FilePlan]) -> list[tuple[str, str | None]]:
    """Return the activate commands of a bundle, in order: each file's own, then `config.activate`
    (a command given twice runs once), with the file each one is for."""
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for plan in plans:
        if plan.activate and plan.activate not in seen:
            seen.add(plan.activate)
            out.append((plan.activate, plan.path))
    if pb.activate and pb.activate not in seen:
        out.append((pb.activate, None))
    return out


def _why(result: Any, what: str) -> str:
    if result.error is not None:
        return f"{what} {result.error}"
    tail = redact_text(result.output.strip()[-TAIL:]) if result.output.strip() else ""
    return f"{what} exited {result.exit_code}" + (f": {tail}" if tail else "")


def activate(
    rollout: Rollout, pb: Playbook, s: Any, plans: list[FilePlan], action: str, stage: tuple[str, int]
) -> str | None:
    """Run the bundle's activate commands on the host; return why one failed (None: all ran)."""
    env = _env(rollout, s, plans, action, stage)
    for command, path in commands(pb, plans):
        extra = {**env, "ROLLOUT_FILE": path} if path is not None else env
        result = s.run(command, extra, pb.activate_timeout, None)
        ok = result.error is None and result.exit_code == 0
        rollout.log("activation", host=s.host, action=action, command=command, ok=ok,
                    exit_code=result.exit_code, error=result.error)  # fmt: skip
        if not ok:
            return _why(result, f"activation ({action}) `{command}`")
    return None


def wait_ready(
    rollout: Rollout, pb: Playbook, s: Any, plans: list[FilePlan], stage: tuple[str, int]
) -> str | None:
    """Try `config.ready` on the host until it exits 0 or its deadline passes; return why it did
    not become ready (None: ready, or no ready check)."""
    ready = pb.ready
    if ready is None:
        return None
    env = _env(rollout, s, plans, "switch", stage)
    end = time.monotonic() + ready.deadline
    tries = 0
    while True:
        tries += 1
        result = s.run(ready.run, env, min(ready.timeout, max(0.1, end - time.monotonic())), None)
        if result.error is None and result.exit_code == 0:
            rollout.log("ready", host=s.host, tries=tries)
            return None
        if time.monotonic() + ready.interval >= end:
            why = _why(result, f"not ready after {tries} tr{'y' if tries == 1 else 'ies'}: `{ready.run}`")
            rollout.log("not-ready", host=s.host, tries=tries, why=why)
            return why
        time.sleep(ready.interval)
