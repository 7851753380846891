"""Where files land: refuse shadow and live paths that would overwrite something they must not."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from rollout.core.playbook import Playbook
from rollout.util.errors import BadInput


def _local(pb: Playbook, template: str) -> str:
    # Symlinks are followed as far as they exist: a shadow path that is a link to the live file
    # is the live file.
    return os.path.realpath(pb.base_dir / Path(template).expanduser())


def _remote(template: str) -> str:
    # Relative paths and `~/` are both the remote home; no symlink can be seen from here.
    path = template[2:] if template.startswith("~/") else template
    return posixpath.normpath(path)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def path_problems(pb: Playbook, state_dir: Path | None = None) -> list[str]:
    """Return why any host's shadow or live path would overwrite a live file of any host, the
    candidate, the playbook or the state folder (invariant 10); empty when the paths are safe."""
    problems: list[str] = []
    if pb.transport != "local":
        for host in pb.hosts:
            if _remote(pb.shadow_on(host)) == _remote(pb.path_on(host)):
                problems.append(
                    f"config.shadow_path: {pb.shadow_on(host)!r} is the live file on host {host}; "
                    "staging would overwrite live bytes"
                )
        return problems
    live = {host: _local(pb, pb.path_on(host)) for host in pb.hosts}
    owner = {path: host for host, path in live.items()}
    inputs = {
        os.path.realpath(pb.config_source): "the candidate (config.source)",
        os.path.realpath(pb.file): "the playbook",
    }
    state = os.path.realpath(state_dir) if state_dir is not None else None
    shadows: dict[str, str] = {}
    for host in pb.hosts:
        shadow = _local(pb, pb.shadow_on(host))
        if shadow in owner:
            whose = "its own live file" if owner[shadow] == host else f"the live file of host {owner[shadow]}"
            problems.append(
                f"config.shadow_path: {shadow} (host {host}) is {whose}; staging would overwrite live bytes"
            )
        elif shadow in shadows:
            problems.append(
                f"config.shadow_path: {shadow} is the shadow path of {shadows[shadow]} and {host}"
            )
        shadows.setdefault(shadow, host)
        for field, path in (("config.shadow_path", shadow), ("config.path", live[host])):
            if path in inputs:
                problems.append(f"{field}: {path} (host {host}) is {inputs[path]}; it would be overwritten")
            if state is not None and _inside(path, state):
                problems.append(f"{field}: {path} (host {host}) is inside the state folder {state}")
    return problems


def check_paths(pb: Playbook, state_dir: Path | None = None) -> None:
    """Raise BadInput (exit 2, nothing touched) naming every unsafe path."""
    problems = path_problems(pb, state_dir)
    if problems:
        raise BadInput(f"{pb.file}: {len(problems)} unsafe path(s); nothing touched", problems[:20])
