"""OpenCode's SQLite store read into usage records: outcomes, tokens, durations, bad rows."""

from __future__ import annotations

from pathlib import Path

from rollout.checks.metrics.opencode_store import read_opencode_bytes, read_opencode_db
from rollout.models.usage import UsageRecord
from tests import opencode_db

T0 = 1_795_600_800_000  # ms


def test_assistant_messages_become_records(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    opencode_db.create(
        db,
        [
            opencode_db.user(T0),
            opencode_db.assistant(T0 + 10, 4500, cost=0.02, tokens=(1500, 300, 100)),
            opencode_db.assistant(
                T0 + 20,
                None,
                agent="plan",
                provider="openai",
                model="gpt-5",
                error={"name": "APIError", "data": {"message": "Too Many Requests", "statusCode": 429}},
            ),
            opencode_db.assistant(
                T0 + 30, 60000, error={"name": "UnknownError", "data": {"message": "request timed out"}}
            ),
            opencode_db.assistant(T0 + 40, 1000, error={"name": "ProviderAuthError", "data": {}}),
            opencode_db.assistant(T0 + 50, None),  # still streaming: skipped
            opencode_db.assistant(T0 + 60, 10, error={"name": "MessageAbortedError", "data": {}}),
        ],
    ).close()
    batch = read_opencode_db(db)
    assert batch.bad_lines == []
    assert batch.records[0] == UsageRecord(
        ts=(T0 + 10) / 1000,
        agent="build",
        model="anthropic/claude-sonnet-4",
        input_tokens=1500,
        output_tokens=400,
        cost_usd=0.02,
        duration_s=4.5,
        outcome="success",
        failover=False,
    )
    assert [(r.agent, r.model, r.outcome) for r in batch.records[1:]] == [
        ("plan", "openai/gpt-5", "rate_limited"),
        ("build", "anthropic/claude-sonnet-4", "timeout"),
        ("build", "anthropic/claude-sonnet-4", "error"),
    ]
    assert batch.records[2].duration_s == 60.0


def test_bad_rows_are_counted_not_fatal(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    opencode_db.create(
        db,
        [
            "{broken",
            {"role": "assistant", "time": {}},
            {**opencode_db.assistant(T0), "cost": "free"},
            opencode_db.assistant(T0 + 5),
        ],
    ).close()
    batch = read_opencode_db(db)
    assert len(batch.records) == 1
    assert [n for n, _ in batch.bad_lines] == [1, 2, 3]
    assert batch.bad_lines[1][1] == "time.created: missing or not a number"
    assert batch.bad_lines[2][1] == "cost: must be a number, got 'free'"


def test_not_an_opencode_database_is_a_bad_line(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    db.write_bytes(b"")
    batch = read_opencode_db(db)
    assert batch.records == []
    assert batch.bad_lines[0][0] == 0
    assert "message" in batch.bad_lines[0][1]


def test_fetched_bytes_include_the_write_ahead_log(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    conn = opencode_db.create(db, [opencode_db.assistant(T0 + i * 1000) for i in range(3)], wal=True)
    wal = tmp_path / "opencode.db-wal"
    assert wal.stat().st_size > 0  # the rows live in the WAL, not yet in the main file
    only_main = read_opencode_bytes(db.read_bytes())
    with_wal = read_opencode_bytes(db.read_bytes(), wal.read_bytes())
    conn.close()
    assert len(with_wal.records) == 3
    assert len(only_main.records) < 3
