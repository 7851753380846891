"""Cost projection: recorded usage per agent x catalog prices, baseline vs candidate assignment."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rollout.models.catalog import Catalog
from rollout.models.usage import UsageRecord
from rollout.util.durations import parse_duration, period_label

# agent (or LiteLLM model group) -> {model id: share of its traffic}; "*" is the default model
Assignment = dict[str, dict[str, float]]
DAY = 86400.0
MONTH_DAYS = 365 / 12
YEAR_DAYS = 365.0
SHORT_WINDOW = 3600.0  # below an hour of records the daily figure is a rough extrapolation


@dataclass(frozen=True)
class AgentUsage:
    """What one agent used over the observed window."""

    agent: str
    calls: int
    input_tokens: int
    output_tokens: int
    models: dict[str, int] = field(default_factory=dict)  # recorded model -> tokens


@dataclass(frozen=True)
class Usage:
    """Usage per agent over `seconds` of records (first to last timestamp)."""

    agents: dict[str, AgentUsage]
    seconds: float
    records: int


def usage_from_records(records: Iterable[UsageRecord], key: str = "agent") -> Usage:
    """Sum calls and tokens per agent (or per requested model with key='model')."""
    sums: dict[str, list[Any]] = {}
    first, last, count = float("inf"), float("-inf"), 0
    for r in records:
        count += 1
        first, last = min(first, r.ts), max(last, r.ts)
        name = (r.agent if key == "agent" else r.model) or "(unnamed)"
        entry = sums.setdefault(name, [0, 0, 0, {}])
        entry[0] += 1
        entry[1] += r.input_tokens
        entry[2] += r.output_tokens
        if r.model:
            entry[3][r.model] = entry[3].get(r.model, 0) + r.input_tokens + r.output_tokens
    agents = {n: AgentUsage(n, e[0], e[1], e[2], e[3]) for n, e in sorted(sums.items())}
    return Usage(agents, max(0.0, last - first) if count else 0.0, count)


@dataclass(frozen=True)
class AgentCost:
    """One agent's projected daily tokens and cost under the baseline and the candidate."""

    agent: str
    calls_per_day: float
    input_per_day: float
    output_per_day: float
    baseline_model: str
    candidate_model: str
    baseline_per_day: float | None  # None: a model has no price in the catalog
    candidate_per_day: float | None


@dataclass(frozen=True)
class CostBound:
    """A `cost_per_day_usd` check's `max`, or a `cost_usd` budget's as a daily rate (with the
    budget as written: its max and window); enforce False means an alert, not a gate."""

    check: str
    max_per_day: float
    enforce: bool = True
    budget: tuple[float, float] | None = None  # cost_usd: (max USD, window seconds)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "max_per_day": self.max_per_day, "enforce": self.enforce}
        if self.budget is not None:
            out["budget"] = {"max": self.budget[0], "window_s": self.budget[1]}
        return out


