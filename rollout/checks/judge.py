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
    previous_errors = previous_errors or {}
    ms = tuple(measurements)
    enforced = [m for m in ms if m.enforce]
    failed = [m for m in enforced if m.outcome == "fail"]
    failures = previous_failures + len(failed)

    errors_by_check: dict[str, list[Measurement]] = {}
    for m in enforced:
        if m.outcome == "error":
            errors_by_check.setdefault(m.check, []).append(m)
    checks = {m.check for m in enforced}
    counters = {c: (previous_errors.get(c, 0) + 1 if c in errors_by_check else 0) for c in checks}

    def verdict(decision: Decision, why: str, needed: int | None = None) -> Verdict:
        return Verdict(decision, why, ms, failures, counters, needed)

    if failed and failures > failure_limit:
        reasons = "; ".join(f"{_where(m)}: {m.why}" for m in failed)
        limit = f" (failures {failures} > limit {failure_limit})" if failure_limit else ""
        return verdict("fail", f"{reasons}{limit}")
    exhausted = [c for c, n in counters.items() if n >= consecutive_error_limit]
    if exhausted:
        reasons = "; ".join(f"{_where(m)}: {m.why}" for c in exhausted for m in errors_by_check[c])
        return verdict(
            "fail",
            f"could not measure {', '.join(sorted(exhausted))} "
            f"{consecutive_error_limit} times in a row: {reasons}",
        )
    if errors_by_check:
        reasons = "; ".join(f"{_where(m)}: {m.why}" for ms_ in errors_by_check.values() for m in ms_)
        counts = ", ".join(f"{c} {counters[c]}/{consecutive_error_limit}" for c in sorted(errors_by_check))
        return verdict("retry", f"could not measure ({counts} consecutive errors): {reasons}")
    pending = [m for m in enforced if m.outcome == "inconclusive"]
    if pending:
        needed = max((int(m.details.get("needed", 0) or 0) for m in pending), default=0) or None
        reasons = "; ".join(f"{_where(m)}: {m.why}" for m in pending)
        return verdict("inconclusive", f"inconclusive: {reasons}", needed)
    if failed:
        return verdict(
            "pass",
            f"{len(failed)} failure(s) within the limit of {failure_limit}: "
            + "; ".join(f"{_where(m)}: {m.why}" for m in failed),
        )
    if not enforced:
        return verdict("pass", "no enforced checks gate this stage")
    return verdict("pass", f"{len(enforced)} measurement(s) passed")
