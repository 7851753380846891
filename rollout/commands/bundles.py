"""A playbook's bundle before anything is written: each file's input, each host's candidate bytes
(a `source` is the same for every host, a `patch` is applied to the host's own file), checked per
file with its kind and together (oh-my-opencode and opencode agents that disagree)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout import configkinds
from rollout.configkinds.base import ConfigContext, ConfigParseError, Problem
from rollout.core.playbook import ConfigFile, Playbook
from rollout.util.errors import BadInput

Snapshot = dict[str, dict[str, tuple[Any, Any]]]  # host -> file name -> (live FileState, shadow FileState)


def read_inputs(pb: Playbook) -> dict[str, bytes]:
    """Return each file's input (its source, or its patch) by file name; raise BadInput naming it."""
    out: dict[str, bytes] = {}
    for f in pb.files:
        key = "source" if f.source is not None else "patch"
        try:
            out[f.name] = f.input.read_bytes()
        except OSError as e:
            raise BadInput(f"{pb.file}: {f.field}.{key}: cannot read {f.input} ({e})") from None
    return out


def _context(pb: Playbook, f: ConfigFile, where: str) -> ConfigContext:
    return ConfigContext(base_dir=pb.base_dir, options=f.options, source=where)


def check_inputs(pb: Playbook, inputs: dict[str, bytes]) -> list[Problem]:
    """Check each source with its kind and each patch's shape; raise BadInput listing the errors of
    every file; return the warnings, each rendered with its file (`Problem.source` unused here)."""
    from rollout.core import patching

    errors: list[str] = []
    warnings: list[Problem] = []
    for f in pb.files:
        data = inputs[f.name]
        if f.patch is not None:
            try:
                patch = patching.load_patch(data, f.patch_format, f"{f.patch}")
            except BadInput as e:
                errors.append(str(e))
                continue
            values = _patch_values(patch, data, f, pb)
            bad = [p for p in values if p.severity == "error"]
            if bad and len(pb.files) == 1:  # the one-file form says it as it does for a source
                raise BadInput(
                    f"{f.input}: the candidate config ({f.kind}) is invalid: {len(bad)} error(s)",
                    [p.render(str(f.input)) for p in values],
                )
            for p in values:
                if p.severity == "error":
                    errors.append(p.render(str(f.input)))
                else:
                    warnings.append(_with_file(p, f))
            continue
        problems = configkinds.check_candidate(data, f.kind, _context(pb, f, str(f.input)))
        errors.extend(p.render(str(f.input)) for p in problems if p.severity == "error")
        warnings.extend(_with_file(p, f) for p in problems if p.severity != "error")
    if errors:
        raise BadInput(f"{pb.file}: the bundle's files are invalid: {len(errors)} error(s)", errors)
    warnings.extend(disagreements(pb, {f.name: inputs[f.name] for f in pb.files if f.source is not None}))
    return warnings


@dataclass(frozen=True)
class FileProblem(Problem):
    """A problem of one file of a bundle: rendered with that file's name, whatever the caller
    passes (callers of the one-file form render with the playbook's one source)."""

    where: str = ""

    def render(self, source: str) -> str:
        return super().render(self.where or source)


def _patch_values(patch: Any, data: bytes, f: ConfigFile, pb: Playbook) -> list[Problem]:
    """Check the values a merge patch sets, offline, with the file's kind (an unknown model, a
    temperature out of range): a merge patch without nulls is the document it makes of an empty
    file, so the patch's own bytes are checked and its lines are right. Problems of the document
    as a whole (a key every file of the kind needs) are left to each host's patched file (plan,
    start), as are json-patch ops and patches that delete."""
    if f.patch_format != "merge" or not isinstance(patch, dict) or _has_null(patch):
        return []
    problems = configkinds.check_candidate(data, f.kind, _context(pb, f, str(f.input)))
    return [p for p in problems if p.path and p.path.split(".")[0].split("[")[0] in patch]


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    return False


def _with_file(p: Problem, f: ConfigFile) -> Problem:
    return FileProblem(p.path, p.message, p.line, p.severity, where=str(f.input))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def host_candidates(
    pb: Playbook, inputs: dict[str, bytes], snapshot: Snapshot
) -> dict[str, dict[str, bytes]]:
    """Return each host's candidate bytes per file: a source as it is, a patch applied to the host's
    backed-up baseline. A patch that does not apply, or gives a config its kind refuses, on any
    host is BadInput naming the host and the file (nothing has been written)."""
    from rollout.core import patching

    out: dict[str, dict[str, bytes]] = {}
    errors: list[str] = []
    checked: dict[tuple[str, str], list[Problem]] = {}
    for host in pb.hosts:
        if host not in snapshot:  # a pull host not heard from: its candidate comes with its first report
            continue
        files: dict[str, bytes] = {}
        for f in pb.files:
            if f.patch is None:
                files[f.name] = inputs[f.name]
                continue
            where = f"{host}: {f.path_on(host)}"
            baseline = snapshot[host][f.name][0].data

            def check(data: bytes, f: ConfigFile = f, where: str = where) -> list[Problem]:
                key = (sha256(data), f.name)
                if key not in checked:
                    checked[key] = configkinds.check_candidate(data, f.kind, _context(pb, f, where))
                return checked[key]

            data, bad = patching.host_file(
                baseline, inputs[f.name], f.patch_format, f.kind, check, where=where
            )
            errors.extend(bad)
            if data is not None:
                files[f.name] = data
        out[host] = files
    if errors:
        raise BadInput(
            f"{pb.file}: a patch does not give a valid file on every host: {len(errors)} error(s); nothing written",
            errors[:50],
        )
    return out


def _models(kind: str, data: bytes) -> dict[str, str]:
    """Return agent -> primary model of an opencode or oh-my-opencode file ({} when unreadable)."""
    k = configkinds.get(kind)
    try:
        assignment = k.assignment(k.parse(data))  # type: ignore[attr-defined]
    except (ConfigParseError, ValueError, TypeError, AttributeError):
        return {}
    return {agent: next(iter(models)) for agent, models in assignment.items() if agent != "*" and models}


def disagreements(pb: Playbook, files: dict[str, bytes], host: str | None = None) -> list[Problem]:
    """Return a warning per agent whose model differs between the bundle's opencode file and its
    oh-my-opencode file (one without the other's change is a broken pair)."""
    kinds = {f.name: f for f in pb.files if f.kind in ("opencode", "oh-my-opencode") and f.name in files}
    opencode = [f for f in kinds.values() if f.kind == "opencode"]
    omo = [f for f in kinds.values() if f.kind == "oh-my-opencode"]
    out: list[Problem] = []
    on = f" on {host}" if host else ""
    for a in opencode:
        for b in omo:
            left, right = _models(a.kind, files[a.name]), _models(b.kind, files[b.name])
            for agent in sorted(set(left) & set(right)):
                if left[agent] != right[agent]:
                    message = f"{a.name} assigns {left[agent]} but {b.name} assigns {right[agent]}"
                    where = f"{pb.file}: config.files{on}"
                    out.append(FileProblem(f"agent {agent}", message, None, "warning", where=where))
    return out


def frozen_name(path: Path) -> str:
    """Return the name the first file's input is frozen under (`candidate/<name>`)."""
    return path.name
