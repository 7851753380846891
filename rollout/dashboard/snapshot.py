"""Read the state folder for the dashboard: without the lock, without a write, and without a crash
on a rollout that is half-written, missing or unreadable (it is reported as such instead)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from rollout.commands.show import status_data
from rollout.core import machine
from rollout.core.state import HostState, RolloutState
from rollout.edges.journal import JOURNAL
from rollout.edges.store import NEW_PREFIX, Rollout, Store
from rollout.util.errors import BadInput

T = TypeVar("T")
HOST_STATES = tuple(str(s) for s in HostState)
# What a rollout's state.json must carry for the dashboard to show it.
_REQUIRED = ("name", "state", "stage", "percent", "hosts")


@dataclass(frozen=True)
class Unreadable:
    """A rollout folder whose state cannot be shown, and why."""

    id: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "error": self.error}


class StateView:
    """The state folder as the dashboard reads it. Journals are parsed once per change (the file
    is append-only: a poll every few seconds of a day-long rollout re-reads nothing)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._journals: dict[Path, tuple[tuple[int, int, int], list[dict[str, Any]]]] = {}
        self._derived: dict[tuple[str, str], tuple[list[dict[str, Any]], Any]] = {}
        self._lock = threading.Lock()

    def folders(self) -> list[Path]:
        """Return every rollout folder (one a `start` is still building is not one yet)."""
        if not self.root.is_dir():
            return []
        found = []
        with contextlib.suppress(OSError):
            for folder in self.root.iterdir():
                if folder.name.startswith((".", NEW_PREFIX)) or not folder.is_dir():
                    continue
                if any((folder / name).exists() for name in ("state.json", JOURNAL, "playbook.yml")):
                    found.append(folder)
        return found

    def open(self, folder: Path) -> Rollout | Unreadable:
        """Return the rollout in `folder`, or why its state cannot be read."""
        try:
            raw = json.loads((folder / "state.json").read_bytes())
        except FileNotFoundError:
            return Unreadable(folder.name, "state.json is missing")
        except (OSError, UnicodeDecodeError) as e:
            return Unreadable(folder.name, f"state.json cannot be read: {e}")
        except json.JSONDecodeError as e:
            return Unreadable(folder.name, f"state.json is not whole JSON ({e})")
        if not isinstance(raw, dict):
            return Unreadable(folder.name, "state.json is not a JSON object")
        missing = [k for k in _REQUIRED if k not in raw]
        if missing or not isinstance(raw.get("hosts"), dict):
            return Unreadable(folder.name, f"state.json lacks {', '.join(missing) or 'a hosts mapping'}")
        try:  # decoded from what was just read: state.json is read once per look
            return Rollout(folder, RolloutState.from_json(raw))
        except (ValueError, KeyError, TypeError, AttributeError, BadInput) as e:
            return Unreadable(folder.name, f"state.json cannot be read: {type(e).__name__}: {e}")

    def rollouts(self) -> list[Rollout | Unreadable]:
        """Return every rollout, oldest first (unreadable ones last, by name)."""
        opened = [self.open(f) for f in self.folders()]
        good = [r for r in opened if isinstance(r, Rollout)]
        bad = [r for r in opened if isinstance(r, Unreadable)]
        good.sort(key=lambda r: (str(r.state.created or ""), r.id))
        return [*good, *sorted(bad, key=lambda u: u.id)]

    def find(self, rollout_id: str) -> Rollout | Unreadable | None:
        """Return the named rollout (None: no such folder; a name that leaves the folder is none)."""
        if not rollout_id or rollout_id.startswith(".") or "/" in rollout_id or "\\" in rollout_id:
            return None
        folder = self.root / rollout_id
        if folder not in self.folders():
            return None
        return self.open(folder)

    def events(self, rollout: Rollout) -> list[dict[str, Any]]:
        """Return the rollout's journal (a torn last line is skipped), parsed once per change."""
        path = rollout.dir / JOURNAL
        try:
            st = os.stat(path)
        except OSError:
            return []
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            seen = self._journals.get(path)
        if seen is not None and seen[0] == key:
            return seen[1]
        events = rollout.events()
        with self._lock:
            self._journals[path] = (key, events)
        return events

    def derived(self, rollout: Rollout, name: str, build: Callable[[list[dict[str, Any]]], T]) -> T:
        """Return `build(journal)`, computed again only when the journal changed."""
        events = self.events(rollout)
        key = (rollout.id, name)
        with self._lock:
            seen = self._derived.get(key)
        if seen is not None and seen[0] is events:
            return cast(T, seen[1])
        value = build(events)
        with self._lock:
            self._derived[key] = (events, value)
        return value

    def status(self, rollout: Rollout) -> dict[str, Any] | Unreadable:
        """Return the rollout's `status --json` object, or why it cannot be built."""
        try:
            return status_data(rollout, self.events(rollout))
        except Exception as e:  # noqa: BLE001 - a state the page cannot show is reported, not a crash
            return Unreadable(rollout.id, f"state cannot be shown: {type(e).__name__}: {e}")


class StoreView(StateView):
    """A state kept elsewhere than a folder (PostgreSQL) as the dashboard reads it: through the
    store, without the lock; a journal is read again only when its rollout's state changed."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.root)
        self.store = store
        self._events: dict[str, tuple[Any, list[dict[str, Any]]]] = {}

    def rollouts(self) -> list[Rollout | Unreadable]:
        try:
            return list(self.store.rollouts())
        except Exception as e:  # noqa: BLE001 - a server that cannot answer is reported, not a crash
            return [Unreadable("(state)", f"cannot read {self.store.where}: {e}")]

    def find(self, rollout_id: str) -> Rollout | Unreadable | None:
        try:
            every = self.store.rollouts()
        except Exception as e:  # noqa: BLE001
            return Unreadable(rollout_id, f"cannot read {self.store.where}: {e}")
        return next((r for r in every if r.id == rollout_id), None)

    def events(self, rollout: Rollout) -> list[dict[str, Any]]:
        key = (rollout.state.updated, rollout.state.journal)
        with self._lock:
            seen = self._events.get(rollout.id)
        if seen is not None and seen[0] == key:
            return seen[1]
        events = rollout.events()
        with self._lock:
            self._events[rollout.id] = (key, events)
        return events


def summary(rollout: Rollout) -> dict[str, Any]:
    """Return one line of the rollouts list: where it stands and its hosts by state."""
    s = rollout.state.to_json()  # as state.json holds it
    by_state = Counter(str(h.get("state")) for h in s["hosts"].values() if isinstance(h, dict))
    last = s.get("last_verdict") or {}
    return {
        "id": rollout.id,
        "name": s["name"],
        "state": s["state"],
        "stage": s["stage"],
        "percent": s["percent"],
        "active": s["state"] in machine.ACTIVE,
        "paused": bool(s.get("paused")),
        "hosts_total": len(s["hosts"]),
        "hosts_by_state": {
            state: by_state.get(state, 0)
            for state in (*HOST_STATES, *sorted(set(by_state) - set(HOST_STATES)))
        },
        "last_decision": last.get("decision"),
        "created": s.get("created"),
        "updated": s.get("updated"),
    }
