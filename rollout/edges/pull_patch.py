"""Pull fleets: the candidate of a host whose agent first reports after start, computed then
(and the other OpenCode layers its agent is asked to report, so `start` can check them).

A patch (`config.patch`, or a bundle file's `patch`) needs the host's own file. A pull host whose
agent had not reported when the rollout started has no candidate yet (its FileRecord's
`candidate_sha256` is None). When the agent's first report uploads its bytes, `fold_reports` (under
the lock) calls `late_candidates`: the rollout's frozen inputs (the `inputs/<n>` blobs `start`
kept, which `retry` reads too) are applied with the same patch code and checked with the same kind
validation as at start; the candidate blob, its diff (a group of `diffs/index.json`, shared with
hosts whose change is the same) and one journal line are written. A host the patch breaks is held
back: it keeps its own bytes, is never assigned anything by this rollout, and says why.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from rollout import configkinds
from rollout.configkinds.base import ConfigContext, Problem
from rollout.core import diffing, patching
from rollout.core.playbook import Playbook
from rollout.core.state import HostRecord
from rollout.edges.bundle import candidate_blob, input_blob
from rollout.edges.store import Rollout

HELD_BACK = "held back: the patch breaks its file: "

Uploaded = dict[str, bytes | None]  # file name -> the bytes its agent uploaded (None: no such file)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def layer_paths(pb: Playbook, host: str) -> list[str]:
    """Return the other OpenCode layer files of `host` its agent reports (and uploads when they
    change): `config.layers`, else OpenCode's global and managed files; none for other kinds."""
    if pb.config_kind != "opencode":
        return []
    paths = [s.path for s in pb.config_layers] if pb.config_layers is not None else _defaults(pb.transport)
    return [p.replace("{host}", host) for p in paths]


@functools.cache
def _defaults(transport: str) -> list[str]:
    from rollout.configkinds import opencode_layers

    return [s.path for s in opencode_layers.default_specs(transport)]


def needs_candidate(rec: HostRecord) -> bool:
    """Return True when a file of the host's bundle has no candidate yet (a patch, not heard from)."""
    return rec.held_back is None and any(f.candidate_sha256 is None for f in rec.files.values())


@dataclass
class _Fold:
    """What one fold computed, written once at its end (one index write, one journal line)."""

    rollout: Rollout
    playbook: Playbook
    inputs: dict[str, bytes] = field(default_factory=dict)
    checked: dict[str, list[Problem]] = field(default_factory=dict)  # by candidate sha (and file)
    patched: dict[tuple[str, str], tuple[bytes | None, list[str]]] = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)
    index: list[dict[str, Any]] | None = None
    by_change: dict[tuple[str, str | None, str | None], dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, list[int]] = field(default_factory=dict)  # host -> diff groups it joined
    held: dict[str, str] = field(default_factory=dict)

    def input_of(self, name: str) -> bytes:
        if name not in self.inputs:
            i = next(i for i, f in enumerate(self.playbook.files) if f.name == name)
            data = self.rollout.read_blob(input_blob(i))
            if data is None:
                raise FileNotFoundError(f"{self.rollout.location(input_blob(i))} is missing")
            self.inputs[name] = data
        return self.inputs[name]

    def diff_index(self) -> list[dict[str, Any]]:
        if self.index is None:
            raw = self.rollout.read_blob("diffs/index.json")
            self.index = json.loads(raw) if raw else []
            for entry in self.index:
                self.by_change[_change(entry, self.playbook.files[0].name)] = entry
        return self.index


def late_candidates(rollout: Rollout, playbook: Playbook, taken: dict[str, Uploaded]) -> dict[str, str]:
    """Compute the candidate of each host in `taken` (its files' uploaded bytes) whose bundle has
    a patch not applied yet; return the hosts held back, with why. The rollout's state is changed
    in place (the caller saves it with its journal line)."""
    fold = _Fold(rollout, playbook)
    for host, uploaded in taken.items():
        _one(fold, host, uploaded)
    if fold.index is not None:
        rollout.write_blob("diffs/index.json", json.dumps(fold.index, indent=2).encode())
    if fold.groups or fold.held:
        rollout.log("late-candidates", hosts=fold.groups, held_back=fold.held)
    return fold.held


