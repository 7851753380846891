"""The health judge: measurements in, one verdict out (pure; no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rollout.checks.base import Measurement

Decision = Literal["pass", "fail", "inconclusive", "retry"]


@dataclass(frozen=True)
class Verdict:
    """What the gate decided, why, and the counters to carry to the next evaluation."""

    decision: Decision
    why: str
    measurements: tuple[Measurement, ...]
    failures: int = 0
    consecutive_errors: dict[str, int] = field(default_factory=dict)
    needed: int | None = None  # more samples an inconclusive gate needs

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "why": self.why,
            "failures": self.failures,
            "consecutive_errors": self.consecutive_errors,
            "needed": self.needed,
            "measurements": [m.to_json() for m in self.measurements],
        }


def _where(m: Measurement) -> str:
    return f"{m.check} on {m.host}" if m.host else m.check


def judge(
    measurements: Sequence[Measurement],
    *,
    failure_limit: int,
    consecutive_error_limit: int,
    previous_failures: int = 0,
    previous_errors: dict[str, int] | None = None,
) -> Verdict:
    """Decide a gate: failures over the limit fail it, errors fail it once they run
    `consecutive_error_limit` times in a row, inconclusive pauses for a human.
    Measurements of observe-only checks (enforce false) never decide."""
    ms = tuple(measurements)
    enforced = [m for m in ms if m.enforce]
    failed = [m for m in enforced if m.outcome == "fail"]
    failures = previous_failures + len(failed)
    errors = _errors_by_check(enforced)
    counters = _error_counters(enforced, errors, previous_errors or {})
    decided = (
        _over_failure_limit(failed, failures, failure_limit)
        or _errors_exhausted(errors, counters, consecutive_error_limit)
        or _retry(errors, counters, consecutive_error_limit)
        or _pending(enforced)
        or _passed(enforced, failed, failure_limit)
    )
    decision, why, needed = decided
    return Verdict(decision, why, ms, failures, counters, needed)


_Decided = tuple[Decision, str, int | None]


def _errors_by_check(enforced: list[Measurement]) -> dict[str, list[Measurement]]:
    """Return the enforced measurements that could not measure, by check."""
    out: dict[str, list[Measurement]] = {}
    for m in enforced:
        if m.outcome == "error":
            out.setdefault(m.check, []).append(m)
    return out


def _error_counters(
    enforced: list[Measurement], errors: dict[str, list[Measurement]], previous: dict[str, int]
) -> dict[str, int]:
    """Return each check's consecutive errors: one more if it erred now, else back to zero."""
    checks = {m.check for m in enforced}
    return {c: (previous.get(c, 0) + 1 if c in errors else 0) for c in checks}


def _over_failure_limit(failed: list[Measurement], failures: int, limit: int) -> _Decided | None:
    if not failed or failures <= limit:
        return None
    reasons = "; ".join(f"{_where(m)}: {m.why}" for m in failed)
    over = f" (failures {failures} > limit {limit})" if limit else ""
    return "fail", f"{reasons}{over}", None


def _errors_exhausted(
    errors: dict[str, list[Measurement]], counters: dict[str, int], limit: int
) -> _Decided | None:
    exhausted = [c for c, n in counters.items() if n >= limit]
    if not exhausted:
        return None
    reasons = "; ".join(f"{_where(m)}: {m.why}" for c in exhausted for m in errors[c])
    return (
        "fail",
        f"could not measure {', '.join(sorted(exhausted))} {limit} times in a row: {reasons}",
        None,
    )


def _retry(errors: dict[str, list[Measurement]], counters: dict[str, int], limit: int) -> _Decided | None:
    if not errors:
        return None
    reasons = "; ".join(f"{_where(m)}: {m.why}" for ms in errors.values() for m in ms)
    counts = ", ".join(f"{c} {counters[c]}/{limit}" for c in sorted(errors))
    return "retry", f"could not measure ({counts} consecutive errors): {reasons}", None


def _pending(enforced: list[Measurement]) -> _Decided | None:
    pending = [m for m in enforced if m.outcome == "inconclusive"]
    if not pending:
        return None
    needed = max((int(m.details.get("needed", 0) or 0) for m in pending), default=0) or None
    reasons = "; ".join(f"{_where(m)}: {m.why}" for m in pending)
    return "inconclusive", f"inconclusive: {reasons}", needed


def _passed(enforced: list[Measurement], failed: list[Measurement], limit: int) -> _Decided:
    if failed:
        reasons = "; ".join(f"{_where(m)}: {m.why}" for m in failed)
        return "pass", f"{len(failed)} failure(s) within the limit of {limit}: {reasons}", None
    if not enforced:
        return "pass", "no enforced checks gate this stage", None
    return "pass", f"{len(enforced)} measurement(s) passed", None
