"""OpenCode's live SQLite store on a laptop, read on from a cursor, as usage records to forward.

`rollout agent --opencode-db PATH` calls `new_records` at each poll. The store is opened read-only
(`file:...?mode=ro`) where it is: OpenCode may be writing it (WAL mode, `-wal` and `-shm` beside
it), and SQLite reads through the WAL itself. The cursor (kept in the agent's state file, sent
on only once the report was taken) is the `time.created` (ms) that the next look starts at, held
at the oldest assistant message still streaming (it is forwarded once it has finished) and at most
a minute behind the newest message (one written late by another session is still found), plus the
ids of the messages at or after it that were already dealt with: no message is forwarded twice.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout.checks.metrics.opencode_store import CREATED_SQL, is_streaming, record_from_message

# The cursor stays this far behind the newest message seen: a message written a little after a
# newer one (another session of the same store) is still found; the ids keep it from counting twice.
SLACK_MS = 60_000.0


@dataclass
class Forward:
    """What one look found: records (usage-log JSON objects), the cursor to keep, and an error."""

    records: list[dict[str, Any]] = field(default_factory=list)
    cursor: dict[str, Any] | None = None  # None: keep the cursor held (nothing read)
    error: str | None = None
    bad: int = 0  # messages that are not valid (skipped, never forwarded)


def _cursor_of(kept: Any) -> tuple[float, set[str]]:
    if not isinstance(kept, dict) or not isinstance(kept.get("created_ms"), int | float):
        return float("-inf"), set()
    done = kept.get("done")
    return float(kept["created_ms"]), {str(i) for i in done} if isinstance(done, list) else set()


def new_records(path: Path, kept: Any, limit: int) -> Forward:
    """Return the finished assistant messages of the store at `path` not yet forwarded (at most
    `limit`), as usage records, and the cursor that follows them. Never raises: a store that
    cannot be opened or read is the `error`, and the cursor is kept as it was."""
    after, done = _cursor_of(kept)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as e:
        return Forward(error=f"opencode store {path}: cannot open it ({e})")
    try:
        query = f"SELECT id, {CREATED_SQL}, data FROM message"
        if after == float("-inf"):
            rows = conn.execute(query + f" ORDER BY {CREATED_SQL}, id")
        else:
            rows = conn.execute(query + f" WHERE {CREATED_SQL} >= ? ORDER BY {CREATED_SQL}, id", (after,))
        return _walk(rows, after, done, limit)
    except sqlite3.Error as e:
        return Forward(error=f"opencode store {path}: cannot read its message table ({e})")
    finally:
        conn.close()


def _walk(rows: Any, after: float, done: set[str], limit: int) -> Forward:
    out = Forward()
    handled: dict[str, float] = {}  # id -> created, of the messages dealt with (this look or before)
    newest, stop = after, float("inf")  # stop: the oldest message still streaming, or not taken
    for msg_id, created, raw in rows:
        key = str(msg_id)
        when = float(created) if isinstance(created, int | float) else after
        if key in done:
            handled[key] = when
            newest = max(newest, when)
            continue
        if stop != float("inf") and len(out.records) >= limit:
            continue  # full: only the ids already dealt with are still gathered
        try:
            data = json.loads(raw)
        except (TypeError, ValueError):
            data = None
        if is_streaming(data):
            stop = min(stop, when)
            continue
        got = record_from_message(data) if data is not None else "invalid JSON in data"
        if isinstance(got, str):
            out.bad += 1
        elif got is not None:
            if len(out.records) >= limit:
                stop = min(stop, when)  # the rest waits for the next poll
                continue
            out.records.append(got.to_json())
        handled[key] = when
        newest = max(newest, when)
    # Never back before where this look started: the ids before it were let go already.
    cursor = max(min(stop, newest - SLACK_MS), after)
    if cursor == float("-inf"):
        return out  # an empty store: nothing to remember yet
    keep = sorted(i for i, c in handled.items() if c >= cursor)
    out.cursor = {"created_ms": cursor, "done": keep}
    return out
