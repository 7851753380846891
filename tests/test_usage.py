"""Usage records: the JSON-lines format, bad lines counted and never fatal."""

from __future__ import annotations

import json
from pathlib import Path

from rollout.models.usage import UsageRecord, dump_usage_lines, parse_ts, read_usage_bytes, read_usage_lines

GOOD = {
    "ts": "2026-11-25T10:00:00Z",
    "gen_ai.agent.name": "build",
    "gen_ai.request.model": "anthropic/claude-sonnet-4",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "cost_usd": 0.0081,
    "duration_s": 4.2,
    "outcome": "success",
    "failover": False,
    "trace_id": "ignored-unknown-field",
}


def test_good_line_reads_every_field() -> None:
    batch = read_usage_lines([json.dumps(GOOD)])
    assert batch.bad_lines == []
    assert batch.records == [
        UsageRecord(
            ts=1795600800.0,
            agent="build",
            model="anthropic/claude-sonnet-4",
            input_tokens=1200,
            output_tokens=300,
            cost_usd=0.0081,
            duration_s=4.2,
            outcome="success",
            failover=False,
        )
    ]


def test_ts_accepts_iso_with_offset_naive_iso_and_epoch() -> None:
    assert parse_ts("2026-11-25T11:00:00+01:00") == 1795600800.0
    assert parse_ts("2026-11-25T10:00:00") == 1795600800.0
    assert parse_ts(1795600800) == 1795600800.0
    assert parse_ts("1795600800.5") == 1795600800.5


def test_bad_lines_are_counted_with_line_number_and_reason(tmp_path: Path) -> None:
    lines = [
        json.dumps(GOOD),
        "{not json",
        "",
        json.dumps({**GOOD, "outcome": "maybe"}),
        json.dumps({**GOOD, "ts": "yesterday"}),
        json.dumps({**GOOD, "duration_s": "slow"}),
        json.dumps({**GOOD, "failover": "yes"}),
        json.dumps([1, 2]),
        json.dumps({k: v for k, v in GOOD.items() if k != "duration_s"}),
        json.dumps({**GOOD, "outcome": "error", "cost_usd": 0}),
    ]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n")
    batch = read_usage_bytes(path.read_bytes())
    assert [r.outcome for r in batch.records] == ["success", "error"]
    assert [n for n, _ in batch.bad_lines] == [2, 4, 5, 6, 7, 8, 9]
    reasons = dict(batch.bad_lines)
    assert reasons[2].startswith("invalid JSON")
    assert reasons[4] == "outcome: must be one of success, error, rate_limited, timeout, got 'maybe'"
    assert reasons[5] == "ts: not ISO 8601 or epoch seconds: 'yesterday'"
    assert reasons[6] == "duration_s: must be a number, got 'slow'"
    assert reasons[7] == "failover: must be true or false, got 'yes'"
    assert reasons[8] == "expected a JSON object, got list"
    assert reasons[9] == "duration_s: missing (required)"


def test_dump_then_read_round_trips() -> None:
    records = read_usage_lines([json.dumps(GOOD), json.dumps({**GOOD, "failover": True})]).records
    again = read_usage_lines(dump_usage_lines(records).splitlines()).records
    assert again == records
