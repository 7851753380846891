"""Build SQLite databases with OpenCode's storage shape (session + message tables, JSON data)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE session (
    id text PRIMARY KEY NOT NULL,
    project_id text NOT NULL,
    directory text NOT NULL,
    title text NOT NULL,
    version text NOT NULL,
    time_created integer NOT NULL,
    time_updated integer NOT NULL
);
CREATE TABLE message (
    id text PRIMARY KEY NOT NULL,
    session_id text NOT NULL REFERENCES session(id) ON DELETE cascade,
    time_created integer NOT NULL,
    time_updated integer NOT NULL,
    data text NOT NULL
);
CREATE INDEX message_session_time_created_id_idx ON message (session_id, time_created, id);
"""


def assistant(
    created_ms: int,
    duration_ms: int | None = 2000,
    *,
    agent: str = "build",
    provider: str = "anthropic",
    model: str = "claude-sonnet-4",
    cost: float = 0.01,
    tokens: tuple[int, int, int] = (1000, 200, 0),
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the `data` of an assistant message as OpenCode stores it."""
    time: dict[str, Any] = {"created": created_ms}
    if duration_ms is not None:
        time["completed"] = created_ms + duration_ms
    data: dict[str, Any] = {
        "role": "assistant",
        "time": time,
        "parentID": "msg_user",
        "modelID": model,
        "providerID": provider,
        "mode": agent,
        "agent": agent,
        "path": {"cwd": "/work", "root": "/work"},
        "cost": cost,
        "tokens": {
            "input": tokens[0],
            "output": tokens[1],
            "reasoning": tokens[2],
            "cache": {"read": 0, "write": 0},
        },
        "finish": "stop",
    }
    if error is not None:
        data["error"] = error
    return data


def user(created_ms: int) -> dict[str, Any]:
    """Return the `data` of a user message."""
    return {"role": "user", "time": {"created": created_ms}, "agent": "build"}


def create(path: Path, messages: list[dict[str, Any] | str], wal: bool = False) -> sqlite3.Connection:
    """Create a database at `path` holding `messages` (a str is stored raw); return the open connection."""
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO session VALUES ('ses_1', 'prj_1', '/work', 'demo', '1.0.0', 0, 0)")
    for i, m in enumerate(messages):
        raw = m if isinstance(m, str) else json.dumps(m)
        created = m.get("time", {}).get("created", 0) if isinstance(m, dict) else 0
        conn.execute(
            "INSERT INTO message VALUES (?, 'ses_1', ?, ?, ?)", (f"msg_{i:04d}", created, created, raw)
        )
    conn.commit()
    return conn