@dataclass(frozen=True)
class Projection:
    """Daily / monthly / annual cost of both assignments, or why it could not be projected."""

    available: bool
    reason: str = ""
    rows: tuple[AgentCost, ...] = ()
    baseline_per_day: float | None = None
    candidate_per_day: float | None = None
    observed_seconds: float = 0.0
    records: int = 0
    bounds: tuple[CostBound, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def saving_per_day(self) -> float | None:
        if self.baseline_per_day is None or self.candidate_per_day is None:
            return None
        return self.baseline_per_day - self.candidate_per_day

    @property
    def saving_percent(self) -> float | None:
        saving = self.saving_per_day
        if saving is None or not self.baseline_per_day:
            return None
        return 100.0 * saving / self.baseline_per_day

    def breaches(self) -> list[tuple[CostBound, float]]:
        """Return the bounds the candidate's daily cost exceeds."""
        cost = self.candidate_per_day
        return [(b, cost) for b in self.bounds if cost is not None and cost > b.max_per_day]

    def to_json(self) -> dict[str, Any]:
        """Return the projection as JSON-ready data (journaled by `start`, printed by `plan`)."""
        if not self.available:
            return {"available": False, "reason": self.reason, "notes": list(self.notes)}

        def periods(daily: float | None) -> dict[str, float | None]:
            if daily is None:
                return {"day": None, "month": None, "year": None}
            return {"day": daily, "month": daily * MONTH_DAYS, "year": daily * YEAR_DAYS}

        return {
            "available": True,
            "observed_hours": round(self.observed_seconds / 3600, 3),
            "records": self.records,
            "baseline_usd": periods(self.baseline_per_day),
            "candidate_usd": periods(self.candidate_per_day),
            "saving_usd": periods(self.saving_per_day),
            "saving_percent": self.saving_percent,
            "agents": [vars(row) for row in self.rows],
            "bounds": [
                {**b.to_json(), "exceeded": b in [x for x, _ in self.breaches()]} for b in self.bounds
            ],
            "notes": list(self.notes),
        }


def _resolve(side: Assignment, agent: str, usage: AgentUsage) -> tuple[dict[str, float], str]:
    """Return the models an agent uses under one assignment and where that came from."""
    if agent in side:
        return side[agent], "config"
    if "*" in side:
        return side["*"], "default model"
    total = sum(usage.models.values())
    if total:
        return {m: t / total for m, t in usage.models.items()}, "recorded"
    return {}, "none"


def _daily_cost(models: dict[str, float], inp: float, out: float, catalog: Catalog) -> float | None:
    cost = 0.0
    for model, share in models.items():
        info = catalog.get(model)
        if info is None or info.input_cost is None or info.output_cost is None:
            return None
        cost += share * (inp * info.input_cost + out * info.output_cost) / 1e6
    return cost


def _label(models: dict[str, float]) -> str:
    if len(models) == 1:
        return next(iter(models))
    return " + ".join(f"{m} {share:.0%}" for m, share in sorted(models.items())) or "-"


def project(
    baseline: Assignment,
    candidate: Assignment,
    usage: Usage | None,
    catalog: Catalog,
    bounds: Iterable[CostBound] = (),
) -> Projection:
    """Project both assignments' cost per agent from recorded usage and catalog prices."""
    bounds = tuple(bounds)
    if usage is None or usage.records == 0:
        return Projection(False, "no usage recorded: nothing to project from", bounds=bounds)
    if usage.seconds <= 0:
        why = f"{usage.records} usage record(s) all at one instant: no time span to project a day from"
        return Projection(False, why, bounds=bounds, records=usage.records)
    per_day = DAY / usage.seconds
    notes: list[str] = []
    if usage.seconds < SHORT_WINDOW:
        notes.append(f"usage covers only {usage.seconds / 60:.0f} min; daily figures are extrapolated")
    rows: list[AgentCost] = []
    for name, used in usage.agents.items():
        inp, out = used.input_tokens * per_day, used.output_tokens * per_day
        base_models, base_from = _resolve(baseline, name, used)
        cand_models, cand_from = _resolve(candidate, name, used)
        if cand_from in ("recorded", "none") and base_from in ("config", "default model"):
            cand_models, cand_from = base_models, "unchanged"
        base_cost = _daily_cost(base_models, inp, out, catalog)
        cand_cost = _daily_cost(cand_models, inp, out, catalog)
        for models, cost in ((base_models, base_cost), (cand_models, cand_cost)):
            if cost is None:
                unpriced = sorted(m for m in models if not _priced(catalog, m)) or ["(no model)"]
                notes.append(f"{name}: no price in the catalog for {', '.join(unpriced)}")
        rows.append(
            AgentCost(name, used.calls * per_day, inp, out, _label(base_models),
                      _label(cand_models), base_cost, cand_cost)
        )  # fmt: skip
    base_total = _total(r.baseline_per_day for r in rows)
    cand_total = _total(r.candidate_per_day for r in rows)
    return Projection(
        True, "", tuple(rows), base_total, cand_total, usage.seconds, usage.records, bounds,
        tuple(dict.fromkeys(notes)),
    )  # fmt: skip


def _priced(catalog: Catalog, model: str) -> bool:
    info = catalog.get(model)
    return info is not None and info.priced


def _total(values: Iterable[float | None]) -> float | None:
    total = 0.0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def bounds_from_checks(checks: Any) -> list[CostBound]:
    """Return the `max` of every `cost_per_day_usd` metric check in a playbook's health.checks,
    and of every `cost_usd` budget as the daily rate that spends it over its window."""
    found: list[CostBound] = []
    for i, check in enumerate(checks if isinstance(checks, list) else []):
        if not isinstance(check, dict) or check.get("metric") not in ("cost_per_day_usd", "cost_usd"):
            continue
        bound = check.get("max")
        if not isinstance(bound, int | float) or isinstance(bound, bool):
            continue
        name = str(check.get("name", f"check-{i + 1}"))
        enforce = check.get("enforce", True) is not False
        if check["metric"] == "cost_per_day_usd":
            found.append(CostBound(name, float(bound), enforce))
            continue
        window = parse_duration(check.get("window"))
        if window:
            found.append(CostBound(name, float(bound) * DAY / window, enforce, (float(bound), window)))
    return found


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def summary_lines(p: Projection) -> list[str]:
    """Return the projection as plain text lines: per agent, totals per period, saving, bounds."""
    if not p.available:
        return [f"cost projection: not available ({p.reason})", *(f"  note: {n}" for n in p.notes)]
    lines = [f"cost projection ({p.records} usage records over {p.observed_seconds / 3600:.1f} h):"]
    width = max([len(r.agent) for r in p.rows] + [5])
    head = f"  {'agent':<{width}}  {'calls/day':>10}  {'baseline/day':>12}  {'candidate/day':>13}"
    lines.append(f"{head}  models")
    for r in p.rows:
        change = r.baseline_model if r.baseline_model == r.candidate_model else (
            f"{r.baseline_model} -> {r.candidate_model}"
        )  # fmt: skip
        lines.append(
            f"  {r.agent:<{width}}  {r.calls_per_day:>10,.0f}  {_usd(r.baseline_per_day):>12}"
            f"  {_usd(r.candidate_per_day):>13}  {change}"
        )
    for label, days in (("day", 1.0), ("month", MONTH_DAYS), ("year", YEAR_DAYS)):
        base = None if p.baseline_per_day is None else p.baseline_per_day * days
        cand = None if p.candidate_per_day is None else p.candidate_per_day * days
        lines.append(f"  total per {label:<5}  baseline {_usd(base)}  candidate {_usd(cand)}")
    saving, pct = p.saving_per_day, p.saving_percent
    if saving is not None:
        share = f" ({pct:.1f}%)" if pct is not None else ""
        word = "saving" if saving >= 0 else "extra cost"
        lines.append(f"  {word}: {_usd(abs(saving))}/day, {_usd(abs(saving) * YEAR_DAYS)}/year{share}")
    for bound, cost in p.breaches():
        kind = "bound" if bound.enforce else "alert"
        if bound.budget is not None:
            budget, window = bound.budget
            per = period_label(window)
            lines.append(
                f"  ABOVE budget {bound.check}: candidate {_usd(cost * window / DAY)}/{per} "
                f"> max {_usd(budget)}/{per}" + ("" if bound.enforce else " (alert)")
            )
            continue
        lines.append(
            f"  ABOVE {kind} {bound.check}: candidate {_usd(cost)}/day > max {_usd(bound.max_per_day)}/day"
        )
    lines.extend(f"  note: {n}" for n in p.notes)
    return lines