def _one(fold: _Fold, host: str, uploaded: Uploaded) -> None:
    rec = fold.rollout.state.hosts[host]
    pb = fold.playbook
    computed: dict[str, bytes] = {}
    for f in pb.files:
        record = rec.files.get(f.name)
        if record is None or record.candidate_sha256 is not None or f.patch is None:
            continue
        baseline = uploaded.get(f.name)
        key = (f.name, _sha(baseline) if baseline is not None else "-")
        if key not in fold.patched:
            where = f.path_on(host)

            def check(data: bytes, f: Any = f, where: str = where) -> list[Problem]:
                k = f"{f.name}:{_sha(data)}"
                if k not in fold.checked:
                    ctx = ConfigContext(base_dir=pb.base_dir, options=f.options, source=where)
                    fold.checked[k] = configkinds.check_candidate(data, f.kind, ctx)
                return fold.checked[k]

            fold.patched[key] = patching.host_file(
                baseline, fold.input_of(f.name), f.patch_format, f.kind, check, where=where
            )
        data, errors = fold.patched[key]
        if data is None:
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            _hold_back(fold, host, rec, "; ".join(errors[:3]) + more)
            return
        computed[f.name] = data
    for name, data in computed.items():
        sha = _sha(data)
        if sha not in fold.kept and fold.rollout.read_blob(candidate_blob(sha)) is None:
            fold.rollout.write_blob(candidate_blob(sha), data)
        fold.kept.add(sha)
        rec.files[name].candidate_sha256 = sha
        spec = next(f for f in pb.files if f.name == name)
        fold.groups.setdefault(host, []).append(
            _join_group(
                fold, host, name, spec.kind, uploaded.get(name), rec.files[name].baseline_sha256, data
            )
        )


def held_reason(rec: HostRecord) -> str | None:
    """Return what status says of a held-back host (None: it is not held back)."""
    return HELD_BACK + rec.held_back if rec.held_back is not None else None


def _hold_back(fold: _Fold, host: str, rec: HostRecord, why: str) -> None:
    """The host gets nothing from this rollout: its candidates stay unknown, it keeps its bytes."""
    rec.held_back = why
    rec.reason = held_reason(rec)
    fold.held[host] = why


def _join_group(
    fold: _Fold, host: str, name: str, kind: str, baseline: bytes | None, base_sha: str | None, data: bytes
) -> int:
    """Add `host` to the diff group of the same change to file `name` (same baseline, same
    candidate), or write a new group (its `diffs/<n>.json` and `.txt`); return its number."""
    index = fold.diff_index()
    cand = _sha(data)
    same = fold.by_change.get((name, base_sha, cand))
    if same is not None:
        if host not in same["hosts"]:
            same["hosts"].append(host)
        return int(same["group"])
    n = int(index[-1]["group"]) + 1 if index else 1
    as_json, text = diffing.diff_one(baseline, data, kind)
    fold.rollout.write_blob(f"diffs/{n}.json", json.dumps(as_json, indent=2).encode())
    fold.rollout.write_blob(f"diffs/{n}.txt", (text + "\n").encode())
    entry = {
        "group": n,
        "hosts": [host],
        "file": name,
        "baseline_sha256": base_sha,
        "changes": bool(as_json),
        "candidate_sha256": cand,
    }
    index.append(entry)
    fold.by_change[(name, base_sha, cand)] = entry
    return n


def _change(entry: dict[str, Any], first: str) -> tuple[str, str | None, str | None]:
    """Return what makes a diff group one change: the file, its baseline and its candidate."""
    return (str(entry.get("file") or first), entry.get("baseline_sha256"), entry.get("candidate_sha256"))
