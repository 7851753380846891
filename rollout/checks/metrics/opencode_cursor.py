"""OpenCode's store read on from where the last look stopped (by `time.created`).

A store is fetched whole (it is one SQLite file, plus its `-wal`), but only the messages created
at or after the cursor are decoded: the cursor is the creation time of the oldest message that was
still streaming at the last look (it may finish later), else of the newest message seen. Messages
at or after the cursor that were already counted are remembered by rowid, so none counts twice.
A store that lost or changed messages before the cursor (fewer of them than were read, or an older
one changed: a store replaced or pruned) is read again from its start. Calls before the horizon
are let go; when the host's first call was is kept. The cursors live in this process (`run
--auto`, `serve`); a new process reads each store from its start once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout.checks.metrics.opencode_store import CREATED_SQL, is_streaming, private_copy, record_from_message
from rollout.models.calls import Calls, CallsBuilder

_KEEP = 4096  # stores remembered (LRU)


@dataclass(frozen=True)
class StoreCursor:
    """One host's store: its calls so far and where the next look starts."""

    calls: Calls
    first_ts: float | None
    bad: int
    after_ms: float = float("-inf")  # decode messages created at or after this
    before: int = 0  # messages created before `after_ms` (all read)
    before_sum: int = 0  # the sum of those messages' CRC-32s: one of them changed → read again
    counted: dict[int, float] = field(default_factory=dict)  # rowid -> created, at or after `after_ms`
    kept_since: float = float("-inf")  # calls before this were let go
    rows_read: int = 0  # rows the look that made this went through
    from_start: bool = True


_memory: OrderedDict[tuple[str, ...], StoreCursor] = OrderedDict()
_lock = threading.Lock()


def forget_all() -> None:
    """Drop every remembered cursor (tests, and a process that wants a clean read)."""
    with _lock:
        _memory.clear()


def _connect(target: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    # A checksum of the messages before the cursor (in C per row, a Python call each: far less
    # than decoding them): one changed in place, or another store, is read again from its start.
    conn.create_function("crc32", 1, _crc32, deterministic=True)
    return conn


def _crc32(data: Any) -> int:
    return zlib.crc32(data.encode() if isinstance(data, str) else bytes(data or b""))


def read_store(db: bytes, wal: bytes | None, seen: StoreCursor | None, horizon: float) -> StoreCursor:
    """Return the host's calls after decoding the messages of the fetched store that are new
    since `seen` (all of them when `seen` is None or no longer holds)."""
    try:
        with private_copy(db, wal) as target:
            conn = _connect(target)
            try:
                holds = seen is not None and _before(conn, seen.after_ms) == (seen.before, seen.before_sum)
                return _read_on(conn, seen if holds else None, horizon)
            finally:
                conn.close()
    except sqlite3.Error as e:
        raise ValueError(f"cannot read the fetched database: {e}") from None


def _before(conn: sqlite3.Connection, after_ms: float) -> tuple[int, int]:
    if after_ms == float("-inf"):
        return 0, 0
    row = conn.execute(f"SELECT count(*), total(crc32(data)) FROM message WHERE {CREATED_SQL} < ?", (after_ms,)).fetchone()
    return int(row[0]), int(row[1])


def _read_on(conn: sqlite3.Connection, seen: StoreCursor | None, horizon: float) -> StoreCursor:
    after = seen.after_ms if seen is not None else float("-inf")
    counted = dict(seen.counted) if seen is not None else {}
    query = f"SELECT rowid, {CREATED_SQL}, data FROM message"
    if seen is not None:
        rows = conn.execute(query + f" WHERE {CREATED_SQL} >= ?", (after,))
    else:
        rows = conn.execute(query)
    builder = CallsBuilder()
    bad = seen.bad if seen is not None else 0
    newest, oldest_open = after, float("inf")
    n = 0
    for rowid, created, raw in rows:
        n += 1
        if isinstance(created, int | float):
            newest = max(newest, float(created))
        if rowid in counted:
            continue
        try:
            data = json.loads(raw)
        except (TypeError, ValueError):
            data = None
        if is_streaming(data):
            oldest_open = min(oldest_open, float(created))
            continue
        got = record_from_message(data) if data is not None else "invalid JSON in data"
        if isinstance(got, str):
            bad += 1
        elif got is not None:
            builder.add(got)
        counted[rowid] = float(created) if isinstance(created, int | float) else after
    cursor = oldest_open if oldest_open != float("inf") else newest
    counted = {r: c for r, c in counted.items() if c >= cursor}
    new = builder.build()
    kept_since = max(horizon, seen.kept_since) if seen is not None else horizon
    calls = (seen.calls if seen is not None else Calls.empty()).merged(new).since(kept_since)
    first = seen.first_ts if seen is not None and seen.first_ts is not None else None
    if len(new):
        first = float(new.ts[0]) if first is None else min(first, float(new.ts[0]))
    before, before_sum = _before(conn, cursor)
    return StoreCursor(calls, first, bad, cursor, before, before_sum, counted, kept_since, n, seen is None)


def store_usage(key: tuple[str, ...], db: bytes, wal: bytes | None, horizon: float) -> StoreCursor:
    """Return the host's store read on from its cursor in this process; keep the new cursor."""
    with _lock:
        seen = _memory.get(key)
    if seen is not None and horizon < seen.kept_since:
        seen = None  # the look reaches back past calls already let go: read again from the start
    usage = read_store(db, wal, seen, horizon)
    with _lock:
        _memory[key] = usage
        _memory.move_to_end(key)
        while len(_memory) > _KEEP:
            _memory.popitem(last=False)
    return usage
