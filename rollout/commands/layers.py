"""Read the other OpenCode layers on each host and report keys of the change they override."""

from __future__ import annotations

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
    kind = get(pb.config_kind)
    changes = {}
    for host, candidate in candidates.items():
        old = parse_lenient(baselines.get(host), pb.config_kind) or {}
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


def hosts_named(hosts: tuple[str, ...], lines: list[str]) -> list[str]:
    """The hosts that lines like 'HOST: ...' name (a host name may itself hold a colon)."""
    return [h for h in hosts if any(line.startswith(f"{h}: ") for line in lines)]


def host_candidates(pb: Playbook, data: bytes, baselines: dict[str, bytes | None]) -> dict[str, bytes]:
    """Each host's candidate: `data` itself, or for `config.patch` the patch applied to the host's
    own bytes; raise BadInput naming every host where the patch does not apply or breaks the file."""
    if not pb.is_patch:
        return {h: data for h in baselines}
    from rollout.commands.common import check_candidate

    assert pb.config_patch_format is not None
    out: dict[str, bytes] = {}
    problems: list[str] = []
    for host, baseline in baselines.items():
        where = f"{host}: {pb.path_on(host)}"
        try:
            out[host] = patching.apply_patch(
                baseline, data, pb.config_patch_format, pb.config_kind, where=where
            )
        except BadInput as e:
            problems.append(str(e))
            continue
        errors = [p for p in check_candidate(pb, out[host]) if p.severity == "error"]
        problems += [redact_text(p.render(where)) for p in errors]
    if problems:
        hosts = hosts_named(pb.hosts, problems)
        raise BadInput(
            f"{pb.config_source}: the patch does not give a valid {pb.config_kind} file on "
            f"{len(hosts)} host(s): {', '.join(hosts)}",
            problems,
        )
    return out
