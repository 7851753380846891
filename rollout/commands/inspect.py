"""`rollout validate` and `rollout plan`: check inputs and show what would happen; touch nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rollout.commands import layers
from rollout.commands.common import Report, build_transport, check_pull_hosts, load_checked
from rollout.core import cohorts, diffing
from rollout.core.playbook import Playbook
from rollout.hosts import transports
from rollout.hosts.fleet import Fleet, ProgressFn
from rollout.util.durations import format_duration
from rollout.util.errors import TransportError


def _pull_hosts_in(state_dir: Path) -> bool:
    """Return True if pull hosts are added in the state folder `state_dir` (through the pull store's
    seam, as every other reader of the fleet)."""
    from rollout.edges.backends import open_pull_store

    return bool(open_pull_store(state_dir).hosts())


def validate(playbook_path: str | Path, state_dir: Path | str | None = None) -> Report:
    """Validate the playbook and its candidate config (BadInput, exit 2, lists every error); a pull
    playbook's hosts must have been added in the state (the folder, ./state unless named, or the
    state server)."""
    pb, _, problems = load_checked(playbook_path)
    report = Report(data={"playbook": str(pb.file), "warnings": []})
    if state_dir is None and pb.transport == "pull" and not _pull_hosts_in(Path("state")):
        # No state folder named and no pull host added in ./state (a fresh clone): the playbook
        # itself is checked; start (and validate --state-dir) refuses hosts not added.
        note = "note: no pull hosts are added in ./state yet; `rollout hosts add NAME` gives each its token"
        report.say(note)
    else:
        check_pull_hosts(pb, state_dir if state_dir is not None else Path("state"))
    for p in problems:
        report.say(p.render(str(pb.config_source)))
        report.data["warnings"].append(p.render(str(pb.config_source)))
    checks = len(pb.health.checks)
    report.data.update(kind=pb.config_kind, kind_from=pb.config_kind_why)
    if pb.config_kind_why != "config.kind":  # so a file read as plain json (no model checks) is noticed
        report.say(f"{pb.config_source}: kind: {pb.config_kind} ({pb.config_kind_why})")
    report.say(
        f"{pb.file}: ok: {len(pb.hosts)} host(s) over {pb.transport}, stages "
        f"{' -> '.join(s.name for s in pb.stages)}, {checks} check(s), candidate {pb.config_kind}"
    )
    return report


def plan(
    playbook_path: str | Path, progress: ProgressFn | None = None, state_dir: Path | None = Path("state")
) -> Report:
    """Show cohorts per stage, the checks gating each, and per-host diffs read from the hosts (a
    pull host: from its agent's latest report in `state_dir`'s inbox; None: a state server)."""
    pb, data, problems = load_checked(playbook_path)
    report = Report(data={"playbook": str(pb.file), "stages": [], "diffs": []})
    for p in problems:
        report.say(p.render(str(pb.config_source)))
    order = cohorts.host_order(pb.hosts, pb.name)
    report.say(f"plan for {pb.name}: {len(pb.hosts)} host(s) over {pb.transport}")
    for stage in pb.stages:
        gating = [c.name for c in pb.health.checks if c.applies_to(stage.name)]
        hosts = list(pb.hosts) if stage.is_shadow else cohorts.cohort_for(stage.percent, order)
        what = "shadow copy on" if stage.is_shadow else "live on"
        bake = f", bake {format_duration(stage.bake)}" if stage.bake else ""
        report.say(
            f"  {stage.name:8} {what} {len(hosts)} host(s): {diffing.host_ranges(hosts)}{bake}; "
            f"gate: {', '.join(gating) or 'no checks'}"
        )
        report.data["stages"].append(
            {
                "name": stage.name,
                "percent": stage.percent,
                "bake": stage.bake,
                "hosts": hosts,
                "checks": gating,
            }
        )
    pull = pb.transport == "pull"
    transport = (
        build_transport(pb, state_dir)
        if pull
        else transports.get(pb.transport).build(pb.transport_options, pb.base_dir, pb.hosts)
    )

    def read(s: Any) -> Any:
        if pull and not s.holds(pb.path_on(s.host)):
            raise TransportError("its agent has not reported its file yet")
        return s.read(pb.path_on(s.host))

    with Fleet(transport, progress) as fleet:
        current = fleet.map(list(pb.hosts), read, "read")
        from rollout.edges.projection import project_for, typical_candidate

        live = {h: r.value.data for h, r in current.items() if r.value is not None}
        candidates = layers.host_candidates(pb, data, live)
        projected = project_for(pb, typical_candidate(pb, data, live, candidates), live, fleet)
        overridden = layers.report(pb, fleet, live, candidates)
        unchecked_layers = layers.unchecked_hosts(pb, fleet, list(pb.hosts))
        heard = [h for h in pb.hosts if current[h].value is not None]  # pull: the hosts that reported
        others = _other_files(pb, fleet, heard) if len(pb.files) > 1 else []
    unreachable = {h: r.error for h, r in current.items() if r.value is None}
    baselines = {h: r.value.sha256 for h, r in current.items() if r.value is not None}
    for sha, hosts in diffing.group_by_baseline(baselines):
        first = current[hosts[0]].value
        _, text = diffing.diff_one(first.data if first else None, candidates[hosts[0]], pb.config_kind)
        label = "same change" if len(hosts) > 1 else "change"
        if others:
            label = f"{pb.files[0].name}: {label}"
        report.say(f"{diffing.host_ranges(hosts)}: {label}")
        report.lines.extend("  " + line for line in text.splitlines())
        entry: dict[str, Any] = {"hosts": hosts, "baseline_sha256": sha, "text": text}
        report.data["diffs"].append({**entry, "file": pb.files[0].name} if others else entry)
    for other in others:
        label = "same change" if len(other["hosts"]) > 1 else "change"
        report.say(f"{diffing.host_ranges(other['hosts'])}: {other['file']}: {label}")
        report.lines.extend("  " + line for line in other["text"].splitlines())
        report.data["diffs"].append(other)
    if pull:  # a laptop that has not reported is not an error: it gets its candidate when it does
        waiting = [h for h in pb.hosts if h in unreachable]
        report.data["not_reported"] = waiting
        if waiting:
            report.say(
                f"{len(waiting)} of {len(pb.hosts)} host(s) have not reported yet: "
                f"{diffing.host_ranges(waiting)} (their candidate is computed when their agent first reports)"
            )
        unreachable = {}
        note = layers.unchecked_note(pb, unchecked_layers)
        if note is not None:
            report.say(note)
        report.data["layers_unchecked"] = unchecked_layers
    for host, why in unreachable.items():
        report.say(f"warning: {host}: could not read its current file: {why}")
    report.data["unreachable"] = unreachable
    for line in overridden:
        report.say(f"warning: {line}")
    report.data["overridden"] = overridden
    if projected is not None:
        from rollout.models.cost import summary_lines

        report.lines.extend(summary_lines(projected))
        report.data["cost"] = projected.to_json()
    return report


def _other_files(pb: Playbook, fleet: Fleet, hosts: list[str]) -> list[dict[str, Any]]:
    """Return the diffs of a bundle's files after the first, per group of hosts whose change to the
    file is the same (a patch gives each host its own candidate); hosts that cannot be read are
    left out (the first file's warning names them)."""
    from rollout.commands import bundles

    rest = pb.files[1:]

    def read_rest(s: Any) -> dict[str, Any]:
        if pb.transport == "pull" and not all(s.holds(f.path_on(s.host)) for f in rest):
            raise TransportError("its agent has not reported every file yet")
        return {f.name: s.read(f.path_on(s.host)) for f in rest}

    read = fleet.map(hosts, read_rest, "read")
    snapshot = {h: {n: (st, st) for n, st in r.value.items()} for h, r in read.items() if r.value is not None}
    inputs = bundles.read_inputs(pb)
    shown = dataclasses.replace(pb, hosts=tuple(h for h in pb.hosts if h in snapshot), files=rest)
    candidates = bundles.host_candidates(shown, inputs, snapshot)
    out: list[dict[str, Any]] = []
    for f in rest:
        keys: dict[str, str | None] = {
            h: f"{snapshot[h][f.name][0].sha256}:{bundles.sha256(candidates[h][f.name])}" for h in shown.hosts
        }
        for _key, hosts in diffing.group_by_baseline(keys):
            old = snapshot[hosts[0]][f.name][0]
            _, text = diffing.diff_one(old.data, candidates[hosts[0]][f.name], f.kind)
            out.append({"file": f.name, "hosts": hosts, "baseline_sha256": old.sha256, "text": text})
    return out
