"""Read OpenCode's SQLite store (`message` table, JSON `data`) into usage records."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rollout.models.usage import UsageBatch, UsageRecord

# OpenCode stores one row per message: id, session_id, time_created, time_updated, data (JSON).
# Assistant messages carry agent/mode, providerID, modelID, cost, tokens, time {created, completed}
# in milliseconds, and `error` ({name, data: {message, statusCode, ...}}) when the call failed.
_QUERY = "SELECT rowid, data FROM message"


def outcome_of(error: Any) -> str:
    """Map an OpenCode message error to a usage outcome (success when there is none)."""
    if not error:
        return "success"
    if not isinstance(error, dict):
        return "error"
    found = error.get("data")
    data: dict[str, Any] = found if isinstance(found, dict) else {}
    status = data.get("statusCode")
    text = f"{error.get('name', '')} {data.get('message', '')}".lower()
    if status == 429 or "rate limit" in text or "ratelimit" in text or "too many requests" in text:
        return "rate_limited"
    if status in (408, 504) or "timeout" in text or "timed out" in text:
        return "timeout"
    return "error"


def record_from_message(data: Any) -> UsageRecord | None | str:
    """Return a record for a finished assistant message, None to skip it, or a reason it is bad."""
    if not isinstance(data, dict):
        return f"data is not a JSON object ({type(data).__name__})"
    if data.get("role") != "assistant":
        return None
    error = data.get("error")
    if isinstance(error, dict) and error.get("name") == "MessageAbortedError":
        return None  # the user stopped it: not the model's failure
    times = data.get("time")
    if not isinstance(times, dict) or not _is_number(times.get("created")):
        return "time.created: missing or not a number"
    created = float(times["created"])
    completed = times.get("completed")
    if not _is_number(completed) and not error:
        return None  # still streaming
    duration = (float(completed) - created) / 1000.0 if isinstance(completed, int | float) else 0.0
    found = data.get("tokens")
    tokens: dict[str, Any] = found if isinstance(found, dict) else {}
    cost = data.get("cost", 0)
    if not _is_number(cost):
        return f"cost: must be a number, got {cost!r}"
    provider, model = data.get("providerID") or "", data.get("modelID") or ""
    return UsageRecord(
        ts=created / 1000.0,
        agent=str(data.get("agent") or data.get("mode") or ""),
        model=f"{provider}/{model}" if provider else str(model),
        input_tokens=_int(tokens.get("input")),
        output_tokens=_int(tokens.get("output")) + _int(tokens.get("reasoning")),
        cost_usd=float(cost),
        duration_s=max(duration, 0.0),
        outcome=outcome_of(error),
        failover=False,  # OpenCode has no failover
    )


def read_opencode_db(path: str | Path) -> UsageBatch:
    """Read assistant messages from an OpenCode database file (read-only); bad rows are counted."""
    batch = UsageBatch()
    uri = f"file:{Path(path)}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as e:
        batch.bad_lines.append((0, f"cannot open {path}: {e}"))
        return batch
    try:
        rows = conn.execute(_QUERY).fetchall()
    except sqlite3.Error as e:
        batch.bad_lines.append((0, f"cannot read the message table of {path}: {e}"))
        return batch
    finally:
        conn.close()
    for rowid, raw in rows:
        try:
            data = json.loads(raw)
        except (TypeError, ValueError) as e:
            batch.bad_lines.append((rowid, f"invalid JSON in data: {e}"))
            continue
        got = record_from_message(data)
        if isinstance(got, str):
            batch.bad_lines.append((rowid, got))
        elif got is not None:
            batch.records.append(got)
    return batch


# The creation time of a message, in SQL (cursors read on from it).
CREATED_SQL = "json_extract(data, '$.time.created')"


def is_streaming(data: Any) -> bool:
    """An assistant message that has not finished yet (no completion time, no error): skipped by
    `record_from_message` now, counted once it finishes (cursors hold at it)."""
    if not isinstance(data, dict) or data.get("role") != "assistant" or data.get("error"):
        return False
    times = data.get("time")
    return isinstance(times, dict) and not isinstance(times.get("completed"), int | float)


@contextlib.contextmanager
def private_copy(db: bytes, wal: bytes | None = None) -> Iterator[Path]:
    """Yield the path of a private copy of a database fetched from a host, its -wal folded in
    (a WAL file is only replayed by a writable connection); the copy is removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="rollout-opencode-"))
    try:
        target = folder / "opencode.db"
        target.write_bytes(db)
        if wal:
            (folder / "opencode.db-wal").write_bytes(wal)
            conn = sqlite3.connect(target)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_opencode_bytes(db: bytes, wal: bytes | None = None) -> UsageBatch:
    """Read a database fetched from a host (with its -wal file, if any) through a private copy."""
    try:
        with private_copy(db, wal) as target:
            return read_opencode_db(target)
    except sqlite3.Error as e:
        return UsageBatch(bad_lines=[(0, f"cannot read the fetched database: {e}")])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: Any) -> int:
    return int(value) if _is_number(value) and value >= 0 else 0
