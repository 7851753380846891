"""A host's bundle: the files a rollout moves together on it, each with its own baseline and candidate.

The playbook names the files (`config.files`, or the one-file form as a bundle of one); state.json
keeps one FileRecord per file per host (`HostRecord.files`), and the host's own fields speak for
the bundle as a whole. `bundle_for` is the one place that turns them into what a host must hold:
every file's path, hashes and candidate bytes (a pull transport serves exactly that).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from rollout.core import playbook as playbook_mod
from rollout.core.playbook import ConfigFile, Playbook
from rollout.core.state import FileRecord, HostRecord, HostState
from rollout.edges.store import Rollout
from rollout.util import yamlload


@dataclass(frozen=True)
class FilePlan:
    """One file of one host's bundle: where it lives there, its baseline, and its candidate bytes."""

    name: str
    path: str  # live path on the host (`{host}` replaced; `~` and relative paths as the transport reads them)
    shadow_path: str
    kind: str
    baseline_sha256: str | None
    baseline_mode: int | None
    candidate_sha256: str
    data: bytes  # the candidate
    activate: str | None = None


def candidate_blob(sha: str) -> str:
    """Return the blob name a candidate's bytes are kept under (shared by every host holding it)."""
    return f"candidate/{sha}"


def input_blob(index: int) -> str:
    """Return the blob a bundle's file number `index` (from 0) keeps its source or patch under."""
    return f"inputs/{index}"


def bundle_sha(shas: list[tuple[str, str | None]]) -> str | None:
    """Return the hash that speaks for a bundle's files ((name, sha) in bundle order): the file's
    own hash for a bundle of one (as before bundles), else a hash over the names and hashes."""
    if len(shas) == 1:
        return shas[0][1]
    if all(sha is None for _, sha in shas):
        return None
    text = "".join(f"{name}\0{sha or '-'}\n" for name, sha in shas)
    return hashlib.sha256(text.encode()).hexdigest()


def host_state(files: list[HostState]) -> HostState | None:
    """Return the state a host's bundle is in from its files' states; None: part switched (some
    files hold the candidate, the others the baseline), which no host is left in."""
    if all(s == HostState.CANDIDATE for s in files):
        return HostState.CANDIDATE
    if all(s in (HostState.BASELINE, HostState.SHADOW) for s in files):
        return HostState.SHADOW if all(s == HostState.SHADOW for s in files) else HostState.BASELINE
    if HostState.UNKNOWN in files:
        return HostState.UNKNOWN
    if HostState.DRIFTED in files:
        return HostState.DRIFTED
    return None


def sum_up(rec: HostRecord) -> None:
    """Set the host's own hashes from its files' (its state is set by whoever read or switched it)."""
    files = list(rec.files.items())
    rec.sha256 = bundle_sha([(n, f.sha256) for n, f in files])
    rec.shadow_staged = all(f.shadow_staged for _, f in files)


def adopt(rollout: Rollout, pb: Playbook) -> None:
    """Give hosts of a rollout from before bundles (state version 2 or 1) their one file record,
    read from the host's own fields, so every verb works on files (their backups stay where they are)."""
    state = rollout.state
    first = pb.files[0] if pb.files else None
    for host, rec in state.hosts.items():
        if rec.files:
            continue
        name = first.name if first is not None else "config"
        rec.files[name] = FileRecord(
            path=pb.path_on(host),
            shadow_path=pb.shadow_on(host),
            baseline_sha256=rec.baseline_sha256,
            baseline_mode=rec.baseline_mode,
            candidate_sha256=state.candidate_sha256,
            sha256=rec.sha256,
            shadow_before=rec.shadow_before,
            backup=rec.backup or _legacy_backup(host),
            shadow_staged=rec.shadow_staged,
            switched=rec.state == HostState.CANDIDATE,
            state=rec.state if rec.state != HostState.UNKNOWN else HostState.BASELINE,
            derived=True,
        )


def _legacy_backup(host: str) -> str:
    from rollout.edges.store import _safe

    return _safe(host)


def spec_of(pb: Playbook, name: str) -> ConfigFile | None:
    """Return the playbook's file named `name` (None: a rollout from before its name was kept)."""
    for f in pb.files:
        if f.name == name:
            return f
    return pb.files[0] if len(pb.files) == 1 else None


def candidate_bytes(rollout: Rollout, sha: str, cache: dict[str, bytes] | None = None) -> bytes:
    """Return the frozen candidate bytes with hash `sha` (kept in `cache` once read)."""
    if cache is not None and sha in cache:
        return cache[sha]
    data = rollout.read_blob(candidate_blob(sha))
    if data is None and sha == rollout.state.candidate_sha256:
        data = rollout.candidate()  # the one-file form keeps its candidate under the source's name
    if data is not None:
        if cache is not None:
            cache[sha] = data
        return data
    raise FileNotFoundError(f"candidate {sha[:12]} is not kept in rollout {rollout.id}")


def bundle_for(
    rollout: Rollout,
    host: str,
    playbook: Playbook | None = None,
    cache: dict[str, bytes] | None = None,
    *,
    with_data: bool = True,
) -> list[FilePlan]:
    """Return every file of `host`'s bundle, in the playbook's order, with its path, hashes and
    candidate bytes (`playbook`: the rollout's frozen playbook, read from its folder when omitted;
    `with_data` False: no bytes, for what needs only the paths)."""
    pb = playbook if playbook is not None else frozen(rollout)
    rec = rollout.state.hosts[host]
    if not rec.files:
        adopt(rollout, pb)
    plans = []
    for name, f in rec.files.items():
        spec = spec_of(pb, name)
        if f.candidate_sha256 is None and with_data:
            # A patch over pull for a host whose agent has not reported (or that is held back):
            # callers pass only hosts with a candidate; this is a broken state, not a host's error.
            raise FileNotFoundError(f"{host}: {name}: its candidate is not known (rollout {rollout.id})")
        plans.append(
            FilePlan(
                name=name,
                path=f.path,
                shadow_path=f.shadow_path,
                kind=spec.kind if spec is not None else "text",
                baseline_sha256=f.baseline_sha256,
                baseline_mode=f.baseline_mode,
                candidate_sha256=f.candidate_sha256 or "",
                data=candidate_bytes(rollout, f.candidate_sha256, cache)
                if with_data and f.candidate_sha256 is not None
                else b"",
                activate=spec.activate if spec is not None else None,
            )
        )
    return plans


def frozen(rollout: Rollout) -> Playbook:
    """Return the rollout's playbook as frozen at start."""
    data = yamlload.safe_load(rollout.playbook_copy.read_text())
    return playbook_mod.from_dict(data, Path(rollout.state.playbook_file), require_source=False)


def read_backup(rollout: Rollout, f: FileRecord) -> bytes | None:
    """Return a file's baseline bytes, or None when the host had no such file."""
    if f.baseline_sha256 is None or f.backup is None:
        return None
    return rollout.read_backup_file(f.backup)
