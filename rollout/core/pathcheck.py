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
    """Return why any host's shadow or live path (of any file of the bundle) would overwrite a live
    file of any host, the candidate, the playbook or the state folder (invariant 10); empty when
    the paths are safe."""
    problems: list[str] = []
    if pb.transport != "local":
        for f in pb.files:
            lives = {_remote(g.path_on(host)): g for g in pb.files for host in pb.hosts}
            for host in pb.hosts:
                shadow = _remote(f.shadow_on(host))
                if shadow in lives:
                    whose = (
                        "the live file" if lives[shadow] is f else f"the live file of {lives[shadow].name}"
                    )
                    problems.append(
                        f"{f.field}.shadow_path: {f.shadow_on(host)!r} is {whose} on host {host}; "
                        "staging would overwrite live bytes"
                    )
        return problems
    owner: dict[str, tuple[str, str]] = {}
    for f in pb.files:
        for host in pb.hosts:
            owner.setdefault(_local(pb, f.path_on(host)), (host, f.name))
    inputs = {
        os.path.realpath(f.input): f"the candidate ({f.field}.{'source' if f.source else 'patch'})"
        for f in pb.files
    }
    inputs[os.path.realpath(pb.file)] = "the playbook"
    state = os.path.realpath(state_dir) if state_dir is not None else None
    shadows: dict[str, str] = {}
    bundle = len(pb.files) > 1
    for f in pb.files:
        for host in pb.hosts:
            shadow = _local(pb, f.shadow_on(host))
            if shadow in owner:
                who, name = owner[shadow]
                whose = "its own live file" if who == host else f"the live file of host {who}"
                if bundle:
                    whose += f" ({name})"
                problems.append(
                    f"{f.field}.shadow_path: {shadow} (host {host}) is {whose}; staging would overwrite live bytes"
                )
            elif shadow in shadows:
                problems.append(
                    f"{f.field}.shadow_path: {shadow} is the shadow path of {shadows[shadow]} and {host}"
                )
            shadows.setdefault(shadow, host)
            for field, path in (
                (f"{f.field}.shadow_path", shadow),
                (f"{f.field}.path", _local(pb, f.path_on(host))),
            ):
                if path in inputs:
                    problems.append(
                        f"{field}: {path} (host {host}) is {inputs[path]}; it would be overwritten"
                    )
                if state is not None and _inside(path, state):
                    problems.append(f"{field}: {path} (host {host}) is inside the state folder {state}")
    return problems


def check_paths(pb: Playbook, state_dir: Path | None = None) -> None:
    """Raise BadInput (exit 2, nothing touched) naming every unsafe path."""
    problems = path_problems(pb, state_dir)
    if problems:
        raise BadInput(f"{pb.file}: {len(problems)} unsafe path(s); nothing touched", problems[:20])
