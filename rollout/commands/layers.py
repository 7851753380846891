"""Read the other OpenCode layers on each host and report keys of the change they override."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rollout.configkinds import get, opencode_layers, parse_lenient
from rollout.configkinds.opencode_layers import RANK, LayerDoc, LayerSpec
from rollout.core import patching
from rollout.core.playbook import Playbook
from rollout.hosts.fleet import Fleet
from rollout.util.errors import BadInput
from rollout.util.redact import redact_text


def specs_for(pb: Playbook) -> tuple[LayerSpec, ...]:
    """The layers to read: `config.layers`, else OpenCode's defaults for the transport (opencode only)."""
    if pb.config_kind != "opencode":
        return ()
    if pb.config_layers is not None:
        return tuple(pb.config_layers)
    return opencode_layers.default_specs(pb.transport)


def _read(session: Any, specs: tuple[LayerSpec, ...]) -> list[LayerDoc]:
    docs: list[LayerDoc] = []
    for spec in specs:
        path = spec.path.replace("{host}", session.host)
        data = session.read(path).data
        if not spec.env:
            docs.append(LayerDoc(path, opencode_layers.order(path, spec.layer), data))
            continue
        if data is None:
            continue
        env = opencode_layers.env_layers(data.decode("utf-8", errors="replace"))
        if "OPENCODE_CONFIG" in env:
            custom = env["OPENCODE_CONFIG"]
            docs.append(
                LayerDoc(
                    f"{custom} (OPENCODE_CONFIG in {path})", (RANK["custom"], 0), session.read(custom).data
                )
            )
        if "OPENCODE_CONFIG_CONTENT" in env:
            content = opencode_layers.content_doc(env["OPENCODE_CONFIG_CONTENT"])
            docs.append(LayerDoc(f"OPENCODE_CONFIG_CONTENT in {path}", (RANK["content"], 0), content))
    return docs


def report(
    pb: Playbook, fleet: Fleet, baselines: dict[str, bytes | None], candidates: dict[str, bytes]
) -> list[str]:
    """Return findings like 'dev-03: agent.build.model is set by /etc/opencode/opencode.json, which
    overrides this file' for every host whose higher layers set a key the change changes."""
    specs = specs_for(pb)
    if not specs:
        return []
    if pb.transport == "pull":  # only the laptops whose agent reported every layer file (unchecked_hosts)
        unchecked = set(unchecked_hosts(pb, fleet, list(candidates)))
        candidates = {h: c for h, c in candidates.items() if h not in unchecked}
    kind = get(pb.config_kind)
    changes = {}
    for host, candidate in candidates.items():
        old = parse_lenient(baselines.get(host), pb.config_kind)
        old = old if isinstance(old, dict) else {}  # no file, or one that does not parse: all is new
        changes[host] = opencode_layers.changed_paths(old, kind.parse(candidate))
    hosts = [h for h in candidates if changes[h]]
    results = fleet.map(hosts, lambda s: _read(s, specs), "read-layers")
    out: list[str] = []
    for host in hosts:
        result = results[host]
        if result.value is None:
            out.append(f"{host}: could not read its other OpenCode layers: {result.error}")
            continue
        out += opencode_layers.findings(host, pb.path_on(host), changes[host], result.value)
    return [redact_text(line) for line in out]


def unchecked_hosts(pb: Playbook, fleet: Fleet, hosts: list[str]) -> list[str]:
    """Return the pull hosts of `hosts` whose agent has not reported (with their bytes) every other
    OpenCode layer file the assignment asks it to watch: their layers cannot be checked yet."""
    specs = specs_for(pb)
    if pb.transport != "pull" or not specs or not hosts:
        return []

    def reported(s: Any) -> bool:
        return all(s.holds(spec.path.replace("{host}", s.host)) for spec in specs)

    results = fleet.map(hosts, reported, "read-layers")
    return [h for h in hosts if results[h].value is not True]


def unchecked_note(pb: Playbook, hosts: list[str]) -> str | None:
    """Say which pull hosts' other OpenCode layers were not checked (None: all were, or none is to
    be): their agents report those files only once a pull rollout asked them to."""
    if pb.transport != "pull" or not hosts or not specs_for(pb):
        return None
    from rollout.core.diffing import host_ranges

    return (
        f"note: the other OpenCode layers of {len(hosts)} pull host(s) were not checked: {host_ranges(hosts)} "
        "(their agents have not reported them yet: a higher layer may still override the keys this "
        "change sets there; an OPENCODE_CONFIG named in an environment file is not followed on pull hosts)"
    )


def hosts_named(hosts: tuple[str, ...], lines: list[str]) -> list[str]:
    """The hosts that lines like 'HOST: ...' name (a host name may itself hold a colon)."""
    return [h for h in hosts if any(line.startswith(f"{h}: ") for line in lines)]


def host_candidates(pb: Playbook, data: bytes, baselines: dict[str, bytes | None]) -> dict[str, bytes]:
    """Each host's candidate: `data` itself, or for `config.patch` the patch applied to the host's
    own bytes; raise BadInput naming every host where the patch does not apply or breaks the file."""
    if not pb.is_patch:
        return {h: data for h in baselines}
    out: dict[str, bytes] = {}
    problems: list[str] = []
    valid: dict[bytes | None, bytes] = {}  # hosts with the same bytes get the same candidate: patch once
    for host, baseline in baselines.items():
        if baseline in valid:
            out[host] = valid[baseline]
            continue
        found = _patched_on(pb, data, host, baseline)
        if isinstance(found, list):
            problems += found
        else:
            out[host] = valid[baseline] = found
    if problems:
        hosts = hosts_named(pb.hosts, problems)
        raise BadInput(
            f"{pb.config_source}: applied to each host's own file, the patch gives an invalid "
            f"{pb.config_kind} file on {len(hosts)} host(s): {', '.join(hosts)}",
            problems,
        )
    return out


def _patched_on(pb: Playbook, data: bytes, host: str, baseline: bytes | None) -> bytes | list[str]:
    """The host's candidate, or the lines saying why there is none."""
    from rollout.commands.common import check_candidate

    assert pb.config_patch_format is not None
    where = f"{host}: {pb.path_on(host)}"
    try:
        candidate = patching.apply_patch(baseline, data, pb.config_patch_format, pb.config_kind, where=where)
    except BadInput as e:
        return [str(e)]
    errors = [p for p in check_candidate(pb, candidate) if p.severity == "error"]
    if not errors:
        return candidate
    before = {(p.path, p.message) for p in check_candidate(pb, baseline)} if baseline is not None else set()
    return [
        redact_text(
            replace(p, message=f"{p.message} (so already in the host's file)").render(where)
            if (p.path, p.message) in before
            else p.render(where)
        )
        for p in errors
    ]
