"""Usage records: one model call per JSON line, named after the OpenTelemetry GenAI attributes."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Outcome = Literal["success", "error", "rate_limited", "timeout"]
OUTCOMES: tuple[str, ...] = ("success", "error", "rate_limited", "timeout")

AGENT = "gen_ai.agent.name"
MODEL = "gen_ai.request.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"


@dataclass(frozen=True)
class UsageRecord:
    """One model call: when, which agent and model, tokens, cost, duration, outcome, failover."""

    ts: float  # epoch seconds
    agent: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_s: float
    outcome: str  # one of OUTCOMES
    failover: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "success"

    def to_json(self) -> dict[str, Any]:
        """Return the record as one JSON-lines object (the documented field names)."""
        return {
            "ts": self.ts,
            AGENT: self.agent,
            MODEL: self.model,
            INPUT_TOKENS: self.input_tokens,
            OUTPUT_TOKENS: self.output_tokens,
            "cost_usd": self.cost_usd,
            "duration_s": self.duration_s,
            "outcome": self.outcome,
            "failover": self.failover,
        }


@dataclass
class UsageBatch:
    """Records read from a source, and the lines that could not be read (line number, reason)."""

    records: list[UsageRecord] = field(default_factory=list)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)

    def extend(self, other: UsageBatch) -> None:
        """Append another batch's records and bad lines."""
        self.records.extend(other.records)
        self.bad_lines.extend(other.bad_lines)


class BadRecord(ValueError):
    """A usage line that is not a valid record; the message says which field and why."""


def parse_ts(value: Any) -> float:
    """Return epoch seconds for an ISO 8601 string or an epoch number (naive ISO means UTC)."""
    if isinstance(value, bool):
        raise BadRecord(f"ts: must be ISO 8601 or epoch seconds, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise BadRecord(f"ts: must be ISO 8601 or epoch seconds, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise BadRecord(f"ts: not ISO 8601 or epoch seconds: {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise BadRecord(f"ts: must be ISO 8601 or epoch seconds, got {value!r}")


def _number(obj: dict[str, Any], key: str, default: float | None = None) -> float:
    value = obj.get(key, default)
    if value is None:
        raise BadRecord(f"{key}: missing (required)")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRecord(f"{key}: must be a number, got {value!r}")
    if value < 0:
        raise BadRecord(f"{key}: must be >= 0, got {value!r}")
    return float(value)


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRecord(f"{key}: must be a string, got {value!r}")
    return value


def record_from_json(obj: Any) -> UsageRecord:
    """Build a UsageRecord from one decoded JSON object; raise BadRecord naming the field."""
    if not isinstance(obj, dict):
        raise BadRecord(f"expected a JSON object, got {type(obj).__name__}")
    if "ts" not in obj:
        raise BadRecord("ts: missing (required)")
    outcome = obj.get("outcome")
    if outcome not in OUTCOMES:
        raise BadRecord(f"outcome: must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    failover = obj.get("failover", False)
    if not isinstance(failover, bool):
        raise BadRecord(f"failover: must be true or false, got {failover!r}")
    return UsageRecord(
        ts=parse_ts(obj["ts"]),
        agent=_text(obj, AGENT),
        model=_text(obj, MODEL),
        input_tokens=int(_number(obj, INPUT_TOKENS, 0)),
        output_tokens=int(_number(obj, OUTPUT_TOKENS, 0)),
        cost_usd=_number(obj, "cost_usd", 0),
        duration_s=_number(obj, "duration_s"),
        outcome=outcome,
        failover=failover,
    )


def read_usage_lines(lines: Iterable[str | bytes]) -> UsageBatch:
    """Parse JSON lines into records; blank lines are skipped, bad ones counted with a reason."""
    batch = UsageBatch()
    for lineno, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        text = text.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except ValueError as e:
            batch.bad_lines.append((lineno, f"invalid JSON: {e}"))
            continue
        try:
            batch.records.append(record_from_json(obj))
        except BadRecord as e:
            batch.bad_lines.append((lineno, str(e)))
    return batch


def read_usage_bytes(data: bytes) -> UsageBatch:
    """Parse a whole usage.jsonl file's bytes."""
    return read_usage_lines(data.splitlines())


def dump_usage_lines(records: Iterable[UsageRecord]) -> str:
    """Return records as JSON lines (each line ends with a newline)."""
    return "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in records)
