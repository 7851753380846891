"""`rollout wait`: block until a rollout is finished or waiting for a human (for CI)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from rollout.commands.report import Report, frozen_playbook
from rollout.core import machine, progress
from rollout.edges.backends import StateAt, open_store
from rollout.edges.store import Rollout, Store
from rollout.util.durations import format_duration
from rollout.util.errors import REFUSED, Refused, RolloutError

CLOCK_BLOB = "status/clock.json"


def clock_of(rollout: Rollout, keep: bool = False) -> progress.Clock | None:
    """Return the current stage's bake and the gates' interval, from the frozen playbook. The
    numbers are kept as a blob tied to the frozen playbook's hash, so `status` reads them without
    loading the playbook's parser, every check kind and config kind (a third of its start-up);
    a blob for other bytes, or one that does not decode, is not used. `keep`: write the blob when
    it is missing (`status` does; `serve` and `wait` never write)."""
    try:
        text = rollout.playbook_copy.read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256(text).hexdigest()
    index = rollout.state.stage_index
    try:
        kept = json.loads(rollout.read_blob(CLOCK_BLOB) or b"null")
        if isinstance(kept, dict) and kept.get("playbook_sha256") == digest and 0 <= index < len(kept["bakes"]):
            return progress.Clock(float(kept["bakes"][index]), rollout.state.stage_entered_at, float(kept["interval"]))
    except (ValueError, KeyError, TypeError):
        pass
    try:
        pb = frozen_playbook(rollout)
        stage = pb.stages[index]
    except Exception:  # noqa: BLE001 - a playbook that no longer loads: timing unknown, not a crash
        return None
    numbers = {"playbook_sha256": digest, "bakes": [s.bake for s in pb.stages], "interval": pb.health.interval}
    if keep:
        with contextlib.suppress(OSError, RolloutError):  # a cache: a read-only folder only costs time
            rollout.write_blob(CLOCK_BLOB, json.dumps(numbers).encode())
    return progress.Clock(stage.bake, rollout.state.stage_entered_at, pb.health.interval)


def timing_of(rollout: Rollout, keep: bool = False) -> dict[str, Any]:
    """Return bake time left, when it ends, the next check, paused, driven (for status --json)."""
    return progress.timing(rollout.state, clock_of(rollout, keep), rollout.is_driven(), time.time())


def _find(store: Store, rollout_id: str | None, patient: bool) -> Rollout | None:
    """Return the rollout to wait for; None while a `start` is still making it (or, when
    `patient`, while there is none yet: a CI job may start `wait` before `run --auto` begins)."""
    if rollout_id is not None:
        return store.pick(rollout_id, "wait")
    active = store.active()
    if active is not None:
        return active
    if store.busy():
        return None  # an operation (a `start`) is under way: the rollout may be on its way
    every = store.rollouts()
    if not every:
        if patient:
            return None
        raise Refused(f"cannot wait: no rollout in {store.where}")
    return every[-1]


def wait(
    state_dir: StateAt,
    rollout_id: str | None = None,
    timeout: float | None = None,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Poll the rollout's state (without the lock) until it is complete (0), rolled back or aborted
    (3), failed to roll back (4), or waiting for a human or still going at `timeout` (5)."""
    store = open_store(state_dir)
    began = time.monotonic()
    pending: tuple[int, str] | None = None
    while True:
        rollout = _find(store, rollout_id, patient=timeout is not None)
        found: tuple[int, str] | None = None
        data: dict[str, Any] = {}
        if rollout is not None:
            s = rollout.state
            clock = clock_of(rollout)
            left = clock.bake_left(time.time()) if clock else 0.0
            driven = rollout.is_driven()
            busy = store.busy()
            found = progress.outcome(s, driven=driven, busy=busy, bake_left=left)
            data = {
                "id": rollout.id,
                "state": s.phase,
                "stage": s.stage,
                "percent": s.percent,
                **progress.timing(s, clock, driven, time.time()),
            }
            if found is not None and s.phase in machine.ACTIVE and found[0] == REFUSED:
                # "Waiting for a human" must be seen twice in a row: `run --auto` lets go of the
                # state folder's lock between `start` and driving the rollout.
                if pending != found:
                    pending, found = found, None
            else:
                pending = None
        waited = time.monotonic() - began
        if found is not None:
            code, why = found
            report = Report(exit_code=code, data={**data, "outcome": why, "waited_s": round(waited, 1)})
            report.say(f"rollout {data['id']}: {why}")
            return report
        if timeout is not None and waited >= timeout:
            where = f"{data['state']} at {data['stage']}" if data else "not started yet"
            remaining = data.get("bake_left_s")
            tail = f", bake {format_duration(remaining)} left" if remaining else ""
            why = f"still going after {format_duration(timeout)}: {where}{tail}"
            report = Report(exit_code=REFUSED, data={**data, "outcome": why, "waited_s": round(waited, 1)})
            report.say(f"rollout {data.get('id', '?')}: {why}")
            return report
        step = min(interval, 0.2) if pending else interval
        if timeout is not None:
            step = max(0.0, min(step, timeout - waited))
        sleep(step)
