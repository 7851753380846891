"""Run a stage's health checks against its cohort and judge them into a recorded verdict."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from rollout import checks, configkinds
from rollout.checks.base import GateContext, Measurement
from rollout.checks.judge import Verdict, judge
from rollout.core import cohorts
from rollout.core.playbook import Stage
from rollout.core.state import HostState
from rollout.edges.engine import Run
from rollout.util.redact import redact, redact_text, secret_values


def context(run: Run, stage: Stage) -> GateContext:
    """Return the gate context of `stage`: who carries the candidate, who is still on the baseline."""
    pb, hosts = run.playbook, run.hosts
    transport = run.fleet.transport
    if stage.is_shadow:
        canary = tuple(h for h in pb.hosts if hosts[h].state == HostState.SHADOW)
        paths = {h: transport.resolve_path(pb.shadow_on(h), h) for h in pb.hosts}
        files = {h: tuple(transport.resolve_path(f.shadow_on(h), h) for f in pb.files) for h in pb.hosts}
        baseline: tuple[str, ...] = tuple(pb.hosts)
    else:
        canary = tuple(h for h in pb.hosts if hosts[h].state == HostState.CANDIDATE)
        paths = {h: transport.resolve_path(pb.path_on(h), h) for h in pb.hosts}
        files = {h: tuple(transport.resolve_path(f.path_on(h), h) for f in pb.files) for h in pb.hosts}
        baseline = tuple(h for h in pb.hosts if hosts[h].state in (HostState.BASELINE, HostState.SHADOW))
    switched = {h: float(at) for h in canary if (at := hosts[h].switched_at)}
    counters = run.rollout.state.gate
    looks = int(counters.get("looks", 0))
    return GateContext(
        playbook=pb,
        stage=stage,
        canary=canary,
        baseline_hosts=baseline,
        config_paths=paths,
        file_paths=files,
        switched_at=switched,
        fleet=run.fleet,
        state_dir=run.rollout.dir,
        look=looks + 1,
        planned_looks=planned_looks(run, stage),
        at_s=stage_seconds(run),
        bake_s=stage.bake,
        extension_s=pb.health.extension(stage),
        blobs=run.rollout,
        since_s=float(counters["looked_at_s"]) if counters.get("looked_at_s") is not None else None,
    )


def stage_seconds(run: Run) -> float | None:
    """Return how long the current stage has been going (None before one is entered)."""
    entered = run.rollout.state.stage_entered_at
    return max(0.0, time.time() - float(entered)) if entered else None


def planned_looks(run: Run, stage: Stage) -> int:
    """Return how many times `run --auto` plans to measure `stage`: every `health.interval` of its
    bake and of its extension, and once when the bake is over."""
    health_ = run.playbook.health
    span = stage.bake + health_.extension(stage)
    return 1 + (math.ceil(span / health_.interval) if health_.interval > 0 else 0)


def measure(run: Run, stage: Stage) -> list[Measurement]:
    """Run every check that applies to `stage`; a check that crashes is an error, not a crash."""
    ctx = context(run, stage)
    out: list[Measurement] = []
    if run.playbook.health.checks:
        # A cohort host that cannot be reached is not measured: that is an error, never a pass.
        cohort = (
            run.playbook.hosts
            if stage.is_shadow
            else cohorts.cohort_for(stage.percent, run.rollout.state.order)
        )
        pull = run.playbook.transport == "pull"
        for host in cohort:
            if pull:
                break  # issue 15: a pull host that has not reported is not exposed (min_exposed), not an error
            if run.hosts[host].state == HostState.UNKNOWN and not run.hosts[host].switch_failed:
                why = f"host unreachable: {run.hosts[host].reason or 'no answer'}"
                out.append(Measurement("reachable", host, "error", why))
    if not stage.is_shadow:
        # A host whose switch failed (its files were put back, or could not all be) fails the gate:
        # the stage is not live where it was meant to be, whatever the checks measure.
        for host in cohorts.cohort_for(stage.percent, run.rollout.state.order):
            failed = run.hosts[host].switch_failed
            if failed:
                out.append(Measurement("switch", host, "fail", f"switch failed: {failed}"))
    if run.playbook.transport == "pull" and not stage.is_shadow:
        out.extend(_exposure(run, stage))
    for check in run.playbook.health.checks:
        if not check.applies_to(stage.name):
            continue
        try:
            out.extend(checks.get(check.kind).evaluate(check, ctx))
        except Exception as e:  # noqa: BLE001 - a broken check is a measurement error
            why = f"check could not run: {type(e).__name__}: {e}"
            out.append(Measurement(check.name, None, "error", why, check.enforce))
    # What a check printed or a probe saw reaches the verdict, events.jsonl, state.json and the
    # verbs' output: redact it here, once, whatever kind of check produced it.
    known = _known_secrets(run)
    return [
        dataclasses.replace(m, why=redact_text(m.why, known), details=redact(m.details, known)) for m in out
    ]


def _exposure(run: Run, stage: Stage) -> list[Measurement]:
    """Pull fleets (issue 15): the gate judges only hosts whose agent confirmed the candidate, and
    cannot pass before `min_exposed` of the cohort have."""
    from rollout.edges.pull import exposure

    confirmed, size, missing = exposure(run.rollout, stage.percent)
    needed = stage.exposure_needed(size)
    details: dict[str, Any] = {"confirmed": confirmed, "cohort": size, "min_exposed": needed}
    if confirmed >= needed:
        return [
            Measurement(
                "exposure", None, "pass", f"{confirmed}/{size} cohort host(s) confirmed", details=details
            )
        ]
    shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    why = (
        f"{confirmed}/{size} cohort host(s) confirmed the candidate, {needed} needed "
        f"(min_exposed); not yet: {shown}"
    )
    return [Measurement("exposure", None, "inconclusive", why, details=details)]


def _known_secrets(run: Run) -> frozenset[str]:
    """Return the secret values of the candidate and the baselines (a check may print one bare)."""
    from rollout.edges.bundle import candidate_bytes, read_backup, spec_of

    docs = []
    seen: set[str | None] = {None}
    try:
        for entry in run.hosts.values():
            for name, f in entry.files.items():
                spec = spec_of(run.playbook, name)
                kind = spec.kind if spec is not None else run.playbook.config_kind
                if f.candidate_sha256 is not None and f.candidate_sha256 not in seen:
                    seen.add(f.candidate_sha256)
                    docs.append(
                        configkinds.parse_lenient(candidate_bytes(run.rollout, f.candidate_sha256), kind)
                    )
                if f.baseline_sha256 not in seen:
                    seen.add(f.baseline_sha256)
                    docs.append(configkinds.parse_lenient(read_backup(run.rollout, f), kind))
    except Exception:  # noqa: BLE001 - what was read still counts; shapes and keys are masked anyway
        pass
    return secret_values(docs)


def evaluate(run: Run, stage: Stage) -> Verdict:
    """Measure and judge `stage`, carry the counters, and journal the verdict with its numbers."""
    state = run.rollout.state
    counters = state.gate
    started = stage_seconds(run)
    measured = measure(run, stage)
    counters["looks"] = int(counters.get("looks", 0)) + 1
    counters["look_started_s"] = started
    # Taken after measuring: the next look spends alpha from here (a later mark spends less).
    counters["looked_at_s"] = stage_seconds(run) or 0.0
    verdict = judge(
        measured,
        failure_limit=run.playbook.health.failure_limit,
        consecutive_error_limit=run.playbook.health.consecutive_error_limit,
        previous_failures=counters["failures"],
        previous_errors=counters["errors"],
    )
    counters.update(failures=verdict.failures, errors=verdict.consecutive_errors)
    state.last_verdict = {
        "stage": stage.name,
        "measured_at": time.time(),
        "look": counters["looks"],
        "planned_looks": planned_looks(run, stage),
        **verdict.to_json(),
    }
    run.rollout.commit("gate", decision=verdict.decision, why=verdict.why, verdict=verdict.to_json())
    return verdict


def looked_before(run: Run, seconds: float) -> bool:
    """Return True if the stage's last look began before `seconds` into the stage (a look that
    began inside the extension still held weak evidence; the extension's end has not been judged)."""
    started = run.rollout.state.gate.get("look_started_s")
    return started is not None and float(started) < seconds


def reset_counters(run: Run) -> None:
    """Start a new stage's gate with clean counters."""
    run.rollout.state.gate = {"failures": 0, "errors": {}, "looks": 0}


def recent_pass(run: Run, stage: Stage) -> dict[str, Any] | None:
    """Return the stage's last verdict if it passed after the bake ended and within
    `health.interval`: measuring again at once would only repeat it (and cost every host a check)."""
    last = run.rollout.state.last_verdict or {}
    if last.get("stage") != stage.name or last.get("decision") != "pass" or "measured_at" not in last:
        return None
    measured = float(last["measured_at"])
    bake_over = run.rollout.state.stage_entered_at + stage.bake
    if measured < bake_over or not 0 <= time.time() - measured <= run.playbook.health.interval:
        return None
    return dict(last)
