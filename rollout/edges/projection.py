"""Gather a cost projection's inputs for a playbook: hosts' usage, their live and candidate models."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from rollout import configkinds
from rollout.configkinds.base import ConfigParseError
from rollout.core.playbook import Playbook
from rollout.hosts.fleet import Fleet
from rollout.models import catalog as catalogs
from rollout.models import cost
from rollout.models.usage import UsageRecord


def usage_source(pb: Playbook) -> Any | None:
    """Return the host-file usage source of the playbook's metric checks (cost check first)."""
    found = []
    for check in pb.health.checks:
        source = getattr(check.options, "source", None)
        if getattr(source, "type", None) in ("usage-log", "opencode"):
            found.append((getattr(check.options, "metric", "") != "cost_per_day_usd", source))
    return min(found, key=lambda f: f[0])[1] if found else None


def _assignment(kind: Any, data: bytes | None) -> dict[str, dict[str, float]] | None:
    if data is None:
        return None
    try:
        assignment: dict[str, dict[str, float]] = kind.assignment(kind.parse(data))
    except ConfigParseError:
        return None
    return assignment


def project_for(
    pb: Playbook, candidate: bytes, live: dict[str, bytes | None], fleet: Fleet
) -> cost.Projection | None:
    """Project baseline vs candidate cost from the hosts' usage; None when the kind has no models."""
    kind = configkinds.get(pb.config_kind)
    if not hasattr(kind, "assignment"):
        return None
    bounds = cost.bounds_from_checks(pb.raw.get("health", {}).get("checks"))
    source = usage_source(pb)
    if source is None:
        why = "no usage source: add a metric check with source type usage-log or opencode"
        return cost.Projection(False, why, bounds=tuple(bounds))
    notes: list[str] = []
    counts = Counter(data for data in live.values() if data is not None)
    baseline: dict[str, dict[str, float]] = {}
    if counts:
        common, hosts = counts.most_common(1)[0]
        baseline = _assignment(kind, common) or {}
        if len(counts) > 1:
            notes.append(f"hosts differ: baseline taken from the file {hosts} of {len(live)} host(s) hold")
    else:
        what = "has a current file" if live else "could be read"
        notes.append(f"no host {what}: baseline models come from the recorded usage")
    candidate_assignment = _assignment(kind, candidate) or {}
    from rollout.checks.metrics.sources import fetch_batches

    records: list[UsageRecord] = []
    for host, batch in fetch_batches(fleet, source, pb.hosts).items():
        if isinstance(batch, str):
            notes.append(batch)
            continue
        records.extend(batch.records)
        if batch.bad_lines:
            notes.append(f"{host}: {len(batch.bad_lines)} unreadable usage line(s) skipped")
    key = "model" if pb.config_kind == "litellm" else "agent"
    known = catalogs.resolve(pb.config_options.get("catalog"))
    if pb.config_kind == "opencode":
        from rollout.configkinds.opencode import config_models

        known = known.with_models(config_models(kind.parse(candidate)))
    usage = cost.usage_from_records(records, key)
    result = cost.project(baseline, candidate_assignment, usage, known, bounds)
    return dataclasses.replace(result, notes=(*notes, *result.notes))

def typical_candidate(
    pb: Playbook, data: bytes, live: dict[str, bytes | None], candidates: dict[str, bytes]
) -> bytes:
    """Return the candidate the cost projection prices: the file itself, or for a patch the patched
    file of the hosts holding the most common current file (the projection says when hosts differ)."""
    if not pb.is_patch or not candidates:
        return data
    counts = Counter(live.get(h) for h in candidates)
    common = counts.most_common(1)[0][0]
    return next(candidates[h] for h in candidates if live.get(h) == common)

